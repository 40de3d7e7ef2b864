"""Prediction-quality metrics, and which of two values is better (names and directions: `specs.model`)."""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ratchet.specs.model import SERIES_METRICS, lower_is_better, task_metrics


def _mape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute percentage error as a fraction (0.1 = 10%); rows with a zero target are skipped."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    nonzero = y_true != 0
    if not nonzero.any():
        return math.nan
    return float(np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero])))


class Scores(NamedTuple):
    """Every metric of the task on some rows, the predictions, and why a metric is undefined where it is."""

    values: dict[str, float]  # NaN where undefined
    predictions: np.ndarray
    undefined: dict[str, str]  # metric -> the reason it has no value on these rows
    row_loss: np.ndarray | None = None  # classification: each row's log loss (NaN for a class unseen in training)


def regression_scores(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[dict[str, float], dict[str, str]]:
    """rmse, mae, mape (a fraction) and r2, with the reason for each undefined one."""
    from sklearn import metrics as m

    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if y_true.size == 0:
        return {name: math.nan for name in task_metrics("regression")}, dict.fromkeys(
            task_metrics("regression"), "no rows")
    values = {"rmse": float(np.sqrt(m.mean_squared_error(y_true, y_pred))),
              "mae": float(m.mean_absolute_error(y_true, y_pred)), "mape": _mape(y_true, y_pred),
              "r2": float(m.r2_score(y_true, y_pred)) if y_true.size > 1 else math.nan}
    undefined = {}
    if math.isnan(values["mape"]):
        undefined["mape"] = "every target is 0"
    if y_true.size < 2:
        undefined["r2"] = "fewer than 2 rows"
    return values, undefined


def classification_scores(y_true: ArrayLike, y_pred: ArrayLike, proba: np.ndarray | None,
                          classes: ArrayLike) -> tuple[dict[str, float], dict[str, str]]:
    """accuracy, f1, roc_auc and log_loss against the label set known at training time (`classes`).

    f1 is binary (positive class: the last of two) or macro over the training classes, leaving out a class
    with neither true nor predicted rows in this window; roc_auc is one-vs-rest, macro over the classes
    present in the window; log_loss scores the probabilities of every training class. A window where a
    metric is undefined (one class only, a class never seen in training) says so in `undefined`.
    """
    from sklearn import metrics as m

    y_true, y_pred, classes = np.asarray(y_true), np.asarray(y_pred), np.asarray(classes)
    names = task_metrics("classification")
    if y_true.size == 0:
        return {name: math.nan for name in names}, dict.fromkeys(names, "no rows")
    values = {"accuracy": float(m.accuracy_score(y_true, y_pred))}
    if classes.size == 2:
        values["f1"] = float(m.f1_score(y_true, y_pred, labels=[classes[1]], average="macro", zero_division=0))
    else:
        values["f1"] = float(m.f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=np.nan))
    undefined = {}
    unseen = sorted({str(c) for c in np.unique(y_true)} - {str(c) for c in classes})
    present = [i for i, c in enumerate(classes) if (y_true == c).any()]
    if proba is None:
        reason = "the estimator gives no probabilities"
        values["roc_auc"] = values["log_loss"] = math.nan
        undefined.update(roc_auc=reason, log_loss=reason)
    elif unseen:
        reason = f"class(es) {unseen} of this window were never seen in training"
        values["roc_auc"] = values["log_loss"] = math.nan
        undefined.update(roc_auc=reason, log_loss=reason)
    else:
        values["log_loss"] = float(m.log_loss(y_true, proba, labels=classes))
        if len(present) < 2:
            values["roc_auc"] = math.nan
            undefined["roc_auc"] = f"only one class ({str(classes[present[0]])!r}) in this window"
        else:
            values["roc_auc"] = float(np.mean([m.roc_auc_score(y_true == classes[i], proba[:, i]) for i in present]))
    return values, undefined


def _classes(estimator: Any, y_pred: np.ndarray) -> np.ndarray:
    classes = getattr(estimator, "classes_", None)
    return np.asarray(classes) if classes is not None else np.unique(y_pred)


def better(metric: str, a: float, b: float) -> bool:
    """True when value `a` is strictly better than `b` for this metric."""
    return a < b if lower_is_better(metric) else a > b


def improvement(metric: str, candidate: float, reference: float) -> float:
    """Relative improvement of `candidate` over `reference` (0.05 = 5% better; negative = worse)."""
    if reference == 0:
        return 0.0 if candidate == reference else (math.inf if better(metric, candidate, reference) else -math.inf)
    change = (reference - candidate) / abs(reference)
    return change if lower_is_better(metric) else -change


def evaluate(task: str, estimator: Any, X: pd.DataFrame, y: pd.Series) -> Scores:
    """Every metric of the task for a fitted estimator on (X, y), its predictions, and undefined metrics' reasons."""
    y_pred = np.asarray(estimator.predict(X))
    if task == "regression":
        values, undefined = regression_scores(y, y_pred)
        return Scores(values, y_pred, undefined)
    proba = estimator.predict_proba(X) if hasattr(estimator, "predict_proba") and len(X) else None
    classes = _classes(estimator, y_pred)
    values, undefined = classification_scores(y, y_pred, proba, classes)
    return Scores(values, y_pred, undefined, None if proba is None else _row_log_loss(y, proba, classes))


def _row_log_loss(y: ArrayLike, proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """-log p(actual class) per row, clipped like scikit-learn's log_loss; NaN where the class was never seen."""
    column = {c: i for i, c in enumerate(classes.tolist())}
    eps = np.finfo(proba.dtype).eps
    index = [column.get(value) for value in np.asarray(y).tolist()]
    return np.array([-math.log(min(max(proba[row, i], eps), 1 - eps)) if i is not None else math.nan
                     for row, i in enumerate(index)])


DAILY_LOSSES = {"regression": ("rmse", "mae", "mape"), "classification": ("log_loss", "accuracy")}


def per_series(task: str, series: ArrayLike, y: ArrayLike, scores: Scores) -> dict[str, dict[str, Any]]:
    """Each series' value of every `SERIES_METRICS` metric and its row count, in one grouped pass (never a loop
    per series): series -> {"rows": n, metric: value or None where undefined (a constant series' r2, an all-zero
    series' mape)}."""
    frame = pd.DataFrame({"series": np.asarray(series)})
    if task == "regression":
        actual, predicted = np.asarray(y, float), np.asarray(scores.predictions, float)
        error = predicted - actual
        with np.errstate(divide="ignore", invalid="ignore"):
            frame = frame.assign(squared=error ** 2, absolute=np.abs(error), actual=actual,
                                 relative=np.where(actual != 0, np.abs(error) / np.abs(actual), np.nan))
        grouped = frame.groupby("series", sort=True)
        spread = grouped["actual"].transform("mean")
        frame["deviation"] = (frame["actual"] - spread) ** 2
        grouped = frame.groupby("series", sort=True)
        sse, sst = grouped["squared"].sum(), grouped["deviation"].sum()
        table = pd.DataFrame({"rows": grouped.size(), "rmse": np.sqrt(grouped["squared"].mean()),
                              "mae": grouped["absolute"].mean(), "mape": grouped["relative"].mean(),
                              "r2": (1 - sse / sst).where((sst > 0) & (grouped.size() > 1))})
    else:
        frame = frame.assign(correct=np.asarray(y) == np.asarray(scores.predictions),
                             loss=scores.row_loss if scores.row_loss is not None else np.nan)
        grouped = frame.groupby("series", sort=True)
        table = pd.DataFrame({"rows": grouped.size(), "accuracy": grouped["correct"].mean(),
                              "log_loss": grouped["loss"].mean()})
    table = table.astype(object).where(np.isfinite(table.astype(float)), None)
    return {str(name): {"rows": int(row["rows"]), **{m: (None if row[m] is None else float(row[m]))
                                                     for m in SERIES_METRICS[task]}}
            for name, row in table.iterrows()}


def daily_losses(task: str, metric: str, series: Any) -> np.ndarray:
    """Each back-test day's loss for `metric` (a `registry.entities.DaySeries`): what paired tests compare.

    rmse: squared error; mae: absolute error; mape: absolute error over |actual| (NaN where actual is 0);
    log_loss: the day's log loss; accuracy: 1 for a wrong class. Lower is better for every one of them.
    Raises ValueError for a metric without a daily loss (r2, f1, roc_auc are not sums over days).
    """
    if task == "regression" and metric in ("rmse", "mae", "mape"):
        actual, predicted = np.asarray(series.actual, float), np.asarray(series.predicted, float)
        error = predicted - actual
        if metric == "rmse":
            return error ** 2
        if metric == "mae":
            return np.abs(error)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(actual != 0, np.abs(error) / np.abs(actual), np.nan)
    if task == "classification" and metric == "log_loss":
        return np.asarray(series.loss, float)
    if task == "classification" and metric == "accuracy":
        return 1.0 - np.asarray(series.correct, float)
    raise ValueError(f"{metric} has no daily loss (it is not a mean over days)")


def finite(value: Any) -> float | None:
    """`value` as a float, or None when it is missing, NaN or infinite (a missing value never passes silently)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def best_baseline(metric: str, baseline_values: dict[str, dict[str, float | None]]) -> tuple[str | None, float | None]:
    """The baseline with the best value of `metric` (lower or higher is better depending on the metric).

    Returns (None, None) when no baseline has a finite value of the metric.
    """
    scored = [(name, finite(metrics.get(metric))) for name, metrics in baseline_values.items()]
    scored = [(name, value) for name, value in scored if value is not None]
    if not scored:
        return None, None
    pick = min if lower_is_better(metric) else max
    return pick(scored, key=lambda item: item[1])
