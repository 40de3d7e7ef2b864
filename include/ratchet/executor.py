"""Airflow's LocalExecutor, with Ratchet's libraries imported before it forks its workers.

Every Airflow task runs in a process forked from a LocalExecutor worker, itself forked from the
scheduler when the executor starts. Importing pandas, scikit-learn, SciPy and skops costs a few
seconds, which a plain LocalExecutor pays again in every task; here the scheduler pays it once and
every task process inherits the modules (copy-on-write). Select it with
`AIRFLOW__CORE__EXECUTOR=ratchet.executor.PreloadingLocalExecutor` (`make run` does).
"""
from __future__ import annotations

import importlib

from airflow.executors.local_executor import LocalExecutor

# Airflow's own module that every task process runs, imported here for the same reason.
TASK_RUNNER = "airflow.sdk.execution_time.task_runner"


def preload() -> list[str]:
    """Import Airflow's task runner and `pipeline.preload()` (the task libraries, the configured estimators) into
    this process, for the task processes it forks later; returns the models whose specs loaded."""
    from ratchet import pipeline

    importlib.import_module(TASK_RUNNER)
    return pipeline.preload()


class PreloadingLocalExecutor(LocalExecutor):
    """LocalExecutor whose workers are forked after Ratchet's task libraries are imported."""

    def start(self) -> None:
        """`preload()`, then start the workers as LocalExecutor does."""
        self.log.info("Preloaded Ratchet's task libraries and the estimators of %s", preload())
        super().start()
