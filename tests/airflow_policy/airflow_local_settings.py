"""Airflow's cluster policy for the processes of the Celery test (tests/dags/test_celery.py), which put this folder
on their PYTHONPATH: every task retries after seconds instead of its DAG's minutes, so that the test sees the task of
a killed worker retried within its time budget. The retry itself is Airflow's, unchanged."""
from __future__ import annotations

import datetime as dt

RETRY_DELAY = dt.timedelta(seconds=3)


def task_policy(task) -> None:
    task.retry_delay = RETRY_DELAY
