"""The REST service's bearer token: `RATCHET_API_TOKEN`, else the password of the Airflow connection `ratchet_api`.

The service's edge (`serving.edge`) checks it on the raw header, before a request's body is read.
"""
from __future__ import annotations

import hmac
import os

from ratchet.exceptions import ConfigurationError

TOKEN_ENV = "RATCHET_API_TOKEN"
TOKEN_CONN_ID = "ratchet_api"
MISSING_TOKEN = "missing bearer token: send the header 'Authorization: Bearer <token>'"
INVALID_TOKEN = "invalid bearer token"


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


def token_refusal(authorization: bytes | None, token: bytes) -> str | None:
    """Why a request's `Authorization` header does not carry the token, None when it does.

    The scheme is `Bearer` in any case, as HTTP has it; the token is compared in constant time.
    """
    if authorization:
        scheme, _, given = authorization.partition(b" ")
        given = given.strip()
        if scheme.lower() == b"bearer" and given:
            return None if hmac.compare_digest(given, token) else INVALID_TOKEN
    return MISSING_TOKEN
