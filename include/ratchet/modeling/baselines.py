"""Naive baselines every model is compared with. They read the helper columns `features.make_xy` adds: target lags
within each series, and (for a panel) each row's series, so a baseline's fallback and `mean` are per series."""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from ratchet.specs.model import seasonal_period

HELPER_PREFIX = "_baseline_"  # the columns only baselines read (`features.make_xy` adds them)
SERIES = f"{HELPER_PREFIX}series"  # a panel row's series as one text; absent for a single series
ROW = f"{HELPER_PREFIX}row"  # an event's id as read: what pairs its rows (`features.id_labels` names them as served)


def helper_lag(lag: int) -> str:
    """The helper column of the target `lag` periods (or rows) earlier in the row's series."""
    return f"{HELPER_PREFIX}lag_{lag}"


LAG_1 = helper_lag(1)


class MeanRegressor(RegressorMixin, BaseEstimator):
    """Predicts the mean of the training target in the row's series (the whole training mean for a series not
    seen in training, or a single series)."""

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> MeanRegressor:
        """Remember the training mean, and each series' when the rows name one."""
        y = np.asarray(y, float)
        self.mean_ = float(np.mean(y))
        self.series_means_ = (pd.Series(y).groupby(X[SERIES].to_numpy()).mean().to_dict()
                              if SERIES in X else {})
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The series' training mean for every row."""
        if not self.series_means_ or SERIES not in X:
            return np.full(len(X), self.mean_)
        return pd.Series(X[SERIES].to_numpy()).map(self.series_means_).fillna(self.mean_).to_numpy(dtype=float)


class LagRegressor(MeanRegressor):
    """Predicts the target `lag` periods earlier in the row's series (last value, seasonal naive); the series'
    training mean where that is unknown."""

    def __init__(self, column: str = LAG_1):
        self.column = column

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The lag column, the series' training mean where it is empty."""
        lagged = X[self.column].astype(float).to_numpy()
        return np.where(np.isnan(lagged), super().predict(X), lagged)


class MajorityClassifier(ClassifierMixin, BaseEstimator):
    """Predicts the most frequent training class, with the training class frequencies as probabilities."""

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> MajorityClassifier:
        """Remember the classes and their training frequencies."""
        self.classes_, counts = np.unique(np.asarray(y), return_counts=True)
        self.priors_ = counts / counts.sum()
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The most frequent training class for every row."""
        return np.full(len(X), self.classes_[np.argmax(self.priors_)])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The training class frequencies for every row."""
        return np.tile(self.priors_, (len(X), 1))


class LastValueClassifier(ClassifierMixin, BaseEstimator):
    """Predicts yesterday's class; its probability is how often the class persisted in training."""

    def __init__(self, column: str = LAG_1):
        self.column = column

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> LastValueClassifier:
        """Remember the classes, the majority class and how often a class persisted from the day before."""
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        previous = X[self.column].to_numpy()
        known = ~pd.isna(previous)
        self.persistence_ = float(np.mean(previous[known] == y[known])) if known.any() else 1.0 / len(self.classes_)
        self.majority_ = self.classes_[np.argmax([np.sum(y == c) for c in self.classes_])]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Yesterday's class, the majority class where it is unknown or was never seen in training."""
        previous = X[self.column].to_numpy()
        seen = set(self.classes_.tolist())
        known = np.array([not pd.isna(value) and value in seen for value in previous], dtype=bool)
        return np.where(known, previous, self.majority_).astype(self.classes_.dtype)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The persistence rate for the predicted class, the rest shared by the other classes."""
        predicted = self.predict(X)
        k = len(self.classes_)
        other = (1.0 - self.persistence_) / (k - 1) if k > 1 else 0.0
        proba = np.full((len(X), k), other)
        proba[np.arange(len(X)), np.searchsorted(self.classes_, predicted)] = self.persistence_ if k > 1 else 1.0
        return proba


def make_baseline(name: str, task: str) -> BaseEstimator:
    """A fresh baseline estimator by its YAML name (`seasonal_naive_<N>`: the target N periods earlier)."""
    season = seasonal_period(name)
    if task == "regression" and season:
        return LagRegressor(helper_lag(season))
    factories = {
        ("regression", "last_value"): lambda: LagRegressor(LAG_1),
        ("regression", "mean"): MeanRegressor,
        ("classification", "majority"): MajorityClassifier,
        ("classification", "last_value"): lambda: LastValueClassifier(LAG_1),
    }
    try:
        return factories[(task, name)]()
    except KeyError:
        known = sorted(n for t, n in factories if t == task)
        raise ValueError(f"unknown {task} baseline {name!r}; known: {known}") from None
