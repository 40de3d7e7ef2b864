"""Builders for serving tests: versions fitted on a spec's real source and registered, and `ratchet serve` replicas.

    version = register_trained(registry, spec, {"alpha": 0.3}, promote=True)   # fitted like retrain fits
    with replicas(2, env, folder) as (a, b):                                   # real uvicorn processes
        wait_until(a, lambda r: r.get("/healthz", token=None).status_code == 200)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from conftest import free_port
from threadpoolctl import threadpool_limits

from ratchet.modeling import artifacts, features, months, sources

TOKEN = "test-token-42"


def register_trained(registry, spec, params: dict, *, estimator: int = 0, promote: bool = False,
                     run_id: str = "r1") -> int:
    """Fit the spec's estimator on its whole source, register it, and make it champion when `promote`."""
    source = sources.read_source(spec)
    X, y, _ = features.make_xy(spec, source)
    est_spec = spec.estimators[estimator]
    with threadpool_limits(1):  # OpenMP threads on a busy 2-core machine make a 1 s fit take 20
        fitted = features.make_estimator(spec, est_spec, params).fit(X, y)
    art = artifacts.dump(fitted)
    number = registry.register_version(
        spec.name, run_id=run_id, trial_index=None, estimator_class=est_spec.class_path, hyperparameters=params,
        artifact=art.data, artifact_sha256=art.sha256, artifact_format=art.format,
        dataset_fingerprint=months.dataset_fingerprint(source), features=list(X.columns), target=spec.source.target,
        package_versions={}, author="tests", fit_seconds=0.1, size_bytes=art.size_bytes,
        contract=features.contract_of(spec, source), spec_snapshot=spec.raw)
    if promote:
        champion = registry.champion(spec.name)
        registry.record_promotion(spec.name, number, kind="initial" if champion is None else "promotion",
                                  outcome="promoted", triggered_by="tests", reason="serving test", gates=[],
                                  run_id=f"promote-{number}",
                                  expected_previous_version=champion.version if champion else None)
    return number


@dataclass
class Replica:
    """One `ratchet serve` process and an HTTP client on it (with the token unless asked otherwise)."""

    url: str
    process: subprocess.Popen
    log: Path
    client: httpx.Client

    def get(self, path: str, *, token: str | None = TOKEN, **kw) -> httpx.Response:
        return self.client.get(self.url + path, headers=_auth(token), **kw)

    def post(self, path: str, json, *, token: str | None = TOKEN) -> httpx.Response:
        return self.client.post(self.url + path, json=json, headers=_auth(token))

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _auth(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


@contextmanager
def replicas(count: int, env: dict, folder: Path):
    """`count` real `ratchet serve` processes on free ports, started (not yet answering: see `wait_until`)."""
    cli = Path(sys.executable).parent / "ratchet"
    started: list[Replica] = []
    try:
        for _ in range(count):
            port = free_port()
            log = folder / f"serve-{port}.log"
            process = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port),
                                        "--log-level", "warning"], env={**os.environ, **env},
                                       stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
            started.append(Replica(f"http://127.0.0.1:{port}", process, log, httpx.Client(timeout=30)))
        yield started
    finally:
        for replica in started:
            replica.client.close()
            if replica.process.poll() is None:
                os.killpg(replica.process.pid, signal.SIGTERM)
        for replica in started:
            try:
                replica.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(replica.process.pid, signal.SIGKILL)


def wait_until(replica: Replica, ready, timeout: float = 120.0) -> None:
    """Poll until `ready(replica)` is true (connection errors are 'not yet'); fail with the replica's output."""
    deadline = time.monotonic() + timeout
    while True:
        if replica.process.poll() is not None:
            raise AssertionError(f"ratchet serve exited with {replica.process.returncode}:\n{replica.output()}")
        try:
            if ready(replica):
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"ratchet serve was not ready within {timeout} s:\n{replica.output()}")
        time.sleep(0.3)
