"""Nightly retraining: search, record every trial, refit the best on all history and register them."""
from __future__ import annotations

import importlib.metadata
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.modeling import artifacts, sources
from ratchet.modeling.features import make_estimator, make_xy
from ratchet.modeling.months import dataset_fingerprint
from ratchet.modeling.search import best_trials, run_search

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

LATENCY_REPEATS = 50


def latency_p95_ms(model: Any, X: pd.DataFrame) -> float:
    """p95 of single-row prediction time, the way a serving call would see it."""
    row = X.iloc[[len(X) - 1]]
    timings = []
    for _ in range(LATENCY_REPEATS):
        started = time.perf_counter()
        model.predict(row)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 95))


def package_versions() -> dict[str, str]:
    """The versions of the libraries a fitted artifact depends on, stored with every version."""
    return {name: importlib.metadata.version(name) for name in ("scikit-learn", "pandas", "numpy", "skops", "ratchet")}


def retrain_model(registry: Registry, spec: ModelSpec, *, run_id: str, logical_date: Any,
                  author: str = "ratchet_retrain") -> list[int]:
    """Search on the data before `logical_date`, store every trial, refit the best on all of it and register them.

    The search is seeded by the spec's seed and `logical_date`, so the same run reaches the same
    result. Returns the registered version numbers (empty when no trial succeeded).

    Raises:
        DataError: the source cannot be read or has too little history.
    """
    frame = sources.read_source(spec, end=logical_date)
    sources.require_rows(spec, frame, (spec.search.cv_folds + 1) * 14, "time-ordered cross-validation")
    X, y, times = make_xy(spec, frame)
    trials = run_search(spec, X, y, seed_salt=str(logical_date), champion=registry.champion(spec.name))
    registry.record_trials(spec.name, run_id, [t.record() for t in trials])
    fingerprint = dataset_fingerprint(frame)
    estimators = {e.class_path: e for e in spec.estimators}
    versions = []
    for trial in best_trials(spec, trials):
        started = time.perf_counter()
        model = make_estimator(spec, estimators[trial.estimator_class], trial.params).fit(X, y)
        fit_seconds = time.perf_counter() - started
        artifact = artifacts.dump(model)
        versions.append(registry.register_version(
            spec.name, run_id=run_id, trial_index=trial.trial_index,
            estimator_class=trial.estimator_class, hyperparameters=trial.params, artifact=artifact.data,
            artifact_sha256=artifact.sha256, artifact_format=artifact.format,
            train_start=times.iloc[0].to_pydatetime(), train_end=times.iloc[-1].to_pydatetime(),
            dataset_fingerprint=fingerprint, features=list(X.columns), target=spec.source.target,
            package_versions=package_versions(), author=author, fit_seconds=fit_seconds,
            predict_latency_p95_ms=latency_p95_ms(model, X), size_bytes=artifact.size_bytes,
            cv_metric=spec.metric, cv_score=trial.mean_score,
        ))
    return versions

