"""Which HTTP status each error gets, in one place: the service raises Ratchet's own errors, never a status.

Every error answer is JSON `{"detail": "..."}` naming the parameter or field, and the detail is noted on the
request's `Exchange`, so the prediction log keeps it with the status.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ratchet.exceptions import DataError, NotFoundError, PredictError, UnavailableError
from ratchet.serving.exchange import EXCHANGE_KEY
from ratchet.serving.service import first_line

# (error class, status, what the detail starts with): the most specific class of an error decides
DOMAIN_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (NotFoundError, 404, ""),  # an unknown model, no champion yet, no source row at that time
    (PredictError, 422, ""),  # request rows, values or time keys that cannot be predicted (the field named)
    (UnavailableError, 503, ""),  # a database unreachable, a model that cannot be served, models not loaded yet
    (DataError, 500, "the source cannot be used: "),  # source rows that fail their own checks: not the request
)
_WHERE = {"query": "query parameter", "path": "path parameter", "body": "body field", "header": "header"}


def refusal(scope: dict, status: int, detail: str) -> JSONResponse:
    """An error answer, its detail noted on the request's exchange (401s ask for the bearer scheme)."""
    exchange = scope.get(EXCHANGE_KEY)
    if exchange is not None:
        exchange.error = detail
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _domain_handler(status: int, prefix: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return refusal(request.scope, status, prefix + str(exc))
    return handle


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    return refusal(request.scope, 422, "; ".join(validation_message(e) for e in exc.errors()))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400 and exc.__cause__ is not None:  # JSON that Python's parser refuses (too deep, too long)
        return refusal(request.scope, 422, f"request body: cannot be read as JSON ({first_line(exc.__cause__)})")
    return refusal(request.scope, exc.status_code, str(exc.detail))


def validation_message(error: dict[str, Any]) -> str:
    """A FastAPI validation error as '<where> '<field>': <what>' (query parameter 'at', body field 'rows[0]'), or
    'request body: not valid JSON (...)' for a body that does not parse."""
    if error.get("type") == "json_invalid":
        why, at = error.get("ctx", {}).get("error", "cannot parse"), error.get("loc", ("body", 0))[-1]
        return f"request body: not valid JSON ({why} at character {at})"
    where, *path = error.get("loc", ("body",))
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{_WHERE.get(where, str(where))} {field!r}: {message}" if field else f"request body: {message}"


EXCEPTION_HANDLERS: dict[Any, Callable] = {
    **{kind: _domain_handler(status, prefix) for kind, status, prefix in DOMAIN_ERRORS},
    RequestValidationError: _invalid_request,
    StarletteHTTPException: _http_error,
}
