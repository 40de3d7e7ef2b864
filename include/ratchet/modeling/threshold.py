"""A binary classifier's decision threshold (`classification.threshold`): fixed, or chosen on its training rows only.

`ThresholdClassifier` wraps a model's pipeline, so everything that calls `predict` (search, back-test, now-test,
golden cases, `ratchet serve`) decides by one rule: the positive class (the last of the two training classes)
where its probability is at least `threshold_`. Probabilities pass through untouched, so the threshold-free
metrics (roc_auc, log_loss, pr_auc, brier) are the inner estimator's own and only the thresholded ones move.

With `optimize`, `fit` chooses the threshold before it refits: the training rows (they arrive in time order) are
cut into `folds` expanding-window folds, a copy is fitted on each fold's past and predicts its next block, and of
GRID's candidates the threshold that maximises f1 or accuracy, or minimises a user metric, on those pooled
out-of-fold probabilities wins (ties: the one nearest 0.5, the least departure from the default). Rows the wrapper
is not fitted on (a back-test's month, a now-test's window) play no part. A user metric is imported at fit time
from its `module:function` path: the wrapper keeps only numbers and strings, so a stored artifact never holds a
user's code.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone

from ratchet.exceptions import DataError
from ratchet.modeling.metrics import user_value
from ratchet.modeling.weights import fit_weighted
from ratchet.specs.model import THRESHOLD_OBJECTIVES, ThresholdSpec, UserMetric

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec

GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)  # the thresholds `optimize` chooses from


class ThresholdClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """`estimator` deciding its positive class at a probability threshold (see the module).

    threshold: the fixed probability of the positive class (used when `optimize` is None).
    optimize: 'f1' or 'accuracy' (maximised), or a user metric's name (minimised, with `function`, its import
        path, and `takes_proba`); the threshold is then chosen on `folds` time-ordered folds of the training rows.
    After `fit`: `estimator_` (fitted on every training row), `classes_`, `threshold_`, and for `optimize` the
    objective's out-of-fold value at it (`threshold_score_`) over `threshold_rows_` rows.
    """

    def __init__(self, estimator: Any, threshold: float | None = 0.5, optimize: str | None = None,
                 function: str | None = None, takes_proba: bool = False, folds: int = 3):
        self.estimator = estimator
        self.threshold = threshold
        self.optimize = optimize
        self.function = function
        self.takes_proba = takes_proba
        self.folds = folds

    def fit(self, X: Any, y: Any, sample_weight: np.ndarray | None = None) -> ThresholdClassifier:
        """Choose the threshold (when `optimize`) on the training rows' own folds, then fit on all of them; each fit
        takes the rows' `sample_weight` (a reviewed row's weight), the threshold's objective counts rows alike.

        Raises:
            DataError: the label is not binary, the estimator gives no probabilities, or no inner fold holds both
                classes to choose from.
        """
        self._check(np.unique(np.asarray(y)))
        self.threshold_score_, self.threshold_rows_ = math.nan, 0
        self.threshold_ = self._chosen(X, y, sample_weight) if self.optimize else float(self.threshold)
        self.estimator_ = fit_weighted(clone(self.estimator), X, y, sample_weight)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """The inner estimator's probabilities, a column per class of `classes_`."""
        return self.estimator_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The positive class where its probability is at least `threshold_`, else the other class."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= self.threshold_).astype(int)]

    def record(self) -> dict[str, Any]:
        """The threshold as a version keeps it (JSON): its value, and when it was chosen what it optimised, its
        out-of-fold value there and over how many training rows and folds."""
        if not self.optimize:
            return {"value": self.threshold_}
        return {"value": self.threshold_, "optimize": self.optimize, "score": self.threshold_score_,
                "rows": self.threshold_rows_, "folds": self.folds}

    def _check(self, classes: np.ndarray) -> None:
        if classes.size != 2:
            raise DataError(f"classification.threshold applies to a binary label (the probability of its positive "
                            f"class); the training rows hold {classes.size} class(es): "
                            f"{[str(c) for c in classes][:20]}")
        if not hasattr(self.estimator, "predict_proba"):
            raise DataError(f"classification.threshold needs the probability of the positive class: "
                            f"{type(_final(self.estimator)).__name__} gives none (use an estimator with predict_proba "
                            "or leave the threshold out)")
        if self.optimize is None and not (self.threshold is not None and 0 < self.threshold < 1):
            raise ValueError(f"threshold must be a probability between 0 and 1, got {self.threshold!r}")
        if self.optimize is not None and self.optimize not in THRESHOLD_OBJECTIVES and not self.function:
            raise ValueError(f"optimize {self.optimize!r} is a user metric and needs its import path (function)")

    def _chosen(self, X: Any, y: Any, sample_weight: np.ndarray | None) -> float:
        """The GRID threshold with the best out-of-fold objective (see the module)."""
        from sklearn.model_selection import TimeSeriesSplit

        y = np.asarray(y)
        truths, probas = [], []
        for train, test in TimeSeriesSplit(n_splits=self.folds).split(y):
            if np.unique(y[train]).size < 2:  # a fold's past with one class cannot say what the other looks like
                continue
            inner = fit_weighted(clone(self.estimator), _take(X, train), y[train],
                                 None if sample_weight is None else sample_weight[train])
            truths.append(y[test])
            probas.append(inner.predict_proba(_take(X, test)))
        if not truths:
            raise DataError(f"classification.threshold cannot be chosen: none of the {self.folds} time-ordered folds "
                            f"of the {y.size} training rows has both classes before its validation rows")
        truth, proba = np.concatenate(truths), np.concatenate(probas)
        classes = np.unique(y)
        losses = self._losses(truth, proba, classes)
        if not np.isfinite(losses).any():
            why = user_value(self._user_metric(), truth, classes[(proba[:, 1] >= 0.5).astype(int)], proba)[1]
            raise DataError(f"classification.threshold cannot be chosen: {self.optimize} has no value on the "
                            f"training folds' predictions ({why})")
        best = np.flatnonzero(losses == np.nanmin(losses))
        pick = best[np.argmin(np.abs(GRID[best] - 0.5))]
        self.threshold_rows_ = int(truth.size)
        self.threshold_score_ = float(-losses[pick] if self.optimize in THRESHOLD_OBJECTIVES else losses[pick])
        return float(GRID[pick])

    def _losses(self, truth: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """The objective at each GRID threshold as a loss (lower is better; NaN where a user metric has none)."""
        positive = proba[:, 1]
        if self.optimize in THRESHOLD_OBJECTIVES:
            actual = truth == classes[1]
            # rows called positive at each threshold, and how many of them are positive, by counting sorted values
            called = positive.size - np.searchsorted(np.sort(positive), GRID, side="left")
            tp = actual.sum() - np.searchsorted(np.sort(positive[actual]), GRID, side="left")
            fp, fn = called - tp, actual.sum() - tp
            if self.optimize == "accuracy":
                return -(positive.size - fp - fn) / positive.size
            with np.errstate(invalid="ignore", divide="ignore"):
                return -np.nan_to_num(2 * tp / (2 * tp + fp + fn))
        metric = self._user_metric()
        return np.array([user_value(metric, truth, classes[(positive >= t).astype(int)], proba)[0] for t in GRID])

    def _user_metric(self) -> UserMetric:
        return UserMetric(self.optimize, self.function, self.takes_proba)


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def _final(estimator: Any) -> Any:
    """A pipeline's last step (what gives or lacks probabilities), else the estimator itself."""
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def decided(spec: ModelSpec, estimator: Any) -> Any:
    """A learned classifier deciding by the spec's `classification.threshold`; `estimator` itself when the spec
    keeps the default (the most probable class), so default specs' versions are the plain pipeline."""
    rule = spec.threshold
    if spec.task != "classification" or rule == ThresholdSpec():
        return estimator
    user = next((m for m in spec.user_metrics if m.name == rule.optimize), None)
    return ThresholdClassifier(estimator, threshold=rule.value, optimize=rule.optimize,
                               function=user.function if user else None, takes_proba=bool(user and user.takes_proba),
                               folds=spec.search.cv_folds)
