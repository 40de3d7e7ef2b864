"""Requirement checks (absolute, relative to the best baseline, computational) and the ratchet."""
from __future__ import annotations

import math

import pytest
from promote_helpers import make_spec, register_fitted, spec_dict

from ratchet.evaluation.requirements import check_requirements
from ratchet.lifecycle.ratchet import ratchet_bound
from ratchet.registry import RatchetStep
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


def test_ratchet_tightens_with_slack_and_never_loosens():
    assert ratchet_bound(req(bound=10.0), 8.0, 0.1) == pytest.approx(8.8)
    assert ratchet_bound(req(bound=8.5), 8.0, 0.1) is None  # 8.8 would loosen 8.5
    assert ratchet_bound(req("r2", "min", 0.5), 0.8, 0.05) == pytest.approx(0.76)
    assert ratchet_bound(req("r2", "min", 0.9), 0.8, 0.05) is None
    assert ratchet_bound(req("r2", "min", -1.0), -0.5, 0.1) == pytest.approx(-0.55)
    assert ratchet_bound(req(), None, 0.1) is None and ratchet_bound(req(), math.inf, 0.1) is None


def test_ratchet_steps_are_recorded_and_rechecked_against_the_stored_bound(registry, tmp_path):
    spec = make_spec(tmp_path, spec_dict())
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
    data = spec_dict()
    data["requirements"][0]["max"] = 8.0
    registry.sync_model(make_spec(tmp_path, data), changed_by="yaml")
    stored = next(r for r in registry.requirements("demand") if r.id == rmse.id)
    assert stored.bound == 8.0 and stored.history[-1].change == "edited" and stored.history[-1].old_bound == 9.0
