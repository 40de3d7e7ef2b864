"""Named points where a test can kill the running process, to prove that no kill leaves half-written rows.

`checkpoint(name)` does nothing unless the environment variable RATCHET_KILL_AT names it; then the process
sends itself SIGKILL there (no cleanup, no exception handler, exactly as an OOM kill or a lost worker). The
points sit where a task has done expensive work but stored nothing yet (see `tests/dags/test_kill_and_rerun.py`).
"""
from __future__ import annotations

import os
import signal

KILL_AT_ENV = "RATCHET_KILL_AT"


def checkpoint(name: str) -> None:
    """Kill this process with SIGKILL if RATCHET_KILL_AT is `name`."""
    if os.environ.get(KILL_AT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
