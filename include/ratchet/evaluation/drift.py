"""Drift of a model's inputs: has a now-test window's distribution of a feature moved away from what it knew?

Per feature, a two-sample test of the window against a reference from the version's training data:
Kolmogorov–Smirnov for a numeric feature (its asymptotic or exact p-value, and the distance D as the effect),
chi-square on the category counts for a categorical one (Cramér's V as the effect). The reference is the same
calendar stretch one year earlier when the training data covers it (so a seasonal feature, a temperature, is
compared with its own season, not with last spring), else the last REFERENCE_DAYS days of training.

A warning needs both a significant test (p below DRIFT_ALPHA split over the features tested: Bonferroni, so a
window of ten unchanged features is flagged about DRIFT_ALPHA of the time at most) and a material effect (at
least MATERIAL_EFFECT): with many rows a tiny shift is significant without mattering. A window with fewer than
MIN_ROWS rows, or a reference with fewer than MIN_ROWS, gets no verdict: too little data to say anything.
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ratchet.modeling.features import is_model_input
from ratchet.modeling.sources import naive_utc

if TYPE_CHECKING:
    from ratchet.registry.entities import Version

DRIFT_ALPHA = 0.01
MATERIAL_EFFECT = 0.3
MIN_ROWS = 10
REFERENCE_DAYS = 90


def reference_rows(version: Version, times: pd.Series, window: np.ndarray) -> tuple[np.ndarray, str]:
    """The reference rows (a mask) and what they are: the window's dates a year earlier when the version's
    training data holds at least MIN_ROWS of them, else its last REFERENCE_DAYS days of training."""
    start, end = naive_utc(version.train_start), naive_utc(version.train_end)
    trained = ((times >= start) & (times <= end)).to_numpy()
    window_times = times[window]
    if len(window_times):
        year_ago = ((times >= window_times.min() - pd.DateOffset(years=1))
                    & (times <= window_times.max() - pd.DateOffset(years=1))).to_numpy() & trained
        if year_ago.sum() >= MIN_ROWS:
            return year_ago, "same season a year earlier"
    recent = trained & (times > end - pd.Timedelta(days=REFERENCE_DAYS)).to_numpy()
    return recent, f"last {REFERENCE_DAYS} days of training"


def feature_drift(version: Version, X: pd.DataFrame, times: pd.Series, window: np.ndarray,
                  categorical: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Each model input's drift verdict for the window (a row mask): test, statistic, p-value, effect, warning.

    Empty without a training window; a feature's verdict is `{"warning": False, "reason": ...}` when there is
    too little data for a test.
    """
    if version.train_start is None or version.train_end is None:
        return {}
    reference, described = reference_rows(version, times, window)
    columns = [c for c in version.features if is_model_input(c) and c in X]
    level = DRIFT_ALPHA / max(len(columns), 1)
    verdicts = {}
    for column in columns:
        now, before = X.loc[window, column].dropna(), X.loc[reference, column].dropna()
        if len(now) < MIN_ROWS or len(before) < MIN_ROWS:
            verdicts[column] = {"warning": False, "reason": f"too few rows for a verdict ({len(now)} in the window, "
                                                             f"{len(before)} in the reference; {MIN_ROWS} needed)"}
            continue
        if column in categorical or not pd.api.types.is_numeric_dtype(X[column]):
            verdict = _chi_square(before, now)
        else:
            with warnings.catch_warnings():  # ties make SciPy fall back from the exact p-value, and say so
                warnings.simplefilter("ignore", RuntimeWarning)
                result = stats.ks_2samp(before.to_numpy(float), now.to_numpy(float))
            verdict = {"test": "Kolmogorov-Smirnov", "statistic": float(result.statistic),
                       "p_value": float(result.pvalue), "effect": float(result.statistic), "effect_name": "D"}
        verdict.update(reference=described, n_window=len(now), n_reference=len(before), level=level,
                       warning=bool(verdict["p_value"] < level and verdict["effect"] >= MATERIAL_EFFECT))
        verdicts[column] = verdict
    return verdicts


def _chi_square(before: pd.Series, now: pd.Series) -> dict[str, Any]:
    categories = sorted(set(before.astype(str)) | set(now.astype(str)))
    table = np.array([[int((before.astype(str) == c).sum()) for c in categories],
                      [int((now.astype(str) == c).sum()) for c in categories]])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return {"test": "chi-square", "statistic": 0.0, "p_value": 1.0, "effect": 0.0, "effect_name": "Cramer's V"}
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    cramers_v = math.sqrt(chi2 / table.sum() / (min(table.shape) - 1))
    return {"test": "chi-square", "statistic": float(chi2), "p_value": float(p_value), "effect": cramers_v,
            "effect_name": "Cramer's V"}
