"""In-memory answers of the REST service, each kept for its model's `serving.cache_ttl_seconds`.

Entries are grouped by model so that a promotion (a NOTIFY naming the model) drops that model's entries in
one step. A model keeps at most `max_entries` (the least recently written go first), so a client walking
through many feature ids cannot grow the process without bound.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class TTLCache:
    """Values by (model, key), each valid for the TTL it was stored with; thread-safe."""

    def __init__(self, max_entries: int = 100_000):
        self.max_entries = max_entries
        self._models: dict[str, OrderedDict[Hashable, tuple[float, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, model: str, key: Hashable) -> Any | None:
        """The value stored under (model, key) if its TTL has not run out, else None."""
        entries = self._models.get(model)
        if entries is None:
            return None
        entry = entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            with self._lock:
                entries.pop(key, None)
            return None
        return entry[1]

    def put(self, model: str, key: Hashable, value: Any, ttl_seconds: float) -> None:
        """Store a value for `ttl_seconds` (0 or less: not stored at all)."""
        if ttl_seconds <= 0:
            return
        with self._lock:
            entries = self._models.setdefault(model, OrderedDict())
            entries[key] = (time.monotonic() + ttl_seconds, value)
            entries.move_to_end(key)
            while len(entries) > self.max_entries:
                entries.popitem(last=False)

    def drop(self, model: str) -> None:
        """Forget every entry of the model."""
        with self._lock:
            self._models.pop(model, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._models.clear()

    def __len__(self) -> int:
        return sum(len(entries) for entries in list(self._models.values()))
