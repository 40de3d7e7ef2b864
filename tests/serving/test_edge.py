"""The service's edge through a real `ratchet serve` process: what a client can send that must not reach the model.

Each row of `EDGE_CATALOGUE` is a row of the bad-input catalogue (docs: "Bad input"): a request, the status it
gets, and the message. None may be a 500, none may count toward `serving_error_rate`, and a request without the
token writes nothing to PostgreSQL. The replica's time limit is 3 s, so that the slow cases are quick to run.
"""
from __future__ import annotations

import datetime as dt
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import emptied_registry
from fastapi.testclient import TestClient
from serving_helpers import TOKEN, Replica, register_trained, replicas, wait_until
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.serving.app import create_app
from ratchet.serving.limits import DEFAULT_MAX_BODY_BYTES
from ratchet.serving.service import Service

TABLE = "edge.source"
PREDICT = "/v1/models/edge/predict"
TIMEOUT_SECONDS = 3
LAST_DAY = dt.date(2025, 6, 29)  # the source's last day: a POST row for the next day has every lag in the source
NEXT_DAY = (LAST_DAY + dt.timedelta(days=1)).isoformat()
CACHED_DAY = "2025-06-01"
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def world(database_url, tmp_path_factory):
    """A model over a synthetic table (a numeric and a categorical feature, lags of 1 and 7 days), its champion,
    and one replica whose time limit is `TIMEOUT_SECONDS`."""
    folder = tmp_path_factory.mktemp("edge-models")
    registry = emptied_registry(database_url)
    rng = np.random.default_rng(3)
    days = pd.date_range(end=LAST_DAY, periods=400, freq="D")
    frame = pd.DataFrame({"day": days, "x1": rng.normal(size=len(days)), "kind": rng.choice(["a", "b"], len(days))})
    frame["y"] = 2 * frame["x1"] + (frame["kind"] == "a") + rng.normal(scale=0.1, size=len(days))
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS edge CASCADE; CREATE SCHEMA edge"))
        frame.to_sql("source", conn, schema="edge", index=False)
    spec = write_spec(folder, name="edge", table=TABLE, source={"features": ["x1", "kind"], "categorical": ["kind"],
                                                                  "target_lags": [1, 7]})
    registry.sync_model(spec)
    register_trained(registry, spec, {"alpha": 1.0}, promote=True)
    env = {"RATCHET_MODELS_DIR": str(folder), "RATCHET_API_TOKEN": TOKEN,
           "RATCHET_API_REQUEST_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS)}
    with replicas(1, env, folder) as (replica,):
        wait_until(replica, lambda r: r.get("/healthz", token=None).status_code == 200)
        yield {"registry": registry, "replica": replica}
    registry.dispose()


def _row(**values: str) -> str:
    """A POST body of one row for the day after the source's last, as JSON text (so it may hold what JSON cannot)."""
    fields = {"day": f'"{NEXT_DAY}"', "x1": "0.5", "kind": '"a"', **values}
    return '{"rows": [{' + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}]}"


def _post(body: str | bytes, headers: dict | None = JSON, *, token: str | None = TOKEN):
    def send(replica: Replica) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return replica.client.post(replica.url + PREDICT, content=body, headers={**(headers or {}), **auth})
    return send


def _get(at: str, *, token: str | None = TOKEN):
    return lambda replica: replica.get(PREDICT, params={"at": at}, token=token)


def _chunks(size: int) -> list[bytes]:
    """A body of `size` bytes in 64 KiB chunks, which httpx sends without a Content-Length (chunked encoding)."""
    return [b" " * min(65536, size - start) for start in range(0, size, 65536)]


@dataclass(frozen=True)
class EdgeCase:
    """A request a client can send, the status it must get and a regex of the message."""

    id: str
    send: Callable[[Replica], httpx.Response]
    status: int
    message: str


TOO_LARGE = DEFAULT_MAX_BODY_BYTES + 1
RANGE = r"expected a time from 1677-09-29 to 2262-04-11 \(the times NumPy's timestamps hold, less the 7 days its " \
        r"target lags reach back\)"
NOT_FINITE = r"got Infinity or a number beyond what a float holds \(about 1.8e308\); JSON has no Infinity"
EDGE_CATALOGUE = [
    EdgeCase("serve-no-token", _post(_row(), token=None), 401,
             r"^missing bearer token: send the header 'Authorization: Bearer <token>'$"),
    EdgeCase("serve-wrong-token", _get(CACHED_DAY, token="wrong"), 401, r"^invalid bearer token$"),
    EdgeCase("serve-body-too-large", _post(b" " * TOO_LARGE), 413,
             rf"^request body: larger than {DEFAULT_MAX_BODY_BYTES} bytes \(RATCHET_API_MAX_BODY_BYTES\)"),
    EdgeCase("serve-body-too-large-chunked", _post(_chunks(TOO_LARGE)), 413,
             rf"^request body: larger than {DEFAULT_MAX_BODY_BYTES} bytes"),
    EdgeCase("serve-body-wrong-content-type", _post(_row(), {"Content-Type": "text/plain"}), 415,
             r"^request body: expected Content-Type: application/json, got 'text/plain'$"),
    EdgeCase("serve-body-no-content-type", _post(_row(), None), 415,
             r"^request body: expected Content-Type: application/json, got none$"),
    EdgeCase("serve-body-not-json", _post('{"rows": [1,'), 422,
             r"^request body: not valid JSON \(Expecting value at character 12\)$"),
    EdgeCase("serve-body-integer-of-5000-digits", _post(_row(x1="9" * 5000)), 422,
             r"^request body: cannot be read as JSON \(Exceeds the limit \(4300 digits\) for integer string"),
    EdgeCase("serve-body-nested-too-deep", _post("[" * 100_000), 422,
             r"^request body: cannot be read as JSON \(maximum recursion depth exceeded"),
    EdgeCase("serve-feature-infinity", _post(_row(x1="Infinity")), 422,
             rf"^rows\[0\]\.x1: expected a number or null, {NOT_FINITE}$"),
    EdgeCase("serve-feature-minus-infinity", _post(_row(x1="-Infinity")), 422,
             r"^rows\[0\]\.x1: expected a number or null, got -Infinity or a number beyond"),
    EdgeCase("serve-feature-nan", _post(_row(x1="NaN")), 422,
             r"^rows\[0\]\.x1: expected a number or null, got NaN \(JSON has no NaN: send null for a missing value\)$"),
    EdgeCase("serve-feature-overflow", _post(_row(x1="1e309")), 422, rf"^rows\[0\]\.x1: .*{NOT_FINITE}$"),
    EdgeCase("serve-feature-huge-integer", _post(_row(x1="9" * 401)), 422, rf"^rows\[0\]\.x1: .*{NOT_FINITE}$"),
    EdgeCase("serve-category-infinity", _post(_row(kind="Infinity")), 422,
             rf"^rows\[0\]\.kind: expected a category \(text or number\) or null, {NOT_FINITE}$"),
    EdgeCase("serve-target-infinity", _post(_row(y="1e999")), 422, rf"^rows\[0\]\.y: .*{NOT_FINITE}$"),
    EdgeCase("serve-at-year-1", _get("0001-01-01"), 422, rf"^query parameter 'at': {RANGE}, got '0001-01-01'$"),
    EdgeCase("serve-at-year-9999", _get("9999-12-31"), 422, rf"^query parameter 'at': {RANGE}, got '9999-12-31'$"),
    EdgeCase("serve-at-offset-past-year-1", _get("0001-01-01T00:00:00+01:00"), 422,
             rf"^query parameter 'at': {RANGE}, got '0001-01-01T00:00:00\+01:00'$"),
    EdgeCase("serve-at-within-lags-of-the-range", _get("1677-09-25"), 422, rf"^query parameter 'at': {RANGE}"),
    EdgeCase("serve-row-day-year-1", _post(_row(day='"0001-01-01"')), 422, rf"^rows\[0\]\.day: {RANGE}"),
]


def test_every_edge_case_is_a_row_of_the_bad_input_page():
    page = (Path(__file__).resolve().parents[2] / "docs" / "bad-input.md").read_text()
    assert [case.id for case in EDGE_CATALOGUE if f"| `{case.id}` | REST |" not in page] == []


@pytest.mark.parametrize("case", EDGE_CATALOGUE, ids=[case.id for case in EDGE_CATALOGUE])
def test_each_request_the_edge_refuses_gets_its_status_and_a_message_never_a_500(world, case):
    answer = case.send(world["replica"])
    assert answer.status_code == case.status, answer.text
    assert re.search(case.message, answer.json()["detail"]), answer.json()["detail"]
    assert "Traceback" not in answer.text


def test_no_refusal_is_stored_or_counted_as_a_server_error(world):
    """After the catalogue (run first, in this module's order): no 500 in the metrics or the prediction log."""
    replica, registry = world["replica"], world["registry"]
    for case in EDGE_CATALOGUE:
        case.send(replica)
    time.sleep(1.5)  # the log is written every 0.5 s
    metrics = replica.get("/metrics").text
    assert "ratchet_serving_errors_total{" not in metrics, metrics
    assert 'route="rows",status="422",version="none"' in metrics
    rows = registry.served("edge", dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC))
    assert rows and {row.status for row in rows} == {422}, {row.status for row in rows}  # 401, 413, 415: not logged
    logged = re.compile(r"(rows\[0\]\.|query parameter 'at'|request body: (not valid|cannot be read as) JSON)")
    assert [row.error for row in rows if not logged.match(row.error)] == []


def test_a_request_without_the_token_is_counted_but_writes_nothing_to_postgresql(world):
    replica, registry = world["replica"], world["registry"]
    started = dt.datetime.now(dt.UTC)
    for token in (None, "wrong"):
        for _ in range(5):
            assert replica.get(PREDICT, params={"at": CACHED_DAY}, token=token).status_code == 401
            assert _post(_row(), token=token)(replica).status_code == 401
    time.sleep(1.5)
    assert registry.served("edge", started, dt.datetime.now(dt.UTC)) == []
    metrics = replica.get("/metrics").text
    assert re.search(r'ratchet_serving_requests_total\{model="edge",route="id",status="401",version="none"\} '
                     r'(\d+)', metrics)
    assert re.search(r'ratchet_serving_requests_total\{model="edge",route="rows",status="401",version="none"\}',
                     metrics)


def test_a_30_mb_body_is_refused_at_once_while_a_cached_get_stays_fast(world):
    """The token (and the declared size) are checked before a byte of the body is read: a 30 MB body is refused in
    well under a second, and the replica keeps answering cached GETs in milliseconds meanwhile."""
    replica = world["replica"]
    assert replica.get(PREDICT, params={"at": CACHED_DAY}).status_code == 200
    assert replica.get(PREDICT, params={"at": CACHED_DAY}).json()["cached"] is True
    latencies: list[float] = []
    stop = threading.Event()

    def cached_gets() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                begun = time.perf_counter()
                answer = client.get(replica.url + PREDICT, params={"at": CACHED_DAY},
                                    headers={"Authorization": f"Bearer {TOKEN}"})
                latencies.append(time.perf_counter() - begun)
                assert answer.json()["cached"] is True

    body = b"[" + b"1," * (15 * 1024 * 1024) + b"1]"  # 30 MB
    memory_before = _resident_bytes(replica)
    getter = threading.Thread(target=cached_gets)
    getter.start()
    try:
        time.sleep(0.2)
        for token, status in ((None, 401), (TOKEN, 413)):
            with httpx.Client(timeout=30) as client:
                begun = time.perf_counter()
                answer = client.post(replica.url + PREDICT, content=body,
                                     headers={**JSON, **({"Authorization": f"Bearer {token}"} if token else {})})
                took = time.perf_counter() - begun
            assert answer.status_code == status, answer.text
            assert took < 1.0, took
        time.sleep(0.2)
    finally:
        stop.set()
        getter.join()
    assert len(latencies) >= 5 and max(latencies) < 0.5, sorted(latencies)[-3:]
    assert _resident_bytes(replica) - memory_before < 20 * 1024 * 1024  # the body was never held


def _resident_bytes(replica: Replica) -> int:
    """The replica process's resident memory (uvicorn runs in the `ratchet serve` process itself)."""
    status = open(f"/proc/{replica.process.pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024


def _raw_request(replica: Replica, head: bytes, body_part: bytes) -> tuple[float, bytes]:
    """Send a request's head and only part of its body, then wait for the answer: (seconds, what came back)."""
    host, port = replica.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        begun = time.perf_counter()
        sock.sendall(head + body_part)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return time.perf_counter() - begun, answer


def test_a_body_that_never_finishes_arriving_is_cut_off_at_the_time_limit(world):
    replica = world["replica"]
    head = (f"POST {PREDICT} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode()
    took, answer = _raw_request(replica, head, b'{"rows": [')
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert (b'"request body: not received within 3 s (RATCHET_API_REQUEST_TIMEOUT_SECONDS)"' in answer), answer
    assert TIMEOUT_SECONDS - 0.5 < took < TIMEOUT_SECONDS + 3, took


def test_a_request_the_source_keeps_waiting_is_answered_504_at_the_time_limit_and_logged(world):
    """A source table locked by another transaction: the read waits, the client gets 504 at the limit (not when the
    lock goes), the refusal is logged with its id, and the replica answers again once the lock is released."""
    replica, registry = world["replica"], world["registry"]
    started = dt.datetime.now(dt.UTC)
    with registry.engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(text(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE"))
        begun = time.perf_counter()
        answer = replica.get(PREDICT, params={"at": "2025-05-05"})
        took = time.perf_counter() - begun
        transaction.rollback()
    assert answer.status_code == 504, answer.text
    assert answer.json()["detail"].startswith("the request did not finish within 3 s "
                                              "(RATCHET_API_REQUEST_TIMEOUT_SECONDS); request id ")
    assert TIMEOUT_SECONDS - 0.5 < took < TIMEOUT_SECONDS + 2, took
    assert replica.get(PREDICT, params={"at": "2025-05-05"}).status_code == 200
    deadline = time.monotonic() + 5
    rows = []
    while len(rows) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = registry.served("edge", started, dt.datetime.now(dt.UTC))
    assert [(r.status, r.feature_id) for r in rows] == [(504, dt.datetime(2025, 5, 5)), (200, dt.datetime(2025, 5, 5))]
    assert rows[0].request_id in answer.json()["detail"]


def test_healthz_says_what_failed_without_host_port_user_or_password(monkeypatch, tmp_path):
    """/healthz answers without a token: its 503 names the failure, never where the database is or who logs in."""
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    service = Service("postgresql://alice:s3cret@127.0.0.1:1/nowhere", replica="tests:0:0", probe_seconds=60)
    with TestClient(create_app(service, TOKEN)) as client:
        health = client.get("/healthz")
        answer = client.get(PREDICT, params={"at": CACHED_DAY}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert health.status_code == 503
    assert health.json() | {"replica": None} == {"status": "unhealthy", "replica": None,
                                                 "database": "unreachable: connection refused", "models": {},
                                                 "detail": "database unreachable: connection refused"}
    assert answer.status_code == 503
    assert answer.json()["detail"] == ("the service has not loaded its models: the Ratchet database is unreachable "
                                       "(connection refused); retrying")
    for secret in ("127.0.0.1", "alice", "s3cret", "nowhere", "port"):
        assert secret not in health.text + answer.text, secret
