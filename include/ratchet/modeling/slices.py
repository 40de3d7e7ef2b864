"""Slices: metrics per value of the `evaluation.slices` columns (a channel, a salary band), beside the whole.

`features.make_xy` copies each slice column into a helper column (no learned model sees it) with its values as
text, so a slice's rows are known wherever predictions are scored, whether or not the column is a feature. A
slice is named "column=value", as a panel's series is, and its metrics are the per-group means of row losses
(`metrics.per_series`), computed in one grouped pass per slice column.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.modeling.baselines import HELPER_PREFIX

if TYPE_CHECKING:
    from ratchet.modeling.metrics import Scores
    from ratchet.specs.model import ModelSpec

SLICE_PREFIX = f"{HELPER_PREFIX}slice_"


def slice_column(column: str) -> str:
    """The helper column holding the slice column's values as text."""
    return f"{SLICE_PREFIX}{column}"


def slice_labels(column: str, values: pd.Series) -> np.ndarray:
    """Each row's slice of `column` as "column=value" (`values` already text, as `make_xy` writes them)."""
    return (column + "=" + values.astype(str)).to_numpy(dtype=object)


def per_slice(spec: ModelSpec, X: pd.DataFrame, y: Any, scores: Scores) -> dict[str, dict[str, Any]]:
    """Each slice's metrics and rows: "column=value" -> {"rows": n, metric: value or None}, every slice column's
    values together (nothing when the spec declares no slices)."""
    from ratchet.modeling.metrics import per_series

    result: dict[str, dict[str, Any]] = {}
    for column in spec.evaluation.slices:
        result |= per_series(spec.task, slice_labels(column, X[slice_column(column)]), y, scores)
    return result
