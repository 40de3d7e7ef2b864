"""The whole cycle through real DAG runs, a real SMTP server and PostgreSQL, on data with a regime change.

retrain -> back-test -> first champion -> now-tests pass -> the regime changes -> the now-test fails and
the mail arrives -> the owner edits the YAML (a more flexible estimator, ratchet on) -> nightly retrain
yields candidates -> after their trial days, the weaker one's promotion fails naming its gates, and the one
with the better monthly mean is refused too: over the back-test's days its win is not significant (the paired
test's p-value is in the evidence), so the champion and its requirements stay as they are.
"""
from __future__ import annotations

import datetime as dt

import pytest
from dag_helpers import load_dag
from nowtest_helpers import FEATURES, TABLE, write_source
from spec_factory import spec_data, write_spec

from ratchet import specs
from ratchet.evaluation import backtest
from ratchet.registry import version_contender

UTC = dt.UTC
MODEL = "cycle_demand"
RIDGE = [{"class": "sklearn.linear_model.Ridge", "search_space": {"alpha": {"loguniform": [0.1, 10.0]}}}]
BOOSTING = [{"class": "sklearn.ensemble.HistGradientBoostingRegressor", "params": {"max_iter": 100, "random_state": 0},
             "search_space": {"learning_rate": {"uniform": [0.05, 0.2]}}}]
SPEC = {  # spec_factory overrides: the owner's YAML before the edit (Ridge, ratchet off)
    "name": MODEL, "table": TABLE, "owner": "tests", "alert_emails": ["owner@example.com"],
    "source": {"target": "demand", "features": FEATURES, "target_lags": [1, 7]},
    "search": {"n_trials": 3, "cv_folds": 2, "seed": 1, "candidates": 2},
    "requirements": [{"metric": "mape", "max": 0.12, "scope": "nowtest"},
                     {"metric": "rmse", "max": 1000, "scope": "backtest"}],
    "backtest": {"months": 6},
    "nowtest": {"window_days": 14, "min_rows": 7},
    "promotion": {"min_improvement": 0.02, "min_months_won": 3, "min_trial_days": 3,
                  "ratchet": {"enabled": False}},
    "estimators": RIDGE,
}


def _run(dag_id, when: dt.datetime, conf: dict | None = None) -> str:
    return load_dag(dag_id).test(logical_date=when, run_conf=conf).state


def _best_new_version(registry, spec, versions):
    means = backtest.backtest_summary(registry, spec)["contenders"]
    return min(versions, key=lambda v: means[version_contender(v)]["mean"])


@pytest.fixture
def cycle(tmp_path, monkeypatch, registry):
    write_source(registry)
    write_spec(tmp_path, **SPEC)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("RATCHET_REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path


def test_full_cycle_with_a_regime_change(airflow_db, cycle, registry, smtp_server):
    # Night 1: candidates and their back-test; the best becomes the first champion.
    assert _run("ratchet_retrain", dt.datetime(2025, 7, 1, 1, tzinfo=UTC)) == "success"
    assert _run("ratchet_backtest", dt.datetime(2025, 7, 1, 3, tzinfo=UTC)) == "success"
    spec = specs.load_specs()[MODEL]
    first = _best_new_version(registry, spec, [1, 2])
    assert _run("ratchet_promote", dt.datetime(2025, 7, 1, 9, tzinfo=UTC),
                {"model": MODEL, "version": first, "reason": "first champion", "dry_run": False}) == "success"
    assert registry.champion(MODEL).version == first
    assert registry.promotions(MODEL)[-1].kind == "initial"

    # Before the regime change the now-test passes and nobody is mailed.
    assert _run("ratchet_nowtest", dt.datetime(2025, 7, 10, 6, tzinfo=UTC)) == "success"
    assert smtp_server.messages == []

    # After it, the champion breaches its requirement: one mail with the evidence.
    assert _run("ratchet_nowtest", dt.datetime(2025, 8, 1, 6, tzinfo=UTC)) == "success"
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]["message"]
    assert smtp_server.messages[0]["to"] == ["owner@example.com"]
    assert MODEL in mail["Subject"] and "mape" in mail["Subject"]
    body = mail.get_body(("html", "plain")).get_content()
    for expected in ("0.12", "2025-07-18", "2025-08-01", "14", "ratchet_nowtest"):
        assert expected in body, expected
    assert registry.golden_cases(MODEL), "the worst misses become regression cases"

    # The owner adds a more flexible estimator and turns the ratchet on; the nightly retrain adapts.
    write_spec(cycle, spec_data(**SPEC), estimators=BOOSTING, promotion={"ratchet": {"enabled": True}})
    assert _run("ratchet_retrain", dt.datetime(2025, 8, 20, 1, tzinfo=UTC)) == "success"
    assert _run("ratchet_backtest", dt.datetime(2025, 8, 20, 3, tzinfo=UTC)) == "success"
    spec = specs.load_specs()[MODEL]
    adapted = _best_new_version(registry, spec, [3, 4])
    for day in (28, 29, 30):  # trial days of the new candidates: with 7 to 9 days after their training data
        _run("ratchet_nowtest", dt.datetime(2025, 8, day, 6, tzinfo=UTC))
    trial = {r.partition: r.passed for r in registry.evaluations(MODEL, "nowtest", contender=f"v{adapted}",
                                                                  metric="mape")}
    assert trial == {"2025-08-27": True, "2025-08-28": True, "2025-08-29": True}  # the days before each run

    # A weaker candidate (the other version of night 1) is refused, naming its gates; nothing moves.
    weaker = 3 - first
    bounds_before = {r.id: r.bound for r in registry.requirements(MODEL)}
    assert _run("ratchet_promote", dt.datetime(2025, 8, 31, 9, tzinfo=UTC),
                {"model": MODEL, "version": weaker, "reason": "try the other one", "dry_run": False}) == "failed"
    rejected = registry.promotions(MODEL)[-1]
    assert rejected.outcome == "rejected"
    failed = {g["name"] for g in rejected.gates if not g["passed"]}
    assert {"beats_champion", "trial"} <= failed  # not better than the champion, and never in trial
    assert registry.champion(MODEL).version == first
    assert {r.id: r.bound for r in registry.requirements(MODEL)} == bounds_before

    # The candidate with the better back-test mean: its daily losses over the common back-test days do not show
    # a significant win, so gate 2 refuses it with the paired test as evidence; nothing moves.
    assert _run("ratchet_promote", dt.datetime(2025, 8, 31, 10, tzinfo=UTC),
                {"model": MODEL, "version": adapted, "reason": "adapts to the new regime", "dry_run": False}) == \
        "failed"
    refused = registry.promotions(MODEL)[-1]
    gate2 = next(g for g in refused.gates if g["name"] == "beats_champion")
    assert refused.outcome == "rejected" and not gate2["passed"]
    evidence = gate2["details"]["paired_test"]
    assert evidence["p_value"] >= 0.05 and evidence["n_days"] > 150 and "not significantly better" in gate2["summary"]
    assert registry.champion(MODEL).version == first
    assert {r.id: r.bound for r in registry.requirements(MODEL)} == bounds_before
