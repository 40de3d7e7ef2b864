"""Imported once by each Celery worker as it starts (Celery's `imports` setting, from `celery_setup.settings`):
Ratchet's task libraries and the configured estimators are loaded before the worker forks its pool, so every task
process (forked from a pool process) starts with them imported, as under the preloading LocalExecutor
(`ratchet.executor`), instead of spending seconds importing scikit-learn each."""
from __future__ import annotations

import logging

from ratchet.executor import preload

logging.getLogger(__name__).info("Preloaded Ratchet's task libraries and the estimators of %s", preload())
