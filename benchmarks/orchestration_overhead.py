"""Orchestration overhead: the demo model's retrain + back-test through Airflow against plain Python.

Through Airflow: a real api-server, scheduler and dag-processor (LocalExecutor, PostgreSQL metadata database)
run `ratchet_retrain`, then `ratchet_backtest`, each triggered from the CLI; the figure is the sum of
the two DAG runs' durations from queued to finished, as the metadata database records them.
Plain Python: the same library calls (`ratchet.pipeline`) one after the other in this process.

    .venv/bin/python benchmarks/orchestration_overhead.py     (target: ratio <= 1.2)

Uses RATCHET_BENCH_DATABASE_URL (a server URL; scratch databases are created and dropped), else an
embedded PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil
import tempfile
import time
import uuid
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "daily_demand"
MONTH_GROUPS = 2  # as dags/ratchet_backtest.py maps them


def _run_script():
    spec = importlib.util.spec_from_file_location("ratchet_run", REPO / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain_python(ratchet_url: str) -> float:
    """retrain, plan, every month group and the report, in one process."""
    from ratchet import pipeline

    os.environ["RATCHET_DATABASE_URL"] = ratchet_url
    end = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    started = time.perf_counter()
    pipeline.retrain(MODEL, end=end)
    for group in range(MONTH_GROUPS):
        pipeline.backtest_group(MODEL, group, MONTH_GROUPS, end=end)
    pipeline.backtest_report(MODEL, end=end)
    return time.perf_counter() - started


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def through_airflow(run, ratchet_url: str, airflow_url: str, home: Path) -> dict[str, float]:
    from sqlalchemy import create_engine, text

    port = free_port()
    env = run.airflow_env(ratchet_url, airflow_url, home=home)
    env["AIRFLOW__API__BASE_URL"] = f"http://localhost:{port}"  # tasks reach the execution API there
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"  # only the runs this benchmark triggers
    if run.airflow(env, "db", "migrate").returncode != 0:
        raise RuntimeError("airflow db migrate failed")
    processes = run.Processes(home / "logs")
    metadata = create_engine(airflow_url)
    durations = {}
    try:
        processes.start("api-server", [str(run.BIN / "airflow"), "api-server", "--port", str(port)], env)
        processes.start("dag-processor", [str(run.BIN / "airflow"), "dag-processor"], env)
        processes.start("scheduler", [str(run.BIN / "airflow"), "scheduler"], env)
        with metadata.connect() as conn:
            parsed = run.wait_for(lambda: conn.execute(text(
                "SELECT count(*) FROM dag WHERE dag_id IN ('ratchet_retrain', 'ratchet_backtest')")).scalar() == 2,
                timeout=180, every=2)
        if not parsed:
            raise RuntimeError(f"DAGs were not parsed; see {home / 'logs'}")
        for dag_id in ("ratchet_retrain", "ratchet_backtest"):
            run.airflow(env, "dags", "unpause", dag_id)
            run_id = f"bench_{uuid.uuid4().hex[:8]}"
            run.airflow(env, "dags", "trigger", dag_id, "--run-id", run_id)

            def finished():
                with metadata.connect() as conn:
                    row = conn.execute(text("SELECT state, queued_at, end_date FROM dag_run "
                                            "WHERE dag_id = :d AND run_id = :r"), {"d": dag_id, "r": run_id}).one()
                return row if row.state in ("success", "failed") else None

            row = run.wait_for(finished, timeout=900, every=1)
            if row is None or row.state != "success":
                raise RuntimeError(f"{dag_id} run {run_id} did not succeed; see {home / 'logs'}")
            with metadata.connect() as conn:
                inside = conn.execute(text("SELECT count(*), coalesce(sum(duration), 0) FROM task_instance "
                                           "WHERE dag_id = :d AND run_id = :r"), {"d": dag_id, "r": run_id}).one()
            durations[dag_id] = ((row.end_date - row.queued_at).total_seconds(), inside[0], float(inside[1]))
            run.airflow(env, "dags", "pause", dag_id)
    finally:
        processes.stop()
        metadata.dispose()
    return durations


def main() -> None:
    warnings.filterwarnings("ignore")
    from ratchet import demo
    from scratch import scratch_databases

    run = _run_script()
    home = Path(tempfile.mkdtemp(prefix="ratchet-bench-airflow-"))
    with scratch_databases("plain", "ratchet", "airflow", migrated=("plain", "ratchet")) as urls:
        for name in ("plain", "ratchet"):
            demo.load_demo(urls[name])
        plain = plain_python(urls["plain"])
        airflow = through_airflow(run, urls["ratchet"], urls["airflow"], home)
    shutil.rmtree(home, ignore_errors=True)  # kept when a run failed: its logs say why
    total = sum(seconds for seconds, _, _ in airflow.values())
    print(f"{'demo model: retrain + back-test':44} {'seconds':>8}  tasks  seconds inside tasks")
    print(f"{'plain Python, one process':44} {plain:8.2f}")
    for dag_id, (seconds, tasks, inside) in airflow.items():
        print(f"{'Airflow LocalExecutor: ' + dag_id:44} {seconds:8.2f}  {tasks:5d}  {inside:8.2f}")
    print(f"{'Airflow LocalExecutor: both runs':44} {total:8.2f}")
    print(f"ratio Airflow / plain: {total / plain:.2f}   target <= 1.2")


if __name__ == "__main__":
    main()
