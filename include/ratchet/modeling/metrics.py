"""Prediction-quality metrics, and which of two values is better (names and directions: `specs.model`)."""
from __future__ import annotations

import math
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ratchet.specs.model import PROBABILITY_METRICS, SERIES_METRICS, lower_is_better, task_metrics

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec, UserMetric


def _mape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute percentage error as a fraction (0.1 = 10%); rows with a zero target are skipped."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    nonzero = y_true != 0
    if not nonzero.any():
        return math.nan
    return float(np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero])))


class Scores(NamedTuple):
    """Every metric of the model (`ModelSpec.metrics`) on some rows, the predictions, and why a metric is undefined
    where it is."""

    values: dict[str, float]  # NaN where undefined
    predictions: np.ndarray
    undefined: dict[str, str]  # metric -> the reason it has no value on these rows
    row_loss: np.ndarray | None = None  # classification: each row's log loss (NaN for a class unseen in training)


def regression_scores(y_true: ArrayLike, y_pred: ArrayLike, *,
                      quantile: float) -> tuple[dict[str, float], dict[str, str]]:
    """rmse, mae, mape (a fraction), r2 and the pinball loss at `quantile` (`evaluation.quantile`), with the
    reason for each undefined one."""
    from sklearn import metrics as m

    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    if y_true.size == 0:
        return {name: math.nan for name in task_metrics("regression")}, dict.fromkeys(
            task_metrics("regression"), "no rows")
    values = {"rmse": float(np.sqrt(m.mean_squared_error(y_true, y_pred))),
              "mae": float(m.mean_absolute_error(y_true, y_pred)), "mape": _mape(y_true, y_pred),
              "r2": float(m.r2_score(y_true, y_pred)) if y_true.size > 1 else math.nan,
              "pinball": float(m.mean_pinball_loss(y_true, y_pred, alpha=quantile))}
    undefined = {}
    if math.isnan(values["mape"]):
        undefined["mape"] = "every target is 0"
    if y_true.size < 2:
        undefined["r2"] = "fewer than 2 rows"
    return values, undefined


def classification_scores(y_true: ArrayLike, y_pred: ArrayLike, proba: np.ndarray | None,
                          classes: ArrayLike) -> tuple[dict[str, float], dict[str, str]]:
    """accuracy, f1, roc_auc, log_loss, pr_auc and brier against the label set known at training time (`classes`).

    f1 is binary (positive class: the last of two) or macro over the training classes, leaving out a class
    with neither true nor predicted rows in this window. The probability metrics score the columns of
    `proba` (one per training class): roc_auc and pr_auc (average precision) are the positive class's when the
    label is binary, else one-vs-rest, macro over the classes present in the window; log_loss scores every
    training class; brier is the positive class's squared error when binary, else each row's summed squared
    distance to its one-hot truth, averaged. A window where a metric is undefined (one class only, a class never
    seen in training, no probabilities) says so in `undefined`.
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
    unseen = sorted({str(c) for c in np.unique(y_true)} - {str(c) for c in classes})
    reason = ("the estimator gives no probabilities" if proba is None else
              f"class(es) {unseen} of this window were never seen in training" if unseen else None)
    if reason:
        return values | dict.fromkeys(PROBABILITY_METRICS, math.nan), dict.fromkeys(PROBABILITY_METRICS, reason)
    truth = y_true[:, None] == classes[None, :]  # one-hot, a column per training class
    values["log_loss"] = float(m.log_loss(y_true, proba, labels=classes))
    values["brier"] = float(np.mean((proba[:, -1] - truth[:, -1]) ** 2) if classes.size == 2
                            else np.mean(np.sum((proba - truth) ** 2, axis=1)))
    undefined = {}
    present = [i for i in range(classes.size) if truth[:, i].any()]
    if len(present) < 2:
        only = f"only one class ({str(classes[present[0]])!r}) in this window"
        values["roc_auc"] = values["pr_auc"] = math.nan
        undefined.update(roc_auc=only, pr_auc=only)
    else:
        scored = [classes.size - 1] if classes.size == 2 else present
        values["roc_auc"] = float(np.mean([m.roc_auc_score(truth[:, i], proba[:, i]) for i in scored]))
        values["pr_auc"] = float(np.mean([m.average_precision_score(truth[:, i], proba[:, i]) for i in scored]))
    return values, undefined


def user_scores(user_metrics: tuple[UserMetric, ...], y_true: ArrayLike, y_pred: ArrayLike,
                proba: np.ndarray | None) -> tuple[dict[str, float], dict[str, str]]:
    """Each user metric (`metrics:`) on these rows; one that needs probabilities the estimator has not, raises or
    returns no finite number is undefined with the reason: a user's function never stops a back-test."""
    values, undefined = {}, {}
    for metric in user_metrics:
        values[metric.name], reason = user_value(metric, y_true, y_pred, proba)
        if reason:
            undefined[metric.name] = reason
    return values, undefined


def user_value(metric: UserMetric, y_true: ArrayLike, y_pred: ArrayLike,
               proba: np.ndarray | None) -> tuple[float, str | None]:
    """One user metric called as f(y_true, y_pred) or f(y_true, y_pred, proba) (proba: a column per training
    class); (NaN, why) when it has no value."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.size == 0:
        return math.nan, "no rows"
    if metric.takes_proba and proba is None:
        return math.nan, "the estimator gives no probabilities"
    try:
        value = metric.load()(y_true, y_pred, *((proba,) if metric.takes_proba else ()))
        number = float(value)
    except Exception as exc:  # a user's function: any failure is a missing value, said why
        return math.nan, f"{metric.function} raised {type(exc).__name__}: {exc}"
    if not math.isfinite(number):
        return math.nan, f"{metric.function} returned {value!r}, not a finite number"
    return number, None


def score(spec: ModelSpec, y_true: ArrayLike, y_pred: ArrayLike, proba: np.ndarray | None = None,
          classes: ArrayLike | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """Every metric of the model (`spec.metrics`: the task's at `evaluation.quantile`, and the user's) of these
    predictions (a classifier's: with its training `classes` and its probabilities, if any)."""
    if spec.task == "regression":
        values, undefined = regression_scores(y_true, y_pred, quantile=spec.evaluation.quantile)
    else:
        values, undefined = classification_scores(y_true, y_pred, proba, classes)
    mine, why = user_scores(spec.user_metrics, y_true, y_pred, proba)
    return values | mine, undefined | why


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


def evaluate(spec: ModelSpec, estimator: Any, X: pd.DataFrame, y: pd.Series) -> Scores:
    """Every metric of the model (`spec.metrics`) for a fitted estimator on (X, y), its predictions, and undefined
    metrics' reasons."""
    y_pred = np.asarray(estimator.predict(X))
    if spec.task == "regression":
        values, undefined = score(spec, y, y_pred)
        return Scores(values, y_pred, undefined)
    proba = estimator.predict_proba(X) if hasattr(estimator, "predict_proba") and len(X) else None
    classes = _classes(estimator, y_pred)
    values, undefined = score(spec, y, y_pred, proba, classes)
    return Scores(values, y_pred, undefined, None if proba is None else _row_log_loss(y, proba, classes))


def _row_log_loss(y: ArrayLike, proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """-log p(actual class) per row, clipped like scikit-learn's log_loss; NaN where the class was never seen."""
    column = {c: i for i, c in enumerate(classes.tolist())}
    eps = np.finfo(proba.dtype).eps
    index = [column.get(value) for value in np.asarray(y).tolist()]
    return np.array([-math.log(min(max(proba[row, i], eps), 1 - eps)) if i is not None else math.nan
                     for row, i in enumerate(index)])


DAILY_LOSSES = {"regression": ("rmse", "mae", "mape", "pinball"), "classification": ("log_loss", "accuracy")}


def row_loss_metric(spec: ModelSpec) -> str:
    """The metric whose row losses (`daily_losses`) a paired test compares two contenders on: the ranking metric
    when it is a mean of row losses; misclassification when the search ranks by f1 because an estimator gives no
    probabilities (there is no log loss to compare); else the task's first (squared error, log loss)."""
    if spec.metric in DAILY_LOSSES[spec.task]:
        return spec.metric
    if spec.task == "classification" and spec.search.metric_reason:
        return "accuracy"
    return DAILY_LOSSES[spec.task][0]


def row_losses(spec: ModelSpec, actual: ArrayLike, predicted: ArrayLike, log_loss: np.ndarray | None) -> np.ndarray:
    """Each row's loss for `row_loss_metric` (lower is better): what a paired test compares two contenders on."""
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    rows = SimpleNamespace(actual=actual, predicted=predicted, loss=log_loss, correct=actual == predicted)
    return daily_losses(spec, row_loss_metric(spec), rows)


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
    values = table[list(SERIES_METRICS[task])].to_numpy(float)
    kept = np.where(np.isfinite(values), values, np.nan).tolist()  # plain floats, one pass (no row objects)
    return {str(name): {"rows": int(rows), **{m: (None if math.isnan(v) else v)
                                              for m, v in zip(SERIES_METRICS[task], row, strict=True)}}
            for name, rows, row in zip(table.index, table["rows"].tolist(), kept, strict=True)}


def daily_losses(spec: ModelSpec, metric: str, series: Any) -> np.ndarray:
    """Each back-test day's loss for `metric` (a `registry.entities.DaySeries`): what paired tests compare.

    rmse: squared error; mae: absolute error; mape: absolute error over |actual| (NaN where actual is 0);
    pinball: the row's pinball loss at `evaluation.quantile` (its mean is the metric); log_loss: the day's log
    loss; accuracy: 1 for a wrong class. Lower is better for every one of them.
    Raises ValueError for a metric without a daily loss (r2, f1, roc_auc, pr_auc, brier, a user metric are not
    sums over days, or not stored per row).
    """
    if spec.task == "regression" and metric in DAILY_LOSSES["regression"]:
        actual, predicted = np.asarray(series.actual, float), np.asarray(series.predicted, float)
        error = predicted - actual
        if metric == "rmse":
            return error ** 2
        if metric == "mae":
            return np.abs(error)
        if metric == "pinball":
            q = spec.evaluation.quantile
            return np.where(error < 0, -q * error, (1 - q) * error)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(actual != 0, np.abs(error) / np.abs(actual), np.nan)
    if spec.task == "classification" and metric == "log_loss":
        return np.asarray(series.loss, float)
    if spec.task == "classification" and metric == "accuracy":
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
