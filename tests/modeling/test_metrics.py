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


def test_per_series_metrics_are_each_series_own_figures_in_one_pass():
    rng = np.random.default_rng(4)
    series = np.repeat(["a", "b", "c"], [30, 20, 1])
    y = rng.normal(50, 10, series.size)
    y[series == "b"] = 0.0  # every target 0: no mape, no r2 (a constant)
    scores = metrics.Scores({}, y + rng.normal(0, 2, y.size), {})
    table = metrics.per_series("regression", series, y, scores)
    for name in ("a", "b", "c"):
        mine = series == name
        expected, _ = metrics.regression_scores(y[mine], scores.predictions[mine])
        assert table[name]["rows"] == mine.sum()
        expected["r2"] = math.nan if np.ptp(y[mine]) == 0 else expected["r2"]  # sklearn's 0.0 for a constant
        for metric in ("rmse", "mae", "mape", "r2"):
            value = table[name][metric]
            assert (value is None) == math.isnan(expected[metric]), (name, metric)
            assert value is None or value == pytest.approx(expected[metric])
    model, X, labels = _fitted()
    groups = np.where(np.arange(len(labels)) % 2, "odd", "even")
    scored = metrics.evaluate("classification", model, X, labels)
    table = metrics.per_series("classification", groups, labels, scored)
    odd = groups == "odd"
    assert table["odd"]["accuracy"] == pytest.approx(np.mean(scored.predictions[odd] == labels[odd]))
    assert table["odd"]["log_loss"] == pytest.approx(np.mean(scored.row_loss[odd]))
