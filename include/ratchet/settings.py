"""Where Ratchet finds its database, its model specs and its mail: environment first, then Airflow."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy import Engine

DATABASE_URL_ENV = "RATCHET_DATABASE_URL"
MODELS_DIR_ENV = "RATCHET_MODELS_DIR"
DATABASE_CONN_ID = "ratchet_db"
SMTP_CONN_ID = "smtp_default"
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
TASK_TIMEOUT_ENV = "RATCHET_TASK_TIMEOUT_MINUTES"
DEFAULT_TASK_TIMEOUT_MINUTES = 120.0


def database_url() -> str:
    """The registry's URL: `RATCHET_DATABASE_URL`, else the Airflow connection `ratchet_db`."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    try:
        from airflow.sdk import BaseHook
    except ImportError:
        raise ConfigurationError(
            f"No Ratchet database: set {DATABASE_URL_ENV} (e.g. postgresql://user@host:5432/ratchet)"
        ) from None
    try:
        conn = BaseHook.get_connection(DATABASE_CONN_ID)
    except Exception as exc:  # Airflow raises its own not-found types across versions
        raise ConfigurationError(
            f"No Ratchet database: set {DATABASE_URL_ENV} or create the Airflow connection "
            f"{DATABASE_CONN_ID!r} ({exc})"
        ) from exc
    return url_from_connection(conn)


def normalize_url(url: str) -> str:
    """Accept the URL spellings users paste (postgres://, postgresql://) and pick the psycopg2 driver."""
    from sqlalchemy.engine import make_url

    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ConfigurationError(f"Ratchet's registry must be PostgreSQL, got a {parsed.get_backend_name()!r} URL")
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for a PostgreSQL URL (connections checked before use)."""
    from sqlalchemy import create_engine

    return create_engine(normalize_url(url), pool_pre_ping=True, future=True)


def url_from_connection(conn: Any) -> str:
    """A SQLAlchemy URL from an Airflow connection's fields; a host that is a directory is a Unix socket."""
    from sqlalchemy.engine import URL

    socket_dir = conn.host if conn.host and conn.host.startswith("/") else None
    return URL.create("postgresql+psycopg2", username=conn.login or None, password=conn.password or None,
                      host=None if socket_dir else conn.host, port=None if socket_dir else conn.port,
                      database=conn.schema or None,
                      query={"host": socket_dir} if socket_dir else {}).render_as_string(hide_password=False)


def connection_fields(url: str) -> dict:
    """The fields of an Airflow connection (as AIRFLOW_CONN_* JSON) for a PostgreSQL URL, sockets included."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "127.0.0.1"
    fields = {"conn_type": "postgres", "host": host, "login": parsed.username or "postgres",
              "password": parsed.password or "", "schema": parsed.database or "postgres"}
    if not host.startswith("/"):
        fields["port"] = parsed.port or 5432
    return fields


def task_timeout_minutes() -> float:
    """Every DAG task's `execution_timeout`, in minutes: `RATCHET_TASK_TIMEOUT_MINUTES`, else 120. A model's
    `search.time_budget_minutes` must be shorter (its spec is refused otherwise)."""
    raw = os.environ.get(TASK_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_TASK_TIMEOUT_MINUTES
    try:
        minutes = float(raw)
    except ValueError:
        minutes = float("nan")
    if not 0 < minutes < float("inf"):
        raise ConfigurationError(f"{TASK_TIMEOUT_ENV}={raw!r}: expected a positive number of minutes")
    return minutes


def models_dir() -> Path:
    """The folder of model YAML files: `RATCHET_MODELS_DIR`, else `include/models/`."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def airflow_base_url() -> str:
    """Base URL of the Airflow UI, for links in mails and pages."""
    return os.environ.get("AIRFLOW__API__BASE_URL", "http://localhost:8080").rstrip("/")


def ratchet_page_url(model: str) -> str:
    """The model's Ratchet page (the plugin's app, mounted at /ratchet of the Airflow UI), for mails and approvals."""
    from urllib.parse import quote

    return f"{airflow_base_url()}/ratchet/models/{quote(model, safe='')}"


def card_url(model: str, version: int) -> str:
    """A version's model card on the Ratchet page, for the mails and approvals that ask about that version."""
    return f"{ratchet_page_url(model)}/versions/{version}/card"
