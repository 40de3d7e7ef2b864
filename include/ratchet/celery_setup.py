"""The CeleryExecutor's configuration, in one place for the three stacks that use it: `make run` with
`RATCHET_EXECUTOR=celery`, the test that runs the nightly cycle on two Celery workers and kills one
(tests/dags/test_celery.py), and docker-compose.yaml (tests/app/test_compose.py checks its settings are these).

Light (Celery and Airflow are imported inside the functions that need them): every Airflow process of such a
stack imports this module for `worker_hostname`.
"""
from __future__ import annotations

import json
import os

WORKER_NAME_ENV = "RATCHET_WORKER_NAME"
WORKER_NAMES = ("worker-1", "worker-2")  # the workers `make run` starts on one machine
WORKER_CONCURRENCY = 2  # task processes per worker: two workers on a 2-core machine already fill it
WORKER_COMMAND = ("celery", "worker")  # the `airflow` subcommand of a worker
PRELOAD_MODULE = "ratchet.celery_worker"  # what a worker imports before it forks its pool
BROKER_ENV = "AIRFLOW__CELERY__BROKER_URL"
KEY_PREFIX_ENV = "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"


def settings(broker_url: str, airflow_db_url: str, *, key_prefix: str = "") -> dict[str, str]:
    """The environment of every Airflow process of a Celery stack: the executor, the broker, the task results in
    Airflow's own PostgreSQL database, the task processes per worker, what a worker preloads for its tasks
    (`ratchet.celery_worker`) and who names a task's host.
    `key_prefix` puts every broker key (queues, and the broadcasts `celery inspect` uses) under a prefix of its
    own, so that stacks sharing one Redis (parallel test sessions) never take each other's tasks."""
    env = {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        BROKER_ENV: broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{airflow_db_url}",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps({"imports": [PRELOAD_MODULE]}),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
    }
    if key_prefix:
        env[KEY_PREFIX_ENV] = key_prefix
    return env


def worker_args(name: str) -> list[str]:
    """`airflow` arguments of a worker named `name` sharing its machine with others: Celery knows it by the name;
    it serves no logs, as its tasks' log files are in the folder the api-server reads (and workers on one machine
    would all claim the log server's one port)."""
    return [*WORKER_COMMAND, "--celery-hostname", name, "--skip-serve-logs"]


def worker_env(name: str) -> dict[str, str]:
    """What a worker named `name` adds to `settings`: its name, which `worker_hostname` records for its tasks."""
    return {WORKER_NAME_ENV: name}


def worker_hostname() -> str:
    """The host Airflow records for a task (`[core] hostname_callable`): the worker's name when it has one (two
    workers on one machine tell their tasks apart), else Airflow's default, the machine's FQDN."""
    from airflow.utils.net import getfqdn

    return os.environ.get(WORKER_NAME_ENV) or getfqdn()


def ready_workers(env: dict[str, str], names: tuple[str, ...] = WORKER_NAMES) -> set[str]:
    """The workers among `names` that answer a ping through the broker (and key prefix) of `env`, the environment
    made with `settings`."""
    from celery import Celery

    app = Celery(broker=env[BROKER_ENV],
                 broker_transport_options={"global_keyprefix": env.get(KEY_PREFIX_ENV, "")})
    try:
        replies = app.control.inspect(destination=[f"celery@{name}" for name in names], timeout=1).ping() or {}
    finally:
        app.close()
    return {node.split("@", 1)[1] for node in replies}
