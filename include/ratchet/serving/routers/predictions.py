"""GET and POST /v1/models/{model}/predict: a feature id's row read from the source, or rows sent in the body."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from ratchet.exceptions import PredictError
from ratchet.serving.dependencies import BEARER, ModelName, ServiceDep, exchange_of
from ratchet.serving.exchange import MODELS_PATH
from ratchet.serving.routers import in_thread
from ratchet.serving.rows import parse_time_key, series_query
from ratchet.serving.schemas import PredictionOut, RowsIn, RowsOut, errors, prediction_out
from ratchet.serving.service import series_key

router = APIRouter(prefix=MODELS_PATH, tags=["predict"], dependencies=[BEARER],
                   responses=errors(401, 404, 422, 503, 504))


@router.get("/{model}/predict", summary="Predict the row of a feature id (its time key, or an event's id)",
            response_model=PredictionOut,
            description=("Reads the row whose time column equals `at` (an event model: whose `source.id` equals "
                         "`id`) and the rows its target lags reach from the model's source, builds the features as "
                         "training did, and answers with the champion (or the split's candidate). Answers are cached "
                         "for `serving.cache_ttl_seconds` per version and row fingerprint; a promotion drops them at "
                         "once."))
async def predict_by_id(
        model: ModelName, service: ServiceDep, request: Request,
        at: Annotated[str | None, Query(description="the feature id: the row's time key, ISO 8601 (2026-11-24); a "
                                                    "panel also takes each `source.series` column "
                                                    "(`&store=12&dept=3`)")] = None,
        id: Annotated[str | None, Query(description="an event model's row id (`source.id`), instead of `at`")] = None,
) -> Response:
    """The answer of one feature id, from the cache when it holds it."""
    state, exchange = service.servable(model), exchange_of(request)
    series = series_query(state.spec, request.query_params)
    if not state.spec.source.events:
        if at is None:
            raise PredictError("query parameter 'at': Field required (the row's time key, ISO 8601)")
        exchange.feature_id = parse_time_key(at, "query parameter 'at'", state.spec)
    feature_id = exchange.feature_id
    exchange.series = series_key(state.spec, series)
    answered = (service.cached(state, feature_id, series)
                or await in_thread(service.answer_by_id, state, feature_id, series))
    exchange.answered(state, [answered])
    return JSONResponse(prediction_out(state, answered))


@router.post("/{model}/predict", summary="Predict feature rows sent in the body", response_model=RowsOut,
             responses=errors(408, 413, 415),
             description=("Each row holds the time column and the model's features (a row may also hold the target, "
                          "which later rows of the request use as their lags). Lags missing from the request come "
                          "from the source rows before the first row. Each row is routed by its time key like an id. "
                          "The body is JSON (`Content-Type: application/json`) of at most RATCHET_API_MAX_BODY_BYTES."))
async def predict_rows(model: ModelName, body: RowsIn, service: ServiceDep, request: Request) -> Response:
    """The answers of the rows sent, in the request's order."""
    state = service.servable(model)
    answered = await in_thread(service.answer_records, state, body.rows)
    exchange_of(request).answered(state, answered)
    return JSONResponse({"model": state.name, "predictions": [prediction_out(state, row) for row in answered]})
