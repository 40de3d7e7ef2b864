"""Metrics (`ratchet.modeling.metrics`): classification is scored against the labels known at training time."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from spec_factory import build_spec

from ratchet.modeling import metrics

CLASSES = np.array(["good", "hazardous", "moderate", "unhealthy"])
CLASSIFIER = build_spec(name="labels", task="classification",
                        estimators=[{"class": "sklearn.linear_model.LogisticRegression"}])


def _fitted(classes=CLASSES, n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, n)
    X = pd.DataFrame({"signal": (pd.Series(y).map({c: i for i, c in enumerate(classes)}) + rng.normal(0, 0.8, n))})
    return LogisticRegression(max_iter=500).fit(X, y), X, pd.Series(y)


def test_a_month_without_some_classes_still_gets_every_metric_against_the_training_classes():
    model, X, y = _fitted()
    month = y.isin(["moderate", "unhealthy"])  # "good" and "hazardous" absent this month
    scores = metrics.evaluate(CLASSIFIER, model, X[month], y[month])
    assert scores.undefined == {}
    assert set(scores.values) == set(CLASSIFIER.metrics)
    assert all(math.isfinite(value) for value in scores.values.values())
    proba = model.predict_proba(X[month])
    from sklearn.metrics import log_loss

    assert scores.values["log_loss"] == pytest.approx(log_loss(y[month], proba, labels=model.classes_))


def test_a_class_never_seen_in_training_leaves_probability_metrics_undefined_with_the_reason():
    model, X, y = _fitted(classes=CLASSES[:3])
    y_month = y.copy()
    y_month.iloc[:5] = "unhealthy"  # a class the model never saw
    scores = metrics.evaluate(CLASSIFIER, model, X, y_month)
    for metric in ("log_loss", "roc_auc", "pr_auc", "brier"):
        assert math.isnan(scores.values[metric])
        assert "['unhealthy'] of this window were never seen in training" in scores.undefined[metric]
    assert math.isfinite(scores.values["accuracy"]) and math.isfinite(scores.values["f1"])


def test_one_class_in_the_window_has_no_roc_auc_and_says_why():
    model, X, y = _fitted()
    only = y == "moderate"
    scores = metrics.evaluate(CLASSIFIER, model, X[only], y[only])
    assert math.isnan(scores.values["roc_auc"]) and scores.undefined == {
        "roc_auc": "only one class ('moderate') in this window", "pr_auc": "only one class ('moderate') in this window"}
    assert math.isfinite(scores.values["log_loss"]) and math.isfinite(scores.values["brier"])


def test_binary_string_labels_score_the_second_training_class_as_positive():
    model, X, y = _fitted(classes=np.array(["no", "yes"]))
    scores = metrics.evaluate(CLASSIFIER, model, X, y)
    from sklearn.metrics import f1_score, roc_auc_score

    assert scores.values["f1"] == pytest.approx(f1_score(y, model.predict(X), pos_label="yes"))
    assert scores.values["roc_auc"] == pytest.approx(roc_auc_score(y == "yes", model.predict_proba(X)[:, 1]))


def test_regression_metrics_say_why_they_are_undefined():
    values, undefined = metrics.regression_scores([0.0, 0.0], [1.0, 2.0], quantile=0.5)
    assert math.isnan(values["mape"]) and undefined == {"mape": "every target is 0"}
    assert metrics.regression_scores([3.0], [2.0], quantile=0.5)[1] == {"r2": "fewer than 2 rows"}


def test_per_series_metrics_are_each_series_own_figures_in_one_pass():
    rng = np.random.default_rng(4)
    series = np.repeat(["a", "b", "c"], [30, 20, 1])
    y = rng.normal(50, 10, series.size)
    y[series == "b"] = 0.0  # every target 0: no mape, no r2 (a constant)
    scores = metrics.Scores({}, y + rng.normal(0, 2, y.size), {})
    table = metrics.per_series("regression", series, y, scores)
    for name in ("a", "b", "c"):
        mine = series == name
        expected, _ = metrics.regression_scores(y[mine], scores.predictions[mine], quantile=0.5)
        assert table[name]["rows"] == mine.sum()
        expected["r2"] = math.nan if np.ptp(y[mine]) == 0 else expected["r2"]  # sklearn's 0.0 for a constant
        for metric in ("rmse", "mae", "mape", "r2"):
            value = table[name][metric]
            assert (value is None) == math.isnan(expected[metric]), (name, metric)
            assert value is None or value == pytest.approx(expected[metric])
    model, X, labels = _fitted()
    groups = np.where(np.arange(len(labels)) % 2, "odd", "even")
    scored = metrics.evaluate(CLASSIFIER, model, X, labels)
    table = metrics.per_series("classification", groups, labels, scored)
    odd = groups == "odd"
    assert table["odd"]["accuracy"] == pytest.approx(np.mean(scored.predictions[odd] == labels[odd]))
    assert table["odd"]["log_loss"] == pytest.approx(np.mean(scored.row_loss[odd]))


def test_pinball_is_the_mean_pinball_loss_at_the_spec_quantile():
    from sklearn.metrics import mean_pinball_loss

    y, predicted = np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])
    # under by 1 costs q, over by 1 costs 1 - q: (0.1 + 0 + 0.9) / 3 at q = 0.9
    assert metrics.regression_scores(y, predicted, quantile=0.9)[0]["pinball"] == pytest.approx(1 / 3)
    spec = build_spec(name="load", evaluation={"quantile": 0.9})
    rng = np.random.default_rng(1)
    actual, guess = rng.normal(10, 3, 50), rng.normal(10, 3, 50)
    values, undefined = metrics.score(spec, actual, guess)
    assert set(values) == set(spec.metrics) and undefined == {}
    assert values["pinball"] == pytest.approx(mean_pinball_loss(actual, guess, alpha=0.9))
    assert values["pinball"] != pytest.approx(metrics.score(build_spec(name="median"), actual, guess)[0]["pinball"])


def test_pinball_row_losses_average_to_the_metric_for_the_paired_test():
    spec = build_spec(name="load", evaluation={"quantile": 0.8})
    rng = np.random.default_rng(2)
    rows = type("Rows", (), {"actual": rng.normal(5, 1, 40), "predicted": rng.normal(5, 1, 40)})
    losses = metrics.daily_losses(spec, "pinball", rows)
    assert (losses >= 0).all()
    assert losses.mean() == pytest.approx(metrics.score(spec, rows.actual, rows.predicted)[0]["pinball"])
    with pytest.raises(ValueError, match="r2 has no daily loss"):
        metrics.daily_losses(spec, "r2", rows)


def test_pr_auc_and_brier_of_a_binary_label_score_its_positive_class():
    classes = np.array(["no", "yes"])
    y = np.array(["no", "yes", "no", "yes"])
    positive = np.array([0.1, 0.35, 0.4, 0.8])
    values, undefined = metrics.classification_scores(y, np.where(positive >= 0.5, "yes", "no"),
                                                      np.column_stack([1 - positive, positive]), classes)
    # ranked: 0.8 yes (precision 1 at recall 1/2), 0.4 no, 0.35 yes (precision 2/3 at recall 1)
    assert values["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert values["brier"] == pytest.approx((0.1 ** 2 + 0.65 ** 2 + 0.4 ** 2 + 0.2 ** 2) / 4)
    assert undefined == {}


def test_multiclass_brier_sums_squares_to_the_one_hot_truth_and_pr_auc_is_macro_over_present_classes():
    from sklearn.metrics import average_precision_score

    classes = np.array(["a", "b", "c"])
    proba = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    values, _ = metrics.classification_scores(np.array(["a", "c"]), np.array(["a", "b"]), proba, classes)
    assert values["brier"] == pytest.approx(((0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2) + (0.2 ** 2 + 0.5 ** 2 + 0.7 ** 2)) / 2)
    model, X, y = _fitted()
    month = y != "good"  # one training class absent: left out of the macro average
    scores = metrics.evaluate(CLASSIFIER, model, X[month], y[month])
    proba = model.predict_proba(X[month])
    expected = np.mean([average_precision_score(y[month] == c, proba[:, i])
                        for i, c in enumerate(model.classes_) if c != "good"])
    assert scores.values["pr_auc"] == pytest.approx(expected)


def test_an_estimator_without_probabilities_has_no_probability_metrics_and_says_why():
    from sklearn.linear_model import SGDClassifier

    _, X, y = _fitted(classes=np.array(["no", "yes"]))
    hinge = SGDClassifier(loss="hinge", random_state=0).fit(X, y)
    scores = metrics.evaluate(CLASSIFIER, hinge, X, y)
    assert {m: scores.undefined.get(m) for m in ("roc_auc", "log_loss", "pr_auc", "brier")} == dict.fromkeys(
        ("roc_auc", "log_loss", "pr_auc", "brier"), "the estimator gives no probabilities")
    assert math.isfinite(scores.values["f1"]) and scores.row_loss is None


USER_METRICS = {"cost": "user_metrics:expected_loss", "soft_cost": "user_metrics:expected_loss_proba",
                "broken": "user_metrics:broken", "nan": "user_metrics:not_a_number"}


def test_user_metrics_are_imported_by_path_and_called_with_probabilities_when_they_take_them():
    import user_metrics

    spec = build_spec(name="loans", task="classification", metrics=USER_METRICS,
                      estimators=[{"class": "sklearn.linear_model.LogisticRegression"}])
    assert [(m.name, m.takes_proba) for m in spec.user_metrics] == [
        ("cost", False), ("soft_cost", True), ("broken", False), ("nan", False)]
    model, X, y = _fitted(classes=np.array(["no", "yes"]))
    scores = metrics.evaluate(spec, model, X, y)
    assert set(scores.values) == set(spec.metrics)
    assert scores.values["cost"] == pytest.approx(user_metrics.expected_loss(y, model.predict(X)))
    assert scores.values["soft_cost"] == pytest.approx(
        user_metrics.expected_loss_proba(y, model.predict(X), model.predict_proba(X)))
    # a user's function that raises or returns no number is undefined with the reason, and the rest still count
    assert math.isnan(scores.values["broken"]) and math.isnan(scores.values["nan"])
    assert scores.undefined == {"broken": "user_metrics:broken raised ZeroDivisionError: no budget left",
                                "nan": "user_metrics:not_a_number returned nan, not a finite number"}


def test_a_user_metric_on_probabilities_is_undefined_for_an_estimator_without_them():
    from sklearn.linear_model import SGDClassifier

    spec = build_spec(name="loans", task="classification", metrics=USER_METRICS,
                      estimators=[{"class": "sklearn.linear_model.LogisticRegression"}])
    _, X, y = _fitted(classes=np.array(["no", "yes"]))
    scores = metrics.evaluate(spec, SGDClassifier(loss="hinge", random_state=0).fit(X, y), X, y)
    assert scores.undefined["soft_cost"] == "the estimator gives no probabilities"
    assert math.isfinite(scores.values["cost"])


def test_a_regression_user_metric_is_scored_beside_the_task_metrics():
    spec = build_spec(name="load", metrics={"excess": "user_metrics:absolute_excess"})
    values, undefined = metrics.score(spec, [1.0, 2.0, 3.0], [2.0, 2.0, 1.0])
    assert values["excess"] == pytest.approx(1 / 3) and undefined == {}
    assert metrics.score(spec, [], [])[1]["excess"] == "no rows"


def test_paired_tests_compare_row_losses_every_contender_has():
    from types import SimpleNamespace

    hinge = build_spec(name="h", task="classification", estimators=[
        {"class": "sklearn.linear_model.SGDClassifier", "params": {"loss": "hinge"}}])
    assert metrics.row_loss_metric(hinge) == "accuracy"  # no probabilities: no log loss to compare
    assert metrics.daily_losses(hinge, "accuracy", SimpleNamespace(loss=None, correct=[True, False])).tolist() == [
        0.0, 1.0]
    assert metrics.row_loss_metric(CLASSIFIER) == "log_loss"
    assert metrics.row_loss_metric(build_spec(name="q", search={"metric": "pinball"})) == "pinball"
    assert metrics.row_loss_metric(build_spec(name="r", search={"metric": "r2"})) == "rmse"
