"""Seeds a model with long histories (versions, back-test months, now-test days) for UI tests and benchmarks."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from spec_factory import write_spec

from ratchet.modeling import artifacts
from ratchet.registry import EvaluationRow, version_contender

REQUIREMENTS = [{"metric": "rmse", "max": 0.9, "relative_to": "baseline", "scope": "backtest"},
                {"metric": "mape", "max": 0.1, "scope": "nowtest"}]


def seed_history(registry, folder: Path, name: str, *, versions: int, months: int, champion: bool = True,
                 nowtest_days: int = 60, seed: int = 0):
    """A model with `versions` versions, each back-tested on `months` months, and now-test days."""
    from sklearn.linear_model import Ridge

    spec = write_spec(folder, name=name, table=f"ui_seed.{name}", requirements=REQUIREMENTS,
                      backtest={"months": months})
    registry.sync_model(spec)
    art = artifacts.dump(Ridge().fit(np.eye(3), [1.0, 2.0, 3.0]))
    for number in range(1, versions + 1):
        registry.register_version(
            name, run_id=f"run-{number}", trial_index=None, estimator_class="sklearn.linear_model.Ridge",
            hyperparameters={"alpha": 0.1 * number}, artifact=art.data, artifact_sha256=art.sha256,
            artifact_format=art.format, dataset_fingerprint="0" * 64, features=["a", "b", "c"], target="y",
            package_versions={}, author="seed", fit_seconds=0.1, size_bytes=art.size_bytes,
            predict_latency_p95_ms=1.0, cv_metric="rmse", cv_score=10.0 + number % 7,
            contract=spec.source.contract(["a", "b", "c"], "day"), spec_snapshot=spec.raw)
    rng = np.random.default_rng(seed)
    month_keys = [f"{2000 + m // 12}-{m % 12 + 1:02d}" for m in range(months)]
    contenders = [(version_contender(v), v, None) for v in range(1, versions + 1)]
    contenders += [(b, None, b) for b in spec.baselines]
    for contender, version, baseline in contenders:
        registry.record_evaluations(name, [
            EvaluationRow(kind="backtest", contender=contender, partition=month, metric="rmse",
                          value=float(10 + rng.normal()), n_rows=30, run_id="seed", version=version,
                          baseline=baseline, data_fingerprint="f")
            for month in month_keys])
    if champion:
        registry.record_promotion(name, 1, kind="initial", outcome="promoted", triggered_by="seed", reason="seed",
                                  gates=[], run_id="seed", expected_previous_version=None)
        start = dt.date(2025, 1, 1)
        registry.record_evaluations(name, [
            EvaluationRow(kind="nowtest", contender="v1", partition=str(start + dt.timedelta(days=d)), metric="mape",
                          value=float(0.05 + 0.1 * (d % 17 == 0)), n_rows=14, run_id=f"now-{d}", version=1,
                          passed=d % 17 != 0)
            for d in range(nowtest_days)])
    return spec
