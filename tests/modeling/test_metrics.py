"""Metrics (`ratchet.modeling.metrics`): classification is scored against the labels known at training time."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from ratchet.modeling import metrics

CLASSES = np.array(["good", "hazardous", "moderate", "unhealthy"])


def _fitted(classes=CLASSES, n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, n)
    X = pd.DataFrame({"signal": (pd.Series(y).map({c: i for i, c in enumerate(classes)}) + rng.normal(0, 0.8, n))})
    return LogisticRegression(max_iter=500).fit(X, y), X, pd.Series(y)


def test_a_month_without_some_classes_still_gets_every_metric_against_the_training_classes():
    model, X, y = _fitted()
    month = y.isin(["moderate", "unhealthy"])  # "good" and "hazardous" absent this month
    scores = metrics.evaluate("classification", model, X[month], y[month])
    assert scores.undefined == {}
    assert all(math.isfinite(scores.values[m]) for m in ("accuracy", "f1", "roc_auc", "log_loss"))
    proba = model.predict_proba(X[month])
    from sklearn.metrics import log_loss

    assert scores.values["log_loss"] == pytest.approx(log_loss(y[month], proba, labels=model.classes_))


def test_a_class_never_seen_in_training_leaves_probability_metrics_undefined_with_the_reason():
    model, X, y = _fitted(classes=CLASSES[:3])
    y_month = y.copy()
    y_month.iloc[:5] = "unhealthy"  # a class the model never saw
    scores = metrics.evaluate("classification", model, X, y_month)
    assert math.isnan(scores.values["log_loss"]) and math.isnan(scores.values["roc_auc"])
    assert "['unhealthy'] of this window were never seen in training" in scores.undefined["log_loss"]
    assert math.isfinite(scores.values["accuracy"]) and math.isfinite(scores.values["f1"])


def test_one_class_in_the_window_has_no_roc_auc_and_says_why():
    model, X, y = _fitted()
    only = y == "moderate"
    scores = metrics.evaluate("classification", model, X[only], y[only])
    assert math.isnan(scores.values["roc_auc"]) and scores.undefined == {
        "roc_auc": "only one class ('moderate') in this window"}
    assert math.isfinite(scores.values["log_loss"])


def test_binary_string_labels_score_the_second_training_class_as_positive():
    model, X, y = _fitted(classes=np.array(["no", "yes"]))
    scores = metrics.evaluate("classification", model, X, y)
    from sklearn.metrics import f1_score, roc_auc_score

    assert scores.values["f1"] == pytest.approx(f1_score(y, model.predict(X), pos_label="yes"))
    assert scores.values["roc_auc"] == pytest.approx(roc_auc_score(y == "yes", model.predict_proba(X)[:, 1]))


def test_regression_metrics_say_why_they_are_undefined():
    values, undefined = metrics.regression_scores([0.0, 0.0], [1.0, 2.0])
    assert math.isnan(values["mape"]) and undefined == {"mape": "every target is 0"}
    assert metrics.regression_scores([3.0], [2.0])[1] == {"r2": "fewer than 2 rows"}
