"""Database migrations (`ratchet.registry.db`): up and down on an empty database, in step with the ORM schema."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from ratchet.registry import db
from ratchet.registry.schema import Base


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_migrations_upgrade_an_empty_database_and_downgrade_back(empty_database):
    db.upgrade(empty_database)
    engine = create_engine(db.normalize_url(empty_database))
    try:
        tables = set(inspect(engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        assert db.current_revision(empty_database) is not None
        db.downgrade(empty_database, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        assert db.current_revision(empty_database) is None
        db.upgrade(empty_database)  # and up again: downgrade left nothing behind that blocks it
        assert {t.name for t in Base.metadata.sorted_tables} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrations_match_the_orm_schema(empty_database):
    """A schema change without its migration is caught here (Alembic autogenerate finds no diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    db.upgrade(empty_database)
    engine = create_engine(db.normalize_url(empty_database))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        engine.dispose()
