"""The review queue's round trip on the real car-loan book, through real DAG runs, a real `ratchet serve` and a person
in a real browser: answers served -> queued -> labelled -> golden cases -> trained on, with their weight.

`car_loans_events.csv` (SOURCES.md: NannyML's synthetic car-loan book), its first five months (about 25,000
applications) moved forward by whole weeks so the last application is two days old, is loaded as a live table whose
last 14 days have no label yet (`label_delay_days: 14`). The night: `ratchet_retrain` on the applications before
the last month and a half, `ratchet_backtest`, the first `ratchet_promote`. Then a real `ratchet serve` replica is
asked for every application still without a label (the service logs each answer with its probabilities), and
`ratchet_nowtest` runs: its `review` task queues the day's least sure answers (top probability below 0.6), served
and from the now-test's window, one per application, at most `review.per_day`. A person signed in to Airflow opens
the model's review list in the Ratchet page, types a label the model does not know (refused, nothing stored), then
labels each row with what the book says happened: confirming the model's answer where it was right, correcting it
where it was wrong. The next day's `ratchet_nowtest` turns the labels into golden cases and the next
`ratchet_retrain`'s search and refit learn from the labelled rows with sample weight `review.weight`.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser_helpers import SCREENSHOTS, ratchet_in_airflow
from conftest import USER, emptied_registry
from dag_helpers import task_states, timed_run
from real_data import real_data_dir
from serving_helpers import TOKEN, replicas, wait_until
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.modeling import features, sources
from ratchet.modeling.baselines import ROW
from ratchet.modeling.months import window_bounds
from ratchet.modeling.search import cross_validate, time_folds
from ratchet.specs import get_spec

pytestmark = pytest.mark.slow  # real DAG runs, a `ratchet serve` process, an api-server and Chromium

TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
LABEL_DELAY = 14
PER_DAY = 20
WEIGHT = 2.0
MODEL = "loans_review"
LOANS = {
    "name": MODEL, "task": "classification", "owner": "conformance", "alert_emails": ["owner@example.com"],
    "source": {"table": "review_trip.loans", "time_column": "applied_at", "target": "repaid",
               "frequency": "event", "id": "application_id", "label_delay_days": LABEL_DELAY,
               "categorical": ["salary_range", "size_of_downpayment"]},
    "estimators": [{"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000},
                    "search_space": {"C": {"loguniform": [0.01, 10.0]}}}],
    "search": {"n_trials": 2, "cv_folds": 2, "seed": 3, "candidates": 1},
    "baselines": ["majority"], "backtest": {"months": 2},
    "nowtest": {"window_days": 14, "min_rows": 200},
    "review": {"max_confidence": 0.6, "per_day": PER_DAY, "weight": WEIGHT},
}


def _book() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the applications as a lender sees them today, every application with the label the book says it got)."""
    frame = pd.read_csv(real_data_dir() / "car_loans_events.csv", parse_dates=["applied_at"])
    frame = frame[frame["applied_at"] < "2018-06-01"].copy()
    weeks = (pd.Timestamp(TODAY.date()) - pd.Timedelta(days=2) - frame["applied_at"].max()).days // 7
    frame["applied_at"] += pd.Timedelta(weeks=weeks)
    truth = frame.copy()
    frame["repaid"] = frame["repaid"].astype("Int64")
    frame.loc[frame["applied_at"] >= pd.Timestamp(TODAY.date()) - pd.Timedelta(days=LABEL_DELAY), "repaid"] = pd.NA
    return frame, truth


FRAME, TRUTH = _book()
TRAINED_UNTIL = TODAY - dt.timedelta(days=31)  # the champion has not seen the now-test window
LABELS = {f"application_id={a}": str(r) for a, r in zip(TRUTH["application_id"], TRUTH["repaid"], strict=True)}


def _ratchet(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "ratchet"), *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=120)


def _serve_unlabelled(registry, folder: Path) -> int:
    """Ask a real `ratchet serve` for every application without a label (the first ten twice), and wait until the
    service's log holds every answer; returns how many requests were answered."""
    unlabelled = FRAME.loc[FRAME["repaid"].isna(), "application_id"].tolist()
    asked = [*unlabelled, *unlabelled[:10]]
    env = {"RATCHET_MODELS_DIR": str(folder), "RATCHET_API_TOKEN": TOKEN}
    since = dt.datetime.now(dt.UTC)
    with replicas(1, env, folder) as (replica,):
        wait_until(replica, lambda r: r.get(f"/v1/models/{MODEL}").status_code == 200)
        for application in asked:
            answered = replica.get(f"/v1/models/{MODEL}/predict", params={"id": str(application)})
            assert answered.status_code == 200, answered.text
        deadline = time.monotonic() + 60
        while len(registry.served(MODEL, since, dt.datetime.now(dt.UTC))) < len(asked):
            assert time.monotonic() < deadline, "the service did not log every answer within 60 s"
            time.sleep(0.5)
    return len(asked)


@pytest.fixture(scope="module")
def world(airflow_db, database_url, tmp_path_factory):
    """The night, the service's answers and the now-test run that queues the unsure ones; `ratchet status` then."""
    folder = tmp_path_factory.mktemp("review_models")
    registry = emptied_registry(database_url)
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS review_trip CASCADE; CREATE SCHEMA review_trip"))
        FRAME.to_sql("loans", conn, schema="review_trip", index=False, chunksize=20_000)
    write_spec(folder, **LOANS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RATCHET_MODELS_DIR", str(folder))
        patch.setenv("RATCHET_REPORTS_DIR", str(folder / "reports"))
        runs, seconds = {}, {}
        runs["retrain"], seconds["retrain"] = timed_run("ratchet_retrain", TRAINED_UNTIL + dt.timedelta(hours=1))
        runs["backtest"], seconds["backtest"] = timed_run("ratchet_backtest", TODAY + dt.timedelta(hours=3))
        (first,) = [v.version for v in registry.versions(MODEL)]
        runs["promote"], _ = timed_run("ratchet_promote", TODAY + dt.timedelta(hours=5),
                                       {"model": MODEL, "version": first, "reason": "round trip: first champion",
                                        "dry_run": False})
        asked = _serve_unlabelled(registry, folder)
        night = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        runs["nowtest"], seconds["nowtest"] = timed_run("ratchet_nowtest", night)
        status = json.loads(_ratchet("status", "--json", "--model", MODEL).stdout)["models"][0]["review"]
        status_text = _ratchet("status", "--model", MODEL).stdout
        yield {"registry": registry, "folder": folder, "runs": runs, "seconds": seconds, "night": night,
               "asked": asked, "champion": first, "status": status, "status_text": status_text}
    registry.dispose()


def _expected_queue(registry, night: dt.datetime, champion: int) -> list[str]:
    """The queue the day should hold, computed here from the service's log and the champion's own answers on the
    now-test window: every answer below 0.6, one per application at its least sure, the PER_DAY least sure."""
    doubt: dict[str, float] = {}
    for served in registry.served(MODEL, night - dt.timedelta(days=1), night):
        key = f"{served.series} @ {pd.Timestamp(served.feature_id).isoformat()}"
        doubt[key] = min(doubt.get(key, 1.0), max(served.probabilities.values()))
    spec = get_spec(MODEL)
    start, stop, _ = window_bounds(night - dt.timedelta(days=LABEL_DELAY), spec.nowtest.window_days)
    X, _, times = features.make_xy(spec, sources.read_source(spec, end=stop))
    inside = ((times >= start) & (times < stop)).to_numpy()
    version = registry.version(MODEL, champion)
    inside &= (times > sources.naive_utc(version.train_end)).to_numpy()
    proba = registry.load_estimator(MODEL, champion).predict_proba(X[inside][list(version.features)]).max(axis=1)
    for label, at, confidence in zip(features.id_labels(spec, X[inside][ROW]), times[inside], proba, strict=True):
        key = f"{label} @ {at.isoformat()}"
        doubt[key] = min(doubt.get(key, 1.0), float(confidence))
    unsure = {k: v for k, v in doubt.items() if v < 0.6}
    return sorted(unsure, key=lambda k: unsure[k])[:PER_DAY]


def test_the_night_is_green_and_the_days_least_sure_answers_are_queued_once_each(world):
    registry = world["registry"]
    for name, run in world["runs"].items():
        states = task_states(run)
        assert run.state == "success", (name, states)
    (review,) = [s for (task, _), s in task_states(world["runs"]["nowtest"]).items() if task == "review"]
    assert review == "success"
    queued = registry.review_items(MODEL)
    assert len(queued) == PER_DAY and len({i.item_key for i in queued}) == PER_DAY
    assert sorted(i.item_key for i in queued) == sorted(_expected_queue(registry, world["night"], world["champion"]))
    assert all(i.confidence < 0.6 for i in queued)
    assert [i.confidence for i in queued] == sorted(i.confidence for i in queued)  # the least sure first
    origins = {o: sum(i.origin == o for i in queued) for o in ("served", "nowtest")}
    assert origins["served"] >= 1 and origins["nowtest"] >= 1
    assert all(i.actual is None for i in queued if i.origin == "served")  # their labels have not arrived
    assert all(i.actual == LABELS[i.series] for i in queued if i.origin == "nowtest")
    status = world["status"]
    assert (status["waiting"], status["labelled"]) == (PER_DAY, 0) and 0 <= status["oldest_age_hours"] < 2
    assert f"review queue: {PER_DAY} waiting for a label, the oldest queued 0 day(s) ago" in world["status_text"]
    print(f"\nround trip: {world['asked']} answers served, {PER_DAY} queued ({origins['served']} served, "
          f"{origins['nowtest']} from the now-test), run seconds {world['seconds']}")


@pytest.fixture(scope="module")
def labelled(world, api_server, chromium):
    """A person signed in to Airflow labels every queued row on the review list, after one refused label."""
    from playwright.sync_api import expect, sync_playwright


    registry = world["registry"]
    queued = registry.review_items(MODEL)
    before = registry.review_items(MODEL)
    with sync_playwright() as p:
        browser, page, ratchet = ratchet_in_airflow(p, api_server, chromium)
        ratchet.get_by_role("link", name=MODEL).click()
        expect(ratchet.locator("#review-status")).to_contain_text(f"{PER_DAY} waiting for a label")
        ratchet.locator("#review-status a").click()
        expect(ratchet.locator("#review-queue tbody tr")).to_have_count(PER_DAY)
        page.screenshot(path=str(SCREENSHOTS / "review.png"))
        first = queued[0]
        row = ratchet.locator(f'#review-queue tr[data-item="{first.id}"]')
        row.get_by_label(f"label of item {first.id}").fill("maybe")
        row.get_by_role("button", name="Label").click()
        expect(ratchet.locator("#refused")).to_contain_text("'maybe' is not a class v1 knows")
        refused_stored = registry.review_items(MODEL) == before
        corrected = 0
        for item in queued:
            row = ratchet.locator(f'#review-queue tr[data-item="{item.id}"]')
            truth = LABELS[item.series]
            if truth == item.answer:
                row.get_by_role("button", name=f"Confirm {item.answer}").click()
            else:
                row.get_by_label(f"label of item {item.id}").fill(truth)
                row.get_by_role("button", name="Label").click()
                corrected += 1
            expect(ratchet.locator("#labelled-note")).to_contain_text(f"Item {item.id} labelled.")
        expect(ratchet.locator("#review-queue")).to_have_count(0)
        browser.close()
    return {"refused_stored_nothing": refused_stored, "corrected": corrected}


def test_a_person_labels_every_row_on_the_page_and_is_recorded_with_each_label(world, labelled):
    registry = world["registry"]
    assert labelled["refused_stored_nothing"]
    done = registry.review_items(MODEL, pending=False)
    assert len(done) == PER_DAY and registry.review_items(MODEL, pending=True) == []
    assert all(i.labelled_by == USER and i.label == LABELS[i.series] for i in done)
    assert all(i.labelled_at >= i.queued_at for i in done)
    print(f"\nround trip: {PER_DAY} labelled by {USER!r} in the browser, {labelled['corrected']} correcting the "
          f"model's answer, {PER_DAY - labelled['corrected']} confirming it")


@pytest.fixture(scope="module")
def next_night(world, labelled):
    """The next day's now-test (labels into golden cases), then the next retrain."""
    night = world["night"] + dt.timedelta(days=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RATCHET_MODELS_DIR", str(world["folder"]))
        patch.setenv("RATCHET_REPORTS_DIR", str(world["folder"] / "reports"))
        nowtest, _ = timed_run("ratchet_nowtest", night)
        retrain, seconds = timed_run("ratchet_retrain", night + dt.timedelta(hours=1))
    return {"nowtest": nowtest, "retrain": retrain, "end": night + dt.timedelta(hours=1), "seconds": seconds}


def _training_rows(registry, end: dt.datetime) -> tuple[pd.DataFrame, pd.Series, pd.Series, np.ndarray]:
    """What the retrain should learn from, built here: the rows with mature labels and every labelled row with the
    person's label, at its own time; the labelled rows weigh WEIGHT."""
    spec = get_spec(MODEL)
    labels = {i.series: int(i.label) for i in registry.review_items(MODEL, pending=False)}
    rows = FRAME[FRAME["applied_at"] < pd.Timestamp(end).tz_localize(None)].copy()
    rows["repaid"] = rows["repaid"].astype(float)  # as PostgreSQL gives an integer column with NULLs
    ids = "application_id=" + rows["application_id"].astype(str)
    reviewed = ids.isin(list(labels)).to_numpy()
    rows.loc[reviewed, "repaid"] = ids[reviewed].map(labels).to_numpy()
    mature = (rows["applied_at"] < pd.Timestamp(end).tz_localize(None) - pd.Timedelta(days=LABEL_DELAY)).to_numpy()
    rows = rows[mature | reviewed].reset_index(drop=True)
    X, y, times = features.make_xy(spec, sources.validate_frame(spec, rows))
    weights = np.where(np.isin(features.id_labels(spec, X[ROW]), list(labels)), WEIGHT, 1.0)
    return X, y, times, weights


def test_the_labels_become_golden_cases_and_train_the_next_search_with_their_weight(world, next_night):
    registry = world["registry"]
    for run in (next_night["nowtest"], next_night["retrain"]):
        assert run.state == "success", task_states(run)
    reviewed = [c for c in registry.golden_cases(MODEL) if c.source == "reviewed"]
    labels = {i.item_key: i for i in registry.review_items(MODEL, pending=False)}
    assert len(reviewed) == PER_DAY and all(i.golden_case_key for i in labels.values())
    assert sorted(c.expected for c in reviewed) == sorted(float(i.label) for i in labels.values())

    (version,) = [v for v in registry.versions(MODEL) if v.version != world["champion"]]
    assert version.details["review"] == {"labelled": PER_DAY, "rows": PER_DAY, "weight": WEIGHT, "weighted": True,
                                         "text": f"{PER_DAY} reviewed row(s) trained it with sample weight 2"}
    X, y, times, weights = _training_rows(registry, next_night["end"])
    newest = pd.Timestamp(max(i.feature_id for i in labels.values()))
    assert sources.naive_utc(version.train_end) == times.iloc[-1] >= newest  # labelled rows at their own time
    spec = get_spec(MODEL)
    estimator = spec.estimators[0]
    stored = registry.load_estimator(MODEL, version.version)
    refit = features.make_estimator(spec, estimator, version.hyperparameters)
    refit.fit(X, y, estimator__sample_weight=weights)
    plain = features.make_estimator(spec, estimator, version.hyperparameters).fit(X, y)
    assert np.allclose(stored[-1].coef_, refit[-1].coef_, rtol=1e-6, atol=1e-9)
    assert not np.allclose(stored[-1].coef_, plain[-1].coef_, rtol=1e-6, atol=1e-9)

    trials = {t.trial_index: t for t in registry.trials(MODEL) if t.run_id == version.run_id}
    searched = trials[min(trials)]
    folds = time_folds(times, spec.search.cv_folds)
    weighted = cross_validate(spec, estimator, searched.params, X, y, folds, weights).fold_scores
    assert searched.fold_scores == pytest.approx(weighted, rel=1e-9)  # the search's folds saw the labelled rows
    mature = np.flatnonzero(weights == 1.0)
    mature_folds = time_folds(times.iloc[mature].reset_index(drop=True), spec.search.cv_folds)
    without_them = cross_validate(spec, estimator, searched.params, X.iloc[mature], y.iloc[mature],
                                  mature_folds).fold_scores
    assert searched.fold_scores != pytest.approx(without_them, rel=1e-9)
    # a fold fitted on labelled rows fits them with their weight; the newest rows are only ever validated on
    unweighted = cross_validate(spec, estimator, searched.params, X, y, folds).fold_scores
    trained_on = [int((weights[train] != 1.0).sum()) for train, _ in folds]
    validated_on = [int((weights[test] != 1.0).sum()) for _, test in folds]
    for fold, rows in enumerate(trained_on):
        assert (weighted[fold] != pytest.approx(unweighted[fold], rel=1e-9)) == bool(rows), fold
    print(f"\nround trip: {PER_DAY} golden cases made; {version.details['review']['rows']} labelled rows trained "
          f"v{version.version}'s refit with sample weight {WEIGHT:g}; in the search's {len(folds)} folds they were "
          f"fitted on {trained_on} times and scored on {validated_on} times; retrain {next_night['seconds']:.1f} s")
