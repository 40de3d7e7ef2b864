"""The nightly cycle on two real Celery workers, and one of them lost in the middle of a back-test.

Airflow's scheduler with the CeleryExecutor, its dag-processor, its api-server (the execution API the tasks call)
and two `airflow celery worker` processes run as `make run` starts them with RATCHET_EXECUTOR=celery
(`scripts/run.py`, `ratchet.celery_setup`): on the session's Airflow database, with Celery's task results in it,
and the machine's Redis at :6379 as broker (a redis-server on a free port when none answers; the test's keys
are under a prefix of their own). Three models are retrained and back-tested; their mapped tasks land on both
workers, as the hosts the task instances record say (each worker's name).

When a back-test task of the slowest model has begun its step on a worker, that worker is killed with SIGKILL,
its process group and every process under it (the task's own group too): what the loss of its machine does.
Airflow finds the task silent after its heartbeat timeout and retries it on the other worker, and the
registry's rows then equal those of a clean run of the same two nights by `dag.test()` in a fresh registry.

For time, and only here: a 20 s heartbeat timeout (Airflow's default is 300 s), retries after 3 s instead of
the DAGs' 2 minutes (a cluster policy, tests/airflow_policy/), and no schedule (only the runs the test triggers).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from conftest import REPO, RUN_TAG, free_port, run_script
from dag_helpers import load_dag, stored_rows, timed_run
from nowtest_helpers import SPEC, write_source
from spec_factory import spec_data, write_spec

from ratchet import celery_setup, settings
from ratchet.registry import Registry, db

# Airflow's processes, two workers and two DAG runs (one with a retry): minutes.
pytestmark = pytest.mark.slow

UTC = dt.UTC
RETRAIN_AT = dt.datetime(2025, 7, 1, 1, tzinfo=UTC)
BACKTEST_AT = dt.datetime(2025, 7, 1, 3, tzinfo=UTC)
SLOW_MODEL = "celery_boost"  # its back-test groups take seconds: the one whose task is caught mid-step
MODELS = {  # name -> overrides of nowtest_helpers.SPEC
    "celery_ridge": {},
    "celery_lags": {"source": {"target_lags": [1, 7, 14]}},
    SLOW_MODEL: {"estimators": [{"class": "sklearn.ensemble.HistGradientBoostingRegressor",
                                 "params": {"max_iter": 60, "random_state": 0},
                                 "search_space": {"learning_rate": {"uniform": [0.05, 0.2]}}}]},
}
HEARTBEAT_TIMEOUT = 20  # seconds without a task's heartbeat before the scheduler fails it (tasks beat every 5 s)
POLICY = REPO / "tests" / "airflow_policy"
STEP_BEGUN = "native thread pools"  # the first line a Ratchet step writes to its task's log (`pipeline.task_step`)


run = run_script()  # make run's functions: Redis, the workers, processes and their stop


def _wait(what: str, predicate, timeout: float, every: float = 1.0):
    value = run.wait_for(predicate, timeout=timeout, every=every)
    assert value, f"{what}: not within {timeout:.0f} s"
    return value


@pytest.fixture
def models(tmp_path, monkeypatch, registry):
    """The three models' YAML files and their table in the session's registry."""
    write_source(registry)
    folder = tmp_path / "models"
    folder.mkdir()
    for name, overrides in MODELS.items():
        write_spec(folder, spec_data(**SPEC), name=name, backtest={"months": 4}, **overrides)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(folder))
    monkeypatch.setenv("RATCHET_REPORTS_DIR", str(tmp_path / "reports"))
    return list(MODELS)


@contextmanager
def celery_stack(logs: Path):
    """api-server, scheduler, dag-processor and the two workers of `make run`'s Celery stack, logging into `logs`;
    yields the processes once all answer. However the block ends, it stops every process it started, pauses the
    DAGs and ends the runs left unfinished, and deletes its broker keys."""
    processes = run.Processes(logs=logs)
    prefix = f"ratchet-test-{RUN_TAG}:"
    broker = None
    try:
        broker = run.redis_broker(processes, 6379 if run.redis_answers(6379) else free_port())
        port = free_port()
        env = {**os.environ,
               **celery_setup.settings(broker, os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], key_prefix=prefix),
               "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
               "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
               "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
               "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
               "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
               "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",  # task logs keep the steps' printed lines (STEP_BEGUN)
               "PYTHONPATH": os.pathsep.join(filter(None, [str(POLICY), os.environ.get("PYTHONPATH")]))}
        airflow = str(run.BIN / "airflow")
        processes.start("api-server", [airflow, "api-server", "--port", str(port)], env)
        for component in ("scheduler", "dag-processor"):
            processes.start(component, [airflow, component], env)
        run.start_workers(processes, env)
        checks = {"the api-server": lambda: run.api_server_healthy(port),
                  "both workers": lambda: celery_setup.ready_workers(env) == set(celery_setup.WORKER_NAMES)}
        for what, answers in checks.items():  # a component that exits ends the wait, with the end of its log
            run.wait_for(lambda answers=answers: processes.exited() or answers(), timeout=180, every=1)
            dead = processes.exited()
            if dead or not answers():
                tails = [f"--- {name}.log:\n{(logs / f'{name}.log').read_text()[-1500:]}" for name in dead]
                raise AssertionError("\n".join([f"waiting for {what} to answer: "
                                                 f"{f'{dead} exited' if dead else 'not within 180 s'}", *tails]))
        yield processes
    finally:
        processes.stop()
        _schedulable([])
        if broker:
            keys = redis.Redis.from_url(broker)
            for key in keys.scan_iter(match=f"{prefix}*"):
                keys.delete(key)
            keys.close()


def _serialized_models(dag_id: str) -> set | None:
    """The models a DAG's stored (serialized) version maps over, as its `model` Param lists them."""
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session

    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
        return None if dag is None else set(dag.params.get_param("model").schema.get("enum") or ())


def _schedulable(dag_ids: list[str]) -> None:
    """Leave only `dag_ids` unpaused, and end the runs earlier tests of this session left queued or running (a
    breach's retrain, which no scheduler ran) or at the logical dates this test triggers (a `dag.test()` of an earlier
    test): the test's scheduler runs what the test triggers and nothing else.
    `_schedulable([])` pauses every DAG again, as the session's other tests find them."""
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import delete, update

    with create_session() as session:
        session.execute(update(DagModel).values(is_paused=DagModel.dag_id.not_in(dag_ids)))
        session.execute(update(DagRun).where(DagRun.state.in_([DagRunState.QUEUED, DagRunState.RUNNING]))
                        .values(state=DagRunState.FAILED))
        session.execute(delete(DagRun).where(DagRun.dag_id.in_(dag_ids),
                                             DagRun.logical_date.in_([RETRAIN_AT, BACKTEST_AT])))


def _trigger(dag_id: str, when: dt.datetime) -> str:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    return trigger_dag(dag_id, logical_date=when, triggered_by=DagRunTriggeredByType.TEST).run_id


def _run_state(dag_id: str, run_id: str) -> str | None:
    """The run's state once it has finished, else None."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        state = DagRun.find(dag_id=dag_id, run_id=run_id, session=session)[0].state
    return state if state in ("success", "failed") else None


def _tries(dag_id: str, run_id: str) -> list[dict]:
    """Every try of every task instance of a run: the current one (task_instance) and the earlier ones
    (task_instance_history), with the host each ran on."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session
    from sqlalchemy import select

    rows = []
    with create_session() as session:
        for table in (TaskInstance, TaskInstanceHistory):
            query = select(table.task_id, table.map_index, table.try_number, table.state, table.hostname,
                           table.start_date, table.end_date).where(table.dag_id == dag_id, table.run_id == run_id)
            rows += [dict(row._mapping) for row in session.execute(query)]
    return sorted(rows, key=lambda r: (r["task_id"], r["map_index"], r["try_number"]))


def _running(dag_id: str, run_id: str, task_id: str, map_indexes: list[int]) -> dict | None:
    return next((t for t in _tries(dag_id, run_id) if t["task_id"] == task_id and t["map_index"] in map_indexes
                 and t["state"] == "running" and t["try_number"] == 1), None)


def _task_log(dag_id: str, run_id: str, task_id: str, map_index: int, attempt: int) -> str:
    path = (Path(os.environ["AIRFLOW_HOME"]) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
            / f"task_id={task_id}" / f"map_index={map_index}" / f"attempt={attempt}.log")
    return path.read_text() if path.exists() else ""


def _groups_of(model: str) -> list[int]:
    """Map indexes of the model's back-test groups, read from the DAG's own expansion."""
    expansion = load_dag("ratchet_backtest").get_task("backtest").op_kwargs_expand_input.value
    groups = [index for index, kwargs in enumerate(expansion) if kwargs["model"] == model]
    assert groups, f"ratchet_backtest maps no group of {model}: {expansion}"
    return groups


class Clock:
    """Seconds since the test began, printed at each phase (the figures of the closing note come from here)."""

    def __init__(self):
        self.started = time.monotonic()
        self.marks: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        self.marks[phase] = time.monotonic() - self.started
        print(f"[celery test] {self.marks[phase]:5.0f} s  {phase}", flush=True)


def test_the_cycle_runs_on_two_celery_workers_and_survives_losing_one(airflow_db, models, registry, empty_database,
                                                                     tmp_path, monkeypatch):
    clock = Clock()
    slow_groups = _groups_of(SLOW_MODEL)
    logs = tmp_path / "logs"
    with celery_stack(logs) as processes:
        clock.mark("api-server, scheduler, dag-processor and both workers answer")
        for worker in celery_setup.WORKER_NAMES:  # Celery's `imports` setting took: the tasks start preloaded
            assert f"Preloaded Ratchet's task libraries and the estimators of {sorted(models)}" in \
                (logs / f"{worker}.log").read_text()
        _wait("the DAGs parsed with this test's models",
              lambda: all(_serialized_models(d) == {None, *models} for d in ("ratchet_retrain", "ratchet_backtest")),
              timeout=120)
        _schedulable(["ratchet_retrain", "ratchet_backtest"])
        retrain = _trigger("ratchet_retrain", RETRAIN_AT)
        assert _wait("ratchet_retrain", lambda: _run_state("ratchet_retrain", retrain), timeout=240) == "success"
        clock.mark("ratchet_retrain succeeded")

        backtest = _trigger("ratchet_backtest", BACKTEST_AT)
        caught = _wait(f"a back-test task of {SLOW_MODEL} running",
                       lambda: _running("ratchet_backtest", backtest, "backtest", slow_groups), timeout=120, every=0.2)
        _wait("its step begun", lambda: STEP_BEGUN in _task_log("ratchet_backtest", backtest, "backtest",
                                                                   caught["map_index"], 1), timeout=60, every=0.1)
        victim = caught["hostname"]
        run.kill_tree(processes.pid(victim))
        killed_at = dt.datetime.now(UTC)
        clock.mark(f"killed {victim} in backtest[{caught['map_index']}] ({SLOW_MODEL})")
        state = _wait("ratchet_backtest after the kill", lambda: _run_state("ratchet_backtest", backtest), timeout=240)
        clock.mark(f"ratchet_backtest {state}")
        tries = _tries("ratchet_retrain", retrain) + _tries("ratchet_backtest", backtest)
    assert state == "success"

    # Every task the kill cut short (the caught one, and whatever else ran on that worker) ran again on the other.
    (survivor,) = set(celery_setup.WORKER_NAMES) - {victim}
    cut_short = sorted({(t["task_id"], t["map_index"]) for t in tries
                        if t["hostname"] == victim and t["state"] != "success"})
    assert ("backtest", caught["map_index"]) in cut_short
    for task in cut_short:
        assert [(t["try_number"], t["hostname"], t["state"] == "success") for t in tries
                if (t["task_id"], t["map_index"]) == task] == [(1, victim, False), (2, survivor, True)], task
    assert _task_log("ratchet_backtest", backtest, "backtest", caught["map_index"], 1).count(STEP_BEGUN) == 1
    retry = next(t for t in tries if (t["task_id"], t["map_index"], t["try_number"]) ==
                 ("backtest", caught["map_index"], 2))
    print(f"[celery test] cut short by the kill: {cut_short}; try 2 of backtest[{caught['map_index']}] started on "
          f"{retry['hostname']} {(retry['start_date'] - killed_at).total_seconds():.0f} s after the kill; tries per "
          f"(task, worker): {dict(sorted(Counter((t['task_id'], t['hostname']) for t in tries).items()))}")

    # The mapped tasks landed on both workers: three retrains at once, and a worker holds two (its concurrency).
    assert {t["hostname"] for t in tries if t["task_id"] == "retrain"} == set(celery_setup.WORKER_NAMES)

    # The same two nights by dag.test() in a fresh registry: the rows are the same.
    db.upgrade(empty_database)
    clean = Registry(empty_database)
    write_source(clean)
    monkeypatch.setenv("RATCHET_DATABASE_URL", empty_database)
    monkeypatch.setenv("AIRFLOW_CONN_RATCHET_DB", json.dumps(settings.connection_fields(empty_database)))
    for dag_id, when in (("ratchet_retrain", RETRAIN_AT), ("ratchet_backtest", BACKTEST_AT)):
        assert timed_run(dag_id, when)[0].state == "success"
    clock.mark("the clean run by dag.test() done")
    for model in models:
        celery_rows, clean_rows = stored_rows(registry, model), stored_rows(clean, model)
        assert celery_rows["evaluations"] and celery_rows["backtest_days"], model
        assert celery_rows == clean_rows, model
    clean.dispose()
