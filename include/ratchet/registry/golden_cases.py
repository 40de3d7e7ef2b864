"""Golden cases: a model's regression tests, written by its owner in a file or harvested from now-test misses.

A case is keyed by (model, case key). The file's cases follow the file (added, edited, removed); a harvested case,
once stored, stays: it is added with the now-test verdict that found it (`insert_golden_cases`, called by
`EvaluationStore.record_evaluations`) and no sync of the file touches it.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ratchet.registry import entities
from ratchet.registry.base import Store, jsonable
from ratchet.registry.schema import GoldenCase, Model


class GoldenCaseStore(Store):
    """A model's golden cases, from its file and harvested."""

    def add_golden_cases(self, model: str, cases: Iterable[dict[str, Any]]) -> int:
        """Insert cases not already present (by case_key). Returns how many were new."""
        with self._session() as session:
            return insert_golden_cases(session, self._model(session, model), cases)

    def golden_cases(self, model: str) -> list[entities.GoldenCase]:
        """Every golden case of the model (from its file and harvested), oldest first."""
        with self._session() as session:
            m = self._model(session, model)
            return [entities.GoldenCase(c.case_key, c.source, c.name, c.inputs, c.expected, c.tolerance, c.created_at)
                    for c in session.scalars(select(GoldenCase).where(GoldenCase.model_id == m.id)
                                             .order_by(GoldenCase.id))]

    def sync_golden_file(self, model: str, cases: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Make the model's 'file' cases exactly `cases` (by case_key) in one transaction.

        New keys are added, an existing key takes the file's name, expectation and tolerance, and
        file cases no longer in the file are removed. Harvested cases are never touched.
        """
        cases = [dict(case, source="file") for case in cases]
        with self._session() as session:
            m = self._model(session, model, lock=True)
            existing = set(session.scalars(select(GoldenCase.case_key).where(
                GoldenCase.model_id == m.id, GoldenCase.source == "file")))
            keys = {case["case_key"] for case in cases}
            stale = existing - keys
            if stale:
                session.execute(delete(GoldenCase).where(GoldenCase.model_id == m.id, GoldenCase.source == "file",
                                                         GoldenCase.case_key.in_(stale)))
            for case in cases:
                stmt = insert(GoldenCase).values(model_id=m.id, **jsonable(case))
                session.execute(stmt.on_conflict_do_update(
                    constraint="uq_golden_case",
                    set_={k: stmt.excluded[k] for k in ("name", "inputs", "expected", "tolerance")},
                    where=GoldenCase.source == "file"))
            return {"added": len(keys - existing), "removed": len(stale), "kept": len(keys & existing)}


def insert_golden_cases(session: Session, model: Model, cases: Iterable[dict[str, Any]]) -> int:
    """Add the cases whose key the model does not have yet; how many were new."""
    added = 0
    for case in cases:
        stmt = insert(GoldenCase).values(model_id=model.id, **jsonable(case))
        added += session.execute(stmt.on_conflict_do_nothing(constraint="uq_golden_case")).rowcount or 0
    return added
