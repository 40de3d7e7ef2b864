"""The daily review task and the retraining that learns from its labels (`lifecycle.review`), on a real PostgreSQL:
what is queued (served and now-test answers below the bound, rows the source has, one per row, the least sure
first, at most `per_day`), what a label becomes (a golden case judged against the champion, a weighted training row
at its own time), and what `ratchet status` counts."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from served_helpers import answer
from serving_helpers import register_trained
from source_helpers import write_table
from spec_factory import write_spec

from ratchet.evaluation.golden import run_golden_cases
from ratchet.lifecycle.retrain import retrain_model
from ratchet.lifecycle.review import queue_reviews
from ratchet.modeling import features, sources
from ratchet.modeling.months import window_bounds
from ratchet.modeling.search import cross_validate, time_folds
from ratchet.registry.entities import DayRow, EvaluationRow, ReviewItem
from ratchet.reporting.status import review_status
from ratchet.specs.model import EstimatorSpec

END = dt.datetime(2024, 9, 1, 6, tzinfo=dt.UTC)  # the now-test window: 2024-08-18 .. 08-31
SERVED_AT = END - dt.timedelta(hours=2)
CLASSIFIER = {"task": "classification", "baselines": ["majority"], "source": {"features": ["x"]},
              "estimators": [{"class": "sklearn.linear_model.LogisticRegression",
                              "search_space": {"C": {"loguniform": [0.1, 10.0]}}}],
              "search": {"n_trials": 2, "cv_folds": 2, "candidates": 1},
              "nowtest": {"window_days": 14, "min_rows": 5},
              "review": {"max_confidence": 0.6, "per_day": 5, "weight": 3.0}}


def _days(n_days: int = 244, seed: int = 0) -> pd.DataFrame:
    """A day a row from 2024-01-01: a feature and a label it predicts only in part."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n_days)
    return pd.DataFrame({"day": pd.date_range("2024-01-01", periods=n_days), "x": x,
                         "y": (x + rng.normal(scale=2.5, size=n_days) > 0).astype(int)})


@pytest.fixture
def churn(registry, tmp_path, monkeypatch):
    """A daily classifier with a review queue, its champion fitted on every row."""
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    spec = write_spec(tmp_path, name="churn", table=write_table(registry, _days()), **CLASSIFIER)
    registry.sync_model(spec)
    register_trained(registry, spec, {"C": 1.0}, promote=True)
    return spec


def _probabilities(p_one: float) -> dict[str, float]:
    return {"0": 1 - p_one, "1": p_one}


def _window_doubt(registry, spec) -> dict[str, tuple[float, str]]:
    """The champion's top probability and answer on every now-test window row, by the row's key (time)."""
    start, stop, _ = window_bounds(END, spec.nowtest.window_days)
    X, _, times = features.make_xy(spec, sources.read_source(spec, end=stop))
    inside = ((times >= start) & (times < stop)).to_numpy()
    estimator = registry.load_estimator(spec.name, 1)
    proba = estimator.predict_proba(X[inside][["x"]])
    return {t.isoformat(): (float(p.max()), str(a)) for t, p, a in
            zip(times[inside], proba, estimator.predict(X[inside][["x"]]), strict=True)}


def test_the_least_sure_served_and_now_test_answers_are_queued_once_each_up_to_per_day(registry, churn):
    window = _window_doubt(registry, churn)
    in_window = min(window, key=lambda k: window[k][0])  # the champion's least sure window row, served too
    registry.log_served([
        answer("churn", 1, "2024-06-01", None, SERVED_AT, label="1", probabilities=_probabilities(0.52)),
        answer("churn", 1, "2024-06-02", None, SERVED_AT, label="1", probabilities=_probabilities(0.93)),  # sure
        answer("churn", 1, in_window, None, SERVED_AT, label="0", probabilities=_probabilities(0.41)),
        answer("churn", 1, "2024-06-03", None, SERVED_AT - dt.timedelta(days=1), label="1",
               probabilities=_probabilities(0.5)),  # served the day before: another day's run
        answer("churn", 1, "2024-09-20", None, SERVED_AT, label="1", probabilities=_probabilities(0.5)),  # no row
    ])
    outcome = queue_reviews(registry, churn, end=END, run_id="nt")

    candidates = {key: confidence for key, (confidence, _) in window.items() if confidence < 0.6}
    # the served answers below 0.6: P(1) 0.52, and P(1) 0.41 (0.59 sure) of a window row, kept at its least sure
    candidates |= {"2024-06-01T00:00:00": 0.52, in_window: min(0.59, window[in_window][0])}
    expected = sorted(candidates, key=lambda k: (candidates[k], k))[:5]
    assert len(candidates) > 5  # review.per_day leaves the surer ones out
    queued = registry.review_items("churn")
    assert [i.item_key for i in outcome.queued] == [i.item_key for i in queued]
    assert sorted(i.item_key for i in queued) == sorted(expected)
    assert [i.confidence for i in queued] == pytest.approx(sorted(candidates[k] for k in expected))
    by_key = {i.item_key: i for i in queued}
    assert by_key["2024-06-01T00:00:00"].origin == "served" and by_key["2024-06-01T00:00:00"].actual is not None
    nowtest = [i for i in queued if i.origin == "nowtest"]
    assert nowtest and all(i.answer == window[i.item_key][1] and i.actual in ("0", "1") for i in nowtest)
    assert outcome.summary()["queued"] == 5 and outcome.summary()["candidates"]["served"] == 2
    status = review_status(registry, churn, now=queued[0].queued_at + dt.timedelta(hours=30))
    assert (status["waiting"], status["labelled"], status["oldest_age_days"]) == (5, 0, 1)
    assert status["oldest_age_hours"] == pytest.approx(30, abs=0.1)

    again = queue_reviews(registry, churn, end=END, run_id="nt")  # a re-run of the date: the same queue
    assert sorted(i.item_key for i in registry.review_items("churn")) == sorted(expected)
    assert len(again.queued) == 5


def test_labels_become_golden_cases_and_train_the_next_search_with_their_weight(registry, churn):
    registry.log_served([answer("churn", 1, day, None, SERVED_AT, label="1", probabilities=_probabilities(0.51))
                         for day in ("2024-05-01", "2024-05-02", "2024-05-03")])
    queue_reviews(registry, churn, end=END, run_id="nt")
    served = [i for i in registry.review_items("churn") if i.origin == "served"]
    assert len(served) == 3
    source = _days()
    truth = dict(zip(source["day"].dt.strftime("%Y-%m-%dT00:00:00"), source["y"], strict=True))
    flipped = {i.item_key: str(1 - truth[i.item_key]) for i in served}  # the person says the source was wrong
    for item in served:
        registry.label_review_item("churn", item.id, flipped[item.item_key], labelled_by="carol")

    outcome = queue_reviews(registry, churn, end=END + dt.timedelta(days=1), run_id="nt2")
    assert outcome.golden_cases == 3
    cases = {c.name: c for c in registry.golden_cases("churn") if c.source == "reviewed"}
    assert len(cases) == 3
    for item in served:
        (case,) = [c for n, c in cases.items() if item.item_key in n]
        x = float(source.loc[source["day"] == item.feature_id, "x"].iloc[0])
        assert case.inputs == {"x": pytest.approx(x)} and case.expected == float(flipped[item.item_key])
        assert case.tolerance == 0.0 and "by carol" in case.name

    (version,) = retrain_model(registry, churn, run_id="retrain", logical_date=END)
    details = registry.version("churn", version).details["review"]
    assert details == {"labelled": 3, "rows": 3, "weight": 3.0, "weighted": True,
                       "text": "3 reviewed row(s) trained it with sample weight 3"}
    relabelled = source[source["day"] < "2024-09-01"].copy()
    for key, label in flipped.items():
        relabelled.loc[relabelled["day"] == pd.Timestamp(key), "y"] = int(label)
    weights = np.where(relabelled["day"].dt.strftime("%Y-%m-%dT00:00:00").isin(list(flipped)), 3.0, 1.0)
    stored = registry.load_estimator("churn", version)
    params = registry.version("churn", version).hyperparameters
    model = features.make_estimator(churn, churn.estimators[0], params)
    weighted = model.fit(relabelled[["x"]], relabelled["y"], estimator__sample_weight=weights)
    plain = features.make_estimator(churn, churn.estimators[0], params).fit(source[["x"]][:244], source["y"][:244])
    assert np.allclose(stored[-1].coef_, weighted[-1].coef_) and not np.allclose(stored[-1].coef_, plain[-1].coef_)
    X, y, times = relabelled[["x"]], relabelled["y"], relabelled["day"]
    folds = time_folds(times, churn.search.cv_folds)
    assert [int((weights[train] != 1).sum()) for train, _ in folds] == [0, 3]  # May: in the second fold's fit
    (searched, *_) = registry.trials("churn", "retrain")
    with_weights = cross_validate(churn, churn.estimators[0], searched.params, X, y, folds, weights).fold_scores
    unweighted = cross_validate(churn, churn.estimators[0], searched.params, X, y, folds).fold_scores
    assert searched.fold_scores == pytest.approx(with_weights, rel=1e-12)
    assert with_weights[0] == pytest.approx(unweighted[0], rel=1e-12) and with_weights[1] != unweighted[1]


def test_reviewed_golden_cases_are_judged_against_the_champion(registry, churn):
    always_one = replace(churn, estimators=(EstimatorSpec("sklearn.dummy.DummyClassifier",
                                                          {"strategy": "constant", "constant": 1}),))
    v2 = register_trained(registry, always_one, {}, run_id="r2")  # answers 1 whatever it is asked
    x = [-2.0, -1.5, 1.0]
    registry.add_golden_cases("churn", [
        {"case_key": f"{i}" * 64, "source": "reviewed", "name": f"reviewed {i}", "inputs": {"x": v},
         "expected": 0.0 if v < 0 else 1.0, "tolerance": 0.0} for i, v in enumerate(x)])
    champion = run_golden_cases(registry, churn, 1)
    assert champion.passed and champion.reviewed["missed"] == 0
    candidate = run_golden_cases(registry, churn, v2)
    assert not candidate.passed and candidate.reviewed == {"cases": 3, "missed": 2, "champion_missed": 0,
                                                            "champion": 1}
    assert candidate.describe() == ("2 of 3 reviewed case(s) missed, more than the champion v1's 0; every other "
                                    "golden case passed")


def test_a_regressor_queues_the_answers_whose_interval_is_wider_than_the_bound(registry, tmp_path, monkeypatch):
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=244), "x": rng.uniform(0, 100, 244)})
    frame["y"] = frame["x"] + rng.normal(scale=1 + frame["x"] / 10)
    spec = write_spec(tmp_path, name="load", table=write_table(registry, frame), source={"features": ["x"]},
                      nowtest={"window_days": 14, "min_rows": 5},
                      review={"max_interval_width": 12.0, "coverage": 0.9, "per_day": 50})
    registry.sync_model(spec)
    register_trained(registry, spec, {}, promote=True)
    predicted = rng.uniform(0, 100, 600)  # the champion's back-test: errors grow with the level, as in the table
    actual = predicted + rng.normal(scale=1 + predicted / 10)
    registry.record_evaluations("load", [EvaluationRow(kind="backtest", contender="v1", partition="2024-05",
                                                       metric="rmse", value=5.0, n_rows=600, run_id="bt",
                                                       version=1)],
                                days=[DayRow("v1", "2024-05", tuple(pd.date_range("2024-05-01", periods=600,
                                                                                   freq="h")),
                                             "bt", actual=tuple(actual), predicted=tuple(predicted))])
    registry.log_served([answer("load", 1, "2024-06-01", 5.0, SERVED_AT), answer("load", 1, "2024-06-02", 90.0,
                                                                                   SERVED_AT)])
    queue_reviews(registry, spec, end=END, run_id="nt")
    items: list[ReviewItem] = registry.review_items("load")
    assert items and all(i.interval[1] - i.interval[0] > 12.0 for i in items)
    keys = {i.item_key for i in items}
    assert "2024-06-02T00:00:00" in keys and "2024-06-01T00:00:00" not in keys  # the level decides the width
    window = frame[(frame["day"] >= "2024-08-18") & (frame["day"] < "2024-09-01")]
    assert {i.item_key for i in items if i.origin == "nowtest"} <= set(window["day"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    wide = next(i for i in items if i.item_key == "2024-06-02T00:00:00")
    assert wide.interval[0] < 90.0 < wide.interval[1] and wide.answer == "90.0"
    registry.label_review_item("load", wide.id, "84.5", labelled_by="dave")
    queue_reviews(registry, spec, end=END + dt.timedelta(days=1), run_id="nt2")
    (case,) = [c for c in registry.golden_cases("load") if c.source == "reviewed"]
    assert case.expected == 84.5 and case.tolerance == pytest.approx((wide.interval[1] - wide.interval[0]) / 2)


def test_a_version_whose_estimator_takes_no_sample_weight_says_its_labelled_rows_counted_once(tmp_path):
    from ratchet.lifecycle.review import Weighting

    spec = write_spec(tmp_path, name="knn", **{**CLASSIFIER, "estimators": [
        {"class": "sklearn.neighbors.KNeighborsClassifier"}]})
    model = features.make_estimator(spec, spec.estimators[0], {})
    weighting = Weighting(np.array([1.0, 3.0, 3.0]), rows=2, items=5, weight=3.0)
    assert weighting.details(model) == {"labelled": 5, "rows": 2, "weight": 3.0, "weighted": False,
                                        "text": "2 reviewed row(s) trained it, each once: KNeighborsClassifier.fit "
                                                "takes no sample_weight"}
    assert Weighting(None, rows=0, items=5, weight=3.0).details(model) is None  # none of them among its rows
