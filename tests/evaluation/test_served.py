"""The served now-test (`ratchet.evaluation.served`): what the REST service logged, scored against the actuals,
beside the re-predicted window, with a real registry, real source tables and a real SMTP server."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from nowtest_helpers import BEFORE_CHANGE, MODEL, champion_model, run_at
from served_helpers import answer, serve_window, window_predictions
from sqlalchemy import text

from ratchet.alerting import outbox


@pytest.fixture
def model(tmp_path, registry):
    return champion_model(registry, tmp_path)


def _served(registry, kind="served"):
    """(contender, metric) -> stored evaluation of the now-test's served rows."""
    return {(e.contender, e.metric): e for e in registry.evaluations(MODEL, kind)}


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_each_id_counts_once_with_its_latest_answer_and_waits_for_its_actual(model, registry, smtp_server):
    spec, (champion, _) = model
    with registry.engine.begin() as conn:  # the window's last actual has not arrived yet (its last whole day)
        conn.execute(text("UPDATE nowtest_src.demand SET demand = NULL WHERE day = '2025-07-09'"))
    window = window_predictions(registry, spec, BEFORE_CHANGE, champion)
    assert len(window) == 13
    early = BEFORE_CHANGE - dt.timedelta(days=3)
    # three ids were asked earlier and answered differently (the features changed since): the latest answer counts
    registry.log_served([answer(MODEL, champion, t, 1e6, early) for t in window["time"][:3]])
    logged = serve_window(registry, spec, BEFORE_CHANGE, champion)
    registry.log_served([answer(MODEL, champion, "2025-07-09", 500.0, BEFORE_CHANGE - dt.timedelta(hours=2)),
                         answer(MODEL, champion, "2025-07-12", 500.0, BEFORE_CHANGE - dt.timedelta(hours=2)),
                         answer(MODEL, champion, "2025-07-01", None, BEFORE_CHANGE, status=404)])

    outcome = run_at(registry, spec, BEFORE_CHANGE)
    (served,) = outcome.served.results
    assert (served.contender, served.role, served.ids, served.scored, served.awaiting) == (
        f"v{champion}@champion", "champion", 14, 13, 1)
    assert served.answers == 3 + len(logged) + 1  # every logged answer of the window's ids, asked twice or not
    assert served.served_in_day == len(logged) + 2
    repredicted = outcome.champion.scores
    for metric in ("rmse", "mae", "mape", "r2"):  # the same predictions of the same ids: the same numbers
        assert served.scores[metric] == pytest.approx(repredicted[metric])
    assert outcome.passed and served.requirements and not served.failed
    assert {r.metric for r in served.requirements} == {"mape", "rmse"}

    stored = _served(registry)
    ids = stored[(f"v{champion}@champion", "ids")]
    assert (ids.partition, ids.value, ids.version, ids.passed) == ("2025-07-09", 13.0, champion, None)
    assert ids.details["awaiting"] == 1 and ids.details["answers"] == served.answers
    mape = stored[(f"v{champion}@champion", "mape")]
    assert mape.passed is True and mape.value == pytest.approx(repredicted["mape"])
    assert outcome.summary()["served"][f"v{champion}@champion"]["scored"] == 13
    before = len(registry.evaluations(MODEL))
    run_at(registry, spec, BEFORE_CHANGE)  # a re-run of the date overwrites, adds nothing
    assert len(registry.evaluations(MODEL)) == before
    assert outbox.deliver_alerts(registry)["sent"] == [] and smtp_server.messages == []


def test_a_breach_on_what_the_champion_served_alerts_and_the_mail_says_it_is_served(model, registry, smtp_server):
    spec, (champion, _) = model
    serve_window(registry, spec, BEFORE_CHANGE, champion, scale=1.3)  # clients were given 30% too much
    outcome = run_at(registry, spec, BEFORE_CHANGE)
    assert outcome.champion.passed  # the stored estimator re-predicts the window well ...
    assert [r.metric for r in outcome.served_failed] == ["mape", "rmse"]  # ... but what was served breached
    assert not outcome.passed and outcome.alert_id is not None and outcome.mailed == "breach"
    served_mape = outcome.served.champion.scores["mape"]
    assert served_mape == pytest.approx(0.3, abs=0.05)
    row = _served(registry)[(f"v{champion}@champion", "mape")]
    assert row.passed is False and row.details["mailed"] == "breach"
    from ratchet.reporting.status import promotion_status

    last = promotion_status(registry, spec)["last_nowtest"]
    assert (last["day"], last["passed"], last["failed_metrics"]) == ("2025-07-09", False, ["served mape",
                                                                                         "served rmse"])

    outbox.deliver_alerts(registry)
    (mail,) = smtp_server.messages
    subject = mail["message"]["Subject"]
    assert subject.startswith(f"[Ratchet] {MODEL} now-test failed: served mape {served_mape:.4g} > max 0.08")
    body = mail["message"].get_body(("plain",)).get_content()
    assert f"Requirements of v{champion} (champion), re-predicted on the window" in body
    assert "Served predictions (what clients were given)" in body
    assert f"Requirements of v{champion}@champion (champion) on what it served" in body
    assert f"{served_mape:.4g}" in body and "each id counted once" in body


def test_a_split_is_compared_descriptively_and_only_an_arm_with_enough_ids_gets_a_verdict(model, registry):
    spec, (champion, candidate) = model
    times = window_predictions(registry, spec, BEFORE_CHANGE, champion)["time"]
    chosen = times.iloc[[2, 6, 10]]  # the ids the split's hash sends to the candidate
    serve_window(registry, spec, BEFORE_CHANGE, candidate, arm="candidate", ids=chosen)
    serve_window(registry, spec, BEFORE_CHANGE, champion, ids=times[~times.isin(chosen)])

    outcome = run_at(registry, spec, BEFORE_CHANGE)
    arms = {r.contender: r for r in outcome.served.results}
    mine, theirs = arms[f"v{candidate}@candidate"], arms[f"v{champion}@champion"]
    assert (mine.role, mine.scored, mine.served_in_day, mine.requirements) == ("candidate", 3, 3, [])
    assert theirs.scored == 11 and theirs.requirements  # at least min_rows (7) ids: checked
    (comparison,) = outcome.served.comparisons
    assert comparison["test"] == "descriptive"
    assert (comparison["n_candidate"], comparison["n_champion"]) == (3, 6)  # champion ids between 1st and 3rd
    assert comparison["candidate_value"] == pytest.approx(mine.scores["rmse"])
    assert comparison["text"].startswith(f"A/B on served ids {chosen.iloc[0]:%Y-%m-%d}..{chosen.iloc[-1]:%Y-%m-%d} "
                                         "(descriptive: unpaired ids, no significance test)")
    stored = _served(registry)
    assert stored[(f"v{candidate}@candidate", "rmse")].passed is None  # no verdict on 3 ids
    assert stored[(f"v{candidate}@candidate", "ids")].details["comparisons"][0]["text"] == comparison["text"]
    record = registry.trial_records(MODEL)[candidate]
    assert record.served_days == ("2025-07-09",) and record.served_breach_days == ()


def test_arms_that_answered_no_common_stretch_of_time_keys_are_not_compared(model, registry):
    spec, (champion, candidate) = model
    times = window_predictions(registry, spec, BEFORE_CHANGE, champion)["time"]
    serve_window(registry, spec, BEFORE_CHANGE, candidate, arm="candidate", ids=times[:2])
    serve_window(registry, spec, BEFORE_CHANGE, champion, ids=times[5:])
    (comparison,) = run_at(registry, spec, BEFORE_CHANGE).served.comparisons
    assert comparison["span"] is None and "no common stretch of time keys" in comparison["text"]


def test_a_classifier_is_scored_by_its_logged_labels_and_probabilities(tmp_path, registry):
    from spec_factory import write_spec

    from ratchet import demo
    from ratchet.lifecycle.retrain import retrain_model

    frame = demo.generate_classification(dt.date(2024, 1, 1), dt.date(2025, 8, 31), seed=5)
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS served_cls CASCADE; CREATE SCHEMA served_cls"))
        frame.to_sql("busy", conn, schema="served_cls", index=False)
    spec = write_spec(tmp_path, name="busy", table="served_cls.busy", task="classification",
                      source={"target": "busy", "target_lags": [1]},
                      estimators=[{"class": "sklearn.linear_model.LogisticRegression"}],
                      search={"n_trials": 1, "cv_folds": 2, "candidates": 1}, baselines=["majority"],
                      requirements=[{"metric": "accuracy", "min": 0.5, "scope": "nowtest"}],
                      nowtest={"window_days": 28, "min_rows": 7})
    registry.sync_model(spec)
    (version,) = retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2025, 7, 1))
    registry.record_promotion("busy", version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first", gates=[], run_id="p", expected_previous_version=None)
    end = dt.datetime(2025, 8, 1, 6, tzinfo=dt.UTC)
    from ratchet.modeling import sources
    from ratchet.modeling.features import make_xy
    from ratchet.modeling.months import window_bounds

    start, stop, _ = window_bounds(end, 28)
    X, _, times = make_xy(spec, sources.read_source(spec, end=stop))
    inside = ((times >= start) & (times < stop)).to_numpy()
    estimator = registry.load_estimator("busy", version)
    labels, proba = estimator.predict(X[inside]), estimator.predict_proba(X[inside])
    classes = [str(c) for c in estimator.classes_]
    registry.log_served([answer("busy", version, t, None, end - dt.timedelta(hours=1), label=str(label),
                                probabilities=dict(zip(classes, map(float, p), strict=True)))
                         for t, label, p in zip(times[inside], labels, proba, strict=True)])

    outcome = run_at(registry, spec, end)
    served = outcome.served.champion
    assert served.scored == int(inside.sum()) == outcome.n_rows
    for metric in ("accuracy", "f1", "roc_auc", "log_loss"):
        assert served.scores[metric] == pytest.approx(outcome.champion.scores[metric])
    assert pd.notna(served.scores["log_loss"]) and served.requirements[0].passed
