"""GET /healthz (no token: for load balancers) and GET /metrics (Prometheus)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from ratchet.serving.dependencies import BEARER, ServiceDep
from ratchet.serving.exchange import HEALTH_PATH, METRICS_PATH
from ratchet.serving.metrics import CONTENT_TYPE
from ratchet.serving.routers import in_thread
from ratchet.serving.schemas import HealthOut, errors

router = APIRouter(tags=["operations"])


@router.get(HEALTH_PATH, summary="Database reachable and every champion loadable (no token needed)",
            response_model=HealthOut, responses={503: {"model": HealthOut, "description": "unhealthy"}})
async def healthz(service: ServiceDep) -> JSONResponse:
    """200 when healthy, else 503 saying what failed (never a host, port or credential)."""
    health = await in_thread(service.health)
    body = HealthOut(status="ok" if health.healthy else "unhealthy", replica=service.replica,
                     database=health.database, models=health.models, detail=health.detail)
    return JSONResponse(body.model_dump(), status_code=200 if health.healthy else 503)


@router.get(METRICS_PATH, summary="Prometheus metrics: requests, latency, cache, errors, prediction log",
            response_class=Response, responses=errors(401), dependencies=[BEARER])
async def metrics(service: ServiceDep) -> Response:
    """The Prometheus text exposition of the replica's metrics."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
