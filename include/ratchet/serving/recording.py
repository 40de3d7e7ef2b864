"""Each request counted in the metrics, and each predict request queued for the prediction log: once, at the edge.

A request the edge refuses (no or a wrong token, a body too large or not JSON) is counted but never logged: a
client without the token cannot make the service write to PostgreSQL. A predict request that reached the app is
logged: one row per answered row, or one row with the refusal's status and message. A refusal naming a model that
the registry does not know cannot be logged under it and is counted as unlogged instead.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

from ratchet.registry.entities import Served
from ratchet.serving.exchange import PREDICT_ROUTES, ROUTE_ID
from ratchet.serving.metrics import UNKNOWN_MODEL

if TYPE_CHECKING:
    from ratchet.serving.exchange import Exchange
    from ratchet.serving.service import Service

NO_MODEL = "-"  # the model label of a request that names none


class Recorder:
    """Writes what became of a request to the service's metrics and prediction log."""

    def __init__(self, service: Service):
        self.service = service
        self.metrics = service.metrics

    def record(self, exchange: Exchange) -> None:
        """Count the request (status, latency) and log a predict request's rows or refusal."""
        seconds = time.perf_counter() - exchange.started
        if exchange.answers and exchange.status == 200:
            self._answered(exchange, seconds)
            return
        name = exchange.model
        state = self.service.known(name) if name else None
        label = name if state is not None else (UNKNOWN_MODEL if name else NO_MODEL)
        self.metrics.request(label, None, exchange.route, exchange.status, seconds)
        if exchange.route not in PREDICT_ROUTES or not exchange.passed_edge:
            return
        if state is None or not state.registered:
            self.metrics.log_unlogged.labels(exchange.route).inc()
            return
        self.service.log.add([Served(
            model=name, version=None, request_id=exchange.request_id, route=exchange.route, arm="champion",
            feature_id=exchange.feature_id, prediction=None, label=None, probabilities=None, cache_hit=False,
            latency_ms=seconds * 1000, status=exchange.status, error=exchange.error, replica=self.service.replica,
            served_at=dt.datetime.now(dt.UTC), series=exchange.series)])

    def _answered(self, exchange: Exchange, seconds: float) -> None:
        """Count and log each answered row (one latency for the request)."""
        metrics, state, route = self.metrics, exchange.state, exchange.route
        request_id, now, regression = exchange.request_id, dt.datetime.now(dt.UTC), state.spec.task == "regression"
        logged, versions = [], set()
        for row in exchange.answers:
            number, answer = row.arm.version.version, row.answer
            versions.add(number)
            logged.append(Served(
                model=state.name, version=number, request_id=request_id, route=route, arm=row.arm.name,
                feature_id=row.feature_id, prediction=answer.prediction if regression else None,
                label=None if regression else str(answer.prediction), probabilities=answer.probabilities,
                cache_hit=row.cached, latency_ms=seconds * 1000, status=200, error=None,
                replica=self.service.replica, served_at=now, series=row.series, fallback_from=row.fallback_from))
            metrics.predictions.labels(state.name, str(number), row.arm.name, route).inc()
            if route == ROUTE_ID:
                (metrics.cache_hits if row.cached else metrics.cache_misses).labels(state.name, str(number)).inc()
        # '1+2': a POST that both arms of a split answered
        metrics.request(state.name, "+".join(str(v) for v in sorted(versions)), route, 200, seconds)
        self.service.log.add(logged)
