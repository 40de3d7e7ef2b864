"""The ratchet (`ratchet.lifecycle.ratchet`): bounds tighten with slack and never loosen; steps are recorded."""
from __future__ import annotations

import math

import pytest
from promote_helpers import SPEC, register_fitted
from spec_factory import spec_data, write_spec

from ratchet.lifecycle.ratchet import ratchet_bound
from ratchet.registry import RatchetStep
from ratchet.specs.model import RequirementSpec


def req(metric="rmse", direction="max", bound=10.0, relative_to=None, scope="backtest"):
    return RequirementSpec(metric=metric, direction=direction, bound=bound, scope=scope, relative_to=relative_to)


def test_ratchet_tightens_with_slack_and_never_loosens():
    assert ratchet_bound(req(bound=10.0), 8.0, 0.1) == pytest.approx(8.8)
    assert ratchet_bound(req(bound=8.5), 8.0, 0.1) is None  # 8.8 would loosen 8.5
    assert ratchet_bound(req("r2", "min", 0.5), 0.8, 0.05) == pytest.approx(0.76)
    assert ratchet_bound(req("r2", "min", 0.9), 0.8, 0.05) is None
    assert ratchet_bound(req("r2", "min", -1.0), -0.5, 0.1) == pytest.approx(-0.55)
    assert ratchet_bound(req(), None, 0.1) is None and ratchet_bound(req(), math.inf, 0.1) is None


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
