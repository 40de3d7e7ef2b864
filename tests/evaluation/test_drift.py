"""Drift (`ratchet.evaluation.drift`): a significant, material shift warns; noise, seasons and tiny windows do not."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ratchet.evaluation.drift import MIN_ROWS, feature_drift, reference_rows
from ratchet.registry.entities import Version


def _version(start: str, end: str, features: tuple[str, ...]) -> Version:
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return Version(model="m", version=1, estimator_class="x", hyperparameters={}, artifact_sha256="",
                   artifact_format="", train_start=pd.Timestamp(start).to_pydatetime(),
                   train_end=pd.Timestamp(end).to_pydatetime(), dataset_fingerprint="", features=features,
                   target="y", package_versions={}, author="t", fit_seconds=0.0, predict_latency_p95_ms=None,
                   size_bytes=0, cv_metric=None, cv_score=None, run_id=None, trial_started_at=now, created_at=now,
                   contract={}, spec_snapshot={}, code_version=None, python_version=None)


def _frame(days: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    times = pd.Series(pd.date_range("2023-01-01", periods=days))
    season = 10 * np.sin(2 * np.pi * times.dt.dayofyear / 365.25)
    X = pd.DataFrame({"noise": rng.normal(size=days), "temperature": season + rng.normal(size=days),
                      "kind": rng.choice(["a", "b"], days)})
    return X, times


def test_a_shifted_feature_warns_and_an_unchanged_one_does_not():
    X, times = _frame(500)
    window = (times >= "2024-04-01").to_numpy() & (times < "2024-04-15").to_numpy()
    X.loc[window, "noise"] += 2.0
    verdicts = feature_drift(_version("2023-01-01", "2024-03-31", ("noise", "temperature")), X, times, window)
    assert verdicts["noise"]["warning"] and verdicts["noise"]["test"] == "Kolmogorov-Smirnov"
    assert verdicts["noise"]["effect"] >= 0.3 and verdicts["noise"]["p_value"] < verdicts["noise"]["level"]
    assert not verdicts["temperature"]["warning"]  # compared with the same season a year earlier
    assert verdicts["temperature"]["reference"] == "same season a year earlier"


def test_a_seasonal_feature_against_the_last_training_days_would_drift_so_the_season_is_the_reference():
    X, times = _frame(500)
    window = (times >= "2024-04-01").to_numpy() & (times < "2024-04-15").to_numpy()
    reference, described = reference_rows(_version("2023-01-01", "2024-03-31", ("temperature",)), times, window)
    assert described == "same season a year earlier" and set(times[reference].dt.strftime("%m-%d")) == set(
        times[window].dt.strftime("%m-%d"))
    short = _version("2024-01-01", "2024-03-31", ("temperature",))  # less than a year of training
    assert reference_rows(short, times, window)[1] == "last 90 days of training"


def test_no_verdict_below_the_minimum_window_and_categories_use_chi_square():
    X, times = _frame(500)
    tiny = (times >= "2024-04-01").to_numpy() & (times < "2024-04-06").to_numpy()
    verdicts = feature_drift(_version("2023-01-01", "2024-03-31", ("noise",)), X, times, tiny)
    assert verdicts["noise"] == {"warning": False, "reason": verdicts["noise"]["reason"]}
    assert f"{MIN_ROWS} needed" in verdicts["noise"]["reason"]
    window = (times >= "2024-04-01").to_numpy() & (times < "2024-05-01").to_numpy()
    X.loc[window, "kind"] = "b"
    kinds = feature_drift(_version("2023-01-01", "2024-03-31", ("kind",)), X, times, window, ("kind",))
    assert kinds["kind"]["test"] == "chi-square" and kinds["kind"]["warning"]


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_unchanged_data_warns_rarely():
    """Truth known: 200 windows of unchanged, stationary features; warnings stay at about the stated rate."""
    warnings = 0
    for seed in range(200):
        X, times = _frame(500, seed)
        window = (times >= "2024-04-01").to_numpy() & (times < "2024-04-15").to_numpy()
        verdicts = feature_drift(_version("2023-01-01", "2024-03-31", ("noise", "temperature")), X, times, window)
        warnings += any(v["warning"] for v in verdicts.values())
    assert warnings / 200 <= 0.02
