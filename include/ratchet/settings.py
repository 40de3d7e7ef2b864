"""Where Ratchet finds its database, its model specs and its mail: environment first, then Airflow."""
from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_ENV = "RATCHET_DATABASE_URL"
MODELS_DIR_ENV = "RATCHET_MODELS_DIR"
DATABASE_CONN_ID = "ratchet_db"
SMTP_CONN_ID = "smtp_default"
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[1] / "models"


class ConfigurationError(RuntimeError):
    """Ratchet cannot find something it needs to run (a database, a models folder)."""


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
    return conn.get_uri()


def models_dir() -> Path:
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def airflow_base_url() -> str:
    """Base URL of the Airflow UI, for links in mails and pages."""
    return os.environ.get("AIRFLOW__API__BASE_URL", "http://localhost:8080").rstrip("/")
