"""Native thread pools (`ratchet.threads`): how many threads a task gets, and that a task's step runs with them."""
from __future__ import annotations

import pytest

from ratchet import pipeline, threads
from ratchet.exceptions import ConfigurationError


@pytest.mark.parametrize(("cores", "tasks", "expected"), [
    (2, 32, 1),  # this machine under Airflow's default parallelism: tasks side by side, one thread each
    (2, 2, 1), (8, 2, 4), (64, 32, 2), (4, 1, 4),
    (1, 4, 1),  # never fewer than one
    (8, 3, 2),  # what is left over stays unused rather than oversubscribed
])
def test_each_task_gets_the_cores_left_to_it_when_the_executor_runs_its_parallelism(cores, tasks, expected):
    assert threads.threads_per_task(cores, tasks) == expected


def test_an_airflow_task_divides_the_cores_by_airflows_parallelism(monkeypatch):
    monkeypatch.delenv(threads.TASK_THREADS_ENV, raising=False)
    monkeypatch.setenv(threads.AIRFLOW_TASK_ENV, "ratchet_backtest")  # what Airflow exports to every task
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "1")
    assert threads.task_threads() == threads.available_cores()
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "1000")
    assert threads.task_threads() == 1
    assert threads.task_threads_origin() == f"{threads.available_cores()} cores / 1000 task(s) at once"


def test_a_process_that_is_no_airflow_task_runs_alone_on_every_core(monkeypatch):
    monkeypatch.delenv(threads.TASK_THREADS_ENV, raising=False)
    monkeypatch.delenv(threads.AIRFLOW_TASK_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "1000")
    assert threads.task_threads() == threads.available_cores()
    assert threads.task_threads(side_by_side=1000) == 1


def test_ratchet_task_threads_overrides_the_decision(monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "1000")
    monkeypatch.setenv(threads.TASK_THREADS_ENV, " 3 ")
    assert threads.task_threads() == 3
    assert threads.task_threads_origin() == "RATCHET_TASK_THREADS=3"


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_bad_ratchet_task_threads_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(threads.TASK_THREADS_ENV, value)
    with pytest.raises(ConfigurationError, match=f"RATCHET_TASK_THREADS must be a whole number .* got '{value}'"):
        threads.task_threads()


def test_a_task_step_runs_its_native_pools_at_the_task_size_and_gives_them_back(monkeypatch):
    """The step sees its pools at `task_threads()` (read back from OpenMP and BLAS themselves), and the process's
    pools are as before once it returns."""
    with threads.limit_pools(2):  # two threads whatever this machine's cores, so a one-thread step shows
        monkeypatch.delenv(threads.TASK_THREADS_ENV, raising=False)
        monkeypatch.setenv(threads.AIRFLOW_TASK_ENV, "ratchet_retrain")
        monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "1000")
        assert threads.widest_pool() == 2, "the pools could not be widened: the test would prove nothing"
        seen = pipeline.task_step(threads.widest_pool)()
        assert (seen, threads.widest_pool()) == (1, 2)
        monkeypatch.setenv(threads.TASK_THREADS_ENV, "3")
        assert pipeline.task_step(threads.widest_pool)() == 3


def test_a_bad_setting_fails_the_task_at_once(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv(threads.TASK_THREADS_ENV, "many")
    with pytest.raises(AirflowFailException, match="RATCHET_TASK_THREADS"):
        pipeline.task_step(threads.widest_pool)()
