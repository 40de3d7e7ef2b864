"""The next step (`ratchet.lifecycle.next_step`) read from a real registry, as the page and the mail state it."""
from __future__ import annotations

from promote_helpers import BASELINES, DAYS, first_champion, register_fitted, store_backtest, store_nowtest_days

from ratchet.lifecycle.next_step import next_step

BASE = "http://localhost:8080"


def test_no_candidate_beating_the_champion_means_retrain(tmp_path, registry):
    spec, _ = first_champion(registry, tmp_path)
    register_fitted(registry, "demand", "r2")
    store_backtest(registry, "demand", {"v2": [8.9] * 4})  # 1% better: less than min_improvement 5%
    step = next_step(registry, spec)
    assert step.text.startswith("No candidate beats the champion v1 yet: retrain (trigger ratchet_retrain)")
    assert step.url == f"{BASE}/dags/ratchet_retrain"


def test_a_better_candidate_in_trial_needs_its_remaining_days_then_a_gate_may_hold_it(tmp_path, registry):
    spec, _ = first_champion(registry, tmp_path)
    register_fitted(registry, "demand", "r2")
    register_fitted(registry, "demand", "r3")
    store_backtest(registry, "demand", {"v2": [8.0] * 4, "v3": [8.5] * 4, **BASELINES})
    store_nowtest_days(registry, "demand", 2, DAYS[:1])
    store_nowtest_days(registry, "demand", 3, DAYS[:2])
    step = next_step(registry, spec)  # v3 is closest to its 3 days
    assert step.text == ("v3 is in trial and beats the champion v1 on the back-test (+5.6% rmse): it has 2 of 3 "
                         "trial day(s) and needs 1 more without a breach; then the nightly now-test proposes it if "
                         "every gate passes.")
    assert step.url == f"{BASE}/ratchet/models/demand"

    store_nowtest_days(registry, "demand", 3, DAYS[2:], passed=False)  # a breach: its trial cannot pass
    assert next_step(registry, spec).text.startswith("v2 is in trial and beats the champion v1 on the back-test "
                                                     "(+11.1% rmse): it has 1 of 3 trial day(s) and needs 2 more")
    store_nowtest_days(registry, "demand", 2, DAYS[1:])
    step = next_step(registry, spec)
    assert step.text.startswith("v2 has enough trial days (3 of 3) and beats the champion v1 on the back-test "
                                "mean (+11.1% rmse), but is not proposed: a gate fails.")
    assert step.url == f"{BASE}/ratchet/models/demand/promote?version=2"


def test_an_open_proposal_waits_in_required_actions(tmp_path, registry):
    spec, _ = first_champion(registry, tmp_path)
    register_fitted(registry, "demand", "r2")
    registry.record_promotion("demand", 2, kind="promotion", outcome="proposed", triggered_by="ratchet",
                              reason="proposed by ratchet", gates=[], run_id="night", expected_previous_version=1)
    step = next_step(registry, spec)
    assert step.text.endswith("waits for a person: approve or reject it in Required Actions.")
    assert step.url == f"{BASE}/dags/ratchet_promote/runs/proposal__demand__v2/tasks/approve/required_actions"
