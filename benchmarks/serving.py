"""Serving: Ratchet's REST service against the floor of its stack and MLflow's scoring server.

Each arm is a server of one uvicorn worker pinned to one core, loaded by a client pinned to the other:
(a) Ratchet GET /v1/models/{model}/predict?at=<day>, cache hits (a few days, warmed);
(b) the same route, cache misses: each request a different day, on a replica whose spec sets
    `serving.cache_ttl_seconds: 0`, so every answer reads its row and lag history from PostgreSQL;
(c) Ratchet POST /v1/models/{model}/predict with one feature row in the body (a different day each request);
(d) a bare FastAPI app (benchmarks/serving_floor_app.py) calling the same fitted estimator on a prepared row:
    the floor of this stack;
(e) MLflow's scoring server (`mlflow models serve --env-manager local`) on the same estimator saved with
    `mlflow.sklearn.save_model`, from its own virtualenv (.bench-venv-mlflow/, created on the first run with a
    pinned MLflow and this venv's scikit-learn; never in requirements.txt), scored through /invocations.
The model is the demo's (`include/models/demand.yaml` on `ratchet.demo`'s table, fixed end date), trained,
back-tested and promoted with library calls in a scratch database. Before an arm is timed, one of its answers is
compared with the estimator's own predict on the same row; an arm that cannot run says why, never a number.
Every server runs from the start; the arms take turns for ROUNDS rounds and the table shows medians, so a change
in the machine's load hits every arm alike. Beside the client's figures, the server's CPU time per request
(its process tree, read from /proc) says what a request costs however busy the machine is.

Load: wrk (`apt-get install -y wrk`) with a Lua script (request list, p50/p95/p99 in `done()`), two connections
and one thread, so the server is measured, not the client; without wrk a bounded asyncio httpx loop with a fixed
request count. Targets: (a) p95 <= 5 ms and >= 1,000 req/s; (b) p95 <= 50 ms; (a) and (c) req/s >= MLflow's.
It is a benchmark, not a test: it exits 0 when a target is missed and prints MISSED.

    .venv/bin/python benchmarks/serving.py

Uses RATCHET_BENCH_DATABASE_URL (a server URL; a scratch database is created and dropped), else an
embedded PostgreSQL. `--mlflow-save` is the step run inside MLflow's virtualenv.
"""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
MODEL = "daily_demand"
DATA_END = dt.date(2025, 6, 30)  # the demo data ends here on every run, so the same model is trained
TRAIN_END = dt.datetime(2025, 7, 1, 1, 0, tzinfo=dt.UTC)
BACKTEST_MONTHS = 3  # the promotion needs back-test months; the spec's 24 would only lengthen the setup
TOKEN = "serving-benchmark-token"
THREADS, CONNECTIONS = 1, 2  # uvicorn answers one request at a time: two connections keep it busy
WARMUP_SECONDS, SECONDS = 2, 10
ROUNDS = 3  # the arms take turns, round after round; the table shows each figure's median
FALLBACK_REQUESTS = 2000  # per arm with the httpx loop, after a fifth of that as warm-up
HIT_DAYS = 4  # arm (a) cycles over this many days, all cached
MLFLOW_VERSION = "3.17.2"
MLFLOW_VENV = REPO / ".bench-venv-mlflow"
SAME_AS_HERE = ("scikit-learn", "numpy", "pandas", "scipy", "skops")  # so the exported estimator loads the same
TOLERANCE = 1e-9  # relative: every arm runs the same estimator on the same numbers


@dataclass(frozen=True)
class Request:
    """One request of an arm's cycle."""

    method: str
    path: str
    body: str | None = None


@dataclass(frozen=True)
class Load:
    """What a load run measured (or the medians of several runs)."""

    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float = float("nan")  # the server's CPU time per request (its process tree, all threads)

    @staticmethod
    def median(loads: list[Load]) -> Load:
        """Each figure's median over the rounds; requests and errors summed."""
        return Load(sum(x.requests for x in loads), *(statistics.median(getattr(x, name) for x in loads)
                                                      for name in ("rps", "p50_ms", "p95_ms", "p99_ms")),
                    sum(x.errors for x in loads), statistics.median(x.cpu_ms for x in loads))


@dataclass
class Arm:
    """An arm of the table: its server, its requests and answer check, its targets, and what came of it."""

    key: str
    label: str
    max_p95_ms: float | None = None
    min_rps: float | None = None
    min_rps_of_mlflow: bool = False
    counts_cache: bool = False  # a Ratchet GET arm: the share of answers from the cache is read from /metrics
    server: Server | None = None
    check: Callable[[str], None] | None = None  # raises ArmUnavailable unless one answer is the estimator's own
    requests: list[Request] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    loads: list[Load] = field(default_factory=list)
    cache_hits: float = 0.0
    cache_answers: float = 0.0
    unavailable: str | None = None  # why the arm has no figures

    @property
    def load(self) -> Load | None:
        return Load.median(self.loads) if self.loads and self.unavailable is None else None

    @property
    def cached_share(self) -> float | None:
        return self.cache_hits / self.cache_answers if self.cache_answers else None

    def target(self) -> str:
        parts = [f"p95 <= {self.max_p95_ms:g} ms"] if self.max_p95_ms is not None else []
        parts += [f">= {self.min_rps:,.0f} req/s"] if self.min_rps is not None else []
        parts += [">= (e) req/s"] if self.min_rps_of_mlflow else []
        return ", ".join(parts) or "-"

    def missed(self, mlflow: Arm) -> list[str]:
        """The targets this arm missed (an arm without figures misses every target it has)."""
        if self.target() == "-":
            return []
        load = self.load
        if load is None:
            return [f"{self.target()} (not measured)"]
        out = []
        if self.max_p95_ms is not None and load.p95_ms > self.max_p95_ms:
            out.append(f"p95 {load.p95_ms:.2f} ms > {self.max_p95_ms:g} ms")
        if self.min_rps is not None and load.rps < self.min_rps:
            out.append(f"{load.rps:,.0f} req/s < {self.min_rps:,.0f}")
        if self.min_rps_of_mlflow:
            if mlflow.load is None:
                out.append("MLflow not measured: no comparison")
            elif load.rps < mlflow.load.rps:
                out.append(f"{load.rps:,.0f} req/s < MLflow's {mlflow.load.rps:,.0f}")
        return out


class ArmUnavailable(Exception):
    """An arm cannot be measured; the message says why."""


# --- cores and processes -------------------------------------------------------------------------------------

def cores() -> tuple[int, int] | None:
    """(server core, client core), or None when fewer than two cores can be pinned."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    available = sorted(os.sched_getaffinity(0))
    return (available[0], available[1]) if len(available) >= 2 else None


def pinned_to(core: int | None):
    """A preexec_fn pinning the child to `core` (what `taskset -c core` does), or None."""
    return None if core is None else (lambda: os.sched_setaffinity(0, {core}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server process pinned to the server core, ready once `ready_path` answers; stopped with its group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], port: int, ready_path: str, logs: Path,
                 core: int | None):
        self.name, self.args, self.env, self.port, self.ready_path = name, args, env, port, ready_path
        self.log_path, self.core = logs / f"{name}.log", core
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        import httpx

        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                        start_new_session=True, preexec_fn=pinned_to(self.core))
        log.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ArmUnavailable(f"{self.name} exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if httpx.get(self.url + self.ready_path, timeout=5).status_code < 500:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        self.stop()
        raise ArmUnavailable(f"{self.name} did not answer {self.ready_path} within 120 s: {self.log_tail()}")

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server's processes have used so far: what a request costs it, however
        busy the machine is."""
        import psutil

        root = psutil.Process(self.process.pid)
        return sum(sum(p.cpu_times()[:2]) for p in (root, *root.children(recursive=True)))

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


# --- load generators -----------------------------------------------------------------------------------------

def _lua_string(text: str) -> str:
    """A Lua string literal of `text` (ASCII: bodies are JSON with non-ASCII characters escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def wrk_script(requests: list[Request], headers: dict[str, str]) -> str:
    """wrk's Lua script: the headers, the requests (one is prebuilt by wrk; several are cycled through in
    `request()`), and a `done()` that prints one summary line: requests, microseconds, errors, p50/p95/p99."""
    lines = [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    if len(requests) == 1:
        (only,) = requests
        lines += [f"wrk.method = {_lua_string(only.method)}", f"wrk.path = {_lua_string(only.path)}"]
        lines += [f"wrk.body = {_lua_string(only.body)}"] if only.body is not None else []
    else:
        entries = ",\n".join(f"  {{{_lua_string(r.method)}, {_lua_string(r.path)}, "
                             f"{_lua_string(r.body) if r.body is not None else 'nil'}}}" for r in requests)
        lines += [f"local cycle = {{\n{entries}\n}}", "local i = 0",
                  "request = function()", "  i = i % #cycle + 1",
                  "  return wrk.format(cycle[i][1], cycle[i][2], nil, cycle[i][3])", "end"]
    lines += ["done = function(summary, latency, requests)", "  local e = summary.errors",
              '  io.write(string.format("WRK_SUMMARY %d %d %d %.1f %.1f %.1f\\n", summary.requests, '
              "summary.duration, e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), "
              "latency:percentile(95), latency:percentile(99)))", "end"]
    return "\n".join(lines) + "\n"


def run_wrk(url: str, requests: list[Request], headers: dict[str, str], seconds: int, folder: Path,
            core: int | None) -> Load:
    """One wrk run of `seconds` against `url` with THREADS threads and CONNECTIONS connections."""
    script = folder / "load.lua"
    script.write_text(wrk_script(requests, headers))
    done = subprocess.run(["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s",
                           "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60,
                          preexec_fn=pinned_to(core))
    summary = [line.split() for line in done.stdout.splitlines() if line.startswith("WRK_SUMMARY")]
    if done.returncode != 0 or not summary:
        raise ArmUnavailable(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    count, micros, errors, p50, p95, p99 = (float(v) for v in summary[0][1:])
    return Load(int(count), count / (micros / 1e6), p50 / 1000, p95 / 1000, p99 / 1000, int(errors))


async def _httpx_loop(url: str, requests: list[Request], headers: dict[str, str], total: int) -> Load:
    import httpx
    import numpy as np

    latencies: list[float] = []
    errors = 0
    issued = iter(range(total))
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5) as client:
        async def worker() -> None:
            nonlocal errors
            for n in issued:
                request = requests[n % len(requests)]
                begin = time.perf_counter()
                try:
                    response = await client.request(request.method, request.path, content=request.body)
                    errors += response.status_code >= 400
                except httpx.TransportError:
                    errors += 1
                latencies.append(time.perf_counter() - begin)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        seconds = time.perf_counter() - started
    p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    return Load(total, total / seconds, float(p50), float(p95), float(p99), errors)


def run_load(arm: Arm, folder: Path, client_core: int | None, *, warm_up: bool) -> Load:
    """The warm-up or the measured run of an arm: wrk for WARMUP_SECONDS or SECONDS, else the httpx loop for a
    fifth of FALLBACK_REQUESTS or all of them."""
    if shutil.which("wrk"):
        return run_wrk(arm.server.url, arm.requests, arm.headers, WARMUP_SECONDS if warm_up else SECONDS, folder,
                       client_core)
    total = FALLBACK_REQUESTS // 5 if warm_up else FALLBACK_REQUESTS
    return asyncio.run(_httpx_loop(arm.server.url, arm.requests, arm.headers, total))


def generator_description(pins: tuple[int, int] | None) -> str:
    if shutil.which("wrk"):
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
        how = (f"{version or 'wrk'}: {THREADS} thread, {CONNECTIONS} connections, {SECONDS} s per arm after "
               f"{WARMUP_SECONDS} s of warm-up")
    else:
        how = (f"asyncio httpx loop (wrk not found; `apt-get install -y wrk` for wrk's figures): {CONNECTIONS} "
               f"concurrent requests, {FALLBACK_REQUESTS} requests per arm after {FALLBACK_REQUESTS // 5} of warm-up")
    where = (f"server pinned to core {pins[0]} (one uvicorn worker), client to core {pins[1]}; PostgreSQL unpinned"
             if pins else "no pinning (fewer than two cores available): server and client share the cores")
    return f"load: {how}; {where}"


# --- the model and the reference answers ---------------------------------------------------------------------

@dataclass(frozen=True)
class Champion:
    """The promoted version, its exported artifact, and the estimator's own answers per day."""

    version: int
    estimator: str  # the pipeline's steps, by class
    artifact: Path
    sha256: str
    rows: object  # pandas DataFrame: every day's model input (features and lags), as training builds it
    days: list[str]  # ISO days in the order of `rows`
    inputs: object  # pandas DataFrame: every day's source row without the target (what a client posts)
    expected: dict[str, float]


def write_spec(folder: Path, cache_ttl_seconds: float) -> Path:
    """The demo model's spec with a shorter back-test, no requirements (the demo's regime change fails them on
    purpose; this benchmark measures serving, not the gates) and the given cache TTL, in its own models folder."""
    import yaml

    data = yaml.safe_load((REPO / "include" / "models" / "demand.yaml").read_text())
    data["backtest"]["months"] = BACKTEST_MONTHS
    data["requirements"] = []
    data["serving"] = {"cache_ttl_seconds": cache_ttl_seconds}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{MODEL}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def train_champion(url: str, spec_path: Path, folder: Path) -> Champion:
    """Load the demo data, retrain, back-test and promote the best version (an initial promotion: gates 1, 3
    and 5); export its artifact as stored."""
    from ratchet import demo
    from ratchet.evaluation import backtest
    from ratchet.lifecycle.promotion import promote
    from ratchet.lifecycle.retrain import retrain_model
    from ratchet.modeling import sources
    from ratchet.modeling.features import make_xy
    from ratchet.registry import Registry
    from ratchet.specs import load_spec

    demo.load_demo(url, end=DATA_END)
    spec = load_spec(spec_path)
    registry = Registry(url)
    try:
        registry.sync_model(spec)
        versions = retrain_model(registry, spec, run_id="bench-retrain", logical_date=TRAIN_END)
        frame = sources.read_source(spec, end=TRAIN_END)
        for months in backtest.month_groups(spec, frame, end=TRAIN_END, groups=1):
            backtest.run_partition(registry, spec, months, run_id="bench-backtest", end=TRAIN_END)
        promote(registry, spec, version=versions[0], reason="serving benchmark", triggered_by="benchmark",
                run_id="bench-promote")
        version = registry.version(MODEL, versions[0], with_artifact=True)
        estimator = registry.load_estimator(MODEL, versions[0])
        history = sources.read_source(spec)
    finally:
        registry.dispose()
    artifact = folder / "estimator.skops"
    artifact.write_bytes(version.artifact)
    X, _, times = make_xy(spec, history)
    days = [t.date().isoformat() for t in times]
    inputs = history.drop(columns=[spec.source.target])
    inputs = inputs[inputs[spec.source.time_column].isin(times)].reset_index(drop=True)
    inputs[spec.source.time_column] = days
    steps = " + ".join(type(step).__name__ for _, step in estimator.steps)
    return Champion(version=versions[0], estimator=steps, artifact=artifact, sha256=version.artifact_sha256, rows=X,
                    days=days, inputs=inputs, expected=dict(zip(days, map(float, estimator.predict(X)), strict=True)))


def row_split_json(champion: Champion, day: str) -> dict:
    """One day's model input in pandas' split orientation (columns, data), as the floor and MLflow take it."""
    row = champion.rows.iloc[[champion.days.index(day)]]
    return json.loads(row.to_json(orient="split", index=False))


def close(answer: float, expected: float) -> bool:
    return abs(answer - expected) <= TOLERANCE * max(1.0, abs(expected))


def verify(answer: float, expected: float, detail: str) -> None:
    """Refuse to time an arm whose answer is not the estimator's own."""
    if not close(answer, expected):
        raise ArmUnavailable(f"wrong answer, not timed: {detail} gave {answer!r}, the estimator says {expected!r}")


# --- arms ----------------------------------------------------------------------------------------------------

def ratchet_server(name: str, url: str, models_dir: Path, logs: Path, core: int | None) -> Server:
    """A `ratchet serve` replica: one uvicorn worker, no access log (like the floor)."""
    port = free_port()
    env = {**os.environ, "RATCHET_DATABASE_URL": url, "RATCHET_MODELS_DIR": str(models_dir),
           "RATCHET_API_TOKEN": TOKEN, "PYTHONPATH": str(REPO / "include")}
    return Server(name, [sys.executable, "-m", "ratchet.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                         "--workers", "1", "--log-level", "warning"], env, port, "/healthz", logs, core)


def floor_server(champion: Champion, logs: Path, core: int | None) -> Server:
    """benchmarks/serving_floor_app.py under uvicorn with the same settings, on the last day's row."""
    row = logs / "floor-row.json"
    row.write_text(json.dumps(row_split_json(champion, champion.days[-1])))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "include"), "RATCHET_BENCH_ARTIFACT": str(champion.artifact),
           "RATCHET_BENCH_SHA256": champion.sha256, "RATCHET_BENCH_ROW": str(row)}
    return Server("floor", [sys.executable, "-m", "uvicorn", "serving_floor_app:app", "--app-dir", str(BENCH),
                            "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--log-level", "warning",
                            "--no-access-log"], env, port, "/predict", logs, core)


def mlflow_python(logs: Path) -> Path:
    """The MLflow virtualenv's python, created and installed on the first run.

    Raises:
        ArmUnavailable: the virtualenv or the install failed (the reason is in the message).
    """
    pins = [f"mlflow=={MLFLOW_VERSION}", *(f"{name}=={importlib.metadata.version(name)}" for name in SAME_AS_HERE)]
    python, stamp = MLFLOW_VENV / "bin" / "python", MLFLOW_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == " ".join(pins):
        return python
    print(f"installing {' '.join(pins)} into {MLFLOW_VENV} (once) ...", flush=True)
    log = logs / "mlflow-install.log"
    with open(log, "w") as out:
        steps = [[sys.executable, "-m", "venv", str(MLFLOW_VENV)],
                 [str(python), "-m", "pip", "install", "--quiet", *pins]]
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                lines = log.read_text(errors="replace").strip().splitlines()
                reason = " | ".join([line for line in lines if line.startswith("ERROR")][-2:] or lines[-3:])
                raise ArmUnavailable(f"MLflow could not be installed ({' '.join(step[:4])} ...): {reason}")
    stamp.write_text(" ".join(pins))
    return python


def mlflow_server(champion: Champion, logs: Path, core: int | None) -> Server:
    """MLflow's scoring server (one uvicorn worker) on the champion's estimator, saved by MLflow's save_model.

    Raises:
        ArmUnavailable: MLflow could not be installed, or could not save the model.
    """
    python = mlflow_python(logs)
    model_dir, row = logs / "mlflow-model", logs / "mlflow-row.json"
    row.write_text(json.dumps(row_split_json(champion, champion.days[-1])))
    env = {**os.environ, "PYTHONPATH": str(REPO / "include")}
    saved = subprocess.run([str(python), __file__, "--mlflow-save", str(champion.artifact), champion.sha256,
                            str(row), str(model_dir)], env=env, capture_output=True, text=True)
    if saved.returncode != 0:
        raise ArmUnavailable(f"mlflow.sklearn.save_model failed: {saved.stderr.strip().splitlines()[-1:]}")
    port = free_port()
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return Server("mlflow", [str(python.parent / "mlflow"), "models", "serve", "--env-manager", "local", "-m",
                             str(model_dir), "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
                  env, port, "/ping", logs, core)


def mlflow_save(artifact: str, sha256: str, row: str, target: str) -> None:
    """Inside MLflow's virtualenv: load the artifact with Ratchet's safe loader and save it as an MLflow model."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    from ratchet.modeling import artifacts

    data = Path(artifact).read_bytes()
    estimator = artifacts.load(data, sha256)
    trusted = artifacts.skops_io().get_untrusted_types(data=data)  # what Ratchet's loader just accepted
    example = pd.DataFrame(**json.loads(Path(row).read_text()))
    shutil.rmtree(target, ignore_errors=True)
    mlflow.sklearn.save_model(estimator, target, signature=infer_signature(example, estimator.predict(example)),
                              skops_trusted_types=trusted)


def predict_path(day: str) -> str:
    return f"/v1/models/{MODEL}/predict?at={day}"


def ok(response, what: str):
    """The response if it is a 200, else ArmUnavailable naming the request and the answer."""
    if response.status_code != 200:
        raise ArmUnavailable(f"{what} answered {response.status_code}: {response.text[:300]}")
    return response


def ratchet_arms(arms: dict[str, Arm], champion: Champion, url: str, cached_dir: Path, uncached_dir: Path,
                 logs: Path, core: int | None) -> None:
    """Arms (a) and (c) on a replica with the cache on, (b) on a replica whose spec turns it off."""
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN}"}
    hit_days, all_days = champion.days[-HIT_DAYS:], champion.days
    bodies = {day: json.dumps({"rows": [row]}) for day, row in zip(
        all_days, json.loads(champion.inputs.to_json(orient="records")), strict=True)}
    cached = ratchet_server("ratchet-cached", url, cached_dir, logs, core)

    def check_get(server_url: str, arm: Arm, days: list[str], from_cache: bool) -> None:
        for day in days:  # the first request of a day fills the cache when it is on
            ok(httpx.get(server_url + predict_path(day), headers=auth, timeout=30), f"GET predict?at={day}")
        for day in days:
            answer = ok(httpx.get(server_url + predict_path(day), headers=auth, timeout=30), f"GET {day}").json()
            verify(answer["prediction"], champion.expected[day], f"GET predict?at={day}")
            if answer["version"] != champion.version or answer["cached"] is not from_cache:
                raise ArmUnavailable(f"GET predict?at={day} answered version {answer['version']} cached "
                                     f"{answer['cached']}; expected v{champion.version} cached {from_cache}")

    def check_post(server_url: str) -> None:
        day = all_days[len(all_days) // 2]
        answer = ok(httpx.post(server_url + f"/v1/models/{MODEL}/predict", content=bodies[day],
                               headers={**auth, "Content-Type": "application/json"}, timeout=30), "POST").json()
        verify(answer["predictions"][0]["prediction"], champion.expected[day], f"POST the row of {day}")

    arms["a"].server, arms["a"].counts_cache = cached, True
    arms["a"].requests = [Request("GET", predict_path(day)) for day in hit_days]
    arms["a"].check = lambda server_url: check_get(server_url, arms["a"], hit_days, from_cache=True)
    arms["b"].server, arms["b"].counts_cache = ratchet_server("ratchet-uncached", url, uncached_dir, logs, core), True
    arms["b"].requests = [Request("GET", predict_path(day)) for day in all_days]
    arms["b"].check = lambda server_url: check_get(server_url, arms["b"], all_days[-2:], from_cache=False)
    arms["c"].server = cached  # POST rows are never cached
    arms["c"].requests = [Request("POST", f"/v1/models/{MODEL}/predict", bodies[day]) for day in all_days]
    arms["c"].check = check_post
    for key in "abc":
        arms[key].headers = {**auth, "Content-Type": "application/json"}


def cache_counts(server_url: str) -> tuple[float, float]:
    """(answers by id from the cache, answers by id) the replica counted so far, from its /metrics."""
    import httpx

    text = ok(httpx.get(server_url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30),
              "GET /metrics").text
    totals = {"ratchet_serving_cache_hits_total": 0.0, "ratchet_serving_cache_misses_total": 0.0}
    for line in text.splitlines():  # samples: name{labels} value
        name = line.split("{")[0].split(" ")[0]
        if name in totals:
            totals[name] += float(line.rsplit(" ", 1)[1])
    hits, misses = totals.values()
    return hits, hits + misses


def reference_arms(arms: dict[str, Arm], champion: Champion, logs: Path, core: int | None) -> None:
    """Arms (d), the floor, and (e), MLflow's scoring server, on the last day's row."""
    import httpx

    day = champion.days[-1]

    def check_floor(server_url: str) -> None:
        answer = ok(httpx.get(server_url + "/predict", timeout=30), "GET /predict").json()
        verify(answer["prediction"], champion.expected[day], f"GET /predict (the row of {day})")

    arms["d"].server, arms["d"].check = floor_server(champion, logs, core), check_floor
    arms["d"].requests = [Request("GET", "/predict")]
    body = json.dumps({"dataframe_split": row_split_json(champion, day)})
    headers = {"Content-Type": "application/json"}

    def check_mlflow(server_url: str) -> None:
        answer = ok(httpx.post(server_url + "/invocations", content=body, headers=headers, timeout=30),
                    "POST /invocations").json()
        verify(answer["predictions"][0], champion.expected[day], f"POST /invocations (the row of {day})")

    arms["e"].requests, arms["e"].headers, arms["e"].check = [Request("POST", "/invocations", body)], headers, \
        check_mlflow
    try:
        arms["e"].server = mlflow_server(champion, logs, core)
    except ArmUnavailable as exc:
        arms["e"].unavailable = str(exc)


def start_and_check(arms: list[Arm], stack: ExitStack) -> None:
    """Start every arm's server (arms may share one) and check one answer of each arm."""
    failed: dict[int, str] = {}
    started: set[int] = set()
    for arm in arms:
        if arm.unavailable is not None:
            continue
        server = arm.server
        try:
            if id(server) in failed:
                raise ArmUnavailable(failed[id(server)])
            if id(server) not in started:
                try:
                    stack.enter_context(server)
                except ArmUnavailable as exc:
                    failed[id(server)] = str(exc)
                    raise
                started.add(id(server))
            arm.check(server.url)
        except ArmUnavailable as exc:
            arm.unavailable = str(exc)


def measure(arms: list[Arm], folder: Path, client_core: int | None) -> None:
    """ROUNDS rounds, each arm in turn within a round (so a change of the machine's load hits every arm alike):
    a warm-up, then the measured run, bracketed by the cache counters and the server's CPU time."""
    for _ in range(ROUNDS):
        for arm in arms:
            if arm.unavailable is not None:
                continue
            try:
                run_load(arm, folder, client_core, warm_up=True)
                before = cache_counts(arm.server.url) if arm.counts_cache else (0.0, 0.0)
                cpu = arm.server.cpu_seconds()
                load = run_load(arm, folder, client_core, warm_up=False)
                cpu = arm.server.cpu_seconds() - cpu
                arm.loads.append(dataclasses.replace(load, cpu_ms=1000 * cpu / max(load.requests, 1)))
                if arm.counts_cache:
                    after = cache_counts(arm.server.url)
                    arm.cache_hits += after[0] - before[0]
                    arm.cache_answers += after[1] - before[1]
            except ArmUnavailable as exc:
                arm.unavailable = str(exc)


# --- the report ----------------------------------------------------------------------------------------------

def print_table(arms: list[Arm]) -> None:
    mlflow = arms[-1]
    print(f"{'arm':45} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} {'cached':>6} "
          f"{'CPU ms/req':>10}  {'target':40} met?")
    for arm in arms:
        load = arm.load
        if load is None:
            print(f"{arm.label:45} unavailable: {arm.unavailable}")
            continue
        cached = f"{arm.cached_share:.0%}" if arm.cached_share is not None else "-"
        verdict = "-" if arm.target() == "-" else ("MISSED" if arm.missed(mlflow) else "met")
        print(f"{arm.label:45} {load.rps:7,.0f} {load.p50_ms:7.2f} {load.p95_ms:7.2f} {load.p99_ms:7.2f} "
              f"{load.errors:6d} {cached:>6} {load.cpu_ms:10.2f}  {arm.target():40} {verdict}")


def print_reading(arms: dict[str, Arm]) -> None:
    """What the figures say, computed from them: the rounds' spread, server time per request above the floor,
    ratios to MLflow, and each missed target."""
    print("\nreading:")
    floor, mlflow = arms["d"].load, arms["e"].load
    for arm in arms.values():
        load = arm.load
        if load is None:
            continue
        rounds = ", ".join(f"{x.rps:,.0f}" for x in arm.loads)
        line = (f"  {arm.label}: req/s of each round {rounds}; server CPU {load.cpu_ms:.2f} ms per request, "
                f"so about {1000 / load.cpu_ms:,.0f} req/s on a core of its own")
        if floor is not None and arm.key != "d":
            line += f", {load.cpu_ms - floor.cpu_ms:+.2f} ms of CPU against the floor's"
        if mlflow is not None and arm.key in "abc":
            line += f", {load.rps / mlflow.rps:.2f}x MLflow's measured throughput"
        print(line)
    print("  (CPU time is the server's processes only: PostgreSQL's work for (b) and (c) is not in it)")
    missed = [(arm.label, arm.missed(arms["e"])) for arm in arms.values()]
    for label, what in missed:
        if what:
            print(f"  MISSED {label}: {'; '.join(what)}")
    if not any(what for _, what in missed):
        print("  every target met")


def main() -> None:
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(BENCH))
    from scratch import scratch_databases

    pins = cores()
    server_core, client_core = pins if pins else (None, None)
    if pins:
        os.sched_setaffinity(0, {client_core})  # this process is the httpx client when wrk is absent
    if not shutil.which("wrk"):
        print("wrk not found: `apt-get install -y wrk` gives wrk's figures; measuring with the asyncio httpx loop")
    load_before = os.getloadavg()[0]
    folder = Path(tempfile.mkdtemp(prefix="ratchet-bench-serving-"))
    cached_dir, uncached_dir = folder / "models-cached", folder / "models-uncached"
    spec_path = write_spec(cached_dir, 300.0)
    write_spec(uncached_dir, 0.0)
    arms = {
        "a": Arm("a", "(a) Ratchet GET by id, cache hits", max_p95_ms=5.0, min_rps=1000.0, min_rps_of_mlflow=True),
        "b": Arm("b", "(b) Ratchet GET by id, cache misses (PG)", max_p95_ms=50.0),
        "c": Arm("c", "(c) Ratchet POST, one feature row", min_rps_of_mlflow=True),
        "d": Arm("d", "(d) bare FastAPI + estimator.predict (floor)"),
        "e": Arm("e", f"(e) MLflow {MLFLOW_VERSION} scoring server"),
    }
    with scratch_databases("serving", migrated=("serving",)) as urls, ExitStack() as servers:
        os.environ["RATCHET_DATABASE_URL"] = urls["serving"]  # the library calls read the source through it
        started = time.perf_counter()
        champion = train_champion(urls["serving"], spec_path, folder)
        print(f"demo model {MODEL} v{champion.version} ({champion.estimator}) trained, back-tested and promoted in "
              f"{time.perf_counter() - started:.0f} s; {len(champion.days)} days with features", flush=True)
        ratchet_arms(arms, champion, urls["serving"], cached_dir, uncached_dir, folder, server_core)
        reference_arms(arms, champion, folder, server_core)
        start_and_check(list(arms.values()), servers)
        measure(list(arms.values()), folder, client_core)
    print(generator_description(pins))
    print(f"{ROUNDS} interleaved rounds per arm, medians shown; machine load average (1 min) {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores (other work on the machine slows every arm)")
    print_table(list(arms.values()))
    print_reading(arms)
    if any(arm.unavailable for arm in arms.values()):
        print(f"server logs kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--mlflow-save"]:
        mlflow_save(*sys.argv[2:6])
    else:
        main()
