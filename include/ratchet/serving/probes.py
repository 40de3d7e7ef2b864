"""Health probes: each replica records its own health check every `RATCHET_PROBE_SECONDS` (default 60).

Availability is derived from these rows (the share of one-minute buckets holding a healthy probe of any
replica), so a replica that is down, or cannot reach the database, simply leaves its buckets empty.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ratchet.registry.entities import Probe
from ratchet.serving.limits import positive_env

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)
PROBE_SECONDS_ENV = "RATCHET_PROBE_SECONDS"


@dataclass(frozen=True)
class Health:
    """One health check: the database reachable, and every configured champion loadable (else why not)."""

    healthy: bool
    database: str
    models: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def detail(self) -> str | None:
        """The problems in one line, None when healthy."""
        return "; ".join(self.problems) or None


def probe_seconds() -> float:
    """`RATCHET_PROBE_SECONDS` (default 60).

    Raises:
        ConfigurationError: it is not a positive number.
    """
    return positive_env(PROBE_SECONDS_ENV, 60.0)


class Prober:
    """A thread that runs the health check every `seconds` and stores it as a `Probe` of this replica."""

    def __init__(self, registry: Registry, metrics: ServingMetrics, replica: str, check: Callable[[], Health],
                 seconds: float):
        self.registry, self.metrics, self.replica, self.check, self.seconds = registry, metrics, replica, check, seconds
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ratchet-probes", daemon=True)

    def start(self) -> None:
        """Start probing (the first probe at once)."""
        self._thread.start()

    def probe_once(self) -> Health:
        """Check health and store the probe; a probe that cannot be stored (database down) is logged."""
        health = self.check()
        stored = True
        try:
            self.registry.record_probe(Probe(self.replica, health.healthy, health.detail, dt.datetime.now(dt.UTC)))
        except Exception as exc:  # the database is down: the missing probe is what availability measures
            stored = False
            log.warning("health probe not stored (%s); health: %s", exc, health.detail or "ok")
        self.metrics.probes.labels(str(health.healthy).lower(), str(stored).lower()).inc()
        return health

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.probe_once()
            except Exception:  # a probe must never kill the thread
                log.exception("health probe failed")
            self._stopping.wait(self.seconds)

    def stop(self) -> None:
        """Stop probing."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
