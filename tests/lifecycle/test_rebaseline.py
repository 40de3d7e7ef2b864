"""Re-baselining (`ratchet.lifecycle.rebaseline`): a person sets a bound again, looser or stricter, recorded with
who, why and the evidence, the owners' mail queued with it; a bad input changes nothing."""
from __future__ import annotations

import pytest
from promote_helpers import (
    BASELINES,
    DAYS,
    MONTHS,
    SPEC,
    after_regime_change,
    first_champion,
    register_fitted,
    snapshot,
    store_after_change,
    store_backtest,
)
from spec_factory import spec_data, write_spec

from ratchet.evaluation.backtest import metric_tables, months_of
from ratchet.exceptions import PromotionRejected, RebaselineInputError
from ratchet.lifecycle.next_step import next_step
from ratchet.lifecycle.promotion import Gate, promote, propose, rebaseline_only, review
from ratchet.lifecycle.ratchet import calibrate_nowtest
from ratchet.lifecycle.rebaseline import ratcheted, rebaseline
from ratchet.registry import EvaluationRow

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


def test_gate_1_says_the_data_changed_when_a_ratcheted_bound_fails_the_champion_and_every_candidate(registry,
                                                                                                  champion):
    register_fitted(registry, "demand", "r3")
    store_after_change(registry, {"v1": 14.0, "v2": 11.0, "v3": 12.0, "last_value": 15.0, "mean": 16.0})
    [gate] = [g for g in review(registry, champion, 2).gates if g.number == 1]
    assert not gate.passed
    assert ("rmse 11.57 > max 9 (back-test): the bound 9 was derived from 2024-01..2024-04; on the latest 3 months "
            "(2024-05..2024-07) the champion v1 scores 14 and the best candidate v2 11: the data changed. A person "
            "can re-baseline it (ratchet_requirements DAG, or 'Promote and re-baseline' on the proposal)"
            ) in gate.summary
    [changed] = gate.details["data_changed"]
    assert changed["scores"] == {"v1": 14.0, "v2": 11.0, "v3": 12.0} and changed["derived_from"] == "2024-01..2024-04"

    store_after_change(registry, {"v3": 8.5})  # one candidate meets the bound on the latest months: no such words
    [gate] = [g for g in review(registry, champion, 2).gates if g.number == 1]
    assert not gate.passed and "the data changed" not in gate.summary and gate.details["data_changed"] == []


@pytest.fixture
def after_change(registry, tmp_path):
    return after_regime_change(registry, tmp_path)


def test_a_candidate_failing_only_ratcheted_bounds_is_proposed_and_approve_does_not_promote_it(registry,
                                                                                             after_change):
    proposal = propose(registry, after_change, reason="passed every gate but a ratcheted bound", run_id="night")
    assert proposal is not None and proposal.version == 2
    assert [g["name"] for g in proposal.gates if not g["passed"]] == ["requirements"]
    assert rebaseline_only([Gate(g["name"], g["passed"], g["summary"], g["details"]) for g in proposal.gates])

    bound = _req(registry, "rmse", "backtest").bound
    with pytest.raises(PromotionRejected, match="the data changed"):
        promote(registry, after_change, version=2, reason="approved", triggered_by="carol", run_id="approve")
    assert registry.champion("demand").version == 1 and _req(registry, "rmse", "backtest").bound == bound


def test_promote_and_rebaseline_sets_the_ratcheted_bounds_from_the_candidate_and_promotes_at_once(registry,
                                                                                                after_change):
    old = _req(registry, "rmse", "backtest")
    outcome = promote(registry, after_change, version=2, reason="proposed", triggered_by="carol",
                      run_id="proposal__demand__v2", rebaseline=True)
    assert outcome.outcome == "promoted" and outcome.passed and registry.champion("demand").version == 2
    gate = outcome.gates[0]
    assert gate.summary.endswith("(1 of them re-baselined from v2's own back-test)")
    [change] = [c for c in outcome.ratchet_changes if c["change"] == "rebaseline"]
    assert (change["metric"], change["scope"], change["old_bound"]) == ("rmse", "backtest", old.bound)
    assert change["new_bound"] == pytest.approx(11.0)  # v2 scores 11 each month: the bound of its mean is 11
    last = _req(registry, "rmse", "backtest").history[-1]
    assert (last.change, last.changed_by, last.promotion_id) == ("rebaseline", "carol", outcome.promotion_id)
    assert last.derivation["version"] == 2 and last.derivation["run_id"] == "proposal__demand__v2"
    assert last.derivation["alpha"] == after_change.promotion.ratchet.false_alarm_rate
    assert last.derivation["old_derivation"] == old.history[-1].derivation
    [alert] = registry.alerts("demand")
    assert alert.subject == "[Ratchet] demand requirement re-baselined by carol: rmse (backtest)"
    assert alert.dedupe_key == "requirement:demand:proposal__demand__v2"

    state = snapshot(registry)  # re-running the approval's promotion changes nothing more
    assert promote(registry, after_change, version=2, reason="proposed", triggered_by="carol",
                   run_id="proposal__demand__v2", rebaseline=True).outcome == "promoted"
    assert snapshot(registry) == state


def test_promote_and_rebaseline_never_passes_another_failing_gate(registry, after_change):
    registry.record_evaluations("demand", [EvaluationRow(kind="nowtest", contender="v2", partition="2024-05-04",
                                                         metric="mae", value=9.0, n_rows=7, run_id="nt-0504",
                                                         version=2, passed=False)])  # a breach in trial: gate 4
    bound = _req(registry, "rmse", "backtest").bound
    with pytest.raises(PromotionRejected, match="gate 4 trial failed"):
        promote(registry, after_change, version=2, reason="proposed", triggered_by="carol", run_id="p", rebaseline=True)
    assert registry.champion("demand").version == 1 and _req(registry, "rmse", "backtest").bound == bound
    assert registry.alerts("demand") == []


def test_the_proposals_body_says_what_each_answer_does_when_only_ratcheted_bounds_fail(registry, after_change,
                                                                                       tmp_path, monkeypatch):
    from ratchet import pipeline

    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    body = pipeline.review("demand", 2, "Promote and re-baseline")
    assert "| 1 requirements | **FAIL** | rmse 11 > max 9 (back-test): the bound 9 was derived from" in body
    assert ("**Gate 1 fails only on 1 bound(s) the ratchet derived from a former champion's months** (its row above "
            "says how). **Approve** runs the gates again and fails on them. **Promote and re-baseline** sets them "
            "again from v2's own back-test at a false-alarm rate of 0.05") in body


def _nowtest_days(registry, version: int, mae, value: float) -> None:
    """Now-test verdicts of `version` on DAYS of the mae now-test bound with `value`, as the now-test stores them
    (the requirement's verdict in the row's details)."""
    passed = value <= mae.bound
    verdict = {"requirement_id": mae.id, "metric": "mae", "direction": "max", "bound": mae.bound, "value": value,
               "relative_to": None, "baseline_value": None, "scope": "nowtest", "passed": passed}
    registry.record_evaluations("demand", [
        EvaluationRow(kind="nowtest", contender=f"v{version}", partition=day, metric="mae", value=value, n_rows=7,
                      run_id=f"nt-{day}", version=version, passed=passed, details={"requirements": [verdict]})
        for day in DAYS])


@pytest.mark.parametrize("champion_breaches", [True, False])
def test_trial_breaches_of_a_ratcheted_now_test_bound_the_champion_breaches_too_are_the_data_changing(
        registry, tmp_path, champion_breaches):
    """v2 in trial breaches the ratcheted now-test mae bound on its 3 trial days. When the champion breaches it on
    those days too, gate 4 says the data changed and the proposal offers "Promote and re-baseline", which sets
    the bound again from v2's own back-test and judges v2's trial on it; when the champion met it, it is v2's own
    breach and nothing re-baselines it."""
    loose = [r for r in SPEC["requirements"] if r["metric"] != "mae"] + [{"metric": "mae", "max": 50.0,
                                                                         "scope": "nowtest"}]
    spec = write_spec(tmp_path, spec_data(**SPEC), requirements=loose)  # the first promotion ratchets mae to v1's
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1")
    store_backtest(registry, "demand", {"v1": [9.0] * 4, **BASELINES}, extra_metrics={"mae": 0.8})
    promote(registry, spec, version=1, reason="first champion", triggered_by="alice", run_id="run-1")
    register_fitted(registry, "demand", "r2")
    store_after_change(registry, {"v1": 14.0, "v2": 11.0, "last_value": 15.0, "mean": 16.0})
    mae = _req(registry, "mae", "nowtest")
    assert ratcheted(mae) and mae.bound < 50
    new_bound, _ = calibrate_nowtest(registry, spec, mae, "v2", months_of(metric_tables(registry, spec), "v2"),
                                     spec.promotion.ratchet.false_alarm_rate)
    assert new_bound > mae.bound  # v2's own back-test, months after the change included, is looser
    _nowtest_days(registry, 2, mae, (mae.bound + new_bound) / 2)
    _nowtest_days(registry, 1, mae, 20.0 if champion_breaches else mae.bound / 2)
    trial = next(g for g in review(registry, spec, 2).gates if g.name == "trial")
    assert not trial.passed
    if not champion_breaches:
        assert trial.details["data_changed"] is None and "the data changed" not in trial.summary
        assert propose(registry, spec, reason="nightly", run_id="night") is None
        assert next_step(registry, spec).label == "ratchet_retrain"
        return
    assert trial.details["data_changed"] == {"days": DAYS, "requirement_ids": [mae.id]}
    assert "the data changed under the bound" in trial.summary
    step = next_step(registry, spec)
    assert step.label == "ratchet_requirements" and "Promote and re-baseline" in step.text
    proposal = propose(registry, spec, reason="nightly", run_id="night")
    assert proposal is not None and proposal.version == 2
    outcome = promote(registry, spec, version=2, reason="proposed", triggered_by="carol", run_id="night",
                      rebaseline=True)
    assert outcome.outcome == "promoted" and registry.champion("demand").version == 2
    assert _req(registry, "mae", "nowtest").bound == pytest.approx(new_bound)
    trial = next(g for g in outcome.gates if g.name == "trial")
    assert trial.passed and trial.details["still_breaching"] == []
