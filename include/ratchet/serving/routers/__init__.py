"""The REST service's routes, one module per resource: models, predictions, operations (health and metrics)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread

T = TypeVar("T")


async def in_thread(call: Callable[..., T], *args: Any) -> T:
    """Run blocking work (a database read, a prediction) on a worker thread. A request cut short by the edge's time
    limit stops waiting for it at once; the thread finishes on its own and its result is dropped."""
    return await anyio.to_thread.run_sync(call, *args, abandon_on_cancel=True)
