"""`ratchet serve`: the FastAPI app that serves each model's champion (and a split's candidate) over HTTP.

Routes (every one but /healthz needs `Authorization: Bearer <token>`; the OpenAPI page is /docs):
GET /v1/models, GET /v1/models/{model}, GET /v1/models/{model}/predict?at=<time key>,
POST /v1/models/{model}/predict, GET /healthz, GET /metrics. Errors are JSON `{"detail": "..."}` naming the
parameter or field; an unexpected failure is logged with its traceback here and answered 500 with its request id.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import socket
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ratchet import settings
from ratchet.exceptions import PredictError
from ratchet.registry.entities import Served
from ratchet.serving import auth
from ratchet.serving.metrics import CONTENT_TYPE, UNKNOWN_MODEL
from ratchet.serving.probes import probe_seconds
from ratchet.serving.rows import parse_time_key
from ratchet.serving.service import Answer, Refused, Service

log = logging.getLogger("ratchet.serving")
PORT_ENV = "RATCHET_SERVE_PORT"  # set by `ratchet serve` so each replica's id names its port
MAX_ROWS = 10_000
ROUTE_ID, ROUTE_ROWS = "id", "rows"


# -- what the routes answer (the OpenAPI schema) ------------------------------------------------------------
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
    """The replica's health: database reachable, every champion loadable."""

    status: Literal["ok", "unhealthy"]
    replica: str
    database: str
    models: dict[str, str]
    detail: str | None


ERRORS = {401: {"model": ErrorOut, "description": "missing or wrong bearer token"},
          404: {"model": ErrorOut, "description": "unknown model, no champion, or no row at that time"},
          422: {"model": ErrorOut, "description": "bad input: the parameter or field is named"},
          503: {"model": ErrorOut, "description": "the database is unreachable, or the model's spec is broken"}}


def replica_id() -> str:
    """host:port:pid, stable for the life of this process."""
    return f"{socket.gethostname()}:{os.environ.get(PORT_ENV, '8000')}:{os.getpid()}"


def create_app(service: Service | None = None, token: str | None = None) -> FastAPI:
    """The app (uvicorn's factory): a Service over `settings.database_url()` unless one is given.

    Raises:
        ConfigurationError: no API token or no database configured.
    """
    token = token or auth.api_token()
    if service is None:
        service = Service(settings.database_url(), replica=replica_id(), probe_seconds=probe_seconds())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(service.start)
        yield
        await run_in_threadpool(service.stop)

    app = FastAPI(
        title="Ratchet serving", version="1", lifespan=lifespan,
        description=("Predictions of each model's champion (and of a `serving.split` candidate for a hashed share "
                     "of feature ids), with the features fetched from the model's source by id, or sent as rows. "
                     "Every route but /healthz needs `Authorization: Bearer <token>`."))
    app.state.service = service
    bearer = HTTPBearer(auto_error=False, description="RATCHET_API_TOKEN, or the password of the Airflow "
                                                      "connection ratchet_api")

    async def authorized(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        """401 unless the request carries the service's bearer token (async: a plain def would cost every request
        a hop to a worker thread)."""
        if credentials is None or not credentials.credentials:
            raise Refused(401, "missing bearer token: send the header 'Authorization: Bearer <token>'")
        if not auth.token_matches(credentials.credentials, token):
            raise Refused(401, "invalid bearer token")

    guarded = [Depends(authorized)]

    app.add_middleware(_Timing)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return _refusal(request, exc.status, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _refusal(request, 422, "; ".join(_validation_message(e) for e in exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _refusal(request, exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        request_id = _request_id(request)
        log.exception("request %s %s failed (request id %s)", request.method, request.url.path, request_id)
        return _refusal(request, 500, f"internal error (request id {request_id}); the service log has the details")

    def _refusal(request: Request, status: int, detail: str) -> JSONResponse:
        """Answer an error as JSON, count it, and log it as a refused `Served` row on the predict routes."""
        route = _route_label(request)
        name = request.path_params.get("model")
        state = service.known(name) if name else None
        seconds = time.perf_counter() - getattr(request.state, "started", time.perf_counter())
        service.metrics.request(name if state else (UNKNOWN_MODEL if name else "-"), None, route, status, seconds)
        if route in (ROUTE_ID, ROUTE_ROWS):
            if state is not None and state.registered:
                service.log.add([Served(
                    model=name, version=None, request_id=_request_id(request), route=route, arm="champion",
                    feature_id=getattr(request.state, "feature_id", None), prediction=None, label=None,
                    probabilities=None, cache_hit=False,
                    latency_ms=seconds * 1000, status=status, error=detail, replica=service.replica,
                    served_at=dt.datetime.now(dt.UTC))])
            else:
                service.metrics.log_unlogged.labels(route).inc()
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    def _answered(request: Request, state: Any, route: str, rows: list[tuple[dt.datetime, Any, Answer, bool]]
                  ) -> list[dict[str, Any]]:
        """The rows as JSON, counted, and queued for the prediction log (one latency for the request)."""
        seconds = time.perf_counter() - request.state.started
        request_id, now, task = _request_id(request), dt.datetime.now(dt.UTC), state.spec.task
        out, logged = [], []
        for feature_id, arm, answer, cached in rows:
            number = arm.version.version
            out.append({"model": state.name, "version": number, "arm": arm.name, "at": feature_id.isoformat(),
                        "prediction": answer.prediction, "probabilities": answer.probabilities, "cached": cached})
            logged.append(Served(
                model=state.name, version=number, request_id=request_id, route=route, arm=arm.name,
                feature_id=feature_id, prediction=answer.prediction if task == "regression" else None,
                label=None if task == "regression" else str(answer.prediction), probabilities=answer.probabilities,
                cache_hit=cached, latency_ms=seconds * 1000, status=200, error=None, replica=service.replica,
                served_at=now))
            service.metrics.predictions.labels(state.name, str(number), arm.name, route).inc()
        versions = "+".join(str(v) for v in sorted({arm.version.version for _, arm, _, _ in rows}))
        service.metrics.request(state.name, versions, route, 200, seconds)  # '1+2': a POST both arms answered
        service.log.add(logged)
        return out

    @app.get("/v1/models", summary="Every configured model, its champion and the versions in trial",
             response_model=ModelsOut, responses={401: ERRORS[401]}, dependencies=guarded, tags=["models"])
    async def list_models(request: Request) -> ModelsOut:
        out = ModelsOut(models=[_model_out(s, ModelOut) for s in service.states()])
        service.metrics.request("-", None, "models", 200, time.perf_counter() - request.state.started)
        return out

    @app.get("/v1/models/{model}", summary="One model: champion, versions in trial, split, what POST rows hold",
             response_model=ModelDetailOut, responses={k: ERRORS[k] for k in (401, 404)}, dependencies=guarded,
             tags=["models"])
    async def get_model(request: Request, model: str = Path(description="the model's name")) -> ModelDetailOut:
        state = service.state(model)
        out = _model_out(state, ModelDetailOut)
        service.metrics.request(model, None, "model", 200, time.perf_counter() - request.state.started)
        return out

    @app.get("/v1/models/{model}/predict", summary="Predict the row of a feature id (its time key)",
             description=("Reads the row whose time column equals `at` and the rows its target lags reach from the "
                          "model's source, builds the features as training did, and answers with the champion (or the "
                          "split's candidate). Answers are cached for `serving.cache_ttl_seconds` per version and "
                          "row fingerprint; a promotion drops them at once."),
             response_model=PredictionOut, responses=ERRORS, dependencies=guarded, tags=["predict"])
    async def predict_by_id(
            request: Request, model: str = Path(description="the model's name"),
            at: str = Query(description="the feature id: the row's time key, ISO 8601 (2026-11-24)")) -> Response:
        state = service.servable(service.state(model))
        try:
            feature_id = parse_time_key(at, "query parameter 'at'")
        except PredictError as exc:
            raise Refused(422, str(exc)) from None
        request.state.feature_id = feature_id  # a refusal from here on is logged with the id asked for
        arm = state.arm_for(feature_id)
        answer = service.cached_answer(state, arm, feature_id)
        cached = answer is not None
        if answer is None:
            answer, cached = await run_in_threadpool(service.answer_by_id, state, arm, feature_id)
        if cached:
            service.metrics.cache_hits.labels(model, str(arm.version.version)).inc()
        else:
            service.metrics.cache_misses.labels(model, str(arm.version.version)).inc()
        return JSONResponse(_answered(request, state, ROUTE_ID, [(feature_id, arm, answer, cached)])[0])

    @app.post("/v1/models/{model}/predict", summary="Predict feature rows sent in the body",
              description=("Each row holds the time column and the model's features (a row may also hold the target, "
                           "which later rows of the request use as their lags). Lags missing from the request come "
                           "from the source rows before the first row. Each row is routed by its time key like an id."),
              response_model=RowsOut, responses=ERRORS, dependencies=guarded, tags=["predict"])
    async def predict_rows(request: Request, body: RowsIn, model: str = Path(description="the model's name")
                           ) -> Response:
        state = service.servable(service.state(model))
        answered = await run_in_threadpool(service.answer_records, state, body.rows)
        rows = [(feature_id, arm, answer, False) for feature_id, arm, answer in answered]
        return JSONResponse({"model": model, "predictions": _answered(request, state, ROUTE_ROWS, rows)})

    @app.get("/healthz", summary="Database reachable and every champion loadable (no token needed)",
             response_model=HealthOut, responses={503: {"model": HealthOut, "description": "unhealthy"}},
             tags=["operations"])
    async def healthz(request: Request) -> JSONResponse:
        health = await run_in_threadpool(service.health)
        body = HealthOut(status="ok" if health.healthy else "unhealthy", replica=service.replica,
                         database=health.database, models=health.models, detail=health.detail)
        status = 200 if health.healthy else 503
        service.metrics.request("-", None, "healthz", status, time.perf_counter() - request.state.started)
        return JSONResponse(body.model_dump(), status_code=status)

    @app.get("/metrics", summary="Prometheus metrics: requests, latency, cache, errors, prediction log",
             response_class=Response, responses={401: ERRORS[401]}, dependencies=guarded, tags=["operations"])
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)

    return app


class _Timing:
    """Pure ASGI middleware: notes when a request arrived (`request.state.started`), for its logged latency."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["started"] = time.perf_counter()
        await self.app(scope, receive, send)


def _model_out(state: Any, kind: type[ModelOut]) -> ModelOut:
    spec = state.spec
    split = state.split
    fields: dict[str, Any] = dict(
        model=state.name, task=spec.task if spec else None,
        champion=state.champion.version.version if state.champion else None, candidates=list(state.trial),
        split=SplitOut(candidate=split.candidate, fraction=split.fraction, version=split.version,
                       active=split.version is not None, reason=split.reason) if split else None,
        cache_ttl_seconds=spec.serving.cache_ttl_seconds if spec else None,
        error=state.refusal[1] if state.refusal else None)
    if kind is ModelDetailOut:
        src = spec.source if spec else None
        fields["source"] = SourceOut(
            time_column=src.time_column, target=src.target, features=list(src.features) if src.features else None,
            categorical=list(src.categorical), target_lags=list(src.target_lags), lags_by=src.lags_by) if src else None
    return kind(**fields)


def _request_id(request: Request) -> str:
    if not hasattr(request.state, "request_id"):
        request.state.request_id = str(uuid.uuid4())
    return request.state.request_id


def _route_label(request: Request) -> str:
    """The metrics/log route of a request: 'id' and 'rows' for the predict routes."""
    route = request.scope.get("route")
    path = getattr(route, "path", "")
    if path == "/v1/models/{model}/predict":
        return ROUTE_ID if request.method == "GET" else ROUTE_ROWS
    return {"/v1/models": "models", "/v1/models/{model}": "model", "/healthz": "healthz",
            "/metrics": "metrics"}.get(path, "other")


def _validation_message(error: dict[str, Any]) -> str:
    """A FastAPI validation error as '<where> '<field>': <what>' (query parameter 'at', body field 'rows[0]')."""
    where, *path = error.get("loc", ("body",))
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    kind = {"query": "query parameter", "path": "path parameter", "body": "body field", "header": "header"}.get(
        where, str(where))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{kind} {field!r}: {message}" if field else f"request body: {message}"


def run_serve(args: argparse.Namespace) -> int:
    """The `ratchet serve` command: check the configuration, then run uvicorn with the app factory."""
    import uvicorn

    auth.api_token()  # refuse to start without a token, before any worker starts
    settings.database_url()
    os.environ[PORT_ENV] = str(args.port)
    uvicorn.run("ratchet.serving.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=args.log_level in ("debug", "info"))
    return 0
