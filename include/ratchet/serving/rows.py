"""Features of a feature id (the row's time key) or of rows sent in a request, built as training built them.

A feature id reads one bounded window of the model's source (the row and the rows its target lags reach:
`sources.read_lag_window`), never the whole table, and turns it into features with the code `ratchet predict`
uses (`predict.features_of_rows`: the source's own checks, then `features.make_xy`). So the service answers
an id exactly as `ratchet predict` answers that row. The window's fingerprint (a hash of every value read)
keys the cached answers: a corrected row or lag gives a new fingerprint once it is read again.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ratchet.exceptions import DataError, NotFoundError, PredictError
from ratchet.modeling import sources
from ratchet.serving.predict import features_of_rows, input_rows

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ratchet.specs.model import ModelSpec


@dataclass(frozen=True)
class RowFeatures:
    """The features of one feature id, and the fingerprint of the source rows they were built from."""

    feature_id: dt.datetime
    fingerprint: str
    X: pd.DataFrame


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of a frame's column names and values (row order included)."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


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

    def by_id(self, spec: ModelSpec, feature_id: dt.datetime) -> RowFeatures:
        """The features of the source row whose time is `feature_id`.

        Raises:
            NotFoundError: the source has no row at that time.
            PredictError: its target lags cannot be computed (the days they reach have no target).
            DataError: the source's rows fail its checks, or cannot be read.
        """
        src = spec.source
        with self._engine(spec).connect() as conn:
            window = sources.read_lag_window(spec, conn, feature_id, feature_id)
        window[src.time_column] = pd.to_datetime(window[src.time_column], utc=True).dt.tz_localize(None)
        at = (window[src.time_column] == pd.Timestamp(feature_id)).to_numpy()
        if not at.any():
            where = f"table {src.table}" if src.table else "its query"
            raise NotFoundError(f"model {spec.name!r} has no row with {src.time_column} = {feature_id.isoformat()} "
                                f"in {where}")
        X, _ = features_of_rows(spec, window[~at], input_rows(spec, window[at]))
        return RowFeatures(feature_id, fingerprint(window), X)

    def of_records(self, spec: ModelSpec, records: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[dt.datetime]]:
        """Features and time keys of rows sent in a request, in the request's order; their lags come from the
        source rows before the first of them and from earlier rows of the request (a row may carry its target).

        Raises:
            PredictError: naming the row and field: a missing column, a bad time key or value, rows that fail
                the source's checks (two rows with one time...), lags that cannot be computed.
            DataError: the source's own rows cannot be read or used.
        """
        src = spec.source
        times = [parse_time_key(record.get(src.time_column), f"rows[{i}].{src.time_column}")
                 for i, record in enumerate(records)]
        with self._engine(spec).connect() as conn:
            window = sources.read_lag_window(spec, conn, min(times))
        history = self._history(spec, window)
        _check_records(spec, records, sources.feature_columns(spec, window))
        frame = pd.DataFrame.from_records(records)
        frame[src.time_column] = times
        try:
            X, ordered = features_of_rows(spec, history, input_rows(spec, frame))
        except DataError as exc:  # the source's checks failed on the request's rows
            raise PredictError(f"rows: {exc}") from None
        position = pd.Series(range(len(ordered)), index=ordered.to_numpy())
        return X.iloc[position[times].to_numpy()].reset_index(drop=True), times

    @staticmethod
    def _history(spec: ModelSpec, window: pd.DataFrame) -> pd.DataFrame:
        """The window's rows before the predicted ones, validated like a full read (rows without target dropped)."""
        return sources.validate_frame(spec, window, whole_source=False) if len(window) else window

    def dispose(self) -> None:
        """Close every pooled connection."""
        with self._lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


def parse_time_key(value: Any, field: str) -> dt.datetime:
    """A time key from a request (ISO 8601 date or date-time; an offset is converted to UTC) as naive UTC.

    Raises:
        PredictError: naming `field` and what is expected.
    """
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is not None:
                parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
            return parsed
    raise PredictError(f"{field}: expected a date or date-time in ISO 8601 (e.g. 2026-11-24 or 2026-11-24T06:00:00Z), "
                     f"got {value!r}")


def _check_records(spec: ModelSpec, records: list[dict[str, Any]], columns: list[str]) -> None:
    """Every row has the model's feature columns, numbers (or null) where the model expects numbers."""
    src = spec.source
    for i, record in enumerate(records):
        missing = [c for c in columns if c not in record]
        if missing:
            raise PredictError(f"rows[{i}]: missing column(s) {missing}; model {spec.name!r} needs "
                               f"{[src.time_column, *columns]}")
        numeric = [c for c in columns if c not in src.categorical]
        if spec.task == "regression" and src.target in record:
            numeric.append(src.target)
        for column in numeric:
            value = record[column]
            if value is not None and not isinstance(value, int | float):
                raise PredictError(f"rows[{i}].{column}: expected a number or null, got {value!r}")
        for column in src.categorical:
            value = record[column]
            if value is not None and not isinstance(value, str | int | float):
                raise PredictError(f"rows[{i}].{column}: expected a category (text or number) or null, got {value!r}")
