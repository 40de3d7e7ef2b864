"""The registry: every read and write of Ratchet's PostgreSQL data goes through `Registry`.

Callers speak in model names, version numbers and plain values and get frozen entities back
(`ratchet.registry.entities`); ORM rows and sessions never leave this package. It owns the SQL, the
transactions and the constraints that make writes idempotent and atomic.

`Registry` is one store per context, each in its own module on the shared `base.Store` (engine, one
transaction per call, a model found by name):

| module | owns |
| --- | --- |
| `models.py` | models, requirements and their history, the ratchet that tightens a bound |
| `versions.py` | search trials and registered versions (artifacts) |
| `promotions.py` | the champion alias, the versions in trial, promotion decisions |
| `evaluations.py` | evaluations, back-test days, back-test reports |
| `golden_cases.py` | golden (regression) cases, from the file and harvested |
| `alerts.py` | the alert outbox and its per-channel deliveries |
| `serving_log.py` | the REST service's prediction log and the replicas' probes |
| `aging.py` | how each version ages: its curves by months since training, the ages it breaks requirements at |
"""
from __future__ import annotations

from ratchet.registry.aging import AgingStore
from ratchet.registry.alerts import AlertStore
from ratchet.registry.evaluations import EvaluationStore
from ratchet.registry.golden_cases import GoldenCaseStore
from ratchet.registry.models import ModelStore
from ratchet.registry.promotions import PromotionStore
from ratchet.registry.serving_log import ServingStore
from ratchet.registry.versions import VersionStore


class Registry(ModelStore, PromotionStore, VersionStore, EvaluationStore, GoldenCaseStore, AlertStore, ServingStore,
               AgingStore):
    """Ratchet's PostgreSQL data, read and written in model names and version numbers.

    Every public method is one transaction. Unknown names raise `UnknownModelError` (listing the
    registered models) and unknown versions `NotFoundError` (listing the model's versions).
    """
