"""Requirement checks (`ratchet.evaluation.requirements`): absolute, relative to the best baseline, computational."""
from __future__ import annotations

import math

import pytest

from ratchet.evaluation.requirements import check_requirements
from ratchet.specs.model import RequirementSpec


def req(metric="rmse", direction="max", bound=10.0, relative_to=None, scope="backtest"):
    return RequirementSpec(metric=metric, direction=direction, bound=bound, scope=scope, relative_to=relative_to)


def test_absolute_bounds_in_both_directions():
    results = check_requirements([req(), req("r2", "min", 0.5), req("mape", bound=0.15, scope="nowtest")],
                                 {"rmse": 9.0, "r2": 0.4, "mape": 0.231}, {})
    assert [r.passed for r in results] == [True, False, False]
    assert results[0].describe() == "rmse 9 <= max 10 (back-test)"
    assert results[1].describe() == "r2 0.4 < min 0.5 (back-test)"
    assert results[2].describe() == "mape 0.231 > max 0.15 (now-test)"
    assert results[0].requirement_id is None and results[0].effective_bound == 10.0


def test_relative_bound_uses_the_best_baseline_on_the_same_rows():
    baselines = {"last_value": {"rmse": 11.0, "r2": 0.2}, "mean": {"rmse": 15.0, "r2": 0.6}}
    rmse, r2 = check_requirements([req(bound=0.9, relative_to="baseline"),
                                   req("r2", "min", 1.1, relative_to="baseline")],
                                  {"rmse": 12.3, "r2": 0.7}, baselines)
    assert (rmse.baseline_name, rmse.baseline_value, rmse.passed) == ("last_value", 11.0, False)
    assert rmse.effective_bound == pytest.approx(9.9)
    assert rmse.describe() == "rmse 12.3 > 0.9 × last_value 11 = 9.9 (back-test)"
    assert (r2.baseline_name, r2.passed) == ("mean", True)  # higher r2 is better: best baseline is 'mean'
    assert r2.effective_bound == pytest.approx(0.66)
    named = check_requirements([req(bound=0.9, relative_to="mean")], {"rmse": 12.3}, baselines)[0]
    assert (named.baseline_name, named.passed) == ("mean", True)


def test_a_missing_value_or_baseline_never_passes():
    present, nan, no_baseline, latency = check_requirements(
        [req(), req("mae"), req(bound=0.9, relative_to="baseline"),
         req("predict_latency_p95_ms", bound=5, scope="gate")],
        {"mae": math.nan, "rmse": 1.0}, {"last_value": {"mae": 1.0}})
    assert [r.passed for r in (present, nan, no_baseline, latency)] == [True, False, False, False]
    assert nan.value is None and nan.describe() == "mae missing > max 10 (back-test)"
    assert no_baseline.describe().startswith("rmse 1: no value of baseline 'baseline' on the same rows")
    assert latency.describe() == "predict_latency_p95_ms missing > max 5 (gate)"


def test_a_requirement_waiting_for_its_calibration_passes_and_says_it_has_no_bound_yet():
    (result,) = check_requirements([req("mape", bound=math.inf, scope="nowtest")], {"mape": 0.3}, {})
    assert result.passed
    assert result.describe() == "mape 0.3 <= max: no bound yet (calibrated at the first promotion) (now-test)"


def test_a_per_series_requirement_names_each_breaching_series_with_enough_rows():
    from dataclasses import replace

    from ratchet.evaluation.requirements import check_per_series

    per_series = replace(req("mae", bound=10.0, scope="nowtest"), per_series=True, min_rows=5)
    relative = replace(req("rmse", bound=0.9, relative_to="last_value", scope="nowtest"), per_series=True)
    by_series = {"store=1": {"rows": 7, "mae": 4.0, "rmse": 5.0}, "store=2": {"rows": 7, "mae": 14.2, "rmse": 9.0},
                 "store=3": {"rows": 3, "mae": 99.0, "rmse": 99.0}}  # too few rows for a verdict
    baselines = {"last_value": {"store=1": {"rmse": 8.0}, "store=2": {"rmse": 20.0}, "store=3": {"rmse": 1.0}}}
    results = check_per_series([per_series, relative], [per_series, relative], by_series, baselines,
                               default_min_rows=3)
    assert [(r.series, r.metric) for r in results] == [("store=2", "mae"), ("store=3", "rmse")]
    assert results[0].describe() == "series store=2: mae 14.2 > max 10 (now-test)"
    assert results[1].describe() == "series store=3: rmse 99 > 0.9 × last_value 1 = 0.9 (now-test)"
    assert results[0].as_dict()["series"] == "store=2" and not any(r.passed for r in results)
    undeclared = check_per_series([per_series], [replace(per_series, per_series=False)], by_series, baselines, 3)
    assert undeclared == []  # only the YAML's per_series requirements are checked per series
