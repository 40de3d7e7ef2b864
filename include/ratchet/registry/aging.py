"""How each version ages (`evaluation.aging`): one row per (model, version), replaced whenever it is measured again."""
from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from ratchet.registry import entities
from ratchet.registry.base import Store, jsonable
from ratchet.registry.schema import VersionAging
from ratchet.registry.versions import version_row


class AgingStore(Store):
    """Versions' aging curves and the ages at which they break their requirements."""

    def record_aging(self, aging: entities.Aging) -> None:
        """Store how the version ages, replacing what was stored for it (one statement: never half a curve)."""
        with self._session() as session:
            m = self._model(session, aging.model)
            values = dict(model_id=m.id, version_id=version_row(session, m, aging.version).id, run_id=aging.run_id,
                          months=list(aging.months), max_age=aging.max_age,
                          curves=jsonable({metric: [asdict(p) for p in points]
                                           for metric, points in aging.curves.items()}),
                          crossings=jsonable([asdict(c) for c in aging.crossings]), crossing_age=aging.crossing_age,
                          data_fingerprint=aging.data_fingerprint)
            stmt = insert(VersionAging).values(**values)
            session.execute(stmt.on_conflict_do_update(
                constraint="uq_version_aging",
                set_={k: stmt.excluded[k] for k in values if k not in ("model_id", "version_id")}
                | {"created_at": func.now()}))

    def aging(self, model: str, version: int) -> entities.Aging | None:
        """How the version ages, None before it was measured.

        Raises:
            NotFoundError: the model has no such version.
        """
        with self._session() as session:
            m = self._model(session, model)
            row = session.scalars(select(VersionAging).where(
                VersionAging.model_id == m.id, VersionAging.version_id == version_row(session, m, version).id)
            ).one_or_none()
            if row is None:
                return None
            return entities.Aging(
                model=model, version=version, run_id=row.run_id, months=tuple(row.months), max_age=row.max_age,
                curves={metric: tuple(entities.AgePoint(**p) for p in points) for metric, points in row.curves.items()},
                crossings=tuple(entities.Crossing(**{**c, "bounds": tuple(c["bounds"])}) for c in row.crossings),
                data_fingerprint=row.data_fingerprint, created_at=row.created_at)
