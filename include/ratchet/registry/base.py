"""What every part of the registry shares: the engine, one transaction per call, and finding a model by name.

`Registry` (in `store.py`) is composed of one store per context (models, versions, promotions, evaluations,
golden cases, alerts, the serving log); each builds on `Store`, so they all speak to the same engine through
the same `_session` and raise the same errors for an unknown model.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from ratchet import settings
from ratchet.exceptions import UnknownModelError
from ratchet.registry.entities import MODELS_CHANGED
from ratchet.registry.schema import Model


class Store:
    """The engine and its sessions; every public method of a store is one transaction.

    Unknown names raise `UnknownModelError`, listing the registered models.
    """

    def __init__(self, url_or_engine: str | Engine):
        self.engine = url_or_engine if isinstance(url_or_engine, Engine) else settings.make_engine(url_or_engine)
        self._sessions = sessionmaker(self.engine)

    @classmethod
    def from_settings(cls) -> Self:
        """The registry of `settings.database_url()` (the environment, else the `ratchet_db` connection)."""
        return cls(settings.database_url())

    def ping(self) -> None:
        """One round trip to the database (raises SQLAlchemy's OperationalError when it is unreachable)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close the engine's connections."""
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session

    def _model(self, session: Session, name: str, *, lock: bool = False) -> Model:
        """The model's row; `lock` holds it until the transaction ends (serialising writers of one model)."""
        query = select(Model).where(Model.name == name)
        if lock:
            query = query.with_for_update()
        model = session.scalars(query).one_or_none()
        if model is None:
            known = session.scalars(select(Model.name).order_by(Model.name)).all()
            raise UnknownModelError(f"unknown model {name!r}; registered models: {known}")
        return model


def notify_changed(session: Session, model: Model) -> None:
    """NOTIFY `MODELS_CHANGED` with the model's name; PostgreSQL delivers it only if the transaction commits."""
    session.execute(text("SELECT pg_notify(:channel, :model)"), {"channel": MODELS_CHANGED, "model": model.name})


def jsonable(value: Any) -> Any:
    """Convert NumPy scalars, paths and tuples so JSONB columns accept them."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):  # JSONB has no NaN or Infinity
        return None
    return value
