"""The service's edge: one pure ASGI layer that decides on a request before any of its body is read.

In order: the bearer token (every path but /healthz and the API documentation), a declared body size
(Content-Length beyond `RATCHET_API_MAX_BODY_BYTES`), a POST's content type (JSON only); then the body of a POST,
read chunk by chunk and refused as soon as it passes the limit; then the app, within
`RATCHET_API_REQUEST_TIMEOUT_SECONDS`. An unexpected failure is logged with its request id and answered 500.
Whatever the outcome, the request is recorded once (`serving.recording`) after its answer is sent.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect

from ratchet.serving import auth
from ratchet.serving.errors import refusal
from ratchet.serving.exchange import EXCHANGE_KEY, ROUTE_ROWS, Exchange, route_of
from ratchet.serving.limits import MAX_BODY_ENV, TIMEOUT_ENV

if TYPE_CHECKING:
    from ratchet.serving.limits import Limits
    from ratchet.serving.recording import Recorder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("ratchet.serving")


class Edge:
    """Token, body size, content type and time limit, checked in front of the app; every request recorded once."""

    def __init__(self, app: ASGIApp, *, token: str, limits: Limits, recorder: Recorder, open_paths: frozenset[str]):
        self.app, self.token, self.limits, self.recorder = app, token.encode(), limits, recorder
        self.open_paths = open_paths  # paths answered without the token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI call: an HTTP request through the checks, anything else (lifespan) straight to the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(*route_of(scope["method"], scope["path"]), time.perf_counter())
        scope[EXCHANGE_KEY] = exchange

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
            await send(message)

        try:
            await self._serve(scope, receive, send_noting_status, exchange)
        except ClientDisconnect:  # the client left while sending its body: nobody to answer
            pass
        finally:
            if exchange.status:
                self.recorder.record(exchange)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, exchange: Exchange) -> None:
        refused = self._refusal_before_body(scope, exchange.route)
        if refused is not None:
            await refusal(scope, *refused)(scope, receive, send)
            return
        timeout = asyncio.timeout(self.limits.timeout_seconds)
        try:
            async with timeout:
                if exchange.route == ROUTE_ROWS:
                    body = await self._read_body(receive)
                    if body is None:
                        await refusal(scope, 413, self._too_large())(scope, receive, send)
                        return
                    receive = _replaying(body, receive)
                exchange.passed_edge = True
                await self.app(scope, receive, send)
        except ClientDisconnect:
            raise
        except Exception as exc:
            if exchange.status:  # the answer has started: nothing else can be said
                raise
            status, detail = self._failure(scope, exchange, exc, timeout.expired())
            await refusal(scope, status, detail)(scope, receive, send)

    def _refusal_before_body(self, scope: Scope, route: str) -> tuple[int, str] | None:
        """(status, detail) of a request refused on its headers alone, None when they pass."""
        authorization = content_type = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                length = value
        if scope["path"] not in self.open_paths:
            why = auth.token_refusal(authorization, self.token)
            if why is not None:
                return 401, why
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            return 413, self._too_large()
        if route == ROUTE_ROWS and not _is_json(content_type):
            got = repr(content_type.decode("latin-1")) if content_type else "none"
            return 415, f"request body: expected Content-Type: application/json, got {got}"
        return None

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, counted chunk by chunk as it arrives; None as soon as it passes the limit."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _too_large(self) -> str:
        return (f"request body: larger than {self.limits.max_body_bytes} bytes ({MAX_BODY_ENV}); send fewer rows "
                "per request")

    def _failure(self, scope: Scope, exchange: Exchange, exc: Exception, timed_out: bool) -> tuple[int, str]:
        """(status, detail) of a request the time limit cut short, or that failed unexpectedly (logged here)."""
        seconds = f"{self.limits.timeout_seconds:g} s ({TIMEOUT_ENV})"
        if timed_out and not exchange.passed_edge:
            return 408, f"request body: not received within {seconds}"
        if timed_out:
            log.warning("request %s %s took longer than %s (request id %s)", scope["method"], scope["path"], seconds,
                        exchange.request_id)
            return 504, f"the request did not finish within {seconds}; request id {exchange.request_id}"
        log.error("request %s %s failed (request id %s)", scope["method"], scope["path"], exchange.request_id,
                  exc_info=exc)
        return 500, f"internal error (request id {exchange.request_id}); the service log has the details"


def _is_json(content_type: bytes | None) -> bool:
    """Whether a Content-Type is JSON: application/json or application/<anything>+json, any parameters."""
    if not content_type:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then whatever the client sends next (a disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay
