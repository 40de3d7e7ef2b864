"""The ratchet (`ratchet.lifecycle.ratchet`): calibrated bounds that never loosen; steps are recorded."""
from __future__ import annotations

import math

import numpy as np
import pytest
from promote_helpers import BASELINES, MONTHS, SPEC, register_fitted, store_backtest
from scipy import stats
from spec_factory import spec_data, write_spec

from ratchet.evaluation.backtest import metric_tables
from ratchet.lifecycle.ratchet import calibrate_backtest, calibrate_nowtest, ratchet_steps, tighter
from ratchet.modeling.statistics import windows
from ratchet.registry import RatchetStep
from ratchet.specs.model import RequirementSpec


def req(metric="rmse", direction="max", bound=10.0, relative_to=None, scope="backtest"):
    return RequirementSpec(metric=metric, direction=direction, bound=bound, scope=scope, relative_to=relative_to)


def test_tighter_means_lower_for_max_and_higher_for_min():
    assert tighter(req(bound=10.0), 9.0) and not tighter(req(bound=8.5), 8.8)
    assert tighter(req("r2", "min", 0.5), 0.6) and not tighter(req("r2", "min", 0.9), 0.8)
    assert tighter(req(bound=math.inf), 1e9)  # a requirement waiting for its calibration takes any bound


@pytest.fixture
def champion_backtest(registry, tmp_path):
    spec = write_spec(tmp_path, **SPEC)
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1")
    store_backtest(registry, "demand", {"v1": [8.0, 9.0, 10.0, 9.0], **BASELINES})
    return spec


def test_a_back_test_bound_is_the_upper_confidence_bound_of_the_monthly_mean(registry, champion_backtest):
    spec = champion_backtest
    rmse = next(r for r in registry.requirements("demand") if r.metric == "rmse" and r.relative_to is None)
    bound, derivation = calibrate_backtest(spec, rmse, metric_tables(registry, spec), "v1", MONTHS, 0.05)
    monthly = np.array([8.0, 9.0, 10.0, 9.0])
    expected = monthly.mean() + stats.t.ppf(0.95, 3) * monthly.std(ddof=1) / 2
    assert bound == pytest.approx(expected) and derivation["months"] == 4 and derivation["alpha"] == 0.05
    relative = next(r for r in registry.requirements("demand") if r.relative_to == "baseline")
    ratio, _ = calibrate_backtest(spec, relative, metric_tables(registry, spec), "v1", MONTHS, 0.05)
    ratios = monthly / 12.0  # last_value (12) is the best baseline every month
    assert ratio == pytest.approx(ratios.mean() + stats.t.ppf(0.95, 3) * ratios.std(ddof=1) / 2)


def test_a_now_test_bound_is_the_quantile_of_the_metric_over_the_back_tests_windows(registry, champion_backtest):
    spec = champion_backtest
    mae = next(r for r in registry.requirements("demand") if r.metric == "mae")
    bound, derivation = calibrate_nowtest(registry, spec, mae, "v1", MONTHS, 0.1)
    series = registry.backtest_days("demand", ["v1"], MONTHS)["v1"]
    errors = np.abs(np.array(series.predicted) - np.array(series.actual))
    masks = windows(np.array(series.times, dtype="datetime64[D]"), spec.nowtest.window_days, spec.nowtest.min_rows)
    assert bound == pytest.approx(np.quantile([errors[m].mean() for m in masks], 0.9))
    assert derivation["windows"] == len(masks) > 90 and derivation["quantile"] == 0.9
    assert f"over {len(masks)} windows of {spec.nowtest.window_days} days" in derivation["text"]


def test_ratchet_steps_carry_their_derivation_and_a_first_calibration_happens_with_the_ratchet_off(
        registry, tmp_path):
    data = spec_data(**{**SPEC, "promotion": {**SPEC["promotion"], "ratchet": {"enabled": False}}})
    data["requirements"].append({"metric": "rmse", "calibrate": 0.05, "scope": "nowtest"})
    spec = write_spec(tmp_path, data)
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1")
    store_backtest(registry, "demand", {"v1": [8.0, 9.0, 10.0, 9.0], **BASELINES})
    steps = ratchet_steps(registry, spec, "v1", metric_tables(registry, spec), "first", 1)
    calibrated = next(r for r in registry.requirements("demand") if r.calibrate is not None)
    assert math.isinf(calibrated.bound)
    assert [s.requirement_id for s in steps] == [calibrated.id]  # the ratchet is off: only the first bound
    assert steps[0].derivation["method"].startswith("quantile") and "first calibration" in steps[0].reason


def test_ratchet_steps_are_recorded_and_rechecked_against_the_stored_bound(registry, tmp_path):
    spec = write_spec(tmp_path, **SPEC)
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1")
    rmse = next(r for r in registry.requirements("demand") if r.metric == "rmse" and r.relative_to is None)
    _, applied = registry.record_promotion(
        "demand", 1, kind="initial", outcome="promoted", triggered_by="carol", reason="r", gates=[],
        run_id="p1", expected_previous_version=None,
        ratchet_steps=[RatchetStep(rmse.id, 9.0, "tighter"), RatchetStep(rmse.id, 9.5, "looser: skipped")])
    assert [(a["old_bound"], a["new_bound"]) for a in applied] == [(10.0, 9.0)]
    [stored] = [r for r in registry.requirements("demand") if r.id == rmse.id]
    assert stored.bound == 9.0
    assert [(c.change, c.old_bound, c.new_bound, c.changed_by) for c in stored.history] == [
        ("created", None, 10.0, "yaml"), ("ratchet", 10.0, 9.0, "carol")]
    # re-syncing an unchanged YAML keeps the ratcheted bound; editing the YAML is recorded as an edit
    registry.sync_model(spec)
    assert next(r for r in registry.requirements("demand") if r.id == rmse.id).bound == 9.0
    data = spec_data(**SPEC)
    data["requirements"][0]["max"] = 8.0
    registry.sync_model(write_spec(tmp_path, data), changed_by="yaml")
    stored = next(r for r in registry.requirements("demand") if r.id == rmse.id)
    assert stored.bound == 8.0 and stored.history[-1].change == "edited" and stored.history[-1].old_bound == 9.0
