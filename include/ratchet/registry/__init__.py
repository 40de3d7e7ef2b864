"""Ratchet's registry in PostgreSQL: schema, migrations and the `Registry` store."""
from ratchet.registry.store import (
    CHAMPION,
    ConcurrentPromotionError,
    EvaluationRow,
    RatchetStep,
    Registry,
    RegistryError,
    version_contender,
)

__all__ = ["CHAMPION", "ConcurrentPromotionError", "EvaluationRow", "RatchetStep", "Registry", "RegistryError",
           "version_contender"]
