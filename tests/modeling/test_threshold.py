"""The decision threshold (`ratchet.modeling.threshold`): chosen on the training rows' own folds, applied by predict,
stored in the artifact as numbers and strings only, and used wherever a version predicts."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score
from spec_factory import build_spec

from ratchet.exceptions import DataError
from ratchet.modeling import artifacts, features, search
from ratchet.modeling.threshold import GRID, ThresholdClassifier

LOGISTIC = "sklearn.linear_model.LogisticRegression"
SOURCE = {"time_column": "at", "target": "label", "features": ["x1", "x2"]}


def applications(n: int, seed: int = 0, start: str = "2023-01-01") -> pd.DataFrame:
    """Hourly applications with a known truth: P(yes) is logistic in x1 and x2, about 8% overall."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    probability = 1 / (1 + np.exp(-(-3.2 + 1.2 * x1 + 0.8 * x2)))
    return pd.DataFrame({"at": pd.date_range(start, periods=n, freq="h"), "x1": x1, "x2": x2,
                         "label": np.where(rng.random(n) < probability, "yes", "no")})


def classifier(**overrides):
    return build_spec(**{"name": "apps", "task": "classification", "source": SOURCE,
                         "estimators": [{"class": LOGISTIC}], **overrides})


def fitted(spec, frame):
    return features.make_estimator(spec, spec.estimators[0], {}).fit(frame[["x1", "x2"]], frame["label"])


def test_a_default_classification_section_keeps_the_plain_pipeline():
    from sklearn.pipeline import Pipeline

    for spec in (classifier(), classifier(classification={"threshold": 0.5}), build_spec(name="demand")):
        assert type(features.make_estimator(spec, spec.estimators[0], {})) is Pipeline


def test_optimising_f1_on_an_imbalanced_label_picks_a_low_threshold_that_wins_on_later_rows():
    frame = applications(6000)
    train, later = frame.iloc[:4000], frame.iloc[4000:]
    assert 0.05 < (frame["label"] == "yes").mean() < 0.12
    tuned = fitted(classifier(classification={"threshold": {"optimize": "f1"}}), train)
    plain = fitted(classifier(), train)
    assert isinstance(tuned, ThresholdClassifier) and tuned.threshold_ < 0.35
    at_half = f1_score(later["label"], plain.predict(later[["x1", "x2"]]), pos_label="yes")
    at_tuned = f1_score(later["label"], tuned.predict(later[["x1", "x2"]]), pos_label="yes")
    assert at_tuned > at_half + 0.1, (at_half, at_tuned)
    # the probabilities, and so every threshold-free metric, are the plain pipeline's own
    np.testing.assert_allclose(tuned.predict_proba(later[["x1", "x2"]]), plain.predict_proba(later[["x1", "x2"]]))
    assert tuned.record() == {"value": tuned.threshold_, "optimize": "f1", "score": tuned.threshold_score_,
                              "rows": 3000, "folds": 3}


def test_the_threshold_is_the_best_of_the_grid_on_the_training_rows_out_of_fold_predictions():
    """Recomputed by hand from the training rows alone: time-ordered folds, each fitted on its past."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import TimeSeriesSplit

    train = applications(3000, seed=4)
    X, y = train[["x1", "x2"]], train["label"].to_numpy()
    model = ThresholdClassifier(LogisticRegression(), optimize="f1", folds=4).fit(X, y)
    truth, positive = [], []
    for past, block in TimeSeriesSplit(n_splits=4).split(X):
        truth.append(y[block])
        positive.append(LogisticRegression().fit(X.iloc[past], y[past]).predict_proba(X.iloc[block])[:, 1])
    truth, positive = np.concatenate(truth), np.concatenate(positive)
    scores = np.array([f1_score(truth, np.where(positive >= t, "yes", "no"), pos_label="yes") for t in GRID])
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    assert model.threshold_ == GRID[best[np.argmin(np.abs(GRID[best] - 0.5))]]
    assert model.threshold_score_ == pytest.approx(scores.max()) and model.threshold_rows_ == truth.size


def test_a_fixed_threshold_is_applied_to_the_positive_class_probability():
    frame = applications(2000, seed=1)
    model = fitted(classifier(classification={"threshold": 0.3}), frame)
    X = frame[["x1", "x2"]]
    positive = model.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(model.predict(X), np.where(positive >= 0.3, "yes", "no"))
    assert ((positive >= 0.3) & (positive < 0.5)).any()  # rows the default would have called "no"
    assert model.record() == {"value": 0.3}


def test_a_user_cost_is_minimised_near_its_break_even_probability_and_stays_out_of_the_artifact():
    """Missing a "yes" costs 5, a false alarm 1: calling "yes" pays from P(yes) = 1/6 on."""
    spec = classifier(metrics={"cost": "user_metrics:expected_loss"},
                      classification={"threshold": {"optimize": "cost"}})
    model = fitted(spec, applications(6000, seed=2))
    assert abs(model.threshold_ - 1 / 6) < 0.08, model.threshold_
    assert model.record()["optimize"] == "cost" and model.function == "user_metrics:expected_loss"
    art = artifacts.dump(model)
    stored = artifacts.skops_io().get_untrusted_types(data=art.data)
    assert "ratchet.modeling.threshold.ThresholdClassifier" in stored
    assert not [t for t in stored if "user_metrics" in t]  # no function of the user's: only its import path, a str
    assert artifacts.load(art.data, art.sha256).threshold_ == model.threshold_  # the allow-list takes it


def test_a_wrapped_pipeline_round_trips_through_the_artifact_format_and_predicts_identically():
    frame = applications(3000, seed=3)
    model = fitted(classifier(classification={"threshold": {"optimize": "accuracy"}}), frame.iloc[:2000])
    art = artifacts.dump(model)
    loaded = artifacts.load(art.data, art.sha256)
    later = frame.iloc[2000:][["x1", "x2"]]
    assert isinstance(loaded, ThresholdClassifier) and loaded.threshold_ == model.threshold_
    np.testing.assert_array_equal(loaded.predict(later), model.predict(later))
    np.testing.assert_array_equal(loaded.predict_proba(later), model.predict_proba(later))


def test_a_label_with_more_than_two_classes_under_a_threshold_is_refused_naming_the_classes():
    frame = applications(600, seed=5)
    frame["label"] = np.where(frame["x1"] > 1, "high", frame["label"])
    with pytest.raises(DataError, match=r"classification.threshold applies to a binary label .* 3 class\(es\): "
                                        r"\['high', 'no', 'yes'\]"):
        fitted(classifier(classification={"threshold": 0.3}), frame)


def test_a_threshold_on_an_estimator_without_probabilities_is_refused():
    spec = build_spec(name="apps", task="classification", source=SOURCE, classification={"threshold": 0.3},
                      search={"metric": "f1"},
                      estimators=[{"class": "sklearn.linear_model.SGDClassifier", "params": {"loss": "hinge"}}])
    with pytest.raises(DataError, match="needs the probability of the positive class: SGDClassifier gives none"):
        fitted(spec, applications(600, seed=6))


def test_a_hinge_sgd_search_is_ranked_by_f1_and_says_why():
    spec = build_spec(name="apps", task="classification", source=SOURCE, search={"n_trials": 3, "cv_folds": 3},
                      estimators=[{"class": "sklearn.linear_model.SGDClassifier", "params": {"loss": "hinge"},
                                   "search_space": {"alpha": {"loguniform": [1e-5, 1e-2]}}}])
    assert spec.metric == "f1"
    assert spec.search.metric_reason.startswith("ranked by f1, not log_loss: sklearn.linear_model.SGDClassifier")
    frame = applications(3000, seed=7)
    trials = search.run_search(spec, frame[["x1", "x2"]], frame["label"], frame["at"], seed_salt="2024-01-01")
    assert all(t.error is None and t.metric == "f1" and 0 <= t.mean_score <= 1 for t in trials)
    assert search.best_trials(spec, trials)[0].mean_score == max(t.mean_score for t in trials)


def test_a_search_ranks_by_a_user_cost_lowest_first():
    spec = classifier(metrics={"cost": "user_metrics:expected_loss"}, search={"metric": "cost", "n_trials": 4},
                      estimators=[{"class": LOGISTIC, "search_space": {"C": {"loguniform": [1e-4, 10]}}}])
    frame = applications(3000, seed=8)
    trials = search.run_search(spec, frame[["x1", "x2"]], frame["label"], frame["at"], seed_salt="2024-01-01")
    assert {t.metric for t in trials} == {"cost"} and all(t.error is None for t in trials)
    assert search.best_trials(spec, trials)[0].mean_score == min(t.mean_score for t in trials)


def _retrained(registry, frame, name, logical_date=dt.datetime(2023, 9, 1)):
    from source_helpers import write_table

    from ratchet.lifecycle import retrain

    spec = build_spec(name=name, task="classification", table=write_table(registry, frame), source=SOURCE,
                      estimators=[{"class": LOGISTIC}], search={"n_trials": 1, "cv_folds": 2, "candidates": 1},
                      classification={"threshold": {"optimize": "f1"}})
    registry.sync_model(spec)
    (version,) = retrain.retrain_model(registry, spec, run_id="r", logical_date=logical_date)
    return spec, registry.version(name, version)


def test_a_version_records_its_threshold_and_rows_after_its_training_cannot_move_it(registry):
    from ratchet.reporting.status import model_status

    frame = applications(8000, seed=9)  # hourly from 2023-01-01: a third of it after the logical date
    spec, version = _retrained(registry, frame, "apps")
    assert 0 < version.threshold < 0.35 and version.details["threshold"]["optimize"] == "f1"
    assert registry.load_estimator("apps", version.version).threshold_ == version.threshold
    assert model_status(registry, spec)["candidates"][0]["threshold"] == version.threshold
    altered = frame.copy()
    after = altered["at"] >= pd.Timestamp("2023-09-01")
    altered.loc[after, "label"] = np.where(altered.loc[after, "label"] == "yes", "no", "yes")  # every later label
    altered.loc[after, "x1"] *= -1
    assert _retrained(registry, altered, "apps_altered")[1].threshold == version.threshold


def test_predict_and_serve_decide_by_the_stored_threshold(registry):
    from ratchet.serving import predict
    from ratchet.serving.service import predict_answers

    frame = applications(8000, seed=10)
    spec, version = _retrained(registry, frame, "apps")
    registry.record_promotion("apps", version.version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first", gates=[], run_id="p", expected_previous_version=None)
    rows = frame.iloc[-500:].drop(columns=["label"])
    answered = predict.predict_frame(registry, spec, rows)
    decided = np.where(answered["probability"] >= version.threshold, "yes", "no")
    np.testing.assert_array_equal(answered["prediction"].to_numpy(), decided)
    assert ((answered["probability"] >= version.threshold) & (answered["probability"] < 0.5)).any()
    estimator = registry.load_estimator("apps", version.version)
    answers = predict_answers(spec, estimator, rows[["x1", "x2"]])  # what the REST service answers
    assert [a.prediction for a in answers] == decided.tolist()
