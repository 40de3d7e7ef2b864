"""Prediction-quality metrics, and which of two values is better (names and directions: `specs.model`)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ratchet.specs.model import LOWER_IS_BETTER, task_metrics


def _mape(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute percentage error as a fraction (0.1 = 10%); rows with a zero target are skipped."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    nonzero = y_true != 0
    if not nonzero.any():
        return math.nan
    return float(np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero])))


def score(task: str, metric: str, y_true: ArrayLike, y_pred: ArrayLike | None = None,
          y_proba: ArrayLike | None = None) -> float:
    """One metric. `y_proba` is the probability of the positive class (binary) or the class matrix."""
    from sklearn import metrics as m

    if len(y_true) == 0:
        return math.nan
    if metric == "rmse":
        return float(np.sqrt(m.mean_squared_error(y_true, y_pred)))
    if metric == "mae":
        return float(m.mean_absolute_error(y_true, y_pred))
    if metric == "mape":
        return _mape(y_true, y_pred)
    if metric == "r2":
        return float(m.r2_score(y_true, y_pred)) if len(y_true) > 1 else math.nan
    if metric == "accuracy":
        return float(m.accuracy_score(y_true, y_pred))
    if metric == "f1":
        binary = len(np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]))) <= 2
        return float(m.f1_score(y_true, y_pred, average="binary" if binary else "macro",
                                pos_label=_positive_label(y_true, y_pred) if binary else 1, zero_division=0))
    if metric in ("roc_auc", "log_loss"):
        if y_proba is None or len(np.unique(y_true)) < 2:
            return math.nan
        if metric == "roc_auc":
            return float(m.roc_auc_score(y_true, y_proba, multi_class="ovr") if np.ndim(y_proba) > 1
                         else m.roc_auc_score(y_true, y_proba))
        return float(m.log_loss(y_true, y_proba, labels=None))
    raise ValueError(f"unknown metric {metric!r}; known: {sorted(LOWER_IS_BETTER)}")


def _positive_label(y_true: ArrayLike, y_pred: ArrayLike) -> Any:
    labels = sorted(np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)])).tolist())
    return labels[-1]


def all_scores(task: str, y_true: ArrayLike, y_pred: ArrayLike, y_proba: ArrayLike | None = None) -> dict[str, float]:
    """Every metric of the task (NaN where a metric is undefined on these rows)."""
    return {name: score(task, name, y_true, y_pred, y_proba) for name in task_metrics(task)}


def better(metric: str, a: float, b: float) -> bool:
    """True when value `a` is strictly better than `b` for this metric."""
    return a < b if LOWER_IS_BETTER[metric] else a > b


def improvement(metric: str, candidate: float, reference: float) -> float:
    """Relative improvement of `candidate` over `reference` (0.05 = 5% better; negative = worse)."""
    if reference == 0:
        return 0.0 if candidate == reference else (math.inf if better(metric, candidate, reference) else -math.inf)
    change = (reference - candidate) / abs(reference)
    return change if LOWER_IS_BETTER[metric] else -change


def evaluate(task: str, estimator: Any, X: pd.DataFrame, y: pd.Series) -> tuple[dict[str, float], np.ndarray]:
    """Every metric of the task for a fitted estimator on (X, y), and its predictions."""
    y_pred = estimator.predict(X)
    y_proba = None
    if task == "classification" and hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        y_proba = proba[:, 1] if proba.shape[1] == 2 else proba
    return all_scores(task, y, y_pred, y_proba), y_pred


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
    pick = min if LOWER_IS_BETTER.get(metric, True) else max
    return pick(scored, key=lambda item: item[1])
