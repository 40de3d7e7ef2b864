"""The frequency of a model's rows: one row per series and period of `source.frequency`, declared or inferred.

Lags, seasonal baselines and now-test row counts are counted in periods, so the frequency is resolved once, when
the source's rows are validated (`sources.validate_frame`), and kept with a version's feature contract. A step
between two rows of a series that is not a whole number of periods (half-hourly rows under `hour`, a day's row in
a weekly series) is an error naming the rows: lags counted in periods would silently read the wrong row.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ratchet.exceptions import DataError
from ratchet.specs.model import EVENT, FREQUENCIES

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec

FREQUENCY = "ratchet_frequency"  # frame.attrs key: the frequency the rows were validated at
_FIXED = {name: pd.Timedelta(offset) for name, offset in FREQUENCIES.items() if name != "month"}
_SHOWN = 3  # offending rows a message names


def series_codes(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """An integer per row naming its series (all 0 for a single series), in one vectorised pass."""
    if not columns:
        return np.zeros(len(frame), dtype=np.int64)
    return frame.groupby(list(columns), sort=False, dropna=False).ngroup().to_numpy()


def shifted(times: pd.Series, periods: int, frequency: str) -> pd.Series:
    """`times` moved `periods` periods of `frequency` back (a month back keeps the day of the month)."""
    if frequency == "month":
        return times - pd.DateOffset(months=periods)
    return times - periods * _FIXED[frequency]


def frequency_of(spec: ModelSpec, frame: pd.DataFrame) -> str:
    """The frequency `frame` was validated at (`sources.validate_frame` keeps it), resolved afresh for rows put
    together after validation (a concat keeps no attrs)."""
    return frame.attrs.get(FREQUENCY) or resolve(spec, frame, whole_source=False)


def resolve(spec: ModelSpec, frame: pd.DataFrame, *, whole_source: bool = True) -> str:
    """The rows' frequency: `source.frequency` when declared (or kept in a version's contract), else the most common
    step between consecutive rows of a series. Every step must be a whole number of periods.

    A slice too short to show a step (a few rows a prediction reads) is taken as daily when nothing is declared.

    Raises:
        DataError: no frequency can be inferred (naming the most common step), or a step is not a whole number of
            periods (naming a few rows and their steps).
    """
    src = spec.source
    if src.events:
        return EVENT
    times = frame[src.key.time]
    codes = series_codes(frame, src.series)
    order = np.lexsort((times.to_numpy(), codes))
    t, c = times.to_numpy()[order], codes[order]
    same = c[1:] == c[:-1]
    steps = (t[1:] - t[:-1])[same]
    frequency = src.frequency or _inferred(spec, steps, whole_source)
    if frequency == "month":
        months = times.dt.year.to_numpy()[order] * 12 + times.dt.month.to_numpy()[order]
        bad = np.flatnonzero(same & ((months[1:] - months[:-1]) < 1))
    else:
        period = _FIXED[frequency].to_timedelta64()
        bad = np.flatnonzero(same & ((t[1:] - t[:-1]) % period != np.timedelta64(0)))
    if bad.size:
        rows = frame.iloc[order[bad[:_SHOWN] + 1]]
        before = t[bad[:_SHOWN]]
        shown = "; ".join(f"{src.key.describe(tuple(row[c] for c in src.key.columns))} "
                          f"({pd.Timestamp(row[src.key.time]) - pd.Timestamp(prev)} after the row before)"
                          for (_, row), prev in zip(rows.iterrows(), before, strict=True))
        how = "source.frequency" if src.frequency else "the frequency inferred from the rows"
        raise DataError(f"{spec.label}: {how} is {frequency!r} but {bad.size} row(s) are not a whole number of "
                        f"periods after the row before in their series, e.g. {shown}; declare the frequency the "
                        f"rows have (one of {list(FREQUENCIES)}) or aggregate them to it")
    return frequency


def _inferred(spec: ModelSpec, steps: np.ndarray, whole_source: bool) -> str:
    steps = steps[steps > np.timedelta64(0)]
    if steps.size == 0:
        if whole_source:
            raise DataError(f"{spec.label}: cannot infer source.frequency: no series has two rows; declare it "
                            f"(one of {list(FREQUENCIES)})")
        return "day"
    values, counts = np.unique(steps, return_counts=True)
    common = pd.Timedelta(values[np.argmax(counts)])
    for name, period in _FIXED.items():
        if common == period:
            return name
    if pd.Timedelta(days=28) <= common <= pd.Timedelta(days=31):
        return "month"
    raise DataError(f"{spec.label}: cannot infer source.frequency: the most common step between rows of a series "
                    f"is {common}, none of {list(FREQUENCIES)}; declare it or aggregate the rows to one of them")
