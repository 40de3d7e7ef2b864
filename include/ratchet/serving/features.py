"""Features of the few rows a request predicts, built in plain Python from the rows read for them.

A request predicts one row, or a few: on such small inputs pandas' fixed cost per operation made feature building
several times dearer than the prediction itself. This module builds the same values that training builds
(`sources.validate_frame`, then `features.make_xy`) with a loop over the rows: the source's checks (required
columns, one row per time, numeric targets and features, `source.missing_target`), categorical values as text
(`sources.category_text`), booleans as numbers, and target lags by calendar day or by row (`source.lags_by`).
tests/serving/test_request_features.py checks it against `make_xy` on every row of the real tables.
"""
from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.exceptions import DataError, PredictError
from ratchet.modeling import sources
from ratchet.modeling.features import baseline_lags, lag_name
from ratchet.modeling.frequency import shifted
from ratchet.specs.model import FREQUENCIES

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec


@dataclass(frozen=True)
class Built:
    """The model input of the predicted rows (in the order they were given) and their time keys."""

    X: pd.DataFrame
    times: list[dt.datetime]


def build(spec: ModelSpec, columns: Sequence[str], history: Sequence[Sequence[Any]],
          rows: Sequence[dict[str, Any]]) -> Built:
    """The features of `rows` (each a mapping of column to value, its time already a naive UTC datetime; its
    target may be absent or empty), target lags taken from `history` (the source rows their lags reach, at other
    times than theirs, in time order, as `sources.read_lag_window` reads them: tuples in the order of `columns`)
    and from the other rows.

    Raises:
        DataError: the source's rows fail its checks (a missing column, an empty or repeated time, a non-numeric
            target or feature, an empty target under `missing_target: error`).
        PredictError: a row whose lags cannot be computed (the target of the days they reach is unknown).
        DataError: (also) the rows of a panel are not all of one series: lags are taken within a series, so the
            caller builds each series apart (`rows.FeatureReader`).
    """
    src = spec.source
    prefix = spec.label
    sources.require_columns(spec, columns)
    _one_series(spec, columns, history, rows)
    names = sources.feature_columns(spec, columns)
    position = {c: i for i, c in enumerate(columns)}
    t_at, y_at = position[src.key.time], position[src.target]

    past: list[tuple[dt.datetime, Any]] = []  # (time, target) of the history rows kept, then of the predicted rows
    every_time = []
    for record in history:
        time = source_time(record[t_at], spec)
        every_time.append(time)
        target = _target(record[y_at], spec)
        if target is None:
            if src.missing_target == "error":
                raise DataError(f"{prefix}: target {src.target!r} has a missing value (NaN) at {time} "
                                f"(source.missing_target: error; 'drop' leaves those rows out)")
            continue
        past.append((time, target))
    times = [rows[i][src.key.time] for i in range(len(rows))]
    every_time += times
    if not src.events:  # events may share a time: an event's row is its id
        _check_times(every_time, spec)
    past += [(time, _target(row.get(src.target), spec)) for time, row in zip(times, rows, strict=True)]
    past.sort(key=lambda kept: kept[0])  # the rows' times are their own (checked): one order, by time

    lags = [(lag, lag_name(lag)) for lag in src.target_lags] + list(baseline_lags(spec).items())  # (lag, column)
    lagged = _lagger(spec, past) if lags else None  # events have no lags (and no period to count them in)
    values: dict[str, list[Any]] = {name: [None] * len(rows) for name in [*names, *(c for _, c in lags)]}
    for i, time in enumerate(times):
        for name in names:
            values[name][i] = _feature(rows[i].get(name), name, spec)
        for lag, column in lags:
            values[column][i] = lagged(time, lag)
    lacking = sorted((times[i], lag) for i in range(len(rows)) for lag in src.target_lags
                     if sources.is_empty(values[lag_name(lag)][i]))
    if lacking:
        raise PredictError(unknown_lags_message(spec, len({t for t, _ in lacking}), *lacking[0]))
    numeric = spec.task == "regression" or all(isinstance(y, float) for _, y in past if y is not None)
    lag_kind = float if numeric else object  # lags of text labels stay text, as in make_xy
    X = pd.DataFrame({name: _column(values[name], object if name in src.categorical else float) for name in names}
                     | {column: _column(values[column], lag_kind) for _, column in lags})
    return Built(X, times)


def _one_series(spec: ModelSpec, columns: Sequence[str], history: Sequence[Sequence[Any]],
                rows: Sequence[dict[str, Any]]) -> None:
    """Refuse rows of several series: a lag taken across them would be another series' value."""
    if not spec.source.series:
        return
    at = [columns.index(c) for c in spec.source.series]
    labels = {tuple(sources.category_text(record[i]) for i in at) for record in history}
    labels |= {tuple(sources.category_text(row.get(c)) for c in spec.source.series) for row in rows}
    if len(labels) > 1:
        raise DataError(f"{spec.label}: rows of {len(labels)} series given to one feature build; a panel's lags are "
                        f"taken within one series of {list(spec.source.series)}")


def unknown_lags_message(spec: ModelSpec, rows: int, first: dt.datetime, lag: int) -> str:
    """Why `rows` rows cannot be predicted, naming the first one and the lag (and time) it lacks."""
    reached = (f"the row {lag} before it (lag {lag}, source.lags_by: rows)" if spec.source.lags_by == "rows"
               else f"{_shown(_lag_time(spec, first, lag))} (lag {lag})")
    return (f"cannot compute target lags {list(spec.source.target_lags)} for {rows} input row(s), first at "
            f"{pd.Timestamp(first)}: the target of {reached} is neither in the input nor in the source")


def _shown(time: pd.Timestamp) -> str:
    """A time as a message shows it: its date alone at midnight."""
    return f"{time:%Y-%m-%d}" if time == time.normalize() else f"{time:%Y-%m-%d %H:%M}"


def _lag_time(spec: ModelSpec, time: dt.datetime, lag: int) -> pd.Timestamp:
    """The time `lag` periods (`lags_by: periods`, at the version's frequency) or calendar days before `time`."""
    if spec.source.lags_by == "days":
        return pd.Timestamp(time - dt.timedelta(days=lag))
    return shifted(pd.Series([pd.Timestamp(time)]), lag, spec.source.frequency or "day").iloc[0]


def _lagger(spec: ModelSpec, past: list[tuple[dt.datetime, Any]]):
    """lag(time, k): the target k periods, days or rows before the row at `time` among `past` (every row kept, in
    time order), None when unknown."""
    if spec.source.lags_by == "rows":
        position = {time: k for k, (time, _) in enumerate(past)}

        def by_rows(time: dt.datetime, lag: int) -> Any:
            at = position[time] - lag
            return past[at][1] if at >= 0 else None
        return by_rows
    by_time = dict(past)
    if spec.source.lags_by == "days" or (spec.source.frequency or "day") != "month":
        step = dt.timedelta(days=1) if spec.source.lags_by == "days" else \
            pd.Timedelta(FREQUENCIES[spec.source.frequency or "day"]).to_pytimedelta()

        def by_step(time: dt.datetime, lag: int) -> Any:
            return by_time.get(time - lag * step)
        return by_step

    def by_month(time: dt.datetime, lag: int) -> Any:
        return by_time.get(_lag_time(spec, time, lag).to_pydatetime())
    return by_month


def source_time(value: Any, spec: ModelSpec) -> dt.datetime:
    """A source time as naive UTC (a date is its midnight)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo is not None else value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if sources.is_empty(value):
        raise DataError(f"model {spec.name!r}: time column {spec.source.key.time!r} has empty values")
    try:
        return sources.naive_utc(value).to_pydatetime()
    except (ValueError, TypeError) as exc:
        raise DataError(f"model {spec.name!r}: time column {spec.source.key.time!r} is not a date/time "
                        f"({value!r}: {exc})") from None


def _check_times(times: list[dt.datetime], spec: ModelSpec) -> None:
    seen: set[dt.datetime] = set()
    repeated = [t for t in times if t in seen or seen.add(t)]
    if repeated:
        raise DataError(f"model {spec.name!r}: duplicate timestamps in {spec.source.key.time!r}, first "
                        f"{pd.Timestamp(repeated[0])} ({len(repeated)} duplicates)")


def _target(value: Any, spec: ModelSpec) -> Any:
    """A target as a float (numbers) or the label itself; None when it is empty."""
    if sources.is_empty(value):
        return None
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return _finite(value, f"target {spec.source.target!r}", spec)
    if spec.task == "regression":
        raise DataError(f"model {spec.name!r}: target {spec.source.target!r} must be numeric for regression, got "
                        f"{value!r}")
    return value


def _feature(value: Any, name: str, spec: ModelSpec) -> Any:
    """A feature value as training sees it: text for a categorical one, else a float (NaN when empty)."""
    if name in spec.source.categorical:
        return sources.category_text(value)
    if sources.is_empty(value):
        return math.nan
    if isinstance(value, numbers.Number | np.bool_):
        return _finite(value, f"feature {name!r}", spec)
    raise DataError(f"model {spec.name!r}: feature {name!r} is not numeric ({value!r}); declare it in "
                    f"source.categorical or drop it from source.features")


def _finite(value: Any, what: str, spec: ModelSpec) -> float:
    """A number as a float, refused when no estimator can take it (an infinity, or beyond what a float holds)."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise DataError(f"model {spec.name!r}: {what} has a value no estimator can take ({value!r} is not finite)")
    return number


def _column(values: list[Any], kind: type) -> np.ndarray:
    """A column of X: floats, or objects (categories, text labels); an unknown value is NaN either way."""
    return np.array([math.nan if v is None else v for v in values], dtype=kind)
