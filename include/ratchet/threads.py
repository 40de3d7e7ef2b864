"""How many native threads (OpenMP, BLAS) Ratchet's computations run: decided here, for tasks and for serving.

scikit-learn (HistGradientBoosting's OpenMP loops) and NumPy/SciPy (BLAS) start one thread per core by default.
That suits a process alone on its machine, not an Airflow task: the executor runs up to `[core] parallelism`
tasks at once on the same cores, and the threads of tasks side by side fight over them. Measured on a 2-core
machine (`benchmarks/orchestration_overhead.py`): the back-test's two month-group tasks side by side took
27.7 s each with a thread per core and 4.0-4.3 s each with one thread, while a lone task gains nothing from a
second thread; the Airflow side of retrain + back-test took 45.5 s against 17.5 s for the same calls in one
process (ratio 2.61), and 0.86 with one thread per task.

So a task's step runs its pools at the cores each task gets when the executor's parallelism is full
(`task_threads`, overridden by `RATCHET_TASK_THREADS`; a step called outside Airflow, by a script, has every core),
and `ratchet serve` predicts on one thread per request:
a request predicts a row or a few, where threads only add start-up cost, and concurrent requests use the cores.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ratchet.exceptions import ConfigurationError

TASK_THREADS_ENV = "RATCHET_TASK_THREADS"
SERVING_THREADS = 1
AIRFLOW_TASK_ENV = "AIRFLOW_CTX_DAG_ID"


def threads_per_task(cores: int, concurrent_tasks: int) -> int:
    """The cores each of `concurrent_tasks` tasks has to itself when they all run at once; at least one."""
    return max(1, cores // max(1, concurrent_tasks))


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, as OpenMP counts them), else the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def airflow_parallelism() -> int:
    """Airflow's `[core] parallelism`: how many tasks its executor runs at once (the LocalExecutor's worker count;
    `make run` leaves Airflow's default, 32)."""
    from airflow.sdk import conf

    return conf.getint("core", "parallelism")


def concurrent_tasks() -> int:
    """How many tasks may run side by side with this process: Airflow's parallelism inside an Airflow task (Airflow
    exports the task's context to its environment, `AIRFLOW_CTX_DAG_ID` among it); elsewhere (a script, a test)
    the process runs alone, and Airflow is not imported just to say so."""
    return airflow_parallelism() if os.environ.get(AIRFLOW_TASK_ENV) else 1


def task_threads(side_by_side: int | None = None) -> int:
    """The native threads of one task: `RATCHET_TASK_THREADS` when set, else the cores left to each of
    `side_by_side` tasks running at once (default: `concurrent_tasks()`)."""
    raw = os.environ.get(TASK_THREADS_ENV, "").strip()
    if not raw:
        return threads_per_task(available_cores(), side_by_side or concurrent_tasks())
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigurationError(f"{TASK_THREADS_ENV} must be a whole number of threads, 1 or more; got {raw!r}")
    return int(raw)


def task_threads_origin(side_by_side: int | None = None) -> str:
    """Where `task_threads(side_by_side)` comes from, for task logs and benchmarks."""
    raw = os.environ.get(TASK_THREADS_ENV, "").strip()
    if raw:
        return f"{TASK_THREADS_ENV}={raw}"
    return f"{available_cores()} cores / {side_by_side or concurrent_tasks()} task(s) at once"


def widest_pool() -> int:
    """The most threads any loaded native pool (OpenMP, BLAS) runs now: what a computation here would get."""
    from threadpoolctl import threadpool_info

    return max((pool["num_threads"] for pool in threadpool_info()), default=0)


def limit_pools(threads: int) -> Any:
    """Size every native pool to `threads` now; use the result as a context manager to restore them after.

    scikit-learn is imported first: it loads OpenMP and the BLAS libraries, and threadpoolctl sizes only the
    libraries loaded when it is called (one a step imported later would keep a thread per core).
    """
    import sklearn  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads)


def serving_limits() -> Any:
    """Native pools at one thread, as `ratchet serve` predicts (and as a version's prediction latency is timed)."""
    return limit_pools(SERVING_THREADS)


@contextmanager
def task_limits() -> Iterator[str]:
    """Native pools at `task_threads()` while the block runs (every task's step runs inside). Yields, for the task
    log, the threads the pools run, read back from them, and why."""
    with limit_pools(task_threads()):
        yield (f"native thread pools (OpenMP, BLAS) run {widest_pool()} thread(s) in this task "
               f"({task_threads_origin()})")
