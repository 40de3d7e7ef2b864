"""Drift of a model's inputs: the population stability index of a window against the training window."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.modeling.features import is_model_input
from ratchet.modeling.sources import naive_utc

if TYPE_CHECKING:
    from ratchet.registry.entities import Version

PSI_WARNING = 0.2
PSI_BINS = 10


def psi(expected: Any, actual: Any, bins: int = PSI_BINS) -> float | None:
    """Population stability index of `actual` against `expected` (None without data).

    Few distinct training values are compared as categories, otherwise on training deciles.
    """
    expected = np.asarray(expected, float)
    actual = np.asarray(actual, float)
    expected, actual = expected[~np.isnan(expected)], actual[~np.isnan(actual)]
    if expected.size == 0 or actual.size == 0:
        return None
    values = np.unique(expected)
    if values.size <= bins:
        categories = np.union1d(values, np.unique(actual))
        e = np.array([(expected == c).mean() for c in categories])
        a = np.array([(actual == c).mean() for c in categories])
    else:
        inner = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))[1:-1]
        e = np.bincount(np.searchsorted(inner, expected, side="right"), minlength=inner.size + 1) / expected.size
        a = np.bincount(np.searchsorted(inner, actual, side="right"), minlength=inner.size + 1) / actual.size
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_drift(version: Version, X: pd.DataFrame, times: pd.Series, window: np.ndarray) -> dict[str, float | None]:
    """PSI of each numeric model input in the window (a row mask) against the version's training window."""
    if version.train_start is None or version.train_end is None:
        return {}
    train = ((times >= naive_utc(version.train_start)) & (times <= naive_utc(version.train_end))).to_numpy()
    return {column: psi(X.loc[train, column], X.loc[window, column]) for column in version.features
            if is_model_input(column) and column in X
            and pd.api.types.is_numeric_dtype(X[column])}

