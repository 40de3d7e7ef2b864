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
    rows = rows.sort_values(src.time_column, kind="stable").reset_index(drop=True)
    history = sources.read_source(spec, end=rows[src.time_column].iloc[0])
    missing = [c for c in sources.feature_columns(spec, history) if c not in rows.columns]
    if missing:
        raise PredictError(f"input for model {spec.name!r} lacks column(s) {missing}")
    # unknown targets get a valid placeholder for validation, then become unknown (NaN) again for the lags
    placeholder = history[src.target].iloc[-1]
    if src.target in rows.columns:
        unknown = rows[src.target].isna().to_numpy()
        rows[src.target] = rows[src.target].where(~unknown, placeholder)
    else:
        unknown, rows[src.target] = np.ones(len(rows), dtype=bool), placeholder
    combined = sources.validate_frame(spec, pd.concat([history, rows[history.columns]], ignore_index=True))
    target = combined[src.target]
    combined[src.target] = target.astype(float if pd.api.types.is_numeric_dtype(target) else object)
    combined.loc[len(history) + np.flatnonzero(unknown), src.target] = np.nan

    version, estimator = champion_estimator(registry, spec.name)
    X, _, times = make_xy(spec, combined)
    wanted = (times >= rows[src.time_column].iloc[0]).to_numpy()
    lacking = sorted(set(rows[src.time_column]) - set(times[wanted]))
    if lacking:
        raise PredictError(
            f"cannot compute target lags {list(src.target_lags)} for {len(lacking)} input row(s), first at "
            f"{lacking[0]}: the target of the days before is neither in the input nor in the source")
    out = pd.DataFrame({src.time_column: times[wanted].to_numpy(), "prediction": estimator.predict(X[wanted])})
    if spec.task == "classification" and hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X[wanted])
        if proba.shape[1] == 2:
            out["probability"] = proba[:, 1]
    out["version"] = version.version
    return out


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
