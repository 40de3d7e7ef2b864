"""Promotion gates against a real registry: fitted versions, stored back-tests and now-test days."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import yaml
from promote_helpers import (
    BASELINES,
    DAYS,
    MONTHS,
    SPEC,
    first_champion,
    register_fitted,
    snapshot,
    store_backtest,
    store_nowtest_days,
    store_served_days,
    training_frame,
)
from scipy import stats
from spec_factory import spec_data, write_spec

from ratchet.exceptions import ConcurrentPromotionError, GoldenFileError, PromotionInputError, PromotionRejected
from ratchet.lifecycle.promotion import decline, open_proposal, promote, promote_by_name, propose, review
from ratchet.lifecycle.ratchet import calibrate_nowtest
from ratchet.registry import Registry


def _setup(registry, tmp_path, **promotion):
    spec = write_spec(tmp_path, spec_data(**SPEC), promotion=promotion)
    registry.sync_model(spec)
    return spec


def _promote(registry, spec, version, reason="better model", **kw):
    return promote(registry, spec, version=version, reason=reason, triggered_by="alice",
                   run_id=kw.pop("run_id", f"run-{version}"), **kw)


def _bounds(registry, model="demand"):
    return {(r.metric, r.relative_to, r.scope): r.bound for r in registry.requirements(model)}


@pytest.fixture
def champion_v1(registry, tmp_path):
    """demand with v1 promoted as first champion (rmse 9 per month; baselines 12 and 15)."""
    return first_champion(registry, tmp_path)


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_first_champion_passes_gates_1_3_5_and_ratchets(registry, champion_v1):
    spec, outcome = champion_v1
    assert outcome.outcome == "promoted" and outcome.kind == "initial"
    assert [g.number for g in outcome.gates] == [1, 3, 5] and outcome.passed
    assert registry.champion("demand").version == 1
    [row] = registry.promotions("demand")
    assert (row.outcome, row.kind, row.triggered_by, row.reason, row.previous_version) == (
        "promoted", "initial", "alice", "first champion", None)
    assert [g["name"] for g in row.gates] == ["requirements", "regression_tests", "computational"]
    evidence = row.gates[0]["details"]
    assert evidence["means"]["rmse"] == pytest.approx(9.0) and evidence["months"] == ["2024-01", "2024-02",
                                                                                        "2024-03", "2024-04"]
    # ratchet: calibrated on the champion's back-test (its monthly rmse is 9 every month: the confidence bound
    # of the mean is 9; its daily errors give the now-test bound), never the computational bound
    bounds = _bounds(registry)
    assert bounds[("rmse", None, "backtest")] == pytest.approx(9.0)
    assert bounds[("rmse", "baseline", "backtest")] == pytest.approx(9.0 / 12.0)
    mae = next(r for r in registry.requirements("demand") if r.metric == "mae")
    calibrated, derivation = calibrate_nowtest(registry, spec, mae, "v1", MONTHS, 0.05)
    assert calibrated > 8.0 and derivation["windows"] > 60  # the 95% quantile of 14-day windows would loosen 8
    assert bounds[("mae", None, "nowtest")] == 8.0 and [c.change for c in mae.history] == ["created"]
    assert bounds[("model_size_bytes", None, "gate")] == 10_000_000
    changes = [c for r in registry.requirements("demand") for c in r.history if c.change == "ratchet"]
    assert len(changes) == 2
    assert {c.promotion_id for c in changes} == {row.id} and {c.changed_by for c in changes} == {"alice"}
    rmse = next(c for c in changes if c.old_bound == 10.0)
    assert rmse.new_bound == pytest.approx(9.0) and "95% confidence bound of v1's mean rmse over 4" in rmse.reason
    assert rmse.derivation["method"] == "one-sided confidence bound of the monthly mean"
    assert len(outcome.ratchet_changes) == 2


def test_better_candidate_passes_only_after_its_trial_days(registry, champion_v1):
    spec, _ = champion_v1
    register_fitted(registry, "demand", "r2", alpha=0.5)
    store_backtest(registry, "demand", {"v2": [8.0, 8.2, 7.9, 8.1]}, extra_metrics={"mae": 0.8})
    store_nowtest_days(registry, "demand", 2, DAYS[:2])
    with pytest.raises(PromotionRejected) as info:
        _promote(registry, spec, 2, run_id="early")
    message = str(info.value)
    assert "gate 4 trial failed: 2 day(s) of now-tests in trial < required 3" in message
    assert "gate 2" not in message and registry.champion("demand").version == 1

    store_nowtest_days(registry, "demand", 2, DAYS[2:])
    before = _bounds(registry)
    outcome = _promote(registry, spec, 2)
    assert (outcome.outcome, outcome.kind, outcome.previous_version) == ("promoted", "promotion", 1)
    assert [g.number for g in outcome.gates] == [1, 2, 3, 4, 5]
    gate2 = outcome.gates[1].details
    assert gate2["months_won"] == ["2024-01", "2024-02", "2024-03", "2024-04"]
    assert gate2["improvement"] == pytest.approx((9.0 - 8.05) / 9.0)
    assert registry.champion("demand").version == 2
    monthly = np.array([8.0, 8.2, 7.9, 8.1])
    assert _bounds(registry)[("rmse", None, "backtest")] == pytest.approx(
        monthly.mean() + stats.t.ppf(0.95, 3) * monthly.std(ddof=1) / 2)
    assert gate2["paired_test"]["p_value"] < 0.05 and gate2["paired_test"]["n_days"] == 4 * 28
    assert _bounds(registry)[("rmse", None, "backtest")] < before[("rmse", None, "backtest")]
    assert [p.outcome for p in registry.promotions("demand")] == ["promoted", "rejected", "promoted"]


def test_the_trial_gate_counts_served_days_when_trial_days_from_says_served(registry, tmp_path):
    spec, _ = first_champion(registry, tmp_path)
    spec = write_spec(tmp_path, spec_data(**SPEC), serving={"split": {"candidate": "trial", "fraction": 0.1}},
                      promotion={"trial_days_from": "served"})
    register_fitted(registry, "demand", "r2", alpha=0.5)
    store_backtest(registry, "demand", {"v2": [8.0, 8.2, 7.9, 8.1]}, extra_metrics={"mae": 0.8})
    store_nowtest_days(registry, "demand", 2, DAYS)  # enough now-test days ...
    store_served_days(registry, "demand", 2, DAYS[:2])  # ... but it answered clients on two of them only
    store_served_days(registry, "demand", 2, ["2024-05-03"], served_in_day=0)  # scored old ids, served none
    with pytest.raises(PromotionRejected) as info:
        _promote(registry, spec, 2, run_id="early")
    assert ("gate 4 trial failed: 2 day(s) served as the split's candidate < required 3 "
            "(promotion.trial_days_from: served)") in str(info.value)
    gate = registry.promotions("demand")[-1].gates[3]
    assert gate["details"]["served_days"] == DAYS[:2] and gate["details"]["counted"] == "served"

    store_served_days(registry, "demand", 2, ["2024-05-04"])
    outcome = _promote(registry, spec, 2)
    assert outcome.outcome == "promoted"
    assert outcome.gates[3].summary == ("3 day(s) served as the split's candidate, no breach "
                                        "(3 day(s) of now-tests in trial)")


def test_served_days_are_evidence_when_now_test_days_count_and_a_served_breach_fails_either_way(registry,
                                                                                               champion_v1):
    spec, _ = champion_v1
    register_fitted(registry, "demand", "r2", alpha=0.5)
    store_backtest(registry, "demand", {"v2": [8.0, 8.2, 7.9, 8.1]}, extra_metrics={"mae": 0.8})
    store_nowtest_days(registry, "demand", 2, DAYS)
    store_served_days(registry, "demand", 2, DAYS[:1], passed=True)
    store_served_days(registry, "demand", 2, DAYS[1:2], passed=False)
    with pytest.raises(PromotionRejected) as info:
        _promote(registry, spec, 2, run_id="breached")
    assert "gate 4 trial failed: breaches on what it served on 1 day(s): ['2024-05-02']" in str(info.value)
    details = registry.promotions("demand")[-1].gates[3]["details"]
    assert (details["counted"], details["days"], details["served_days"], details["served_breach_days"]) == (
        "nowtest", DAYS, DAYS[:1], DAYS[1:2])


def test_weaker_candidate_is_rejected_naming_each_gate_and_its_numbers(registry, champion_v1):
    spec, _ = champion_v1
    register_fitted(registry, "demand", "r2")
    store_backtest(registry, "demand", {"v2": [10.6, 8.6, 10.6, 10.6]})
    store_nowtest_days(registry, "demand", 2, DAYS[:1] + ["2024-05-02"], passed=True)
    store_nowtest_days(registry, "demand", 2, ["2024-05-03"], passed=False)
    bounds, champion = _bounds(registry), registry.champion("demand")
    with pytest.raises(PromotionRejected) as info:
        _promote(registry, spec, 2)
    message = str(info.value)
    assert "rejected" in message and "demand v2" in message
    assert "gate 1 requirements failed: rmse 10.1 > max 9 (back-test); " \
           "rmse 10.1 > 0.75 × last_value 12 = 9 (back-test)" in message
    assert "gate 2 beats_champion failed: rmse mean 10.1 vs champion v1 9: improvement -12.22% < required " \
           "5.00%; won 1 of 4 months < required 3" in message
    assert "gate 4 trial failed: now-test breaches on 1 day(s): ['2024-05-03']" in message
    assert "gate 3" not in message and "gate 5" not in message
    assert registry.champion("demand").version == champion.version and _bounds(registry) == bounds
    last = registry.promotions("demand")[-1]
    assert (last.outcome, last.kind) == ("rejected", "promotion")
    assert [g["passed"] for g in last.gates] == [False, False, True, False, True]


def test_rollback_to_a_former_champion_needs_gates_1_3_5_only(registry, tmp_path):
    spec = _setup(registry, tmp_path, ratchet={"enabled": False}, min_trial_days=0)
    for run in ("r1", "r2"):
        register_fitted(registry, "demand", run)
    store_backtest(registry, "demand", {"v1": [9.0] * 4, "v2": [8.0] * 4, **BASELINES})
    _promote(registry, spec, 1)
    _promote(registry, spec, 2)
    outcome = _promote(registry, spec, 1, reason="v2 misbehaves in production", run_id="rollback")
    assert (outcome.kind, outcome.outcome, outcome.previous_version) == ("rollback", "promoted", 2)
    assert [g.number for g in outcome.gates] == [1, 3, 5]
    assert registry.champion("demand").version == 1
    # a version that was never champion is an ordinary promotion, with all five gates
    register_fitted(registry, "demand", "r3")
    store_backtest(registry, "demand", {"v3": [8.5] * 4})
    assert _promote(registry, spec, 3, dry_run=True).kind == "promotion"


def test_dry_run_records_the_decision_and_changes_nothing_else(registry, champion_v1):
    spec, _ = champion_v1
    register_fitted(registry, "demand", "r2")
    store_backtest(registry, "demand", {"v2": [8.0] * 4}, extra_metrics={"mae": 0.8})
    store_nowtest_days(registry, "demand", 2, DAYS)
    before = snapshot(registry)
    outcome = _promote(registry, spec, 2, dry_run=True)
    assert outcome.outcome == "dry_run" and outcome.passed and outcome.ratchet_changes == ()
    after = snapshot(registry)
    assert len(after["promotions"]) == len(before["promotions"]) + 1
    assert {k: v for k, v in after.items() if k != "promotions"} == {
        k: v for k, v in before.items() if k != "promotions"}
    assert registry.promotions("demand")[-1].dry_run is True
    # re-running the same dry run replaces its record instead of adding one
    _promote(registry, spec, 2, dry_run=True)
    assert len(snapshot(registry)["promotions"]) == len(after["promotions"])


def test_review_shows_the_gates_as_markdown_and_records_nothing(registry, champion_v1):
    spec, _ = champion_v1
    register_fitted(registry, "demand", "r2")
    store_backtest(registry, "demand", {"v2": [9.5] * 4}, extra_metrics={"mae": 0.8})
    before = snapshot(registry)
    outcome = review(registry, spec, 2)
    assert snapshot(registry) == before and outcome.outcome == "review" and outcome.promotion_id is None
    table = outcome.markdown().splitlines()
    assert table[0] == "**demand v2** against the champion v1 (promotion): a gate fails."
    assert table[2:4] == ["| gate | verdict | evidence |", "| --- | --- | --- |"]
    assert table[5].startswith("| 2 beats_champion | **FAIL** | rmse mean 9.5 vs champion v1 9: improvement -5.56%")
    assert table[7] == "| 4 trial | **FAIL** | 0 day(s) of now-tests in trial < required 3 |"
    with pytest.raises(PromotionInputError, match="demand v1 is already the champion"):
        review(registry, spec, 1)


def test_propose_records_one_open_proposal_per_model_the_best_passing_candidate(registry, champion_v1):
    spec, _ = champion_v1
    for run, alpha in (("r2", 0.5), ("r3", 0.7), ("r4", 0.9)):
        register_fitted(registry, "demand", run, alpha=alpha)
    store_backtest(registry, "demand", {"v2": [8.0, 8.2, 7.9, 8.1], "v3": [7.5, 7.7, 7.4, 7.6], "v4": [9.5] * 4},
                   extra_metrics={"mae": 0.8})
    for version in (2, 3, 4):
        store_nowtest_days(registry, "demand", version, DAYS)

    def propose_on(night: str):
        return propose(registry, spec, reason=f"passed every gate on {night}", run_id=f"night-{night}")

    proposal = propose_on("05-04")  # v2 and v3 pass every gate, v4 does not beat the champion: v3 gains most
    assert (proposal.version, proposal.outcome, proposal.triggered_by, proposal.run_id) == (
        3, "proposed", "ratchet", "night-05-04")
    assert open_proposal(registry.promotions("demand")) == proposal
    before = snapshot(registry)
    assert propose_on("05-04") == proposal  # a re-run of that night: the same proposal, nothing added
    assert propose_on("05-05") is None  # the next night: v3's proposal is open, nothing else is proposed
    _promote(registry, spec, 3, dry_run=True)  # a dry run does not answer it
    assert propose_on("05-06") is None and registry.champion("demand").version == 1
    assert len(snapshot(registry)["promotions"]) == len(before["promotions"]) + 1

    rejected = decline(registry, spec, version=3, reason=proposal.reason, rejected_by="carol",
                       comment="not before the sale", run_id="proposal__demand__v3")
    assert (rejected.outcome, rejected.passed, registry.champion("demand").version) == ("rejected", True, 1)
    decided = registry.promotions("demand")[-1]
    assert (decided.triggered_by, decided.comment, decided.reason) == ("carol", "not before the sale",
                                                                        "passed every gate on 05-04")
    assert open_proposal(registry.promotions("demand")) is None
    assert propose_on("05-07").version == 2  # v3 was answered: the next best is proposed, v3 never again
    _promote(registry, spec, 2, run_id="proposal__demand__v2", comment="ok")
    assert open_proposal(registry.promotions("demand")) is None and registry.promotions("demand")[-1].comment == "ok"
    assert propose_on("05-08") is None  # v3 was answered, v4 is weaker than the new champion


def test_propose_leaves_the_first_champion_to_a_person(registry, tmp_path):
    spec = _setup(registry, tmp_path, min_trial_days=0)
    register_fitted(registry, "demand", "r1")
    store_backtest(registry, "demand", {"v1": [9.0] * 4, **BASELINES})
    assert propose(registry, spec, reason="passed", run_id="night") is None
    assert registry.promotions("demand") == []


@pytest.mark.parametrize("first", [True, False], ids=["first-champion", "replace-champion"])
def test_two_promotions_at_once_exactly_one_wins(registry, tmp_path, database_url, first):
    spec = _setup(registry, tmp_path, min_trial_days=0, min_months_won=0, min_improvement=0.0)
    for run in ("r1", "r2", "r3"):
        register_fitted(registry, "demand", run)
    store_backtest(registry, "demand", {"v1": [9.0] * 4, "v2": [8.0] * 4, "v3": [8.5] * 4, **BASELINES})
    if not first:
        _promote(registry, spec, 1)
    barrier = threading.Barrier(2)

    class RacingRegistry(Registry):
        """Both promotions finish their gates before either writes: a real race on the database."""

        def record_promotion(self, *args, **kwargs):
            barrier.wait(timeout=30)
            return super().record_promotion(*args, **kwargs)

    results = {}

    def run(version):
        racing = RacingRegistry(database_url)
        try:
            results[version] = _promote(racing, spec, version, run_id=f"race-{version}")
        except Exception as exc:  # noqa: BLE001 - the test inspects which error it was
            results[version] = exc
        finally:
            racing.dispose()

    threads = [threading.Thread(target=run, args=(v,)) for v in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [v for v, r in results.items() if not isinstance(r, Exception)]
    losers = [r for r in results.values() if isinstance(r, Exception)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], ConcurrentPromotionError)
    assert "nothing was changed" in str(losers[0])
    assert registry.champion("demand").version == winners[0]
    promoted = [p for p in registry.promotions("demand") if p.outcome == "promoted"]
    assert len(promoted) == (1 if first else 2)


def test_bad_inputs_get_clear_errors_and_change_nothing(registry, tmp_path, monkeypatch):
    spec = _setup(registry, tmp_path)
    other = write_spec(tmp_path, name="traffic", table="traffic_source", **SPEC)
    registry.sync_model(other)
    register_fitted(registry, "demand", "r1")
    for run in ("t1", "t2", "t3"):
        register_fitted(registry, "traffic", run)
    store_backtest(registry, "demand", {"v1": [9.0] * 4, **BASELINES})
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    before = snapshot(registry)

    cases = [
        (dict(model="sales", version=1, reason="x"),
         r"unknown model 'sales'; configured models: \['demand', 'traffic'\]"),
        (dict(model="demand", version=7, reason="x"), r"model 'demand' has no version 7; its versions: \[1\]$"),
        (dict(model="demand", version=3, reason="x"),
         r"model 'demand' has no version 3; its versions: \[1\] \(version 3 belongs to \['traffic'\]"),
        (dict(model="demand", version=1, reason="   "), r"reason is required"),
        (dict(model="demand", version=0, reason="x"), r"version must be a positive integer, got 0"),
    ]
    for params, message in cases:
        with pytest.raises(PromotionInputError, match=message):
            promote_by_name(params["model"], params["version"], reason=params["reason"], triggered_by="bob",
                            run_id="bad", registry=registry)
        assert snapshot(registry) == before, params

    _promote(registry, spec, 1)
    with pytest.raises(PromotionInputError, match=r"demand v1 is already the champion"):
        _promote(registry, spec, 1, run_id="again")


def test_rerun_of_a_successful_promotion_returns_the_recorded_decision(registry, champion_v1):
    spec, outcome = champion_v1
    before = snapshot(registry)
    again = _promote(registry, spec, 1, reason="first champion")
    assert (again.outcome, again.promotion_id, again.kind) == ("promoted", outcome.promotion_id, "initial")
    assert snapshot(registry) == before


def test_failing_golden_case_and_computational_bound_block_the_first_champion(registry, tmp_path):
    data = spec_data(**SPEC)
    data["requirements"][3] = {"metric": "model_size_bytes", "max": 100}
    X, _ = training_frame()
    (tmp_path / "demand.golden.yaml").write_text(yaml.safe_dump([
        {"name": "plausible", "inputs": X.iloc[0].to_dict(), "expected": float(3 * X.x1[0] - 2 * X.x2[0]),
         "tolerance": 0.5},
        {"name": "impossible", "inputs": X.iloc[1].to_dict(), "expected": 1000.0, "tolerance": 0.1}]))
    spec = write_spec(tmp_path, data)
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1")
    store_backtest(registry, "demand", {"v1": [9.0] * 4, **BASELINES})
    with pytest.raises(PromotionRejected) as info:
        _promote(registry, spec, 1)
    message = str(info.value)
    assert "gate 3 regression_tests failed: 1 of 2 golden case(s) failed: impossible: predicted" in message
    assert "expected 1000 ± 0.1" in message
    assert "gate 5 computational failed: model_size_bytes" in message and "> max 100 (gate)" in message
    assert "gate 1" not in message and registry.champion("demand") is None
    gate3 = registry.promotions("demand")[-1].gates[1]
    assert gate3["details"]["n_cases"] == 2 and gate3["details"]["failures"][0]["name"] == "impossible"


def test_fit_seconds_is_a_computational_gate_requirement_checked_against_the_recorded_refit(registry, tmp_path):
    data = spec_data(**SPEC)
    data["requirements"][3] = {"metric": "fit_seconds", "max": 60, "scope": "gate"}
    spec = write_spec(tmp_path, data)
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1", fit_seconds=75.5)  # a refit slower than the bound
    register_fitted(registry, "demand", "r2", alpha=2.0, fit_seconds=12.0)
    store_backtest(registry, "demand", {"v1": [9.0] * 4, "v2": [9.0] * 4, **BASELINES})
    with pytest.raises(PromotionRejected) as info:
        _promote(registry, spec, 1)
    assert "gate 5 computational failed: fit_seconds 75.5 > max 60 (gate)" in str(info.value)
    assert registry.champion("demand") is None
    outcome = _promote(registry, spec, 2)
    assert outcome.outcome == "promoted"
    gate = next(g for g in registry.promotions("demand")[-1].gates if g["name"] == "computational")
    assert gate["passed"] and gate["details"]["values"]["fit_seconds"] == 12.0
    assert any(r["metric"] == "fit_seconds" for r in gate["details"]["results"])


def test_a_bad_golden_file_is_named_and_nothing_is_recorded(registry, tmp_path):
    (tmp_path / "demand.golden.yaml").write_text(yaml.safe_dump([{"name": "no inputs", "expected": 1.0,
                                                                  "tolerance": 0.1}]))
    spec = write_spec(tmp_path, **SPEC)
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1")
    store_backtest(registry, "demand", {"v1": [9.0] * 4, **BASELINES})
    before = snapshot(registry)
    with pytest.raises(GoldenFileError, match=r"demand.golden.yaml: case \[0\] field 'inputs'"):
        _promote(registry, spec, 1)
    assert snapshot(registry) == before


def test_a_version_without_back_test_results_is_rejected_with_the_reason(registry, champion_v1):
    spec, _ = champion_v1
    register_fitted(registry, "demand", "r2")
    store_nowtest_days(registry, "demand", 2, DAYS)
    with pytest.raises(PromotionRejected) as info:
        _promote(registry, spec, 2)
    assert "gate 1 requirements failed: no back-test results for v2; run ratchet_backtest first" in str(info.value)
    assert "gate 2 beats_champion failed: no common back-test months of v2 and the champion v1 on rmse" in str(
        info.value)


def test_gates_use_the_months_the_back_test_report_covers(registry, tmp_path):
    spec = write_spec(tmp_path, **SPEC, backtest={"months": 2})
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1")
    # the two oldest months would fail the rmse bound of 10; the two covered months pass it
    store_backtest(registry, "demand", {"v1": [20.0, 20.0, 9.0, 9.0], **BASELINES})
    outcome = _promote(registry, spec, 1)
    assert outcome.gates[0].details["months"] == ["2024-03", "2024-04"]
    assert outcome.gates[0].details["means"]["rmse"] == pytest.approx(9.0)
