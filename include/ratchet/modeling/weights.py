"""Fitting with sample weights: a labelled review row counts `review.weight` times in the estimator's fit.

A model is a pipeline whose last step is the estimator, possibly wrapped in a decision threshold
(`modeling.threshold`); the weights go to that estimator's `fit` when it takes `sample_weight` (most scikit-learn
estimators do; `KNeighborsClassifier` and `MLPRegressor`, among others, do not), and an estimator that does not is
fitted unweighted: its labelled rows count once, which `accepts_sample_weight` lets a caller say.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def final_estimator(model: Any) -> Any:
    """The estimator inside a threshold wrapper and at the end of a pipeline."""
    inner = model.estimator if hasattr(model, "estimator") and not hasattr(model, "steps") else model
    return inner.steps[-1][1] if hasattr(inner, "steps") else inner


def accepts_sample_weight(model: Any) -> bool:
    """Whether the model's estimator's `fit` takes `sample_weight`."""
    from sklearn.utils.validation import has_fit_parameter

    return has_fit_parameter(final_estimator(model), "sample_weight")


def fit_weighted(model: Any, X: Any, y: Any, weights: np.ndarray | None) -> Any:
    """`model.fit(X, y)` with each row's weight passed to its estimator (see the module); returns the model."""
    if weights is None or not accepts_sample_weight(model):
        return model.fit(X, y)
    if hasattr(model, "steps"):
        return model.fit(X, y, **{f"{model.steps[-1][0]}__sample_weight": weights})
    return model.fit(X, y, sample_weight=weights)  # the threshold wrapper hands them on
