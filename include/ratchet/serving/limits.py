"""The service edge's limits, from the environment: how large a request body may be, how long a request may take.

`RATCHET_API_MAX_BODY_BYTES` (default 4 MiB): a larger body is refused with 413 as soon as its Content-Length says
so, or as soon as the bytes received pass the limit. `RATCHET_API_REQUEST_TIMEOUT_SECONDS` (default 30): a request
that takes longer is answered 408 while its body is still arriving, else 504.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ratchet.exceptions import ConfigurationError

MAX_BODY_ENV = "RATCHET_API_MAX_BODY_BYTES"
TIMEOUT_ENV = "RATCHET_API_REQUEST_TIMEOUT_SECONDS"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Limits:
    """The largest request body in bytes, and the most seconds a request may take."""

    max_body_bytes: int
    timeout_seconds: float


def limits_from_env() -> Limits:
    """`RATCHET_API_MAX_BODY_BYTES` and `RATCHET_API_REQUEST_TIMEOUT_SECONDS`, or their defaults.

    Raises:
        ConfigurationError: one is not a positive number (of whole bytes, of seconds).
    """
    return Limits(max_body_bytes=int(positive_env(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES, whole=True)),
                  timeout_seconds=positive_env(TIMEOUT_ENV, DEFAULT_TIMEOUT_SECONDS))


def positive_env(name: str, default: float, *, whole: bool = False) -> float:
    """The environment variable `name` as a positive number (`whole`: a positive integer), else `default`.

    Raises:
        ConfigurationError: it is set to something else, naming the variable and what is expected.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = 0
    if not value > 0:
        expected = "a positive whole number of bytes" if whole else "a positive number of seconds"
        raise ConfigurationError(f"{name}: expected {expected}, got {raw!r}")
    return value
