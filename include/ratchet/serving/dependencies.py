"""What the routes are given through `Depends` (the replica's service) and from the request (its exchange).

Few dependencies on the predict routes: FastAPI solves each one on every request, and a cached answer costs little
more than that.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPBearer

from ratchet.serving.exchange import EXCHANGE_KEY, Exchange
from ratchet.serving.service import Service

# The bearer scheme, for the OpenAPI page only: the edge (`serving.edge`) has checked the token before any route runs
BEARER = Security(HTTPBearer(auto_error=False, description="RATCHET_API_TOKEN, or the password of the Airflow "
                                                           "connection ratchet_api"))


async def get_service(request: Request) -> Service:
    """The replica's service (made by `create_app`). Async, as every dependency here: a plain def would cost each
    request a hop to a worker thread."""
    return request.app.state.service


def exchange_of(request: Request) -> Exchange:
    """The request's exchange, made by the edge: a route notes on it what it answered."""
    return request.scope[EXCHANGE_KEY]


ServiceDep = Annotated[Service, Depends(get_service)]
ModelName = Annotated[str, Path(description="the model's name")]
