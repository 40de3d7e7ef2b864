"""A model's source rows: read from a PostgreSQL table or SELECT query, and validated.

A model's data is one row per row key (`Source.key`: its series, if a panel, and its time, at one frequency, gaps
allowed). Every problem with it is a `DataError` naming the model, the column and what is wrong, raised before
anything is computed or stored.
"""
from __future__ import annotations

import logging
import math
import numbers
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet import settings
from ratchet.exceptions import DataError
from ratchet.modeling import frequency

log = logging.getLogger(__name__)
DROPPED_MISSING_TARGET = "ratchet_dropped_missing_target"  # frame.attrs key: rows left out for want of a target
MISSING_CATEGORY = "<missing>"  # an empty categorical value, a category of its own

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy import Connection, Engine

    from ratchet.specs.model import ModelSpec


def naive_utc(value: Any) -> pd.Timestamp | None:
    """A timestamp as naive UTC (how Ratchet compares times), None for None."""
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def source_name(spec: ModelSpec) -> str:
    """The source as messages name it: 'table <name>', or 'the query' for a `source.query`."""
    return f"table {spec.source.table}" if spec.source.table else "the query"


def engine_for(spec: ModelSpec, url: str | None = None) -> Engine:
    """An engine on the database holding the model's rows: its `source.conn_id`, else Ratchet's own (or `url`)."""
    if spec.source.conn_id:
        from airflow.sdk import BaseHook

        return settings.make_engine(settings.url_from_connection(BaseHook.get_connection(spec.source.conn_id)))
    return settings.make_engine(url or settings.database_url())


def _table_sql(engine: Engine, spec: ModelSpec, end: pd.Timestamp | None) -> str:
    """The table's rows before `end`, sorted by time; `end` is written in as psycopg2 would bind it, since COPY takes
    no parameters."""
    from psycopg2.extensions import adapt

    quote = engine.dialect.identifier_preparer.quote
    name = ".".join(quote(part) for part in spec.source.table.split("."))
    time_col = quote(spec.source.key.time)
    where = f" WHERE {time_col} < {adapt(end.to_pydatetime()).getquoted().decode()}" if end is not None else ""
    return f"SELECT * FROM {name}{where} ORDER BY {time_col}"


def read_source(spec: ModelSpec, *, url: str | None = None, end: Any = None) -> pd.DataFrame:
    """Read and validate the model's rows (only those before `end` when given), sorted by time.

    Raises:
        DataError: the source cannot be read, or its rows fail `validate_frame`.
    """
    return checked_rows(spec, read_rows(spec, url=url, end=end), end=end)


def checked_rows(spec: ModelSpec, raw: pd.DataFrame, *, end: Any = None) -> pd.DataFrame:
    """Rows as `read_rows` read them, validated under `spec` (today's YAML, or a version's feature contract) and
    kept before `end`: one read serves every contract a now-test or back-test compares.

    Raises:
        DataError: the rows fail `validate_frame`.
    """
    end = naive_utc(end)
    frame = validate_frame(spec, raw)
    if end is not None and spec.source.query:
        frame = frame[frame[spec.source.key.time] < end].reset_index(drop=True)
    return frame


def read_rows(spec: ModelSpec, *, url: str | None = None, end: Any = None) -> pd.DataFrame:
    """The source's rows as read, not validated (a table's only before `end`; a query's filtered once validated).

    A table is read with COPY (`_copied`: under half of `read_sql`'s time for 100,000 rows) into the frame
    `read_sql` gives; a query, and a table COPY cannot type as `read_sql` does, with `read_sql`.

    Raises:
        DataError: the source cannot be read.
    """
    from psycopg2 import Error as DriverError
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    end = naive_utc(end)
    engine = engine_for(spec, url)
    try:
        with engine.connect() as conn:
            if spec.source.table:
                sql = _table_sql(engine, spec, end)
                frame = _copied(conn, sql)
                if frame is None:
                    frame = pd.read_sql(text(sql), conn)
            else:
                frame = pd.read_sql(text(spec.source.query), conn)
    except (SQLAlchemyError, DriverError) as exc:
        raise DataError(f"model {spec.name!r}: cannot read {source_name(spec)}: "
                        f"{str(getattr(exc, 'orig', None) or exc).strip()}") from None
    finally:
        engine.dispose()
    return frame


# PostgreSQL type oid -> how `_copied` types the column: the types whose psycopg2 values `read_sql` turns into one
# predictable dtype (with a NULL: float for integers, None objects for booleans, dates and text)
_COPIED_TYPES = {20: "integer", 21: "integer", 23: "integer", 700: "float", 701: "float", 1700: "float",
                 25: "text", 1042: "text", 1043: "text", 16: "boolean", 1082: "date", 1114: "timestamp",
                 1184: "timestamptz"}
_COPIED_RANGES = {"date": (np.datetime64("0001-01-01", "D"), np.datetime64("9999-12-31", "D")),  # datetime.date's
                  "timestamp": (np.datetime64("1677-09-21T00:12:43.145225", "us"),  # datetime64[ns]'s, in whole µs
                                np.datetime64("2262-04-11T23:47:16.854775", "us"))}
_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}  # COPY's text format


def _copied(conn: Connection, sql: str) -> pd.DataFrame | None:
    """The rows of `sql` read with COPY ... TO STDOUT and typed as `read_sql` types them; None when a column's type
    (`_COPIED_TYPES`) or a value (a date or time out of pandas' range, infinity, BC; mixed UTC offsets) would come
    out otherwise, for `read_sql` to read.

    Numbers are parsed straight into their dtype and text into categories (a value's string made once, whatever
    its number of rows): the read of 5 million events of 11 columns peaked at 1.9 GiB, 3.1 GiB as a text cell each.

    Raises:
        psycopg2.Error: the SQL fails.
    """
    import tempfile

    dbapi = conn.connection.dbapi_connection
    with dbapi.cursor() as cur:
        cur.execute(f"{sql} LIMIT 0")
        names, kinds = [c.name for c in cur.description], [_COPIED_TYPES.get(c.type_code) for c in cur.description]
    if None in kinds:
        return None
    with tempfile.TemporaryFile() as data:  # a file, not memory: 5 million events' text is 350 MB
        with dbapi.cursor() as cur:
            cur.copy_expert(f"COPY ({sql}) TO STDOUT", data)
        if not data.tell():
            return pd.DataFrame(columns=names)  # read_sql's frame of no rows: untyped columns
        data.seek(0)
        parsed = _parsed(data, names, kinds, dbapi.encoding)
    nan = _nan_floats(conn, sql, parsed, names, kinds)  # kept as NaN, where a column of NULLs is None
    try:
        return pd.DataFrame({name: parsed[name].to_numpy() if name in nan else _typed(kind, parsed[name])
                             for name, kind in zip(names, kinds, strict=True)})
    except ValueError:
        return None


def _parsed(data: Any, names: list[str], kinds: list[str], encoding: str) -> pd.DataFrame:
    """COPY's text format parsed: numbers into their dtype (`_PARSED_AS`), text into categories, NULL as NA."""
    import csv

    from psycopg2.extensions import encodings

    return pd.read_csv(data, sep="\t", header=None, names=names, quoting=csv.QUOTE_NONE,
                       dtype={name: _PARSED_AS.get(kind, object) for name, kind in zip(names, kinds, strict=True)},
                       na_values={name: _NULLS[kind == "float"] for name, kind in zip(names, kinds, strict=True)},
                       keep_default_na=False, skip_blank_lines=False, float_precision="round_trip",
                       encoding=encodings[encoding])


def _nan_floats(conn: Connection, sql: str, parsed: pd.DataFrame, names: list[str], kinds: list[str]) -> list[str]:
    """The float columns whose every value parsed empty though one is a NaN, not a NULL (asked of the database: the
    parse cannot tell them apart, `read_sql` can)."""
    empty = [n for n, k in zip(names, kinds, strict=True) if k == "float" and parsed[n].isna().all()]
    if not empty:
        return []
    quote = conn.dialect.identifier_preparer.quote
    with conn.connection.dbapi_connection.cursor() as cur:
        cur.execute("SELECT " + ", ".join(f"bool_or(q.{quote(n)} IS NOT NULL)" for n in empty) + f" FROM ({sql}) q")
        return [n for n, some in zip(empty, cur.fetchone(), strict=True) if some]


# how COPY's text is parsed per kind (others: as text cells), and what it writes for NULL (and a float's NaN,
# which `read_sql` gives as NaN too); round-trip float parsing is Python's float(text), psycopg2's
_PARSED_AS = {"integer": "Int64", "float": "float64", "text": "category"}
_NULLS = {False: ["\\N"], True: ["\\N", "NaN"]}


def _typed(kind: str, column: pd.Series) -> Any:
    """A column as `_copied` parsed it (NA for NULL) as `read_sql` gives psycopg2's values of that type.

    Raises:
        ValueError: a value `read_sql` would not give in that dtype (see `_copied`).
    """
    null = column.isna().to_numpy()
    if null.all():
        return np.full(len(column), None, dtype=object)  # read_sql cannot type a column of NULLs
    if kind == "integer":
        return column.to_numpy(np.int64) if not null.any() else column.to_numpy(float, na_value=np.nan)
    if kind == "float":
        return column.to_numpy()
    if kind == "text":
        texts = column.cat.categories.to_series()
        escaped = texts.str.contains("\\", regex=False).to_numpy(dtype=bool)
        texts[escaped] = texts[escaped].str.replace(r"\\(.)", lambda m: _COPY_ESCAPES.get(m[1], m[1]), regex=True)
        values = np.append(texts.to_numpy(dtype=object), None)  # code -1, NULL, takes the None
        return values.take(column.cat.codes.to_numpy())
    values = column.to_numpy(dtype=object)
    if kind == "boolean":
        flags = values == "t"
        return flags if not null.any() else np.where(null, None, flags.astype(object))
    if kind == "timestamptz":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # mixed offsets: object dtype now, an error in pandas 3
            stamps = pd.to_datetime(column, format="ISO8601")
        if not isinstance(stamps.dtype, pd.DatetimeTZDtype):
            raise ValueError("mixed UTC offsets")
        return stamps.dt.tz_convert("UTC")
    lowest, highest = _COPIED_RANGES[kind]
    stamps = np.where(null, "NaT", values).astype(lowest.dtype)
    if stamps[~null].min() < lowest or stamps[~null].max() > highest:
        raise ValueError("out of range")
    return stamps.astype(object) if kind == "date" else stamps.astype("datetime64[ns]")


@dataclass(frozen=True)
class Window:
    """Source rows as read (not validated): the column names, and each row's values in that order."""

    columns: tuple[str, ...]
    rows: list[tuple]


def read_lag_window(spec: ModelSpec, conn: Connection, first: Any, last: Any | None = None,
                    series: dict[str, str] | None = None) -> Window:
    """The source's rows from `first` to `last` (inclusive; none when `last` is None) and the rows before `first`
    that their target lags can reach, sorted by time and not validated: a bounded read, never the whole source.
    The rows stay plain tuples: a request reads a few, where a data frame would cost more than the read.

    `lags_by: periods` reaches back the largest lag in periods of the contract's frequency (a day when it names
    none), `days` in calendar days; `rows` the last (largest lag) rows before
    `first` with a known target (rows without one are no lag under `missing_target: drop`, so they are skipped
    as the full read's validation would). A `query` source is read as a subquery filtered on its time column.
    A panel's window is one series' rows: `series` maps each `source.series` column to its value as text (compared
    with the column's text, so a client's '12' finds the integer 12 and a wrong type is no SQL error).

    Raises:
        DataError: the source's SQL fails (no such table or column, a bad query); a lost connection raises
            SQLAlchemy's own error.
    """
    src = spec.source
    quote = conn.dialect.identifier_preparer.quote
    relation = _relation(spec, conn)
    time_col, target = quote(src.key.time), quote(src.target)
    first = naive_utc(first).to_pydatetime()
    params: dict[str, Any] = {"first": first, "last": naive_utc(last if last is not None else first).to_pydatetime()}
    if src.series:
        relation = (f"(SELECT * FROM {relation} WHERE "
                    + " AND ".join(f"CAST({quote(c)} AS TEXT) = :series_{i}" for i, c in enumerate(src.series))
                    + ") AS ratchet_series")
        params |= {f"series_{i}": (series or {})[c] for i, c in enumerate(src.series)}
    rows = f"SELECT * FROM {relation} WHERE {time_col} >= :first AND {time_col} <= :last" if last is not None else None
    reach = max(src.target_lags, default=0)
    if src.lags_by != "rows":
        since = pd.Timestamp(first) - pd.Timedelta(days=reach) if src.lags_by == "days" else \
            frequency.shifted(pd.Series([pd.Timestamp(first)]), reach, src.frequency or "day").iloc[0]
        params["since"] = since.to_pydatetime()
        history = f"SELECT * FROM {relation} WHERE {time_col} >= :since AND {time_col} < :first"
    else:
        known = f" AND {target} IS NOT NULL" if src.missing_target == "drop" else ""
        params["reach"] = reach
        history = (f"SELECT * FROM (SELECT * FROM {relation} WHERE {time_col} < :first{known} "
                   f"ORDER BY {time_col} DESC LIMIT :reach) AS ratchet_history")
    sql = f"{history} UNION ALL {rows}" if rows else history
    result = _execute(spec, conn, f"SELECT * FROM ({sql}) AS ratchet_window ORDER BY {time_col}", params)
    return Window(tuple(result.keys()), [tuple(row) for row in result])


def read_event(spec: ModelSpec, conn: Connection, row_id: str) -> Window:
    """The source's row whose `source.id` is `row_id` (compared as text, so '12' finds the integer 12 and a wrong
    type is no SQL error): an event has no lags, so its row is all a prediction reads.

    Raises:
        DataError: the source's SQL fails.
    """
    quote = conn.dialect.identifier_preparer.quote
    result = _execute(spec, conn, f"SELECT * FROM {_relation(spec, conn)} WHERE CAST({quote(spec.source.id)} AS TEXT)"
                                  f" = :row_id", {"row_id": row_id})
    return Window(tuple(result.keys()), [tuple(row) for row in result])


def source_columns(spec: ModelSpec, conn: Connection) -> tuple[str, ...]:
    """The source's column names, read without reading a row (what a health check compares a contract with).

    Raises:
        DataError: the source's SQL fails.
    """
    return tuple(_execute(spec, conn, f"SELECT * FROM {_relation(spec, conn)} WHERE false", {}).keys())


def contract_problem(spec: ModelSpec) -> str | None:
    """Why the source cannot give `spec` its inputs (a version's contract: a column dropped), None when it can: a
    read of the column names alone, for the page to say so before a task or a request fails on it."""
    engine = engine_for(spec)
    try:
        with engine.connect() as conn:
            require_columns(spec, source_columns(spec, conn))
    except DataError as exc:
        return str(exc)
    finally:
        engine.dispose()
    return None


def _relation(spec: ModelSpec, conn: Connection) -> str:
    """The source as a FROM item: its quoted table, or its query as a subquery."""
    src = spec.source
    if src.table:
        quote = conn.dialect.identifier_preparer.quote
        return ".".join(quote(part) for part in src.table.split("."))
    return f"({src.query.strip().rstrip(';')}) AS ratchet_source"


def _execute(spec: ModelSpec, conn: Connection, sql: str, params: dict[str, Any]) -> Any:
    """Run a read of the source; its own SQL errors (no such table or column, a bad query) are a DataError."""
    from sqlalchemy import text
    from sqlalchemy.exc import DataError as SQLDataError
    from sqlalchemy.exc import ProgrammingError

    try:
        return conn.execute(text(sql), params)
    except (ProgrammingError, SQLDataError) as exc:
        raise DataError(f"model {spec.name!r}: cannot read {source_name(spec)}: {str(exc.orig or exc).strip()}"
                        ) from None


def feature_columns(spec: ModelSpec, columns: Iterable[str]) -> list[str]:
    """The declared `source.features`, else every column (of a frame, or named) but the time, the series keys, the
    row id and the target."""
    src = spec.source
    if src.features is not None:
        return list(src.features)
    return [c for c in columns if c not in (src.time_column, *src.series, src.id, src.target)]


def require_columns(spec: ModelSpec, columns: Iterable[str]) -> None:
    """Raise DataError unless the source's columns include the row key, the target and the declared features."""
    src = spec.source
    columns = list(columns)
    missing = [c for c in dict.fromkeys((src.key.time, *src.key.columns, src.target, *(src.features or ())))
               if c not in columns]
    if missing:
        trained = (f"; v{spec.contract_of} was trained on them (its feature contract) and cannot predict without "
                   "them" if spec.contract_of is not None else "")
        raise DataError(f"{spec.label}: missing columns {missing}; the source has {columns}{trained}")


def validate_frame(spec: ModelSpec, frame: pd.DataFrame, *, whole_source: bool = True) -> pd.DataFrame:
    """Check columns, types, target and timestamps; return the frame with a tz-naive datetime time column.

    `whole_source=False` validates a slice (the rows a prediction reads): a slice may have a single class or
    no target at all (its rows are then left out), and rows left out are logged at debug level only.

    Raises:
        DataError: naming the model, the column and the problem (missing, empty, duplicate or
            unordered timestamps, NaN targets, a single class, a non-numeric feature).
    """
    src = spec.source
    time = src.key.time
    prefix = spec.label
    require_columns(spec, frame.columns)
    unsliced = [c for c in spec.evaluation.slices if c not in frame.columns]
    if whole_source and unsliced:
        raise DataError(f"{prefix}: evaluation.slices names columns {unsliced} the source does not have; it has "
                        f"{list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{prefix}: {source_name(spec)} returned no rows")
    frame = frame.copy(deep=False)  # columns are replaced, never written into: the rows read keep their values
    try:
        times = naive_times(frame[time])
    except (ValueError, TypeError) as exc:
        raise DataError(f"{prefix}: time column {time!r} is not a date/time ({exc})") from None
    if times.isna().any():
        raise DataError(f"{prefix}: time column {time!r} has {int(times.isna().sum())} empty values")
    frame[time] = times
    repeated = frame.duplicated(list(src.key.columns)).to_numpy()
    if repeated.any():
        if src.id:
            first = frame.loc[repeated, src.id].tolist()[0]  # a plain value: 103, not np.int64(103)
            raise DataError(f"{prefix}: duplicate ids in {src.id!r} (source.id), first {first!r} "
                            f"({int(repeated.sum())} duplicates); each event needs its own id")
        if not src.series:
            raise DataError(f"{prefix}: duplicate timestamps in {time!r}, first {times[repeated].iloc[0]} "
                            f"({int(repeated.sum())} duplicates)")
        first = frame.loc[repeated, list(src.key.columns)].iloc[0]
        raise DataError(f"{prefix}: duplicate rows for series {list(src.series)} and time {time!r}, first "
                        f"{src.key.describe(tuple(first))} ({int(repeated.sum())} duplicates); one row per series "
                        f"and time")
    backwards = np.flatnonzero(np.diff(times.to_numpy()) < np.timedelta64(0))
    if backwards.size:
        i = int(backwards[0])
        raise DataError(f"{prefix}: timestamps in {time!r} are not in order: row {i + 1} "
                        f"({times.iloc[i + 1]}) comes after row {i} ({times.iloc[i]}); add ORDER BY to the query")
    resolved = frequency.resolve(spec, frame, whole_source=whole_source)
    target = frame[src.target]
    unknown = target.isna()
    if spec.task == "regression" and (~unknown).any() and not pd.api.types.is_numeric_dtype(target[~unknown]):
        raise DataError(f"{prefix}: target {src.target!r} must be numeric for regression, got {target.dtype}")
    if unknown.any() and src.events:
        log.log(logging.INFO if whole_source else logging.DEBUG, "%s: %d events are not yet labelled (%r is empty); "
                "they are scored once their labels arrive", prefix, int(unknown.sum()), src.target)
        frame, times, target = frame[~unknown], times[~unknown], target[~unknown]
        if frame.empty and whole_source:
            raise DataError(f"{prefix}: no event is labelled yet ({src.target!r} is empty in every row)")
    elif unknown.any():
        what = (f"target {src.target!r} has {int(unknown.sum())} missing values (NaN), "
                f"first at {times[unknown].iloc[0]}")
        if src.missing_target == "error":
            raise DataError(f"{prefix}: {what} (source.missing_target: error; 'drop' leaves those rows out)")
        log.log(logging.WARNING if whole_source else logging.DEBUG,
                "%s: %s; those rows are left out (source.missing_target: drop)", prefix, what)
        frame, times, target = frame[~unknown], times[~unknown], target[~unknown]
        if frame.empty and whole_source:
            raise DataError(f"{prefix}: every row's target {src.target!r} is missing")
    if (spec.task == "classification" and pd.api.types.is_float_dtype(target) and len(target)
            and bool(np.all(np.mod(target.to_numpy(), 1) == 0))):
        # integer class labels read as floats because a row had none (SQL NULL): the classes stay 0 and 1, so a
        # window with unlabelled rows names the classes as training without them did
        target = target.astype("int64")
        frame[src.target] = target
    if whole_source and spec.task == "classification" and target.nunique() < 2:
        raise DataError(f"{prefix}: target {src.target!r} has a single class {target.iloc[0]!r}; "
                        "a classifier needs at least two")
    for column in feature_columns(spec, frame):
        if column in src.categorical:
            frame[column] = category_texts(frame[column])
        elif pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype(float)
        elif not pd.api.types.is_numeric_dtype(frame[column]):
            raise DataError(f"{prefix}: feature {column!r} is not numeric ({frame[column].dtype}); "
                            f"declare it in source.categorical or drop it from source.features")
    frame.index = pd.RangeIndex(len(frame))  # as reset_index(drop=True) would, without copying millions of rows
    frame.attrs[DROPPED_MISSING_TARGET] = 0 if src.events else int(unknown.sum())
    frame.attrs[frequency.FREQUENCY] = resolved
    return frame


def labelled_end(spec: ModelSpec, end: Any) -> pd.Timestamp:
    """Where rows with mature labels end: `end` less `source.label_delay_days`. Training, back-test months and
    now-test windows stop here, so no verdict rests on the few labels that arrive early (often not a fair
    sample: a default is known before a repayment)."""
    return naive_utc(end) - pd.Timedelta(days=spec.source.label_delay_days)


def unlabelled(spec: ModelSpec, raw: pd.DataFrame, start: Any, end: Any) -> int:
    """How many rows read (`read_rows`) from `start` to before `end` have no label yet (an empty target)."""
    src = spec.source
    if src.target not in raw or src.key.time not in raw:
        return 0
    empty = raw[src.target].isna().to_numpy()
    times = naive_times(raw.loc[empty, src.key.time])
    return int(((times >= naive_utc(start)) & (times < naive_utc(end))).sum())


def naive_times(column: pd.Series) -> pd.Series:
    """A time column as read, as naive UTC datetimes (what every validated frame holds).

    Raises:
        ValueError, TypeError: a value is not a date/time.
    """
    times = pd.to_datetime(column)
    return times.dt.tz_convert("UTC").dt.tz_localize(None) if times.dt.tz is not None else times


def is_empty(value: Any) -> bool:
    """Whether a single value read or sent is empty: None, NaN or pandas' NA."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def category_text(value: Any) -> str:
    """A categorical value as the text the one-hot encoder sees: `MISSING_CATEGORY` when empty, a whole number
    without a decimal point (3 and 3.0 are both '3', whether or not an empty value made pandas read the column
    as floats), anything else as its text."""
    if is_empty(value):
        return MISSING_CATEGORY
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Number):
        number = float(value)
        return str(int(number)) if number.is_integer() else str(number)
    return str(value)


def category_texts(column: pd.Series) -> np.ndarray:
    """`category_text` of every value of a column, computed once per distinct value (a column of 5 million events
    has a handful) and shared by its rows. A column mixing kinds (True beside 1, equal as keys) is written value by
    value."""
    if pd.api.types.infer_dtype(column, skipna=True) in ("mixed", "mixed-integer"):
        return column.map(category_text).to_numpy(dtype=object)
    codes, distinct = pd.factorize(column, use_na_sentinel=True)
    texts = np.array([*(category_text(value) for value in distinct), MISSING_CATEGORY], dtype=object)
    return texts.take(codes)  # an empty value's code, -1, takes MISSING_CATEGORY


def require_rows(spec: ModelSpec, frame: pd.DataFrame, minimum: int, what: str) -> None:
    """Raise DataError when the frame has fewer than `minimum` rows for `what`."""
    if len(frame) < minimum:
        raise DataError(f"model {spec.name!r}: too little history for {what}: {len(frame)} rows, "
                        f"at least {minimum} needed")
