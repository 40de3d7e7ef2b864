"""Month partitions of a model's history and the fingerprints that say whether a month's data changed."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import pandas as pd

from ratchet.modeling.sources import naive_utc

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec


def month_bounds(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a 'YYYY-MM' month."""
    start = pd.Timestamp(f"{month}-01")
    return start, start + pd.offsets.MonthBegin(1)


def complete_months(times: pd.Series, months: int, *, before: Any = None) -> list[str]:
    """The last `months` complete calendar months of the data's span that have history before them, oldest first.

    Every calendar month between the first and the last row counts, so a month the data lacks stays
    in the list (and the back-test reports it as empty) instead of being silently replaced by an older one.
    A month starting at or before the first row has nothing to train on, so the span's first month never
    counts: ten years of data give at most 119 back-test months.
    """
    if times.empty:
        return []
    first, last = pd.Timestamp(times.min()), pd.Timestamp(times.max())
    keys = list(pd.period_range(first, last, freq="M").strftime("%Y-%m"))
    complete = [k for k in keys if first < month_bounds(k)[0] and month_bounds(k)[1] - pd.Timedelta(days=1)
                <= last.normalize()]
    limit = naive_utc(before)
    if limit is not None:
        complete = [k for k in complete if month_bounds(k)[1] <= limit]
    return complete[-months:]


def _rows_digest(frame: pd.DataFrame) -> bytes:
    if frame.empty:
        return b""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()


def month_fingerprints(spec: ModelSpec, frame: pd.DataFrame) -> dict[str, str]:
    """Month -> sha256 chained over every row up to the month's end: any earlier change shows later."""
    months = frame[spec.source.time_column].dt.strftime("%Y-%m")
    digest = hashlib.sha256()
    fingerprints = {}
    for month, rows in frame.groupby(months, sort=True):
        digest.update(month.encode())
        digest.update(_rows_digest(rows))
        fingerprints[month] = digest.copy().hexdigest()
    return fingerprints


def dataset_fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of every row: what a version was trained on, stored with it."""
    return hashlib.sha256(_rows_digest(frame)).hexdigest()


def window_bounds(end: Any, window_days: int) -> tuple[pd.Timestamp, pd.Timestamp, str]:
    """[start, end) of the `window_days` whole days before the day of `end`, as naive UTC timestamps, and the
    window's last day (the partition).

    A run's clock time does not move the window: a run at 06:00 tests the days before its day, midnight to
    midnight, so a 14-day window of daily data holds 14 rows, not the 13 from 06:00 fourteen days earlier.
    """
    end = naive_utc(end).normalize()
    start = end - pd.Timedelta(days=window_days)
    return start, end, (end - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
