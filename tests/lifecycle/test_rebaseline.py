"""Re-baselining (`ratchet.lifecycle.rebaseline`): a person sets a bound again, looser or stricter, recorded with
who, why and the evidence, the owners' mail queued with it; a bad input changes nothing."""
from __future__ import annotations

import pytest
from promote_helpers import MONTHS, first_champion, register_fitted, snapshot, store_backtest

from ratchet.evaluation.backtest import metric_tables
from ratchet.exceptions import RebaselineInputError
from ratchet.lifecycle.ratchet import calibrate_nowtest
from ratchet.lifecycle.rebaseline import rebaseline

LINK = "http://localhost:8080/dags/ratchet_requirements/runs/manual__1"


@pytest.fixture
def champion(registry, tmp_path):
    """demand: v1 champion (rmse 9 each month), its bounds ratcheted by the first promotion; v2 registered."""
    spec, _ = first_champion(registry, tmp_path)
    register_fitted(registry, "demand", "r2")
    store_backtest(registry, "demand", {"v2": [11.0, 12.0, 13.0, 12.0]}, extra_metrics={"mae": 0.8})
    return spec


def _req(registry, metric, scope, relative_to=None):
    return next(r for r in registry.requirements("demand") if (r.metric, r.scope, r.relative_to) == (
        metric, scope, relative_to))


def test_a_bound_set_again_is_a_recorded_decision_with_its_evidence_and_a_mail(registry, champion):
    before = _req(registry, "rmse", "backtest")
    assert before.history[-1].change == "ratchet" and before.bound == pytest.approx(9.0)  # derived from v1's months

    [change] = rebaseline(registry, champion, metric="rmse", scope="backtest", bound=12.5, reason="  new regime ",
                          changed_by="alice", run_id="manual__1", link=LINK)
    assert (change["change"], change["old_bound"], change["new_bound"]) == ("rebaseline", before.bound, 12.5)
    after = _req(registry, "rmse", "backtest")
    last = after.history[-1]
    assert after.bound == 12.5  # looser: only a person's re-baseline does that
    assert (last.change, last.changed_by, last.reason, last.old_bound) == ("rebaseline", "alice", "new regime",
                                                                            before.bound)
    assert last.derivation["method"] == "set by a person" and last.derivation["run_id"] == "manual__1"
    assert last.derivation["old_change"] == "ratchet"
    assert last.derivation["old_derivation"] == before.history[-1].derivation  # why the old bound was what it was
    [alert] = registry.alerts("demand")
    assert alert.source == "requirement" and alert.recipients == ("owner@example.com",)
    assert alert.subject == "[Ratchet] demand requirement re-baselined by alice: rmse (backtest)"
    assert "Why: new regime" in alert.body_text and "max 12.5" in alert.body_text and LINK in alert.body_text
    assert before.history[-1].derivation["text"] in alert.body_text

    state = snapshot(registry)  # re-running the same run changes nothing more
    assert rebaseline(registry, champion, metric="rmse", scope="backtest", bound=12.5, reason="new regime",
                      changed_by="alice", run_id="manual__1", link=LINK) == []
    assert snapshot(registry) == state


def test_calibrate_derives_the_bound_from_a_versions_own_back_test_as_the_ratchet_does(registry, champion):
    mae = _req(registry, "mae", "nowtest")
    [change] = rebaseline(registry, champion, metric="mae", scope="nowtest", calibrate=0.1, version=2,
                          reason="v2 is trained on the new regime", changed_by="bob", run_id="manual__2", link=LINK)
    expected, derivation = calibrate_nowtest(registry, champion, mae, "v2", MONTHS, 0.1)
    assert change["new_bound"] == pytest.approx(expected) and change["new_bound"] > mae.bound  # looser: v2 is worse
    last = _req(registry, "mae", "nowtest").history[-1]
    assert last.derivation["version"] == 2 and last.derivation["text"] == derivation["text"]
    assert last.derivation["old_bound"] == mae.bound

    [change] = rebaseline(registry, champion, metric="rmse", scope="backtest", calibrate=0.05,
                          reason="back to the champion's own", changed_by="bob", run_id="manual__3", link=LINK)
    assert change["new_bound"] == pytest.approx(9.0)  # v1 scores 9 every month: the bound of its mean is 9
    assert _req(registry, "rmse", "backtest").history[-1].derivation["version"] == 1
    assert metric_tables(registry, champion)["v1"]["rmse"] == dict.fromkeys(MONTHS, 9.0)


@pytest.mark.parametrize(("inputs", "message"), [
    ({"bound": 12.0, "reason": " "}, "reason is required"),
    ({"bound": 12.0, "calibrate": 0.05}, "exactly one of bound"),
    ({}, "exactly one of bound"),
    ({"metric": "mape", "bound": 0.1}, "metric/scope: demand has no requirement mape (backtest); its requirements: "
                                       "rmse (backtest), rmse relative to baseline (backtest), mae (nowtest)"),
    ({"scope": "nowtest", "bound": 12.0}, "has no requirement rmse (nowtest)"),
    ({"bound": -1.0}, "bound -1 for rmse (backtest): expected a non-negative number for rmse"),
    ({"relative_to": "baseline", "bound": 0.0}, "expected a positive ratio to the baseline"),
    ({"calibrate": 0.7}, "calibrate must be a false-alarm rate between 0 and 0.5"),
    ({"calibrate": 0.05, "version": 9}, "version: demand has no version 9"),
    ({"metric": "model_size_bytes", "scope": "gate", "calibrate": 0.05}, "model_size_bytes has no back-test"),
])
def test_a_bad_input_names_what_is_wrong_and_changes_nothing(registry, champion, inputs, message):
    before = snapshot(registry)
    args = {"metric": "rmse", "scope": "backtest", "reason": "why not", **inputs}
    with pytest.raises(RebaselineInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        rebaseline(registry, champion, changed_by="alice", run_id="manual__9", link=LINK, **args)
    assert snapshot(registry) == before

