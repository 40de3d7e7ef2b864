"""Builders for promotion tests: the model spec's fields, fitted versions registered through the Registry,
back-test evaluations and now-test days stored the way the DAGs store them, a first champion."""
from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from spec_factory import build_spec, write_spec
from sqlalchemy import select

from ratchet.lifecycle.promotion import promote
from ratchet.modeling import artifacts
from ratchet.registry import EvaluationRow
from ratchet.registry.entities import DayRow
from ratchet.registry.schema import Base
from ratchet.specs import ModelSpec

MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04"]
FEATURES = ["x1", "x2"]


# spec_factory overrides for the model the promotion tests promote: `write_spec(folder, **SPEC)` writes "demand"
# (source table "demand_source"); `write_spec(folder, spec_data(**SPEC), promotion={...})` changes one setting.
SPEC = {
    "owner": "tests", "alert_emails": ["owner@example.com"],
    "source": {"time_column": "ts", "features": FEATURES},
    "baselines": ["last_value", "mean"],
    "requirements": [
        {"metric": "rmse", "max": 10.0},
        {"metric": "rmse", "max": 0.95, "relative_to": "baseline"},
        {"metric": "mae", "max": 8.0, "scope": "nowtest"},
        {"metric": "model_size_bytes", "max": 10_000_000},
    ],
    "promotion": {"min_improvement": 0.05, "min_months_won": 3, "min_trial_days": 3,
                  "ratchet": {"enabled": True}},
}
BASELINES = {"last_value": [12.0] * 4, "mean": [15.0] * 4}  # back-test rmse of the baselines per month of MONTHS
DAYS = ["2024-05-01", "2024-05-02", "2024-05-03"]  # now-test days of a candidate's trial
GOLDEN = [  # golden cases the Ridge of register_fitted (y = 3 x1 - 2 x2) passes
    {"name": "typical", "inputs": {"x1": 1.0, "x2": 0.0}, "expected": 3.0, "tolerance": 0.5},
    {"name": "negative", "inputs": {"x1": 0.0, "x2": 1.0}, "expected": -2.0, "tolerance": 0.5},
]


def write_golden_spec(folder: Path, cases: list | None = None, raw: str | None = None) -> ModelSpec:
    """The model of SPEC written into `folder`, with `cases` (or the text `raw`) as its demand.golden.yaml."""
    if raw is not None:
        (folder / "demand.golden.yaml").write_text(raw)
    elif cases is not None:
        (folder / "demand.golden.yaml").write_text(yaml.safe_dump(cases, sort_keys=False))
    return write_spec(folder, **SPEC)


def training_frame(seed: int = 0, n: int = 60) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 2)), columns=FEATURES)
    return X, 3.0 * X["x1"] - 2.0 * X["x2"] + rng.normal(scale=0.1, size=n)


def register_fitted(registry, model: str, run_id: str, alpha: float = 1.0, *, spec: ModelSpec | None = None,
                    **overrides) -> int:
    """Fit a small Ridge and register it like the retrain DAG does, with the feature contract of `spec` (default:
    the model of SPEC); returns the version number."""
    from sklearn.linear_model import Ridge

    spec = spec or build_spec(name="demand", **SPEC)
    X, y = training_frame()
    art = artifacts.dump(Ridge(alpha=alpha).fit(X, y))
    fields = dict(estimator_class="sklearn.linear_model.Ridge", hyperparameters={"alpha": alpha},
                  artifact=art.data, artifact_sha256=art.sha256, artifact_format=art.format,
                  dataset_fingerprint="f" * 64, features=FEATURES, target="y", package_versions={},
                  author="tests", fit_seconds=0.01, size_bytes=art.size_bytes, predict_latency_p95_ms=0.5,
                  contract=spec.source.contract(FEATURES, "day"), spec_snapshot=spec.raw)
    fields.update(overrides)
    return registry.register_version(model, run_id=run_id, trial_index=None, **fields)


def store_backtest(registry, model: str, contender_values: dict[str, list[float]], metric="rmse",
                   extra_metrics: dict[str, float] | None = None, months: list[str] = MONTHS) -> None:
    """contender ('v1', 'last_value', ...) -> one value of `metric` per month of `months`, with the month's days.

    Each month has 28 days of errors whose root mean square is exactly the month's value (so the daily
    losses behind a paired test agree with the monthly rmse). Every contender shares the month's error
    pattern, scaled to its value, as models of one target do: hard days are hard for all of them.
    """
    rows, days = [], []
    for contender, values in contender_values.items():
        version = int(contender[1:]) if contender.startswith("v") and contender[1:].isdigit() else None
        for month, value in zip(months, values, strict=True):
            days.append(_month_days(contender, month, value))
            metrics = {metric: value, **{m: value * f for m, f in (extra_metrics or {}).items()}}
            for name, v in metrics.items():
                rows.append(EvaluationRow(kind="backtest", contender=contender, partition=month, metric=name,
                                          value=v, n_rows=30, run_id="bt", version=version,
                                          baseline=None if version else contender))
    registry.record_evaluations(model, rows, days=days)


def _month_days(contender: str, month: str, rmse: float) -> DayRow:
    rng = np.random.default_rng(zlib.crc32(month.encode()))
    errors = rng.normal(size=28)
    errors *= rmse / np.sqrt(np.mean(errors ** 2))
    actual = rng.normal(50, 5, size=28)
    start = dt.datetime.fromisoformat(f"{month}-01")
    return DayRow(contender=contender, partition=month, times=tuple(start + dt.timedelta(days=i) for i in range(28)),
                  run_id="bt", actual=tuple(actual), predicted=tuple(actual + errors))


def store_nowtest_days(registry, model: str, version: int, days: list[str], passed: bool = True) -> None:
    registry.record_evaluations(model, [
        EvaluationRow(kind="nowtest", contender=f"v{version}", partition=day, metric="mae", value=1.0, n_rows=7,
                      run_id=f"nt-{day}", version=version, passed=passed)
        for day in days])


def store_served_days(registry, model: str, version: int, days: list[str], *, passed: bool | None = None,
                      served_in_day: int = 4) -> None:
    """Served evaluations of the version's candidate arm on `days`, as the now-test stores them: it answered
    `served_in_day` rows in each day, and its served mae met (True), breached (False) or had no verdict (None)."""
    details = {"arm": "candidate", "served_in_day": served_in_day}
    registry.record_evaluations(model, [
        EvaluationRow(kind="served", contender=f"v{version}@candidate", partition=day, metric=metric, value=value,
                      n_rows=4, run_id=f"nt-{day}", version=version, passed=verdict, details=details)
        for day in days for metric, value, verdict in (("ids", 4.0, None), ("mae", 1.0, passed))])


def snapshot(registry) -> dict[str, list[tuple]]:
    """Every row of every registry table, to prove that a refused request changed nothing."""
    out = {}
    with registry.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def first_champion(registry, folder):
    """demand with v1 promoted as first champion by alice (rmse 9 per month; baselines 12 and 15)."""
    spec = write_spec(folder, **SPEC)
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1")
    store_backtest(registry, "demand", {"v1": [9.0] * 4, **BASELINES}, extra_metrics={"mae": 0.8})
    outcome = promote(registry, spec, version=1, reason="first champion", triggered_by="alice", run_id="run-1")
    return spec, outcome


AFTER_CHANGE = ["2024-05", "2024-06", "2024-07"]  # back-test months after a change of regime


def store_after_change(registry, values: dict[str, float]) -> None:
    """contender -> its back-test rmse (mae 0.8 of it) in each month of AFTER_CHANGE, as nightly back-tests add
    months after a change of regime."""
    store_backtest(registry, "demand", {c: [v] * len(AFTER_CHANGE) for c, v in values.items()},
                   extra_metrics={"mae": 0.8}, months=AFTER_CHANGE)


def after_regime_change(registry, folder):
    """demand: v1 champion, ratcheted to rmse <= 9 on MONTHS; then the data changed: on AFTER_CHANGE v1 scores 14,
    v2 (in trial for DAYS) 11 and the baselines 15 and 16. v2 passes every gate but the ratcheted rmse bound."""
    spec, _ = first_champion(registry, folder)
    register_fitted(registry, "demand", "r2")
    store_after_change(registry, {"v1": 14.0, "v2": 11.0, "last_value": 15.0, "mean": 16.0})
    store_nowtest_days(registry, "demand", 2, DAYS)
    return spec
