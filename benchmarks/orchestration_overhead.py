"""Orchestration overhead: the demo model's retrain + back-test through Airflow against plain Python.

Both sides do the same work: the demo data ends on DATA_END and every run cuts it at END, so they fit
the same trials (the search seed comes from the date) and back-test the same months, and repeated
invocations of this script do the same work too.

Through Airflow: a real api-server, scheduler and dag-processor (`make run`'s PreloadingLocalExecutor,
PostgreSQL metadata database) run `ratchet_retrain`, then `ratchet_backtest`, each triggered from the
CLI for END with the schedules off (no scheduled or asset-triggered run competes); the figure is the sum
of the two DAG runs' durations from queued to finished, as the metadata database records them.
Plain Python: the same library calls (`ratchet.pipeline`) one after the other in a new Python process,
timed two ways: the whole process (what a cron job running a script waits for, imports included: the
reference for the target), and warm, after the imports the scheduler does before its first task
(`ratchet.pipeline.preload`), which leaves orchestration alone in the ratio. The whole comparison runs
REPEATS times on new databases, the sides interleaved; the figures are medians.

    .venv/bin/python benchmarks/orchestration_overhead.py     (target: ratio <= 1.2)

Uses RATCHET_BENCH_DATABASE_URL (a server URL; scratch databases are created and dropped), else an
embedded PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = "daily_demand"
MONTH_GROUPS = 2  # as dags/ratchet_backtest.py maps them
DATA_END = dt.date(2025, 6, 30)
END = dt.datetime(2025, 7, 1, 1, 0, tzinfo=dt.UTC)
REPEATS = 3  # this machine's speed varies by a fifth from minute to minute: medians of interleaved repeats


def _run_script():
    spec = importlib.util.spec_from_file_location("ratchet_run", REPO / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain_python(ratchet_url: str, *, warm: bool) -> float:
    """Seconds a new Python process takes to retrain, back-test every month group and write the report:
    the whole process, or (warm) the calls alone after `ratchet.pipeline.preload()`."""
    started = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--plain", *(["--warm"] if warm else [])], check=True,
                           env={**os.environ, "RATCHET_DATABASE_URL": ratchet_url}, capture_output=True, text=True)
    return float(child.stdout.split()[-1]) if warm else time.perf_counter() - started


def _plain_calls(warm: bool) -> None:
    """The body of plain_python's process: prints the seconds of the calls."""
    from ratchet import pipeline

    if warm:
        pipeline.preload()
    started = time.perf_counter()
    pipeline.retrain(MODEL, end=END)
    for group in range(MONTH_GROUPS):
        pipeline.backtest_group(MODEL, group, MONTH_GROUPS, end=END)
    pipeline.backtest_report(MODEL, end=END)
    print(time.perf_counter() - started)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def through_airflow(run, ratchet_url: str, airflow_url: str, home: Path) -> dict[str, tuple[float, int, float]]:
    from sqlalchemy import create_engine, text

    port = free_port()
    env = run.airflow_env(ratchet_url, airflow_url, home=home)
    env["AIRFLOW__API__BASE_URL"] = f"http://localhost:{port}"  # tasks reach the execution API there
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"  # only the runs this benchmark triggers,
    env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "False"  # and no nightly slot or asset event adds another
    if run.airflow(env, "db", "migrate").returncode != 0:
        raise RuntimeError("airflow db migrate failed")
    processes = run.Processes(home / "logs")
    metadata = create_engine(airflow_url)
    durations = {}
    try:
        processes.start("api-server", [str(run.BIN / "airflow"), "api-server", "--port", str(port)], env)
        processes.start("dag-processor", [str(run.BIN / "airflow"), "dag-processor"], env)
        processes.start("scheduler", [str(run.BIN / "airflow"), "scheduler"], env)
        if not run.wait_for(lambda: run.api_server_healthy(port), timeout=180, every=1):
            raise RuntimeError(f"the api-server did not answer; see {home / 'logs'}")
        with metadata.connect() as conn:
            parsed = run.wait_for(lambda: conn.execute(text(
                "SELECT count(*) FROM dag WHERE dag_id IN ('ratchet_retrain', 'ratchet_backtest')")).scalar() == 2,
                timeout=180, every=2)
        if not parsed:
            raise RuntimeError(f"DAGs were not parsed; see {home / 'logs'}")
        for dag_id in ("ratchet_retrain", "ratchet_backtest"):
            run.airflow(env, "dags", "unpause", dag_id)
            run_id = f"bench_{uuid.uuid4().hex[:8]}"
            run.airflow(env, "dags", "trigger", dag_id, "--run-id", run_id, "--logical-date", END.isoformat())

            def finished(dag_id=dag_id, run_id=run_id):
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


def measure(run) -> dict[str, tuple[float, int, float]]:
    """One comparison on new databases: figure -> (seconds, tasks, seconds inside tasks)."""
    from scratch import scratch_databases

    from ratchet import demo

    home = Path(tempfile.mkdtemp(prefix="ratchet-bench-airflow-"))
    sides = ("cold", "warm", "airflow_side")
    with scratch_databases(*sides, "airflow", migrated=sides) as urls:
        for name in sides:
            demo.load_demo(urls[name], end=DATA_END)
        figures = {"cold": (plain_python(urls["cold"], warm=False), 0, 0.0),
                   "warm": (plain_python(urls["warm"], warm=True), 0, 0.0)}
        figures.update(through_airflow(run, urls["airflow_side"], urls["airflow"], home))
    shutil.rmtree(home, ignore_errors=True)  # kept when a run failed: its logs say why
    airflow = [figures.pop(dag_id) for dag_id in ("ratchet_retrain", "ratchet_backtest")]
    figures["retrain"], figures["backtest"] = airflow
    figures["airflow"] = (sum(f[0] for f in airflow), sum(f[1] for f in airflow), sum(f[2] for f in airflow))
    return figures


def main() -> None:
    from ratchet import threads

    warnings.filterwarnings("ignore")
    run = _run_script()
    repeats = [measure(run) for _ in range(REPEATS)]
    median = {name: tuple(statistics.median(r[name][i] for r in repeats) for i in range(3)) for name in repeats[0]}
    rows = [("cold", "plain Python: a new process, imports included"),
            ("warm", "plain Python: the calls alone, imports done"),
            ("retrain", "Airflow LocalExecutor: ratchet_retrain"),
            ("backtest", "Airflow LocalExecutor: ratchet_backtest"),
            ("airflow", "Airflow LocalExecutor: both runs")]
    print(f"demo model, data to {DATA_END}, runs for {END:%Y-%m-%d %H:%M} UTC: retrain + back-test (24 months); "
          f"median of {REPEATS} repeats")
    parallelism = threads.airflow_parallelism()
    print(f"native threads (ratchet.threads): {threads.task_threads(parallelism)} per Airflow task "
          f"({threads.task_threads_origin(parallelism)}), {threads.task_threads()} in the plain process; "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print(f"{'':46} {'seconds':>8}  tasks  seconds inside tasks")
    for name, label in rows:
        seconds, tasks, inside = median[name]
        print(f"{label:46} {seconds:8.2f}" + (f"  {tasks:5.0f}  {inside:8.2f}" if tasks else ""))
    for name, label in (("cold", "plain Python process"), ("warm", "plain calls, imports done (orchestration alone)")):
        each = ", ".join(f"{r['airflow'][0] / r[name][0]:.2f}" for r in repeats)
        print(f"ratio Airflow / {label}: {median['airflow'][0] / median[name][0]:.2f}   (each repeat: {each})"
              + ("   target <= 1.2" if name == "cold" else ""))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--plain"]:
        _plain_calls(warm="--warm" in sys.argv)
    else:
        main()
