"""The prediction log: every answered row and refused request, written to PostgreSQL off the request path.

Requests only append to an in-memory queue; a background thread writes it in batches (every 0.5 s, or as
soon as 500 rows wait), one transaction per batch (`Registry.log_served`). While the database is down the
queue keeps up to `max_rows` rows and retries; beyond that the oldest rows are dropped, counted in /metrics
(`ratchet_serving_log_dropped_rows_total`) and logged, never silently. Stopping the service flushes the queue.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING

from ratchet.exceptions import UnknownModelError

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.registry.entities import Served
    from ratchet.serving.metrics import ServingMetrics

log = logging.getLogger(__name__)


class ServedLog:
    """A bounded queue of `Served` rows and the thread that writes it."""

    def __init__(self, registry: Registry, metrics: ServingMetrics, *, batch_rows: int = 500,
                 interval_seconds: float = 0.5, max_rows: int = 100_000):
        self.registry, self.metrics = registry, metrics
        self.batch_rows, self.interval, self.max_rows = batch_rows, interval_seconds, max_rows
        self._queue: collections.deque[Served] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ratchet-served-log", daemon=True)
        self._failing_since: float | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def add(self, rows: list[Served]) -> None:
        """Queue rows to write (never blocks on the database)."""
        with self._lock:
            self._queue.extend(rows)
            overflow = len(self._queue) - self.max_rows
            for _ in range(max(overflow, 0)):
                self._queue.popleft()
        if overflow > 0:
            self.metrics.log_dropped.labels("buffer_full").inc(overflow)
            log.error("prediction log: the queue is full (%d rows, database unreachable?): dropped the %d oldest rows",
                      self.max_rows, overflow)
        self.metrics.log_queue.set(len(self._queue))
        if len(self._queue) >= self.batch_rows:
            self._wake.set()

    def flush(self) -> bool:
        """Write every queued row, batch by batch; False when the database refused (the rows stay queued)."""
        while True:
            with self._lock:
                batch = [self._queue.popleft() for _ in range(min(self.batch_rows, len(self._queue)))]
            if not batch:
                self.metrics.log_queue.set(0)
                return True
            try:
                self._write(batch)
            except Exception as exc:  # the database is down or refuses: keep the rows and retry later
                with self._lock:
                    self._queue.extendleft(reversed(batch))
                self.metrics.log_queue.set(len(self._queue))
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning("prediction log: cannot write %d queued rows, retrying: %s", len(self._queue), exc)
                return False
            if self._failing_since is not None:
                log.warning("prediction log: writing again after %.1f s", time.monotonic() - self._failing_since)
                self._failing_since = None

    def _write(self, batch: list[Served]) -> None:
        try:
            self.metrics.log_written.inc(self.registry.log_served(batch))
        except UnknownModelError:  # a model left the registry: its rows cannot be stored anywhere
            known = set(self.registry.model_names())
            kept = [row for row in batch if row.model in known]
            lost = len(batch) - len(kept)
            self.metrics.log_dropped.labels("unknown_model").inc(lost)
            log.error("prediction log: dropped %d rows of models the registry no longer has: %s", lost,
                      sorted({row.model for row in batch} - known))
            self.metrics.log_written.inc(self.registry.log_served(kept))

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self.flush():
                self._stopping.wait(min(5.0, self.interval * 4))  # back off while the database is down

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and write what is queued; rows that still cannot be written are counted and logged."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self.flush():
            lost = len(self._queue)
            self._queue.clear()
            self.metrics.log_dropped.labels("shutdown").inc(lost)
            log.error("prediction log: %d rows could not be written before shutdown", lost)
