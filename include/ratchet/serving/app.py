"""`ratchet serve`: the FastAPI app that serves each model's champion (and a split's candidate) over HTTP.

Routes (every one but /healthz needs `Authorization: Bearer <token>`; the OpenAPI page is /docs):
GET /v1/models, GET /v1/models/{model}, GET /v1/models/{model}/predict?at=<time key>,
POST /v1/models/{model}/predict, GET /healthz, GET /metrics. The layout is FastAPI's own: the schemas in
`schemas`, a router per resource in `routers`, the service through `dependencies`, each error's status in
`errors`, and in front of it all the `edge` (token, body size, content type, time limit), which records every
request once (`recording`).
"""
from __future__ import annotations

import argparse
import os
import socket
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from ratchet import settings
from ratchet.serving import auth
from ratchet.serving.edge import Edge
from ratchet.serving.errors import EXCEPTION_HANDLERS
from ratchet.serving.exchange import HEALTH_PATH
from ratchet.serving.limits import limits_from_env
from ratchet.serving.probes import probe_seconds
from ratchet.serving.recording import Recorder
from ratchet.serving.routers import models, operations, predictions
from ratchet.serving.service import Service

PORT_ENV = "RATCHET_SERVE_PORT"  # set by `ratchet serve` so each replica's id names its port
DESCRIPTION = ("Predictions of each model's champion (and of a `serving.split` candidate for a hashed share of feature "
               "ids), with the features fetched from the model's source by id, or sent as rows. Every route but "
               "/healthz needs `Authorization: Bearer <token>`.")


def replica_id() -> str:
    """host:port:pid, stable for the life of this process."""
    return f"{socket.gethostname()}:{os.environ.get(PORT_ENV, '8000')}:{os.getpid()}"


@asynccontextmanager
async def _lifespan(app: FastAPI):
    """Start the service's threads (models loaded, notifications, log writer, probes) and stop them at shutdown."""
    service: Service = app.state.service
    await run_in_threadpool(service.start)
    yield
    await run_in_threadpool(service.stop)


def create_app(service: Service | None = None, token: str | None = None) -> FastAPI:
    """The app (uvicorn's factory): a Service over `settings.database_url()` unless one is given.

    Raises:
        ConfigurationError: no API token or no database configured, or a bad limit in the environment.
    """
    token = token or auth.api_token()
    limits = limits_from_env()
    if service is None:
        service = Service(settings.database_url(), replica=replica_id(), probe_seconds=probe_seconds())
    app = FastAPI(title="Ratchet serving", version="1", description=DESCRIPTION, lifespan=_lifespan,
                  exception_handlers=EXCEPTION_HANDLERS)
    app.state.service = service
    for router in (models.router, predictions.router, operations.router):
        app.include_router(router)
    documentation = {app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.add_middleware(Edge, token=token, limits=limits, recorder=Recorder(service),
                       open_paths=frozenset({HEALTH_PATH, *documentation}))
    return app


def run_serve(args: argparse.Namespace) -> int:
    """The `ratchet serve` command: check the configuration, then run uvicorn with the app factory."""
    import uvicorn

    auth.api_token()  # refuse to start without a token, before any worker starts
    settings.database_url()
    limits_from_env()
    os.environ[PORT_ENV] = str(args.port)
    uvicorn.run("ratchet.serving.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=args.log_level in ("debug", "info"))
    return 0
