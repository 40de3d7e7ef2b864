"""Ratchet's registry in PostgreSQL: the `Registry` store, the entities it returns, its schema and migrations."""
from ratchet.registry.entities import CHAMPION, EvaluationRow, RatchetStep, in_trial, version_contender
from ratchet.registry.store import Registry

__all__ = ["CHAMPION", "EvaluationRow", "RatchetStep", "Registry", "in_trial", "version_contender"]
