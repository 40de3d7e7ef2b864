"""The REST service's bearer token: `RATCHET_API_TOKEN`, else the password of the Airflow connection `ratchet_api`."""
from __future__ import annotations

import hmac
import os

from ratchet.exceptions import ConfigurationError

TOKEN_ENV = "RATCHET_API_TOKEN"
TOKEN_CONN_ID = "ratchet_api"


def api_token() -> str:
    """The token every route but /healthz requires.

    Raises:
        ConfigurationError: neither the environment variable nor the connection gives one.
    """
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    why = f"the Airflow connection {TOKEN_CONN_ID!r} does not exist"
    try:
        from airflow.sdk import BaseHook

        token = (BaseHook.get_connection(TOKEN_CONN_ID).password or "").strip()
        if token:
            return token
        why = f"the Airflow connection {TOKEN_CONN_ID!r} has no password"
    except ImportError:
        why = "Airflow is not installed"
    except Exception as exc:  # Airflow raises its own not-found types across versions
        why = f"{why} ({exc})"
    raise ConfigurationError(
        f"no API token for `ratchet serve`: set {TOKEN_ENV} or give the Airflow connection {TOKEN_CONN_ID!r} "
        f"the token as its password ({why})")


def token_matches(given: str, token: str) -> bool:
    """Whether a request's bearer token is the service's (compared in constant time)."""
    return hmac.compare_digest(given.encode(), token.encode())
