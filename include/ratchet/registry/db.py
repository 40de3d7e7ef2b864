"""Engines, database creation and Alembic migrations for the Ratchet registry."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ratchet.registry.entities import MODELS_CHANGED
from ratchet.settings import make_engine, normalize_url

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def ensure_database(url: str) -> bool:
    """Create the database named in `url` if it is missing. Returns True when it was created."""
    parsed = make_url(normalize_url(url))
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": parsed.database}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
            return not exists
    finally:
        admin.dispose()


def drop_database(url: str) -> None:
    """Drop the database named in `url` (connections to it are closed first)."""
    parsed = make_url(normalize_url(url))
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the registry's migrations against `url`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the migrations up to `revision`."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Revert the migrations down to `revision` (default: all of them)."""
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


class ChangeFeed:
    """A dedicated connection LISTENing on `MODELS_CHANGED`: the names of models whose versions or champion moved.

    PostgreSQL delivers a notification at the commit of the transaction that sent it, so a reader that drops
    what it cached for those models never serves a champion that is no longer one. TCP keepalives make a
    dead server show up as an error within seconds instead of a silent wait.
    """

    def __init__(self, url: str):
        import psycopg2

        parsed = make_url(normalize_url(url))
        args = {k: v for k, v in parsed.translate_connect_args(username="user", database="dbname").items()
                if v is not None}
        args.update({k: v for k, v in parsed.query.items() if isinstance(v, str)})
        self.connection = psycopg2.connect(**args, keepalives=1, keepalives_idle=5, keepalives_interval=2,
                                           keepalives_count=2, connect_timeout=5)
        self.connection.autocommit = True
        with self.connection.cursor() as cursor:
            cursor.execute(f"LISTEN {MODELS_CHANGED}")

    def wait(self, timeout: float) -> set[str]:
        """The models named by notifications that arrive within `timeout` seconds (empty when none did).

        Raises:
            psycopg2.Error: the connection is lost.
        """
        import select

        ready, _, _ = select.select([self.connection], [], [], timeout)
        if ready:
            self.connection.poll()
        names = {note.payload for note in self.connection.notifies}
        self.connection.notifies.clear()
        return names

    def ping(self) -> None:
        """A round trip to the server, so a silently dropped connection raises instead of waiting forever."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        self.connection.poll()

    def close(self) -> None:
        """Close the connection (a closed or broken one is fine)."""
        with contextlib.suppress(Exception):  # closing a broken connection must not hide why it broke
            self.connection.close()
