"""Predictions of the champion stored in PostgreSQL (`ratchet predict MODEL --input FILE.csv`).

The input rows take the REST service's path (`serving.rows.FeatureReader.of_records`): the source rows their
target lags reach are read in one bounded query, and `serving.features.build` turns them into the model input
with the values training's `features.make_xy` builds (tests/serving/test_request_features.py holds the two
builders equal). So target lags come from the source, or from earlier input rows when the input has a target
column, and `ratchet predict` answers a row exactly as `POST /v1/models/{model}/predict` answers it. A row whose
lags still cannot be computed (the target of its previous days is unknown) is an error naming the row's time,
never a silent gap.
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import pandas as pd

from ratchet.exceptions import PredictError
from ratchet.registry import Registry
from ratchet.serving.routing import Estimators
from ratchet.serving.rows import FeatureReader
from ratchet.specs import get_spec

if TYPE_CHECKING:
    from ratchet.registry.entities import Version
    from ratchet.specs.model import ModelSpec


def champion_estimator(registry: Registry, estimators: Estimators, model: str) -> tuple[Version, Any]:
    """The champion version and its fitted estimator, from the one estimator cache (`routing.Estimators`: loaded
    once per (version, checksum)).

    Raises:
        PredictError: the model has no champion yet.
    """
    row = registry.champion(model)
    if row is None:
        raise PredictError(f"model {model!r} has no champion yet; promote a version with the ratchet_promote DAG")
    return row, estimators.get(row)


def predict_frame(registry: Registry, spec: ModelSpec, frame: pd.DataFrame,
                  estimators: Estimators | None = None) -> pd.DataFrame:
    """Predict each input row with the champion; returns its series columns (an event's id), time, prediction (and
    probability) and version, in time order.

    Raises:
        PredictError: no rows, no time column, missing feature columns, or lags that cannot be computed.
        DataError: the rows fail the source's own checks, or the source cannot be read.
    """
    version, estimator = champion_estimator(registry, estimators or Estimators(registry), spec.name)
    spec = spec.for_version(version.version, version.contract)  # the champion's inputs, not today's YAML
    time = spec.source.key.time
    records = input_records(spec, frame)
    reader = FeatureReader(registry.engine.url.render_as_string(hide_password=False))
    try:
        X, times, _ = reader.of_records(spec, records)
    finally:
        reader.dispose()
    keys = (*spec.source.series, *([spec.source.id] if spec.source.id else []))  # a row's series, an event's id
    out = pd.DataFrame({**{c: [r.get(c) for r in records] for c in keys},
                        time: pd.to_datetime(times), "prediction": estimator.predict(X)})
    if spec.task == "classification" and hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(X)
        if proba.shape[1] == 2:
            out["probability"] = proba[:, 1]
    out["version"] = version.version
    return out


def input_records(spec: ModelSpec, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The input rows as a request's records, sorted by time: times as ISO 8601 (naive UTC), values as plain
    Python (an empty cell is None), as a JSON body would carry them.

    Raises:
        PredictError: no rows, no time column, a time that is not a date/time, or a declared feature missing.
    """
    time = spec.source.key.time
    if frame.empty:
        raise PredictError(f"input for model {spec.name!r} has no rows")
    if time not in frame.columns:
        raise PredictError(f"input for model {spec.name!r} lacks the time column {time!r}")
    missing = [c for c in spec.source.features or () if c not in frame.columns]
    if missing:
        raise PredictError(f"input for {spec.label} lacks column(s) {missing}")
    rows = frame.copy()
    try:
        times = pd.to_datetime(rows[time], utc=True).dt.tz_localize(None)
    except (ValueError, TypeError) as exc:
        raise PredictError(f"input column {time!r} is not a date/time: {exc}") from None
    rows[time] = times.map(pd.Timestamp.isoformat)
    rows = rows.iloc[times.argsort(kind="stable")].astype(object)
    return rows.where(rows.notna(), None).to_dict("records")


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
