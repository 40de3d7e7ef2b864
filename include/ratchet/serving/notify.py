"""Invalidation: a thread LISTENing on `ratchet_models_changed` tells the service which models changed.

A promotion, a rollback or a new version NOTIFYs in its own transaction, so every replica learns of it at
commit and reloads that model before its next request (within milliseconds). If the connection is lost,
nothing is known about the gap: the thread reconnects and the service reloads every model and drops every
cached answer. Between notifications the thread pings the server (a dead connection shows up within seconds)
and lets the service check the models folder for edited specs.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ratchet.registry.db import ChangeFeed

log = logging.getLogger(__name__)


class ChangeListener:
    """Calls `on_connect()` after every (re)connection, `on_change(model)` per notification, `on_idle()` each second."""

    def __init__(self, url: str, *, on_connect: Callable[[], None], on_change: Callable[[str], None],
                 on_lost: Callable[[], None], on_idle: Callable[[], None], ping_seconds: float = 5.0):
        self.url = url
        self.on_connect, self.on_change, self.on_lost, self.on_idle = on_connect, on_change, on_lost, on_idle
        self.ping_seconds = ping_seconds
        self.connected = threading.Event()
        self._feed: ChangeFeed | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ratchet-listener", daemon=True)

    def connect(self) -> None:
        """Connect, LISTEN, then run `on_connect` (so no change committed after the LISTEN is missed).

        Raises:
            Exception: the database cannot be reached, or `on_connect` failed (the connection is closed).
        """
        feed = ChangeFeed(self.url)
        try:
            self.on_connect()
        except Exception:
            feed.close()
            raise
        self._feed = feed
        self.connected.set()

    def start(self) -> None:
        """Start the thread (it connects first if `connect` was not called or failed)."""
        self._thread.start()

    def _run(self) -> None:
        backoff, last_ping = 0.5, time.monotonic()
        while not self._stopping.is_set():
            if self._feed is None:
                try:
                    self.connect()
                    log.warning("change listener connected: every model reloaded")
                    backoff, last_ping = 0.5, time.monotonic()
                except Exception as exc:
                    log.warning("change listener cannot connect (%s); retrying in %.1f s", exc, backoff)
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, 10.0)
                continue
            try:
                changed = self._feed.wait(1.0)
                for model in sorted(changed):
                    self.on_change(model)
                if not changed and time.monotonic() - last_ping >= self.ping_seconds:
                    self._feed.ping()
                    last_ping = time.monotonic()
                self.on_idle()
            except Exception as exc:
                log.warning("change listener lost its connection (%s): reconnecting, then reloading everything", exc)
                self._feed.close()
                self._feed = None
                self.connected.clear()
                self.on_lost()

    def stop(self) -> None:
        """Stop listening and close the connection."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
        if self._feed is not None:
            self._feed.close()
