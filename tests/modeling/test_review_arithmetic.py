"""The review queue's arithmetic: intervals that hold their coverage and widen where the back-test erred more, labels
written into the source's rows at their own time, weights reaching the estimator's fit, labels checked by type."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from spec_factory import build_spec

from ratchet.exceptions import ReviewLabelError
from ratchet.modeling import review
from ratchet.modeling.features import make_estimator, make_xy
from ratchet.modeling.sources import validate_frame
from ratchet.modeling.threshold import ThresholdClassifier
from ratchet.modeling.weights import accepts_sample_weight, fit_weighted
from ratchet.registry.entities import ReviewItem

CLASSIFIER = {"task": "classification", "estimators": [{"class": "sklearn.linear_model.LogisticRegression"}],
              "baselines": ["majority"], "source": {"features": ["x"]}}


def _heteroscedastic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions between 0 and 100 whose errors grow with them (sd = 1 + level / 10)."""
    rng = np.random.default_rng(seed)
    predicted = rng.uniform(0, 100, n)
    return predicted + rng.normal(scale=1 + predicted / 10), predicted


def test_intervals_hold_their_coverage_on_fresh_rows_and_widen_where_the_back_test_erred_more():
    actual, predicted = _heteroscedastic(5_000, seed=1)
    intervals = review.intervals_from(actual, predicted, coverage=0.9)
    assert intervals.rows == 5_000 and len(intervals.low) == review.MAX_BINS
    fresh_actual, fresh_predicted = _heteroscedastic(20_000, seed=2)
    low, high = intervals.of(fresh_predicted)
    held = np.mean((fresh_actual >= low) & (fresh_actual <= high))
    assert 0.88 <= held <= 0.92  # 90% coverage, within sampling error of 20,000 fresh rows
    (narrow_low, wide_low), (narrow_high, wide_high) = intervals.of(np.array([5.0, 95.0]))
    assert (wide_high - wide_low) > 4 * (narrow_high - narrow_low)  # sd 10.5 at 95 against 1.5 at 5


def test_too_few_back_test_residuals_give_no_interval_and_few_give_one_bin():
    actual, predicted = _heteroscedastic(review.MIN_BIN_ROWS - 1, seed=3)
    assert review.intervals_from(actual, predicted, 0.9) is None
    actual, predicted = _heteroscedastic(review.MIN_BIN_ROWS * 2 - 1, seed=3)
    assert len(review.intervals_from(actual, predicted, 0.9).low) == 1


def test_an_item_key_names_the_row_as_the_serving_log_does():
    assert review.item_key(None, dt.datetime(2024, 3, 1)) == "2024-03-01T00:00:00"
    assert review.item_key("application_id=17", "2024-03-01 10:00:00.250") == \
        "application_id=17 @ 2024-03-01T10:00:00.250000"


def _events(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    return pd.DataFrame({"app_id": np.arange(n), "at": pd.date_range("2024-01-01", periods=n, freq="6h"),
                         "x": x, "y": (x > 0).astype(float)})


EVENTS = {**CLASSIFIER, "source": {"features": ["x"], "time_column": "at", "target": "y", "frequency": "event",
                                   "id": "app_id"}}


def test_labels_go_into_the_rows_at_their_keys_and_newer_unlabelled_rows_stay_out():
    spec = build_spec(**EVENTS)
    raw = _events()
    raw.loc[50:, "y"] = np.nan  # the newest ten have no label yet
    keys, _ = review.raw_keys(spec, raw)
    labels = {keys[3]: "1", keys[55]: "0"}  # a correction of an old row, a label of a new one
    rows, found = review.with_labels(spec, raw, labels, keep_before=raw["at"][50])
    assert found == set(labels)
    assert len(rows) == 51 and rows["app_id"].tolist() == [*range(50), 55]  # row 55 kept at its own time
    assert rows.loc[3, "y"] == 1.0 and rows.loc[50, "y"] == 0.0
    X, y, times = make_xy(spec, validate_frame(spec, rows))
    assert review.built_keys(spec, X, times)[50] == keys[55] and y.iloc[50] == 0


def test_a_weight_reaches_the_estimators_fit_in_a_pipeline_and_behind_a_threshold():
    spec = build_spec(**CLASSIFIER)
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"x": rng.normal(size=200)})
    y = pd.Series((X["x"] + rng.normal(scale=1.5, size=200) > 0).astype(int))
    weights = np.where(np.arange(200) < 20, 5.0, 1.0)
    pipeline = fit_weighted(make_estimator(spec, spec.estimators[0], {}), X, y, weights)
    by_hand = make_estimator(spec, spec.estimators[0], {}).fit(X, y, estimator__sample_weight=weights)
    unweighted = make_estimator(spec, spec.estimators[0], {}).fit(X, y)
    coef = pipeline[-1].coef_
    assert np.allclose(coef, by_hand[-1].coef_) and not np.allclose(coef, unweighted[-1].coef_)
    wrapped = fit_weighted(ThresholdClassifier(make_estimator(spec, spec.estimators[0], {}), threshold=0.7), X, y,
                           weights)
    assert np.allclose(wrapped.estimator_[-1].coef_, coef)


def test_an_estimator_without_sample_weight_is_fitted_unweighted_and_says_so():
    spec = build_spec(**{**CLASSIFIER, "estimators": [{"class": "sklearn.neighbors.KNeighborsClassifier"}]})
    model = make_estimator(spec, spec.estimators[0], {})
    assert not accepts_sample_weight(model)
    X = pd.DataFrame({"x": np.linspace(-1, 1, 30)})
    fitted = fit_weighted(model, X, (X["x"] > 0).astype(int), np.full(30, 2.0))
    assert fitted.predict(pd.DataFrame({"x": [0.9]}))[0] == 1


def _item(**fields) -> ReviewItem:
    return ReviewItem(**{"item_key": "2024-03-01T00:00:00", "feature_id": dt.datetime(2024, 3, 1), "series": None,
                         "origin": "served", "version": 3, "answer": "1", "id": 7, **fields})


def test_a_label_must_be_a_class_the_version_knows_or_a_number():
    classes = _item(probabilities={"0": 0.45, "1": 0.55}, confidence=0.55)
    assert classes.checked_label(" 0 ") == "0"
    with pytest.raises(ReviewLabelError, match=r"review item 7 \(2024-03-01T00:00:00\): 'maybe' is not a class v3 "
                                               r"knows; the label must be one of \['0', '1'\]; nothing was stored"):
        classes.checked_label("maybe")
    numbers = _item(answer="12.5", interval=(3.0, 22.0))
    assert numbers.checked_label("14") == "14.0"
    for bad in ("twelve", "nan", "", None):
        with pytest.raises(ReviewLabelError, match="is not a number; a regression label is a finite number"):
            numbers.checked_label(bad)
    done = _item(answer="12.5", interval=(3.0, 22.0), label="14.0", labelled_by="carol",
                 labelled_at=dt.datetime(2024, 3, 2, 9, 30, tzinfo=dt.UTC))
    with pytest.raises(ReviewLabelError, match="was already labelled '14.0' by carol at 2024-03-02 09:30 UTC"):
        done.checked_label("15")
