"""The review queue's arithmetic: how unsure an answer is, and how labelled rows join the training rows.

- A row is named by its key (`item_key`): its series, or an event's id label, as the serving log names them, and
  its time. The same row answered by both arms, by several versions, by the service and by the now-test is one key.
- A regressor's answer is unsure when its prediction interval is wide. `Intervals` are split-conformal intervals
  from the residuals (actual - predicted) of a version's walk-forward back-test, made per bin of the predicted value
  (Mondrian conformal prediction): the back-test's predictions are cut into up to MAX_BINS bins of equal counts, with
  at least MIN_BIN_ROWS residuals each, and a prediction in a bin gets [prediction + q_low, prediction + q_high],
  q_low the floor((1 - coverage) / 2 * (n + 1))-th smallest of the bin's n residuals and q_high the
  ceil((1 + coverage) / 2 * (n + 1))-th. If the residuals of the rows served are exchangeable with the back-test's
  within a bin, the interval holds the actual with probability at least `coverage` (its miss rate, the false-alarm
  rate of a bound on it, is 1 - coverage); a width that grows with the predicted level is what makes some
  answers less sure than others. The back-test's months are each predicted by a fit on the months before them, so
  every residual is out of sample.
- Labelled rows train the next search at their own time (`with_labels`): the source's row at the key takes the
  person's label (a row whose label has not arrived yet included), and trains with the weight `review.weight`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.modeling.baselines import ROW, SERIES
from ratchet.modeling.features import id_labels, series_labels
from ratchet.modeling.sources import naive_times

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec

MAX_BINS = 10
MIN_BIN_ROWS = 100
KEY_SEPARATOR = " @ "


def item_key(series: str | None, time: Any) -> str:
    """A row's key: "<series or id label> @ <ISO time>", or the ISO time alone for a single series."""
    stamp = pd.Timestamp(time).isoformat()
    return f"{series}{KEY_SEPARATOR}{stamp}" if series else stamp


def row_labels(spec: ModelSpec, X: pd.DataFrame) -> np.ndarray | None:
    """Each built row's series or event id label ("application_id=17", from `features.make_xy`'s helper columns);
    None for a single series."""
    if spec.source.events:
        return id_labels(spec, X[ROW])
    return X[SERIES].to_numpy() if spec.source.series else None


def built_keys(spec: ModelSpec, X: pd.DataFrame, times: pd.Series) -> list[str]:
    """The key of each row `features.make_xy` built."""
    labels = row_labels(spec, X)
    return [item_key(None if labels is None else labels[i], t) for i, t in enumerate(times)]


def raw_keys(spec: ModelSpec, raw: pd.DataFrame) -> tuple[list[str], pd.Series]:
    """The key and the naive UTC time of each row as read from the source (not yet validated)."""
    src = spec.source
    times = naive_times(raw[src.key.time]).reset_index(drop=True)
    columns = (src.id,) if src.events else src.series
    labels = series_labels(raw, columns) if columns else None
    return [item_key(None if labels is None else labels[i], t) for i, t in enumerate(times)], times


def with_labels(spec: ModelSpec, raw: pd.DataFrame, labels: Mapping[str, str], *,
                keep_before: Any) -> tuple[pd.DataFrame, set[str]]:
    """The source's rows as read with each labelled row's target set to its label (`labels`: key -> label), and
    without the rows from `keep_before` on that nobody labelled (the rows whose own labels have not matured); and
    the keys found. A row keeps its time, so time-ordered folds and lags see it where it happened."""
    keys, times = raw_keys(spec, raw)
    given = pd.Series(keys).map(labels)
    found = given.notna().to_numpy()
    keep = found | (times < pd.Timestamp(keep_before)).to_numpy()
    out = raw.reset_index(drop=True).copy()
    target = spec.source.target
    if found.any():
        if pd.api.types.is_numeric_dtype(out[target]) or pd.api.types.is_bool_dtype(out[target]):
            out[target] = out[target].astype(float)
            out.loc[found, target] = given[found].astype(float).to_numpy()
        else:
            out.loc[found, target] = given[found].to_numpy()
    return out[keep].reset_index(drop=True), {k for k, hit in zip(keys, found, strict=True) if hit}


@dataclass(frozen=True)
class Intervals:
    """Split-conformal prediction intervals per bin of the predicted value (see the module)."""

    edges: tuple[float, ...]  # the inner cut points between bins, ascending (empty: one bin)
    low: tuple[float, ...]  # each bin's lower residual quantile
    high: tuple[float, ...]  # each bin's upper residual quantile
    coverage: float
    rows: int  # back-test residuals they come from

    def of(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) of each prediction's interval."""
        predicted = np.asarray(predicted, dtype=float)
        bins = np.searchsorted(np.asarray(self.edges), predicted, side="right")
        return predicted + np.asarray(self.low)[bins], predicted + np.asarray(self.high)[bins]


def intervals_from(actual: Any, predicted: Any, coverage: float) -> Intervals | None:
    """The intervals of a version whose back-test predicted `predicted` where `actual` happened; None with fewer
    than MIN_BIN_ROWS finite residuals (too few to state a quantile at a useful coverage)."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    finite = np.isfinite(actual) & np.isfinite(predicted)
    actual, predicted = actual[finite], predicted[finite]
    if actual.size < MIN_BIN_ROWS:
        return None
    bins = max(1, min(MAX_BINS, actual.size // MIN_BIN_ROWS))
    order = np.argsort(predicted, kind="stable")
    groups = np.array_split(order, bins)  # equal counts of back-test rows, by predicted value
    edges = tuple(float(predicted[group[0]]) for group in groups[1:])
    residual = actual - predicted
    low, high = [], []
    for group in groups:
        ranked = np.sort(residual[group])
        n = ranked.size
        low.append(float(ranked[max(0, math.floor((1 - coverage) / 2 * (n + 1)) - 1)]))
        high.append(float(ranked[min(n - 1, math.ceil((1 + coverage) / 2 * (n + 1)) - 1)]))
    return Intervals(edges, tuple(low), tuple(high), coverage, int(actual.size))
