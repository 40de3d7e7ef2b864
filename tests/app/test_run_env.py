"""`make run` (scripts/run.py) where the user is: the `.run/env` it writes gives a bare shell the `ratchet` and
`airflow` commands of the run, and a second Ctrl-C or a SIGTERM to its process group stops all it started,
PostgreSQL included, without a traceback."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import free_port, run_script

from ratchet import celery_setup, specs

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


# Debian's login PATH for root: the embedded PostgreSQL runs as its own user, made with /usr/sbin/useradd
LOGIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _bare_env(home: Path) -> dict[str, str]:
    """A login shell's environment with nothing of Ratchet or Airflow in it; PYTHONPATH only when the tests run
    with one (a worktree's own `ratchet` package over the editable install)."""
    env = {"HOME": str(home), "PATH": LOGIN_PATH}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def _sourced(env_file: Path, command: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"source {shlex.quote(str(env_file))} && {command}"], env=_bare_env(home),
                          cwd=home, capture_output=True, text=True, timeout=300)


def test_source_run_env_gives_a_bare_shell_the_runs_ratchet_and_airflow(tmp_path, database_url, registry,
                                                                         airflow_db):
    run = run_script()
    home, env_file = tmp_path / "home", tmp_path / ".run" / "env"
    home.mkdir()
    registry.sync_model(specs.load_specs()["daily_demand"])
    settings = run.run_settings(database_url, airflow_db, home=tmp_path / "airflow")
    token = "it's a $token"
    run.write_env(env_file, settings, token=token, embedded_url=None)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    status = _sourced(env_file, "ratchet status --json", home)
    assert status.returncode == 0, status.stderr
    (model,) = json.loads(status.stdout)["models"]
    assert model["name"] == "daily_demand" and model["registered"]  # synced above: the test's database

    conn = _sourced(env_file, "airflow config get-value database sql_alchemy_conn", home)
    assert conn.returncode == 0, conn.stderr
    assert conn.stdout.strip() == airflow_db
    listed = _sourced(env_file, "airflow dags list --local -o json", home)  # refused on an unmigrated database
    assert listed.returncode == 0, listed.stderr
    dag_ids = {dag["dag_id"] for dag in json.loads(listed.stdout.splitlines()[-1])}  # after Airflow's warnings
    assert {"ratchet_promote", "ratchet_nowtest", "ratchet_retrain"} <= dag_ids  # the repository's dags/
    assert not (home / "airflow").exists()  # nothing of Airflow's defaults (airflow.cfg, a SQLite airflow.db)

    echoed = _sourced(env_file, 'printf %s "$RATCHET_API_TOKEN"', home)
    assert echoed.stdout == token


def test_a_shell_that_sourced_an_embedded_runs_env_gets_the_embedded_server_again(tmp_path, monkeypatch):
    """After `source .run/env`, RATCHET_DATABASE_URL names the embedded server's socket: a `make run` from that
    shell must start its embedded server again, not take the URL for the user's own server."""
    run = run_script()
    embedded = "postgresql+psycopg2://postgres:@/ratchet?host=/somewhere/.pgdata"
    env_file = tmp_path / "env"
    run.write_env(env_file, {"RATCHET_DATABASE_URL": embedded}, token="t", embedded_url=embedded)
    assert "only while `make run` runs" in env_file.read_text()
    shell = _sourced(env_file, "env -0", tmp_path)
    sourced = dict(line.split("=", 1) for line in shell.stdout.split("\0") if line)
    for name in ("RATCHET_DATABASE_URL", run.EMBEDDED_URL_ENV):
        monkeypatch.setenv(name, sourced[name])
    assert run.user_database_url() is None
    monkeypatch.setenv("RATCHET_DATABASE_URL", "postgresql://me@db.example:5432/ratchet")
    assert run.user_database_url() == "postgresql://me@db.example:5432/ratchet"


def _processes() -> list[tuple[int, str, bytes]]:
    """(pid, command line, environment) of every process that can be read."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append((int(entry.name), cmdline, (entry / "environ").read_bytes()))
            except OSError:  # gone meanwhile, or not ours to read
                pass
    return found


def _left(mark: str, pgdata: Path) -> list[str]:
    """Command lines of the run's processes: its environment carries `mark` (every child inherits it), or it is
    the PostgreSQL server of `pgdata` (which rewrites its children's environment area with their titles)."""
    return [cmdline for _, cmdline, environ in _processes()
            if mark.encode() in environ or str(pgdata) in cmdline]


def _wait_for(predicate, timeout: float, what: str, run: subprocess.Popen, out: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            pytest.fail(f"make run exited ({run.returncode}) before {what}:\n{out.read_text()[-3000:]}")
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"no {what} within {timeout} s:\n{out.read_text()[-3000:]}")


@pytest.fixture
def state():
    """make run's state folder, outside pytest's temporary folders: a pytest session started meanwhile makes
    those private again (0700), out of reach of the `pgserver` user that runs PostgreSQL under root."""
    folder = Path(tempfile.mkdtemp(prefix="ratchet-run-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow  # a real `make run` stack, started and stopped
@pytest.mark.parametrize("stopped_by, executor", [("ctrl_c_twice", "local"), ("group_sigterm", "local"),
                                                  ("ctrl_c_twice", "celery")])
def test_make_run_stops_everything_it_started_without_a_traceback(tmp_path, state, stopped_by, executor):
    """The embedded PostgreSQL and every child: stopped while the Airflow components start (two Ctrl-C in
    quick succession), or while `airflow db migrate` runs (SIGTERM to the process group). With
    RATCHET_EXECUTOR=celery on a port where no Redis answers, the Redis it starts and the two workers too."""
    mark = f"ratchet-run-{uuid.uuid4().hex}"
    ports = {name: free_port() for name in ("RATCHET_UI_PORT", "RATCHET_API_PORT", "RATCHET_SMTP_PORT",
                                            "RATCHET_REDIS_PORT")}
    home = tmp_path / "home"
    home.mkdir()
    pgdata = state / ".pgdata"
    env = {**_bare_env(home), "PATH": f"{BIN}:{LOGIN_PATH}", "RATCHET_STATE_DIR": str(state),
           "RATCHET_RUN_TEST_MARK": mark, "RATCHET_EXECUTOR": executor,
           **{name: str(port) for name, port in ports.items()}}
    # the last child make run starts: the service, or with Celery the second worker
    last_child = f"serve --port {ports['RATCHET_API_PORT']}" if executor == "local" else \
        f"--celery-hostname {celery_setup.WORKER_NAMES[-1]}"
    out = tmp_path / "make-run.out"
    with out.open("wb") as output:
        run = subprocess.Popen([sys.executable, str(REPO / "scripts" / "run.py")], env=env, cwd=REPO,
                               stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if stopped_by == "ctrl_c_twice":
            _wait_for(lambda: any(last_child in c for c in _left(mark, pgdata)), 600, last_child, run, out)
            assert stat.S_IMODE((state / ".run" / "env").stat().st_mode) == 0o600  # written before the children
            time.sleep(3)  # the Airflow components are starting up
            os.killpg(run.pid, signal.SIGINT)
            time.sleep(0.5)
            os.killpg(run.pid, signal.SIGINT)
        else:
            _wait_for(lambda: any("db migrate" in c for c in _left(mark, pgdata)), 300, "`airflow db migrate`",
                      run, out)
            os.killpg(run.pid, signal.SIGTERM)
        run.wait(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    said = out.read_text()
    assert run.returncode == 0, said
    assert "Traceback" not in said and "stopping everything" in said and "stopping PostgreSQL" in said
    assert ("starting redis-server" in said) == (executor == "celery")
    deadline = time.monotonic() + 10
    while _left(mark, pgdata) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _left(mark, pgdata) == []
    assert not (pgdata / "postmaster.pid").exists()
    assert not any(run_script().port_in_use(port) for port in ports.values())
