"""Promotion status (`ratchet.reporting.status`): champion, trial, last now-test, open alerts and requirements."""
from __future__ import annotations

import pytest
from promote_helpers import DAYS, first_champion, register_fitted, store_nowtest_days

from ratchet.reporting.status import promotion_status


@pytest.fixture
def champion_v1(registry, tmp_path):
    """demand with v1 promoted as first champion (rmse 9 per month; baselines 12 and 15)."""
    return first_champion(registry, tmp_path)


def test_promotion_status_reports_champion_trial_nowtest_alerts_and_requirements(registry, champion_v1):
    spec, outcome = champion_v1
    register_fitted(registry, "demand", "r2")
    store_nowtest_days(registry, "demand", 2, DAYS[:2])
    store_nowtest_days(registry, "demand", 1, DAYS[:1])
    store_nowtest_days(registry, "demand", 1, DAYS[1:2], passed=False)
    registry.enqueue_alert("demand", dedupe_key="k", source="nowtest", run_id="x", recipients=["o@example.com"],
                           subject="demand: mae breach", body_text="...")
    status = promotion_status(registry, spec)
    assert status["champion"]["version"] == 1
    assert status["champion"]["promotion"] | {"at": None} == {
        "id": outcome.promotion_id, "kind": "initial", "triggered_by": "alice", "reason": "first champion",
        "at": None, "previous_version": None}
    assert status["trial"] == [{"version": 2, "days": 2, "breach_days": [], "served_days": 0,
                                "served_breach_days": [], "min_trial_days": 3, "counted": "nowtest"}]
    assert status["last_nowtest"] | {"run_id": None} == {
        "day": DAYS[1], "version": 1, "passed": False, "failed_metrics": ["mae"], "breaching_series": {},
        "breaching_slices": {},
        "run_id": None}  # one series, no slices: none to name
    assert [a["subject"] for a in status["open_alerts"]] == ["demand: mae breach"]
    rmse = next(r for r in status["requirements"] if r["metric"] == "rmse" and r["relative_to"] is None)
    assert rmse["history_count"] == 2 and rmse["bound"] == pytest.approx(9.0)


def test_status_json_has_a_serving_block_for_the_last_24_hours(registry, champion_v1):
    import datetime as dt

    from served_helpers import seed_serving

    from ratchet.reporting.status import status_report

    spec, _ = champion_v1
    register_fitted(registry, "demand", "r2")
    seed_serving(registry, "demand", dt.datetime.now(dt.UTC))
    (model,) = status_report(registry, {"demand": spec})["models"]
    serving = model["serving"]
    assert (serving["requests"], serving["errors"], serving["refused"], serving["answered"]) == (7, 1, 1, 5)
    assert serving["cache_hit_rate"] == pytest.approx(0.4) and 0.9 < serving["availability"] < 1
    assert set(serving["served"]["arms"]) == {"v1@champion", "v2@candidate"}
