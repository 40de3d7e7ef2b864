"""Data sources, their validation, lag features, month partitions and fingerprints.

A model's data is one row per timestamp (daily), read from a PostgreSQL table or SELECT
query. Everything downstream (search, back-test, now-test) builds features here, so the
stored estimators always see columns built the same way.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ratchet.baselines import LAG_1, LAG_7

BASELINE_LAGS = {1: LAG_1, 7: LAG_7}


class DataError(ValueError):
    """A model's data cannot be used: the message names the model, the column and the problem."""


def _naive_utc(value) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _engine_for(spec, url: str | None):
    from ratchet import settings
    from ratchet.registry.db import make_engine

    if spec.source.conn_id:
        from airflow.sdk import BaseHook

        return make_engine(settings.url_from_connection(BaseHook.get_connection(spec.source.conn_id)))
    return make_engine(url or settings.database_url())


def _table_sql(engine, spec, end) -> tuple[str, dict]:
    quote = engine.dialect.identifier_preparer.quote
    name = ".".join(quote(part) for part in spec.source.table.split("."))
    time_col = quote(spec.source.time_column)
    where, params = "", {}
    if end is not None:
        where, params = f" WHERE {time_col} < :end", {"end": end.to_pydatetime()}
    return f"SELECT * FROM {name}{where} ORDER BY {time_col}", params


def read_source(spec, *, url: str | None = None, end=None) -> pd.DataFrame:
    """Read and validate the model's rows (only those before `end` when given), sorted by time."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    end = _naive_utc(end)
    engine = _engine_for(spec, url)
    what = f"table {spec.source.table}" if spec.source.table else "query"
    try:
        with engine.connect() as conn:
            if spec.source.table:
                sql, params = _table_sql(engine, spec, end)
                frame = pd.read_sql(text(sql), conn, params=params)
            else:
                frame = pd.read_sql(text(spec.source.query), conn)
    except SQLAlchemyError as exc:
        raise DataError(f"model {spec.name!r}: cannot read {what}: {str(exc.orig or exc).strip()}") from None
    finally:
        engine.dispose()
    frame = validate_frame(spec, frame)
    if end is not None and spec.source.query:
        frame = frame[frame[spec.source.time_column] < end].reset_index(drop=True)
    return frame


def feature_columns(spec, frame: pd.DataFrame) -> list[str]:
    if spec.source.features is not None:
        return list(spec.source.features)
    return [c for c in frame.columns if c not in (spec.source.time_column, spec.source.target)]


def validate_frame(spec, frame: pd.DataFrame) -> pd.DataFrame:
    """Check columns, types, target and timestamps; return the frame with a tz-naive datetime time column."""
    src = spec.source
    prefix = f"model {spec.name!r}"
    wanted = [src.time_column, src.target, *(src.features or ())]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise DataError(f"{prefix}: missing columns {missing}; the source has {list(frame.columns)}")
    if frame.empty:
        raise DataError(f"{prefix}: the source returned no rows")
    frame = frame.copy()
    try:
        times = pd.to_datetime(frame[src.time_column])
    except (ValueError, TypeError) as exc:
        raise DataError(f"{prefix}: time column {src.time_column!r} is not a date/time ({exc})") from None
    if times.dt.tz is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    if times.isna().any():
        raise DataError(f"{prefix}: time column {src.time_column!r} has {int(times.isna().sum())} empty values")
    frame[src.time_column] = times
    duplicated = times[times.duplicated()]
    if not duplicated.empty:
        raise DataError(f"{prefix}: duplicate timestamps in {src.time_column!r}, first {duplicated.iloc[0]} "
                        f"({len(duplicated)} duplicates)")
    backwards = np.flatnonzero(np.diff(times.to_numpy()) < np.timedelta64(0))
    if backwards.size:
        i = int(backwards[0])
        raise DataError(f"{prefix}: timestamps in {src.time_column!r} are not in order: row {i + 1} "
                        f"({times.iloc[i + 1]}) comes after row {i} ({times.iloc[i]}); add ORDER BY to the query")
    target = frame[src.target]
    if spec.task == "regression" and not pd.api.types.is_numeric_dtype(target):
        raise DataError(f"{prefix}: target {src.target!r} must be numeric for regression, got {target.dtype}")
    if target.isna().any():
        first = times[target.isna()].iloc[0]
        raise DataError(f"{prefix}: target {src.target!r} has {int(target.isna().sum())} missing values "
                        f"(NaN), first at {first}")
    if spec.task == "classification" and target.nunique() < 2:
        raise DataError(f"{prefix}: target {src.target!r} has a single class {target.iloc[0]!r}; "
                        "a classifier needs at least two")
    for column in feature_columns(spec, frame):
        if column in src.categorical:
            frame[column] = frame[column].astype("string").fillna("<missing>").astype(object)
        elif pd.api.types.is_bool_dtype(frame[column]):
            frame[column] = frame[column].astype(float)
        elif not pd.api.types.is_numeric_dtype(frame[column]):
            raise DataError(f"{prefix}: feature {column!r} is not numeric ({frame[column].dtype}); "
                            f"declare it in source.categorical or drop it from source.features")
    return frame.reset_index(drop=True)


def require_rows(spec, frame: pd.DataFrame, minimum: int, what: str) -> None:
    if len(frame) < minimum:
        raise DataError(f"model {spec.name!r}: too little history for {what}: {len(frame)} rows, "
                        f"at least {minimum} needed")


def lag_name(lag: int) -> str:
    return f"target_lag_{lag}"


def make_xy(spec, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features (with target lags by calendar day), target and times, aligned.

    A lag is the target exactly `k` days earlier, looked up by date, so gaps in the data never
    turn into wrong lags. Rows lacking one of the model's own lags are dropped; the baselines'
    lag columns may be empty (the baselines fall back to the training mean).
    """
    src = spec.source
    times = frame[src.time_column]
    by_time = pd.Series(frame[src.target].to_numpy(), index=times)
    X = frame[feature_columns(spec, frame)].copy()
    for lag in src.target_lags:
        X[lag_name(lag)] = by_time.reindex(times - pd.Timedelta(days=lag)).to_numpy()
    for lag, column in BASELINE_LAGS.items():
        X[column] = by_time.reindex(times - pd.Timedelta(days=lag)).to_numpy()
    keep = X[[lag_name(lag) for lag in src.target_lags]].notna().all(axis=1).to_numpy()
    return (X[keep].reset_index(drop=True), frame[src.target][keep].reset_index(drop=True),
            times[keep].reset_index(drop=True))


def make_estimator(spec, estimator_spec, params: dict):
    """The estimator of a trial or version: one-hot categorical features, median-imputed numeric ones.

    The baselines' helper lag columns are dropped here, so a learned model only sees the lags
    its spec asks for.
    """
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = make_column_selector(pattern=r"^(?!_baseline_lag_)", dtype_include=np.number)
    prepare = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore"), list(spec.source.categorical)),
         ("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric)],
        remainder="drop",
    )
    estimator = estimator_spec.load_class()(**{**estimator_spec.params, **params})
    return Pipeline([("prepare", prepare), ("estimator", estimator)])


def month_bounds(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) of a 'YYYY-MM' month."""
    start = pd.Timestamp(f"{month}-01")
    return start, start + pd.offsets.MonthBegin(1)


def complete_months(times: pd.Series, months: int, *, before=None) -> list[str]:
    """The last `months` complete calendar months of the data's span, oldest first.

    Every calendar month between the first and the last row counts, so a month the data lacks stays
    in the list (and the back-test reports it as empty) instead of being silently replaced by an older one.
    """
    if times.empty:
        return []
    last = pd.Timestamp(times.max())
    keys = list(pd.period_range(pd.Timestamp(times.min()), last, freq="M").strftime("%Y-%m"))
    complete = [k for k in keys if month_bounds(k)[1] - pd.Timedelta(days=1) <= last.normalize()]
    limit = _naive_utc(before)
    if limit is not None:
        complete = [k for k in complete if month_bounds(k)[1] <= limit]
    return complete[-months:]


def _rows_digest(frame: pd.DataFrame) -> bytes:
    if frame.empty:
        return b""
    return pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()


def month_fingerprints(spec, frame: pd.DataFrame) -> dict[str, str]:
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
    return hashlib.sha256(_rows_digest(frame)).hexdigest()


def rows_between(spec, frame: pd.DataFrame, start, end) -> pd.Series:
    """Boolean mask of rows with start <= time < end."""
    times = frame[spec.source.time_column]
    return (times >= _naive_utc(start)) & (times < _naive_utc(end))
