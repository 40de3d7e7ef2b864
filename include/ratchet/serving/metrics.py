"""The service's Prometheus metrics (`GET /metrics`), per model and version, in one registry per app."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

disable_created_metrics()  # no `_created` series beside every counter: half the exposition, nothing lost

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
NO_VERSION = "none"  # the version label of a request no version answered (refused before routing)
UNKNOWN_MODEL = "<unknown>"  # the model label of a request naming no configured model (keeps labels bounded)


class ServingMetrics:
    """Requests, latency, rows answered per arm, cache hits and misses, errors (5xx), and the prediction log."""

    def __init__(self):
        self.registry = CollectorRegistry()
        kw = {"registry": self.registry}
        self.requests = Counter("ratchet_serving_requests", "Requests by model, version, route and HTTP status",
                                ["model", "version", "route", "status"], **kw)
        self.latency = Histogram("ratchet_serving_request_latency_seconds", "Request latency inside the service",
                                 ["model", "version", "route"], buckets=LATENCY_BUCKETS, **kw)
        self.predictions = Counter("ratchet_serving_predictions", "Rows answered, by model, version and split arm",
                                   ["model", "version", "arm", "route"], **kw)
        self.cache_hits = Counter("ratchet_serving_cache_hits", "Answers by id served from the cache",
                                  ["model", "version"], **kw)
        self.cache_misses = Counter("ratchet_serving_cache_misses", "Answers by id predicted (not from the cache)",
                                    ["model", "version"], **kw)
        self.errors = Counter("ratchet_serving_errors", "Requests answered with a server error (status >= 500)",
                              ["model", "version", "route", "status"], **kw)
        self.log_queue = Gauge("ratchet_serving_log_queue_rows", "Served rows waiting to be written to PostgreSQL",
                               **kw)
        self.log_written = Counter("ratchet_serving_log_written_rows", "Served rows written to PostgreSQL", **kw)
        self.log_dropped = Counter("ratchet_serving_log_dropped_rows",
                                   "Served rows never written (buffer full while the database was down, unknown "
                                   "model, shutdown)", ["reason"], **kw)
        self.log_unlogged = Counter("ratchet_serving_unlogged_requests",
                                    "Refused requests that cannot be logged (no registered model to log them under)",
                                    ["route"], **kw)
        self.probes = Counter("ratchet_serving_probes", "Health probes of this replica", ["healthy", "stored"], **kw)

    def request(self, model: str, version: int | str | None, route: str, status: int, seconds: float) -> None:
        """Count one request with its status and latency (and as an error when status >= 500)."""
        label = NO_VERSION if version is None else str(version)
        self.requests.labels(model, label, route, str(status)).inc()
        self.latency.labels(model, label, route).observe(seconds)
        if status >= 500:
            self.errors.labels(model, label, route, str(status)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
