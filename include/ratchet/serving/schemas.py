"""What the REST service's routes take and answer: the OpenAPI schema, and the answers built from the service's state.

A prediction is built as a plain dict (`prediction_out`), not through pydantic: it is the hot path, and its
shape is `PredictionOut`'s.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from ratchet.serving.routing import ModelState
    from ratchet.serving.service import Answered

MAX_ROWS = 10_000


class ErrorOut(BaseModel):
    """An error: what was wrong, naming the parameter or field."""

    detail: str = Field(examples=["query parameter 'at': expected a date or date-time in ISO 8601 ..."])


class PredictionOut(BaseModel):
    """One answered row."""

    model: str
    version: int = Field(description="the version that made the prediction")
    arm: Literal["champion", "candidate"] = Field(description="which arm of the model's `serving.split` answered")
    at: str = Field(description="the feature id: the row's time key (naive UTC, ISO 8601)",
                    examples=["2026-11-24T00:00:00"])
    series: str | None = Field(None, description="a panel row's series ('store=12, dept=3'), null for a single series")
    prediction: float | int | str | bool = Field(description="a number (regression) or the predicted class")
    probabilities: dict[str, float] | None = Field(description="class probabilities (classification), else null")
    cached: bool = Field(description="whether the answer came from the service's cache")


class RowsIn(BaseModel):
    """Feature rows to predict: the time column and the model's features (and optionally the target)."""

    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ROWS, examples=[[
        {"day": "2026-11-24", "temperature": 7.5, "precipitation": 0.0, "is_holiday": 0, "promo": 1,
         "day_of_week": 1}]])


class RowsOut(BaseModel):
    """The answers of a POST, one per row, in the request's order."""

    model: str
    predictions: list[PredictionOut]


class SplitOut(BaseModel):
    """The model's `serving.split` and what it resolves to now."""

    candidate: str | int = Field(description="'trial' or a version number, as configured")
    fraction: float
    version: int | None = Field(description="the candidate version ids are routed to; null when the split is inactive")
    active: bool
    reason: str | None = Field(description="why the split is inactive (every id then goes to the champion)")


class SourceOut(BaseModel):
    """What a POST row must hold, and how lags are built."""

    time_column: str
    target: str
    features: list[str] | None = Field(description="null: every column of the source but the time and the target")
    categorical: list[str]
    target_lags: list[int]
    lags_by: str


class ModelOut(BaseModel):
    """A configured model: its champion, the versions in trial, its split."""

    model: str
    task: str | None
    champion: int | None
    candidates: list[int] = Field(description="versions in trial (newer than the champion), newest first")
    split: SplitOut | None
    cache_ttl_seconds: float | None
    error: str | None = Field(description="why the model cannot be served now, if it cannot")


class ModelDetailOut(ModelOut):
    """A model, with what POST rows must hold."""

    source: SourceOut | None


class ModelsOut(BaseModel):
    """Every configured model."""

    models: list[ModelOut]


class HealthOut(BaseModel):
    """The replica's health: database reachable, every champion loadable (what failed, never where)."""

    status: Literal["ok", "unhealthy"]
    replica: str
    database: str
    models: dict[str, str]
    detail: str | None


ERRORS = {401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
          404: {"model": ErrorOut, "description": "unknown model, no champion, or no row at that time"},
          408: {"model": ErrorOut, "description": "the body did not arrive within the time limit"},
          413: {"model": ErrorOut, "description": "the body is larger than RATCHET_API_MAX_BODY_BYTES"},
          415: {"model": ErrorOut, "description": "the body is not declared as application/json"},
          422: {"model": ErrorOut, "description": "bad input: the parameter or field is named"},
          503: {"model": ErrorOut, "description": "the database is unreachable, or the model's spec is broken"},
          504: {"model": ErrorOut, "description": "the request took longer than RATCHET_API_REQUEST_TIMEOUT_SECONDS"}}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these error statuses."""
    return {status: ERRORS[status] for status in statuses}


def prediction_out(state: ModelState, row: Answered) -> dict[str, Any]:
    """One answered row as `PredictionOut`."""
    return {"model": state.name, "version": row.arm.version.version, "arm": row.arm.name,
            "at": row.feature_id.isoformat(), "series": row.series, "prediction": row.answer.prediction,
            "probabilities": row.answer.probabilities, "cached": row.cached}


def model_out(state: ModelState, kind: type[ModelOut]) -> ModelOut:
    """A model's state as `ModelOut`, or as `ModelDetailOut` with the columns and lags POST rows must hold: the
    champion's feature contract (what it reads, whatever the YAML says now), today's YAML while it has none."""
    spec, split = state.spec, state.split
    fields: dict[str, Any] = dict(
        model=state.name, task=spec.task if spec else None,
        champion=state.champion.version.version if state.champion else None, candidates=list(state.trial),
        split=SplitOut(candidate=split.candidate, fraction=split.fraction, version=split.version,
                       active=split.version is not None, reason=split.reason) if split else None,
        cache_ttl_seconds=spec.serving.cache_ttl_seconds if spec else None,
        error=str(state.refusal) if state.refusal else None)
    if kind is ModelDetailOut:
        src = state.champion.spec.source if state.champion else spec.source if spec else None
        fields["source"] = SourceOut(
            time_column=src.time_column, target=src.target, features=list(src.features) if src.features else None,
            categorical=list(src.categorical), target_lags=list(src.target_lags), lags_by=src.lags_by) if src else None
    return kind(**fields)
