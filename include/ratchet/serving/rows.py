"""Features of a feature id (the row's time key) or of rows sent in a request, built as training built them.

A feature id reads one bounded window of the model's source (the row and the rows its target lags reach:
`sources.read_lag_window`), never the whole table; rows sent in a request read the window before the first of
them. `serving.features.build` turns the window into the model's input with the values `features.make_xy`
builds from the validated source, so the service answers a row as `ratchet predict` answers it and as training
saw it. The window's fingerprint (a hash of every value read) keys the cached answers: a corrected row or lag
gives a new fingerprint once it is read again.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.exceptions import DataError, NotFoundError, PredictError
from ratchet.modeling import sources
from ratchet.modeling.features import series_label
from ratchet.serving import features
from ratchet.specs.model import FREQUENCIES

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ratchet.specs.model import ModelSpec

# The times NumPy's nanosecond timestamps (so pandas) hold, in whole days: a request's time key must lie within
EARLIEST_TIME = pd.Timestamp.min.ceil("D").to_pydatetime()
LATEST_TIME = pd.Timestamp.max.floor("D").to_pydatetime()


@dataclass(frozen=True)
class RowFeatures:
    """The features of one feature id, and the fingerprint of the source rows they were built from."""

    feature_id: dt.datetime
    fingerprint: str
    X: pd.DataFrame
    values: Mapping[str, Any] | None = None  # an event's row as read: the entity columns its split may hash


def fingerprint(window: sources.Window) -> str:
    """sha256 of a window's column names and every value read (row order included)."""
    return hashlib.sha256(repr((window.columns, window.rows)).encode()).hexdigest()


class FeatureReader:
    """Reads source windows through one pooled engine per source database (Ratchet's own, or a `conn_id`)."""

    def __init__(self, url: str):
        self.url = url
        self._engines: dict[str | None, Engine] = {}
        self._lock = threading.Lock()

    def _engine(self, spec: ModelSpec) -> Engine:
        key = spec.source.conn_id
        with self._lock:
            if key not in self._engines:
                self._engines[key] = sources.engine_for(spec, self.url)
            return self._engines[key]

    def by_id(self, spec: ModelSpec, feature_id: dt.datetime, series: dict[str, str] | None = None) -> RowFeatures:
        """The features of the source row whose time is `feature_id` (in a panel, of the series whose key columns
        have the values `series`, as text).

        Raises:
            NotFoundError: the source has no row at that time (of that series).
            PredictError: its target lags cannot be computed (the days they reach have no target).
            DataError: the source's rows fail its checks, or cannot be read.
        """
        src = spec.source
        if src.events:
            return self._event(spec, series[src.id])
        with self._engine(spec).connect() as conn:
            window = sources.read_lag_window(spec, conn, feature_id, feature_id, series)
        sources.require_columns(spec, window.columns)
        t = window.columns.index(src.key.time)
        times = [features.source_time(row[t], spec) for row in window.rows]
        at = [row for row, time in zip(window.rows, times, strict=True) if time == feature_id]
        if not at:
            where = "".join(f"{c} = {series[c]}, " for c in src.series) if series else ""
            raise NotFoundError(f"model {spec.name!r} has no row with {where}{src.key.time} = "
                                f"{feature_id.isoformat()} in {sources.source_name(spec)}")
        history = [row for row, time in zip(window.rows, times, strict=True) if time < feature_id]
        rows = [{**dict(zip(window.columns, row, strict=True)), src.key.time: feature_id} for row in at]
        return RowFeatures(feature_id, fingerprint(window), features.build(spec, window.columns, history, rows).X)

    def _event(self, spec: ModelSpec, row_id: str) -> RowFeatures:
        """The features of the event whose id is `row_id`; its feature id is the event's time.

        Raises:
            NotFoundError: the source has no such event.
        """
        src = spec.source
        with self._engine(spec).connect() as conn:
            window = sources.read_event(spec, conn, row_id)
        sources.require_columns(spec, window.columns)
        if not window.rows:
            raise NotFoundError(f"model {spec.name!r} has no event with {src.id} = {row_id} in "
                                f"{sources.source_name(spec)}")
        if len(window.rows) > 1:
            raise DataError(f"{spec.label}: {len(window.rows)} events have {src.id} = {row_id} (source.id must be "
                            "unique)")
        row = dict(zip(window.columns, window.rows[0], strict=True))
        time = features.source_time(row[src.key.time], spec)
        return RowFeatures(time, fingerprint(window), features.build(spec, window.columns, [],
                                                                     [{**row, src.key.time: time}]).X, row)

    def of_records(self, spec: ModelSpec, records: list[dict[str, Any]]
                   ) -> tuple[pd.DataFrame, list[dt.datetime], list[str | None]]:
        """Features, time keys and series labels (None for a single series) of rows sent in a request, in the
        request's order; their lags come from the source rows they reach and from the other rows of the request
        of their series. A row may carry its target; a row without one takes the source's target at its time,
        when the source has a row there.

        Raises:
            PredictError: naming the row and field: a missing column (a panel's key columns too), a bad or repeated
                (series and) time key, a bad value, lags that cannot be computed.
            DataError: the source's own rows cannot be used.
        """
        src = spec.source
        times = [parse_time_key(record.get(src.key.time), f"rows[{i}].{src.key.time}", spec)
                 for i, record in enumerate(records)]
        labels: list[str | None] = [None] * len(records)
        if src.events:
            return self._of_events(spec, records, times), times, [_row_label(spec, record, i)
                                                                  for i, record in enumerate(records)]
        if src.series:
            for i, record in enumerate(records):
                missing = [c for c in src.series if sources.is_empty(record.get(c))]
                if missing:
                    raise PredictError(f"rows[{i}]: missing series column(s) {missing}; model {spec.name!r} is a "
                                       f"panel of series {list(src.series)}: each row names its series")
                labels[i] = series_label(src.series, record)
        first: dict[tuple[str | None, dt.datetime], int] = {}
        for i, key in enumerate(zip(labels, times, strict=True)):
            if first.setdefault(key, i) != i:
                of = f" of series {key[0]}" if key[0] else ""
                raise PredictError(f"rows[{i}].{src.key.time}: {key[1].isoformat()}{of} repeats rows[{first[key]}]; "
                                   "each row must have its own time key")
        groups: dict[str | None, list[int]] = {}
        for i, label in enumerate(labels):
            groups.setdefault(label, []).append(i)
        parts, order = [], []
        for members in groups.values():
            series = {c: sources.category_text(records[members[0]][c]) for c in src.series}
            parts.append(self._of_one_series(spec, records, members, [times[i] for i in members], series))
            order += members
        X = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        restore = np.argsort(np.asarray(order), kind="stable")
        return X.iloc[restore].reset_index(drop=True), times, labels

    def _of_events(self, spec: ModelSpec, records: list[dict[str, Any]], times: list[dt.datetime]) -> pd.DataFrame:
        """The features of events sent in a request: each row is the whole input (events have no lags), so the
        source is not read; each row's id must be its own."""
        src = spec.source
        labels = [_row_label(spec, record, i) for i, record in enumerate(records)]
        first: dict[str, int] = {}
        for i, label in enumerate(labels):
            if first.setdefault(label, i) != i:
                raise PredictError(f"rows[{i}].{src.id}: {records[i][src.id]!r} repeats rows[{first[label]}]; each "
                                   f"event must have its own id")
        names = sources.feature_columns(spec, {c: None for record in records for c in record})
        _check_records(spec, records, names, list(range(len(records))))
        columns = [src.key.time, src.id, src.target, *names]
        rows = [{**record, src.key.time: time} for record, time in zip(records, times, strict=True)]
        return features.build(spec, columns, [], rows).X

    def _of_one_series(self, spec: ModelSpec, every: list[dict[str, Any]], members: list[int],
                       times: list[dt.datetime], series: dict[str, str]) -> pd.DataFrame:
        """The features of the request rows `members` (positions in `every`) of one series (all of them for a
        single series), in their order."""
        src = spec.source
        records = [every[i] for i in members]
        with self._engine(spec).connect() as conn:
            window = sources.read_lag_window(spec, conn, min(times), max(times), series or None)
        sources.require_columns(spec, window.columns)
        _check_records(spec, records, sources.feature_columns(spec, window.columns), members)
        t, y = window.columns.index(src.key.time), window.columns.index(src.target)
        asked, history, known = set(times), [], {}
        for row in window.rows:
            time = features.source_time(row[t], spec)
            if time in asked:
                known[time] = row[y]  # the source's own target at a requested time
            else:
                history.append(row)
        rows = [{**record, src.key.time: time,
                 src.target: known.get(time) if sources.is_empty(record.get(src.target)) else record[src.target]}
                for record, time in zip(records, times, strict=True)]
        return features.build(spec, window.columns, history, rows).X

    def check_contract(self, spec: ModelSpec) -> None:
        """Whether the source still has every column `spec` reads (a version's contract: `ModelSpec.for_version`).

        Raises:
            DataError: naming the missing columns and the version; or the source cannot be read.
        """
        with self._engine(spec).connect() as conn:
            sources.require_columns(spec, sources.source_columns(spec, conn))

    def dispose(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


def series_query(spec: ModelSpec, params: Mapping[str, str]) -> dict[str, str] | None:
    """A panel's series from a GET's query parameters (each `source.series` column, all required); an event's id
    (`id`) as {source.id: value}; None for a single series. A parameter the model does not take is refused, never
    ignored: a wrong series must not get another series' answer.

    Raises:
        PredictError: naming the unknown or missing parameters and what the model takes.
    """
    src = spec.source
    takes, required = (["id"], ["id"]) if src.events else (["at", *src.series], list(src.series))
    unknown = sorted(set(params) - set(takes))
    missing = [c for c in required if not params.get(c)]
    if unknown or missing:
        what = f"unknown query parameter(s) {unknown}" if unknown else f"missing query parameter(s) {missing}"
        shape = ("events, each answered by its id (source.id)" if src.events else
                 f"a panel of series {list(src.series)}" if src.series else "a single series")
        raise PredictError(f"{what}; model {spec.name!r} is {shape} and takes {takes}")
    if src.events:
        return {src.id: params["id"]}
    return {c: params[c] for c in src.series} or None


def _row_label(spec: ModelSpec, record: dict[str, Any], position: int) -> str:
    """An event row's label ("application_id=17"): what its answer is cached, routed and logged by.

    Raises:
        PredictError: the row has no id.
    """
    if sources.is_empty(record.get(spec.source.id)):
        raise PredictError(f"rows[{position}]: missing {spec.source.id!r}; model {spec.name!r} scores events, each "
                           "row carries its id (source.id)")
    return series_label((spec.source.id,), record)


def parse_time_key(value: Any, field: str, spec: ModelSpec) -> dt.datetime:
    """A time key from a request (ISO 8601 date or date-time; an offset is converted to UTC) as naive UTC, within
    the times NumPy's timestamps hold with room for the days the model's target lags reach back.

    Raises:
        PredictError: naming `field` and what is expected.
    """
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            return _within_range(parsed, value, field, spec)
    raise PredictError(f"{field}: expected a date or date-time in ISO 8601 (e.g. 2026-11-24 or 2026-11-24T06:00:00Z), "
                       f"got {value!r}")


def _within_range(parsed: dt.datetime, value: str, field: str, spec: ModelSpec) -> dt.datetime:
    """The time as naive UTC if NumPy can hold it and the days its lags reach (pandas builds and compares them)."""
    src = spec.source
    lag = max(src.target_lags, default=0) if src.lags_by != "rows" else 0  # events have none
    per_lag = 1 if src.lags_by == "days" or not lag else 31 if src.frequency == "month" else \
        pd.Timedelta(FREQUENCIES[src.frequency or "day"]) / pd.Timedelta(days=1)
    reach = math.ceil(lag * per_lag)
    earliest = EARLIEST_TIME + dt.timedelta(days=reach)
    try:
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        if earliest <= parsed <= LATEST_TIME:
            return parsed
    except OverflowError:  # an offset moved it past year 1 or 9999
        pass
    lags = f", less the {reach} days its target lags reach back" if reach else ""
    raise PredictError(f"{field}: expected a time from {earliest:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d} (the times "
                       f"NumPy's timestamps hold{lags}), got {value!r}")


def _check_records(spec: ModelSpec, records: list[dict[str, Any]], columns: list[str], positions: list[int]) -> None:
    """Every row has the model's feature columns, finite numbers (or null) where the model expects numbers, and
    categories (or class labels) that are text or finite numbers; messages name a row by its `positions` entry
    (its place in the request)."""
    src = spec.source
    numeric = [c for c in columns if c not in src.categorical]
    categorical = list(src.categorical)
    if spec.task == "regression":
        numeric.append(src.target)
    else:
        categorical.append(src.target)
    for i, record in zip(positions, records, strict=True):
        missing = [c for c in columns if c not in record]
        if missing:
            raise PredictError(f"rows[{i}]: missing column(s) {missing}; model {spec.name!r} needs "
                               f"{[src.key.time, *columns]}")
        for column in numeric:
            _check_value(record.get(column), f"rows[{i}].{column}", "a number or null", text=False)
        for column in categorical:
            _check_value(record.get(column), f"rows[{i}].{column}", "a category (text or number) or null", text=True)


def _check_value(value: Any, field: str, expected: str, *, text: bool) -> None:
    """Refuse a value that is not null, a boolean, a number a float holds, or (when `text`) a text."""
    if value is None or isinstance(value, bool) or (text and isinstance(value, str)):
        return
    if not isinstance(value, int | float):
        raise PredictError(f"{field}: expected {expected}, got {value!r}")
    if isinstance(value, float) and math.isnan(value):
        raise PredictError(f"{field}: expected {expected}, got NaN (JSON has no NaN: send null for a missing value)")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer beyond what a float holds
        finite = False
    if not finite:
        raise PredictError(f"{field}: expected {expected}, got {'-' if value < 0 else ''}Infinity or a number beyond "
                           f"what a float holds (about 1.8e308); JSON has no Infinity")
