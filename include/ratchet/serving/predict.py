"""Predictions of the champion stored in PostgreSQL (`ratchet predict MODEL --input FILE.csv`).

Features are built exactly as in now-tests: the input rows are appended to the source's history
before the first input time (`sources.read_source(..., end=first)`), validated with the source's
own checks (`sources.validate_frame`) and turned into features by `features.make_xy`. So target lags
come from the history, or from earlier input rows when the input has a target column. A row
whose lags still cannot be computed (the target of its previous days is unknown) is an error
naming the row's time, never a silent gap.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.exceptions import PredictError
from ratchet.modeling import sources
from ratchet.modeling.features import make_xy
from ratchet.registry import Registry
from ratchet.specs import get_spec

if TYPE_CHECKING:
    from ratchet.registry.entities import Version
    from ratchet.specs.model import ModelSpec

_ESTIMATORS: dict[tuple[str, int, str], Any] = {}  # (model, version, sha256) -> fitted estimator


def champion_estimator(registry: Registry, model: str) -> tuple[Version, Any]:
    """The champion version and its fitted estimator, loaded once per process and (version, checksum).

    Raises:
        PredictError: the model has no champion yet.
    """
    row = registry.champion(model)
    if row is None:
        raise PredictError(f"model {model!r} has no champion yet; promote a version with the ratchet_promote DAG")
    key = (model, row.version, row.artifact_sha256)
    if key not in _ESTIMATORS:
        _ESTIMATORS[key] = registry.load_estimator(model, row.version)
    return row, _ESTIMATORS[key]


def predict_frame(registry: Registry, spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Predict each input row with the champion; returns time, prediction (and probability) and version.

    Raises:
        PredictError: no rows, no time column, missing feature columns, or lags that cannot be computed.
    """
    rows = input_rows(spec, frame)
    history = sources.read_source(spec, end=rows[spec.source.time_column].iloc[0])
    X, times = features_of_rows(spec, history, rows)
    version, estimator = champion_estimator(registry, spec.name)
    out = pd.DataFrame({spec.source.time_column: times.to_numpy(), "prediction": estimator.predict(X)})
    if spec.task == "classification" and hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        if proba.shape[1] == 2:
            out["probability"] = proba[:, 1]
    out["version"] = version.version
    return out


def input_rows(spec: ModelSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows to predict, their time column parsed to naive UTC and sorted.

    Raises:
        PredictError: no rows, no time column, or a time that is not a date/time.
    """
    src = spec.source
    if frame.empty:
        raise PredictError(f"input for model {spec.name!r} has no rows")
    if src.time_column not in frame.columns:
        raise PredictError(f"input for model {spec.name!r} lacks the time column {src.time_column!r}")
    rows = frame.copy()
    try:
        rows[src.time_column] = pd.to_datetime(rows[src.time_column], utc=True).dt.tz_localize(None)
    except (ValueError, TypeError) as exc:
        raise PredictError(f"input column {src.time_column!r} is not a date/time: {exc}") from None
    return rows.sort_values(src.time_column, kind="stable").reset_index(drop=True)


def features_of_rows(spec: ModelSpec, history: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The features of `rows` (from `input_rows`) and their times, target lags taken from `history` (source rows
    before the first input row, or at least those the lags reach; validated here with the rows, so rows without
    a target are left out as a full read leaves them out) and from earlier input rows.

    The pandas path of `ratchet predict`, the reference the REST service's plain-Python `serving.features.build`
    is tested against (tests/serving/test_parts.py, test_service.py).

    Raises:
        PredictError: missing feature columns, or a row whose lags cannot be computed.
        DataError: the rows fail the source's own checks (duplicate timestamps, a text feature...).
    """
    src = spec.source
    missing = [c for c in sources.feature_columns(spec, history) if c not in rows.columns]
    if missing:
        raise PredictError(f"input for model {spec.name!r} lacks column(s) {missing}")
    rows = rows.reindex(columns=history.columns)  # source columns the model does not use may be absent
    # unknown targets get a valid placeholder for validation, then become unknown (NaN) again for the lags
    known = history[src.target].dropna()
    placeholder = known.iloc[-1] if len(known) else (0.0 if spec.task == "regression" else "")
    unknown = rows[src.target].isna().to_numpy()
    rows[src.target] = rows[src.target].where(~unknown, placeholder)
    combined = sources.validate_frame(spec, pd.concat([history, rows], ignore_index=True), whole_source=False)
    target = combined[src.target]
    combined[src.target] = target.astype(float if pd.api.types.is_numeric_dtype(target) else object)
    combined.loc[combined[src.time_column].isin(rows.loc[unknown, src.time_column]), src.target] = np.nan

    X, _, times = make_xy(spec, combined)
    wanted = (times >= rows[src.time_column].iloc[0]).to_numpy()
    lacking = sorted(set(rows[src.time_column]) - set(times[wanted]))
    if lacking:
        raise PredictError(
            f"cannot compute target lags {list(src.target_lags)} for {len(lacking)} input row(s), first at "
            f"{lacking[0]}: the target of the days before is neither in the input nor in the source")
    return X[wanted].reset_index(drop=True), times[wanted].reset_index(drop=True)


def run_predict(args: argparse.Namespace) -> int:
    """The `ratchet predict` command: read the CSV, predict with the champion, write CSV."""
    if not args.input.is_file():
        raise PredictError(f"input file {args.input} does not exist")
    spec = get_spec(args.model)
    try:
        rows = pd.read_csv(args.input)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PredictError(f"input file {args.input} is not a readable CSV file: {exc}") from None
    registry = Registry.from_settings()
    try:
        result = predict_frame(registry, spec, rows)
    finally:
        registry.dispose()
    result.to_csv(args.output if args.output else sys.stdout, index=False)
    return 0
