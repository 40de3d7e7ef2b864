"""Naive baselines every model is compared with. They read the helper lag columns `features.make_xy` adds."""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

HELPER_PREFIX = "_baseline_lag_"  # the lag columns only baselines read (`features.make_xy` adds them)
LAG_1 = f"{HELPER_PREFIX}1"
LAG_7 = f"{HELPER_PREFIX}7"


class LagRegressor(RegressorMixin, BaseEstimator):
    """Predicts the target `lag` days earlier (last value, seasonal naive); the training mean where unknown."""

    def __init__(self, column: str = LAG_1):
        self.column = column

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> LagRegressor:
        """Remember the training mean, the prediction where the lag is unknown."""
        self.fallback_ = float(np.mean(y))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The lag column, the training mean where it is empty."""
        return X[self.column].astype(float).fillna(self.fallback_).to_numpy()


class MeanRegressor(RegressorMixin, BaseEstimator):
    """Predicts the mean of the training target."""

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> MeanRegressor:
        """Remember the training mean."""
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The training mean for every row."""
        return np.full(len(X), self.mean_)


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
    """A fresh baseline estimator by its YAML name."""
    factories = {
        ("regression", "last_value"): lambda: LagRegressor(LAG_1),
        ("regression", "seasonal_naive_7"): lambda: LagRegressor(LAG_7),
        ("regression", "mean"): MeanRegressor,
        ("classification", "majority"): MajorityClassifier,
        ("classification", "last_value"): lambda: LastValueClassifier(LAG_1),
    }
    try:
        return factories[(task, name)]()
    except KeyError:
        known = sorted(n for t, n in factories if t == task)
        raise ValueError(f"unknown {task} baseline {name!r}; known: {known}") from None
