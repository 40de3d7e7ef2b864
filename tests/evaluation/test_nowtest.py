"""Now-tests (`ratchet.evaluation.nowtest`) against a real registry, real data in PostgreSQL and a real SMTP server."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from nowtest_helpers import (
    AFTER_CHANGE,
    BEFORE_CHANGE,
    EMAILS,
    MODEL,
    RUN_URL,
    SPEC,
    champion_model,
    counts,
    run_at,
    train_champion,
    write_source,
)
from spec_factory import write_spec

from ratchet.alerting import outbox
from ratchet.evaluation.golden import harvest_tolerance


@pytest.fixture
def model(tmp_path, registry):
    return champion_model(registry, tmp_path)


def _html(message) -> str:
    part = message.get_body(("html", "plain"))
    return part.get_content()


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_champion_passes_before_the_regime_change_and_fails_after_with_one_mail(model, registry, smtp_server):
    spec, (champion, candidate) = model
    before = run_at(registry, spec, BEFORE_CHANGE)
    assert before.passed and not before.stale and before.alert_id is None
    assert before.partition == "2025-07-09" and before.n_rows == 14  # whole days: 06-26 .. 07-09
    assert {r.contender: r.role for r in before.results} == {f"v{champion}": "champion", f"v{candidate}": "candidate"}
    stored = registry.evaluations(MODEL, "nowtest", contender=f"v{champion}", metric="mape")
    assert [(e.partition, e.passed, e.n_rows) for e in stored] == [("2025-07-09", True, 14)]
    assert stored[0].value < 0.08
    assert registry.evaluations(MODEL, "nowtest", contender="seasonal_naive_7", metric="rmse")  # baselines too
    assert outbox.deliver_alerts(registry)["sent"] == [] and smtp_server.messages == []

    after = run_at(registry, spec, AFTER_CHANGE)
    assert not after.passed and after.alert_id is not None
    failed = {r.metric for r in after.champion.failed}
    assert failed == {"mape", "rmse"}
    mape = next(r for r in after.champion.requirements if r.metric == "mape")
    assert mape.value > 0.15  # about twice the 0.08 bound
    rmse = next(r for r in after.champion.requirements if r.metric == "rmse")
    assert rmse.relative_to == "baseline" and rmse.baseline_value == pytest.approx(
        min(after.baselines[b]["rmse"] for b in spec.baselines))

    report = outbox.deliver_alerts(registry)
    assert report["sent"] == [after.alert_id]
    assert len(smtp_server.messages) == 1
    mail = smtp_server.messages[0]
    assert sorted(mail["to"]) == sorted(EMAILS)
    subject = mail["message"]["Subject"]
    assert subject.startswith(f"[Ratchet] {MODEL} now-test failed: mape {mape.value:.4g} > max 0.08")
    assert f"rmse {rmse.value:.4g} > max 1 × {rmse.baseline_name} {rmse.baseline_value:.4g}" in subject
    body = _html(mail["message"])
    assert f"{mape.value:.4g}" in body and "max 0.08" in body  # metric, value, bound
    assert f"{rmse.baseline_name} {rmse.baseline_value:.4g}" in body  # baseline value on the same rows
    assert "2025-07-18 00:00 .. 2025-08-01 00:00" in body and "Rows: 14" in body  # window of whole days, row count
    assert "Worst misses" in body
    for miss in after.champion.worst_misses:  # the table of the worst misses
        assert miss["time"] in body and f"{miss['actual']:.4g}" in body and f"{miss['predicted']:.4g}" in body
    assert len(after.champion.worst_misses) == 5
    assert RUN_URL in body
    assert "target_lag_1" in after.champion.drift_warnings and "Drift warnings" in body

    row = registry.evaluations(MODEL, "nowtest", contender=f"v{champion}", metric="mape")[-1]
    assert row.partition == "2025-07-31" and row.passed is False
    assert row.details["window"]["start"].startswith("2025-07-18") and row.details["n_rows"] == 14
    assert row.details["drift"]["target_lag_1"]["warning"] and len(row.details["worst_misses"]) == 5
    assert {r["metric"] for r in row.details["requirements"] if not r["passed"]} == {"mape", "rmse"}


@pytest.mark.slow  # a real search
def test_the_breach_mail_is_dated_links_the_page_says_how_the_bound_was_set_and_what_to_do_next(
        tmp_path, registry, smtp_server):
    import email.utils

    from ratchet.lifecycle.retrain import retrain_model
    from ratchet.registry.entities import RatchetStep

    write_source(registry)
    spec = write_spec(tmp_path, **SPEC)
    registry.sync_model(spec)
    first, _ = retrain_model(registry, spec, run_id="retrain-2025-07-01", logical_date=dt.datetime(2025, 7, 1))
    mape = next(r for r in registry.requirements(MODEL, "nowtest") if r.metric == "mape")
    registry.record_promotion(MODEL, first, kind="initial", outcome="promoted", triggered_by="alice",
                              reason="first champion", gates=[], run_id="promote-1", expected_previous_version=None,
                              ratchet_steps=[RatchetStep(mape.id, 0.0466, f"ratchet on promotion of v{first}: 95% "
                                                         "quantile of its mape over 300 windows of 14 days")])
    sent_after = dt.datetime.now(dt.UTC).replace(microsecond=0)
    run_at(registry, spec, AFTER_CHANGE)
    outbox.deliver_alerts(registry)
    (mail,) = smtp_server.messages
    dated = email.utils.parsedate_to_datetime(mail["message"]["Date"])
    assert sent_after <= dated <= dt.datetime.now(dt.UTC) and dated.utcoffset() == dt.timedelta(0)
    body = mail["message"].get_body(("plain",)).get_content()
    assert f"Ratchet page of the model: http://localhost:8080/ratchet/models/{MODEL}" in body
    assert (f"- mape max 0.0466 (now-test): set {dt.datetime.now(dt.UTC):%Y-%m-%d} by alice: ratchet on promotion "
            f"of v{first}: 95% quantile of its mape over 300 windows of 14 days; the YAML says max 0.08") in body
    assert f"Next step: No candidate beats the champion v{first} yet: retrain (trigger ratchet_retrain)" in body
    assert "ratchet_retrain: http://localhost:8080/dags/ratchet_retrain" in body
    assert "href='http://localhost:8080/ratchet/models/regime_demand'" in _html(mail["message"])


def test_a_14_day_window_holds_the_14_days_before_the_runs_day_whatever_its_clock_time(model, registry):
    spec, _ = model
    # the data ends 2025-08-31; a run at 06:00 the day after used to start its window at 08-18 06:00: 13 rows
    for hour in (0, 6, 23):
        outcome = run_at(registry, spec, dt.datetime(2025, 9, 1, hour, tzinfo=dt.UTC), run_id=f"nt-{hour}")
        assert (outcome.window_start, outcome.window_end) == (dt.datetime(2025, 8, 18), dt.datetime(2025, 9, 1))
        assert outcome.n_rows == 14 and outcome.partition == "2025-08-31"


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_rerun_of_the_same_run_sends_nothing_new_and_adds_no_rows(model, registry, smtp_server):
    spec, _ = model
    first = run_at(registry, spec, AFTER_CHANGE, run_id="nt-run")
    outbox.deliver_alerts(registry)
    before = counts(registry)
    again = run_at(registry, spec, AFTER_CHANGE, run_id="nt-run")
    assert again.alert_id == first.alert_id and again.harvested == 0
    assert outbox.deliver_alerts(registry)["sent"] == []
    assert counts(registry) == before
    assert len(smtp_server.messages) == 1
    assert [a.status for a in registry.alerts(MODEL)] == ["sent"]


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_stale_data_is_a_failure_with_its_own_alert(model, registry, smtp_server):
    spec, (champion, _) = model
    # data ends 2025-08-31: the window 2025-08-27 .. 2025-09-10 has 5 rows, fewer than min_rows 7
    outcome = run_at(registry, spec, dt.datetime(2025, 9, 10, tzinfo=dt.UTC))
    assert outcome.stale and outcome.n_rows == 5 and not outcome.passed and outcome.harvested == 0
    rows = registry.evaluations(MODEL, "nowtest", contender=f"v{champion}")
    assert [(r.metric, r.value, r.passed) for r in rows] == [("rows", 5.0, False)]
    # and no rows at all (the source stopped) is stale too
    empty = run_at(registry, spec, dt.datetime(2025, 10, 1, tzinfo=dt.UTC))
    assert empty.stale and empty.n_rows == 0

    outbox.deliver_alerts(registry)
    subjects = sorted(m["message"]["Subject"] for m in smtp_server.messages)
    # the second is three weeks later, the breach goes on: a reminder (alerts.repeat_after_days is 7); both are
    # delivered together to the same recipients, so they arrive as one digest
    assert subjects == [f"[Ratchet] 2 alerts: {MODEL} now-test failed: stale data: 5 rows < min_rows 7 in the last "
                        f"14 days; {MODEL} now-test failed (still failing since 2025-09-09): stale data: 0 rows "
                        "< min_rows 7 in the last 14 days"]
    assert "2025-08-27 00:00 .. 2025-09-10 00:00" in "".join(_html(m["message"]) for m in smtp_server.messages)


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_harvested_worst_misses_are_deduplicated_golden_cases(model, registry, smtp_server):
    spec, _ = model
    first = run_at(registry, spec, AFTER_CHANGE, run_id="a")
    assert first.harvested == 5
    assert run_at(registry, spec, AFTER_CHANGE, run_id="b").harvested == 0  # same date, another run: same misses
    nxt = run_at(registry, spec, AFTER_CHANGE + dt.timedelta(days=1), run_id="c")
    assert not nxt.passed and nxt.since == first.partition  # the same breach goes on: nothing more is harvested
    assert nxt.harvested == 0 and {m["time"] for m in nxt.champion.worst_misses} - {
        m["time"] for m in first.champion.worst_misses}  # though that day's misses are new ones
    cases = registry.golden_cases(MODEL)
    assert len(cases) == 5 and len({c.case_key for c in cases}) == len(cases)
    assert {c.source for c in cases} == {"harvested"}
    assert {c.name for c in cases} == {c.name for c in cases if any(
        m["time"][:16] in c.name for m in first.champion.worst_misses)}
    case = next(c for c in cases if first.champion.worst_misses[0]["time"][:16] in c.name)
    miss = first.champion.worst_misses[0]
    assert case.expected == pytest.approx(miss["actual"])
    assert set(case.inputs) == {"temperature", "precipitation", "is_holiday", "promo", "day_of_week",
                                "target_lag_1", "target_lag_7"}
    assert case.tolerance == pytest.approx(harvest_tolerance(spec, first.champion.failed, miss["actual"], None))
    # the champion misses its own harvested cases; the regression tests now catch it
    from ratchet.evaluation.golden import run_golden_cases

    result = run_golden_cases(registry, spec, first.champion.version)
    assert not result.passed and result.n_cases == len(cases)


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_harvest_tolerance_is_the_row_error_a_model_meeting_the_bound_exceeds_one_time_in_twenty(model):
    import numpy as np

    spec, _ = model
    from ratchet.evaluation.requirements import RequirementResult

    def failed(metric, effective):
        return RequirementResult(None, metric, "max", effective, effective, None, None, None, 99.0, "nowtest", False)

    mape = harvest_tolerance(spec, [failed("mape", 0.1)], 200.0, 7.0)
    assert mape == pytest.approx(1.959964 * 1.253314 * 20.0, rel=1e-5)  # 2.46 x the 20 the bound allows on average
    assert harvest_tolerance(spec, [failed("mape", 0.1), failed("mae", 30.0)], 200.0, 7.0) == pytest.approx(
        1.959964 * 1.253314 * 30.0, rel=1e-5)
    assert harvest_tolerance(spec, [failed("rmse", 10.0)], 200.0, 7.0) == pytest.approx(19.59964, rel=1e-5)
    assert harvest_tolerance(spec, [failed("r2", 0.5)], 200.0, 7.0) == pytest.approx(7.0)  # best baseline's error
    # measured: a model whose errors are normal and exactly meet mae 30 fails such a case on about 5% of its rows
    errors = np.abs(np.random.default_rng(0).normal(0, 30.0 * np.sqrt(np.pi / 2), 200_000))
    assert errors.mean() == pytest.approx(30.0, rel=0.01)
    assert np.mean(errors > harvest_tolerance(spec, [failed("mae", 30.0)], 200.0, 7.0)) == pytest.approx(0.05,
                                                                                                          abs=0.003)


def test_a_model_without_versions_is_skipped_and_a_bad_source_raises_clearly(tmp_path, registry):
    write_source(registry)
    spec = write_spec(tmp_path, **SPEC)
    registry.sync_model(spec)
    outcome = run_at(registry, spec, AFTER_CHANGE)
    assert outcome.results == [] and not outcome.alerting and outcome.alert_id is None  # nothing to test
    assert counts(registry)["evaluations"] == 0
    train_champion(registry, spec)
    with registry.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("ALTER TABLE nowtest_src.demand DROP COLUMN promo"))
    from ratchet.exceptions import DataError

    before = counts(registry)
    with pytest.raises(DataError, match=r"missing columns \['promo'\]"):
        run_at(registry, spec, AFTER_CHANGE)
    assert counts(registry) == before
    assert json.dumps(outcome.summary())  # the XCom summary is JSON


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_a_classifier_is_now_tested_and_its_wrong_days_are_harvested_with_zero_tolerance(tmp_path, registry,
                                                                                         smtp_server):
    from sqlalchemy import text

    from ratchet import demo
    from ratchet.lifecycle.retrain import retrain_model

    frame = demo.generate_classification(dt.date(2024, 1, 1), dt.date(2025, 8, 31), seed=5)
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS nowtest_cls CASCADE; CREATE SCHEMA nowtest_cls"))
        frame.to_sql("busy", conn, schema="nowtest_cls", index=False)
    spec = write_spec(tmp_path, name="busy", table="nowtest_cls.busy", task="classification",
                      alert_emails=["ops@example.com"], source={"target": "busy", "target_lags": [1]},
                      estimators=[{"class": "sklearn.linear_model.LogisticRegression"}],
                      search={"n_trials": 1, "cv_folds": 2, "candidates": 1}, baselines=["majority", "last_value"],
                      requirements=[{"metric": "accuracy", "min": 0.999, "scope": "nowtest"}],
                      nowtest={"window_days": 28, "min_rows": 7})
    registry.sync_model(spec)
    (version,) = retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2025, 7, 1))
    registry.record_promotion("busy", version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first", gates=[], run_id="p", expected_previous_version=None)
    outcome = run_at(registry, spec, AFTER_CHANGE)
    assert set(outcome.champion.scores) == set(spec.metrics) == {"accuracy", "f1", "roc_auc", "log_loss", "pr_auc",
                                                                 "brier"}
    assert not outcome.passed and outcome.champion.failed[0].metric == "accuracy"
    assert outcome.champion.worst_misses and all(m["actual"] != m["predicted"] for m in outcome.champion.worst_misses)
    cases = registry.golden_cases("busy")
    assert len(cases) == outcome.harvested == len(outcome.champion.worst_misses)
    assert all(c.tolerance == 0.0 for c in cases)
    outbox.deliver_alerts(registry)
    assert smtp_server.messages[0]["message"]["Subject"].startswith("[Ratchet] busy now-test failed: accuracy ")


def test_a_breach_is_mailed_when_it_starts_again_after_repeat_after_days_and_when_it_ends():
    from ratchet.alerting.policy import mail_decision
    from ratchet.registry.entities import Evaluation

    def day(partition, passed, mailed=None):
        return Evaluation(kind="nowtest", contender="v1", partition=partition, metric="mape", value=0.1, n_rows=14,
                          run_id="r", version=1, passed=passed, details={"mailed": mailed})

    assert mail_decision([], "2025-01-01", True, 7) == ("breach", "2025-01-01")
    history = [day("2025-01-01", False, "breach")]
    assert mail_decision(history, "2025-01-02", True, 7) == (None, "2025-01-01")  # goes on: quiet
    history += [day(f"2025-01-0{d}", False) for d in range(2, 8)]
    assert mail_decision(history, "2025-01-08", True, 7) == ("reminder", "2025-01-01")  # a week on
    assert mail_decision(history, "2025-01-08", False, 7, [day("2025-01-08", True)]) == ("recovery", "2025-01-01")
    assert mail_decision([day("2024-12-31", True)], "2025-01-01", False, 7) == (None, None)
    assert mail_decision([day("2024-12-31", False)], "2025-01-01", False, 7,
                         [day("2025-01-01", True)]) == (None, None)  # never mailed: no news


def test_a_day_without_a_verdict_on_what_breached_neither_ends_the_breach_nor_mails():
    from ratchet.alerting.policy import mail_decision
    from ratchet.registry.entities import Evaluation

    def row(partition, metric, passed, kind="serving", mailed=None, no_verdict=None):
        return Evaluation(kind=kind, contender="service", partition=partition, metric=metric, value=None,
                          n_rows=0, run_id="r", version=None, passed=passed,
                          details={"mailed": mailed, "no_verdict": no_verdict})

    breach = [row("2025-01-01", "serving_latency_p95_ms", False, mailed="breach"),
              row("2025-01-01", "serving_error_rate", True)]
    quiet = [row("2025-01-02", "serving_latency_p95_ms", None, no_verdict="no requests"),
             row("2025-01-02", "serving_error_rate", None, no_verdict="no requests")]
    assert mail_decision(breach, "2025-01-02", False, 7, quiet) == (None, "2025-01-01")  # no false recovery
    measured = [row("2025-01-03", "serving_latency_p95_ms", True), row("2025-01-03", "serving_error_rate", True)]
    assert mail_decision(breach + quiet, "2025-01-03", False, 7, measured) == ("recovery", "2025-01-01")
    # a quiet day on another metric does not hold a breach open: what breached was measured and passed
    other = [row("2025-01-02", "serving_latency_p95_ms", True),
             row("2025-01-02", "serving_error_rate", None, no_verdict="no requests")]
    assert mail_decision(breach, "2025-01-02", False, 7, other) == ("recovery", "2025-01-01")


def test_a_panels_now_test_names_the_one_series_whose_world_changed(tmp_path, registry):
    """Three stores, one global model; only store c's demand jumps on the regime change. The whole panel's mape
    stays within the bound, but the same requirement checked per series (`per_series: true`) breaches on store c
    alone, and says so."""
    import pandas as pd
    from sqlalchemy import text

    from ratchet import demo
    from ratchet.evaluation import nowtest

    frames = [demo.generate_demand(dt.date(2024, 1, 1), dt.date(2025, 8, 31), seed=seed,
                                   regime_change=dt.date(2025, 7, 15) if store == "c" else None).assign(store=store)
              for seed, store in enumerate("abc")]
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS panel_src CASCADE; CREATE SCHEMA panel_src"))
        pd.concat(frames).sort_values(["day", "store"]).to_sql("demand", conn, schema="panel_src", index=False)
    spec = write_spec(tmp_path, **{**SPEC, "name": "stores", "table": "panel_src.demand",
                                   "source": {**SPEC["source"], "series": ["store"],
                                              "features": [*SPEC["source"]["features"], "store"],
                                              "categorical": ["store"]},
                                   "requirements": [{"metric": "mape", "max": 0.15, "scope": "nowtest",
                                                     "per_series": True, "min_rows": 10}]})
    train_champion(registry, spec)
    before, _ = nowtest.judge_nowtest(registry, spec, data_interval_end=BEFORE_CHANGE)
    assert before.champion.passed and sorted(before.champion.series) == ["store=a", "store=b", "store=c"]
    after, _ = nowtest.judge_nowtest(registry, spec, data_interval_end=AFTER_CHANGE)
    champion = after.champion
    panel = [r for r in champion.requirements if r.series is None]
    assert [r.passed for r in panel] == [True] and champion.scores["mape"] < 0.15
    (breach,) = champion.failed
    assert breach.series == "store=c" and breach.value == pytest.approx(champion.series["store=c"]["mape"])
    assert breach.describe().startswith("series store=c: mape 0.") and breach.value > 0.15
    assert champion.series["store=a"]["mape"] < 0.15 and champion.series["store=a"]["rows"] == 14


def test_a_min_rows_no_window_can_hold_at_the_inferred_frequency_is_refused_before_anything_is_stored(
        model, registry, tmp_path):
    from ratchet.exceptions import DataError

    (tmp_path / "edited").mkdir()
    daily = write_spec(tmp_path / "edited", **{**SPEC, "nowtest": {"window_days": 14, "min_rows": 15}})
    before = counts(registry)
    with pytest.raises(DataError, match=r"nowtest.min_rows 15 can never be met: a window of 14 days holds at most "
                                        r"14 rows at the rows' frequency 'day'"):
        run_at(registry, daily, AFTER_CHANGE)
    assert counts(registry) == before
