"""What a task starts from: the libraries the executor preloads, its native thread pools, and the date a run cuts
its data at."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dag_helpers import load_dag
from spec_factory import write_spec
from sqlalchemy import text

from ratchet import demo, threads

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=REPO, timeout=300)


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_the_executor_imports_task_libraries_and_estimators_before_forking_its_workers(tmp_path):
    write_spec(tmp_path, name="gbr", table="t", estimators=[{"class": "sklearn.ensemble.HistGradientBoostingRegressor",
                                                            "search_space": {"max_iter": {"randint": [10, 20]}}}])
    (tmp_path / "broken.yaml").write_text("name: broken\ntask: forecasting\n")
    result = _python("""
        import sys
        from ratchet.executor import PreloadingLocalExecutor

        executor = PreloadingLocalExecutor(parallelism=2)
        before = {m for m in ("sklearn.ensemble", "pandas", "skops.io") if m in sys.modules}
        executor.start()
        try:
            after = {m for m in ("sklearn.ensemble", "pandas", "skops.io") if m in sys.modules}
            print(sorted(before), sorted(after), len(executor.workers))
        finally:
            executor.end()
    """, RATCHET_MODELS_DIR=str(tmp_path), AIRFLOW__CORE__EXECUTOR="ratchet.executor.PreloadingLocalExecutor")
    assert result.returncode == 0, result.stderr[-3000:]
    # nothing heavy until start(); then the task libraries and the spec's estimator module, and the workers
    # (forked afterwards, so they and every task process they fork share them); a broken spec is no obstacle
    assert result.stdout.split("\n")[-2] == "[] ['pandas', 'sklearn.ensemble', 'skops.io'] 2"


def test_preload_returns_the_models_whose_specs_load(tmp_path, monkeypatch):
    from ratchet import pipeline

    write_spec(tmp_path, name="ridge", table="t")
    (tmp_path / "broken.yaml").write_text("name: broken\ntask: forecasting\n")
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    assert pipeline.preload() == ["ridge"]


def test_a_real_task_runs_its_native_pools_at_the_size_the_executor_leaves_it(airflow_db, tmp_path, monkeypatch,
                                                                              registry, capfd):
    """A ratchet_retrain task (dag.test(), in this process) writes to its log the size its OpenMP and BLAS pools
    run at, read back from them: one thread when Airflow's parallelism exceeds the cores, though the process's pools
    ran two; they run two again once the task is over."""
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS threadtest CASCADE; CREATE SCHEMA threadtest"))
        demo.generate_demand(dt.date(2024, 1, 1), dt.date(2025, 3, 1)).to_sql("demand", conn, schema="threadtest",
                                                                             index=False)
    write_spec(tmp_path, name="threads_test", table="threadtest.demand",
               source={"target": "demand", "target_lags": [1]}, search={"n_trials": 2, "cv_folds": 2, "candidates": 1})
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", str(4 * threads.available_cores()))
    monkeypatch.delenv(threads.TASK_THREADS_ENV, raising=False)
    with threads.limit_pools(2):
        run = load_dag("ratchet_retrain").test(logical_date=dt.datetime(2025, 3, 2, 1, 0, tzinfo=dt.UTC))
        after = threads.widest_pool()
    assert run.state == "success"
    said = [line for line in capfd.readouterr().out.splitlines() if "native thread pools" in line]
    origin = f"{threads.available_cores()} cores / {4 * threads.available_cores()} task(s) at once"
    assert said == [f"native thread pools (OpenMP, BLAS) run 1 thread(s) in this task ({origin})"]
    assert after == 2


def test_a_run_triggered_for_a_date_cuts_its_data_at_that_date(airflow_db):
    """`airflow dags trigger --logical-date D` (and the UI's form) gives the run the data interval of the
    moment it was triggered; the run still reads data up to D, so triggering D again redoes D."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType
    from sqlalchemy import delete

    from ratchet import pipeline

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(REPO / "dags" / "ratchet_retrain.py"))
    sync_bag_to_db(bag, "dags-folder", None)
    date = dt.datetime(2025, 3, 4, 1, 0, tzinfo=dt.UTC)
    runs = {"dated": {"logical_date": date}, "undated": {}}
    for name, kwargs in runs.items():
        runs[name] = trigger_dag("ratchet_retrain", triggered_by=DagRunTriggeredByType.CLI, **kwargs,
                                 run_id=f"test_{name}_{dt.datetime.now().timestamp()}")
    try:
        assert runs["dated"].data_interval_end != date  # Airflow's own choice: the trigger time
        assert pipeline.run_end(runs["dated"]) == date
        assert runs["undated"].logical_date is None
        assert pipeline.run_end(runs["undated"]) == runs["undated"].run_after
    finally:
        with create_session() as session:  # queued runs no other test should meet
            session.execute(delete(DagRun).where(DagRun.run_id.in_([r.run_id for r in runs.values()])))
