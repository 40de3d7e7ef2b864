"""The service's parts on their own (no uvicorn): bounded source reads, cache, split resolution, prediction log,
token sources, and the app's catch-all error answer."""
from __future__ import annotations

import datetime as dt
import os
import re
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from features_reference import features_of_rows, input_rows
from promote_helpers import register_fitted
from serving_helpers import TOKEN, register_trained
from spec_factory import write_spec
from sqlalchemy import text

from ratchet import cli
from ratchet.exceptions import ConfigurationError, DataError, PredictError
from ratchet.modeling import features, sources
from ratchet.registry.entities import Served
from ratchet.serving import auth
from ratchet.serving.app import create_app
from ratchet.serving.cache import TTLCache
from ratchet.serving.log import ServedLog
from ratchet.serving.metrics import ServingMetrics
from ratchet.serving.routing import Estimators, candidate_share, resolve
from ratchet.serving.rows import FeatureReader
from ratchet.serving.service import Service

TABLE = "serving_parts_source"


def _gappy_table(registry) -> pd.DataFrame:
    """45 days with three missing days and four days without a target, written as a real table."""
    rng = np.random.default_rng(2)
    days = pd.date_range("2024-01-01", periods=48, freq="D").delete([15, 16, 30])
    frame = pd.DataFrame({"day": days, "x1": rng.normal(size=len(days))})
    frame["y"] = 5 + 2 * frame["x1"] + rng.normal(scale=0.1, size=len(days))
    frame.loc[[8, 24, 25, 38], "y"] = np.nan
    with registry.engine.begin() as conn:
        frame.to_sql(TABLE, conn, index=False, if_exists="replace")
    return frame


@pytest.mark.parametrize(("lags_by", "lags", "query"), [("days", [1, 7], False), ("rows", [1, 3], False),
                                                         ("days", [1, 2], True)])
@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_every_id_gets_the_features_a_full_read_builds_or_the_same_refusal(registry, tmp_path, lags_by, lags, query):
    """For each day of a table with gaps and unknown targets, the bounded read builds the features the pandas
    reference (tests/features_reference.py: validate, then make_xy) builds from the whole history before that
    day (and, for a day with a target, the row training saw), or refuses the id exactly when that path refuses it."""
    frame = _gappy_table(registry)
    source = {"features": ["x1"], "target_lags": lags, "lags_by": lags_by}
    spec = (write_spec(tmp_path, name="parts", query=f"SELECT * FROM {TABLE} ORDER BY day;", source=source)
            if query else write_spec(tmp_path, name="parts", table=TABLE, source=source))
    X, _, times = features.make_xy(spec, sources.read_source(spec))
    model_columns = [c for c in X.columns if features.is_model_input(c)]
    trained = dict(zip(times, range(len(times)), strict=True))
    reader = FeatureReader(os.environ["RATCHET_DATABASE_URL"])
    refused = 0
    try:
        for i, day in enumerate(frame["day"]):
            try:
                expected, _ = features_of_rows(spec, sources.read_source(spec, end=day),
                                               input_rows(spec, frame.iloc[[i]]))
            except (PredictError, DataError) as exc:  # the first day: `ratchet predict` finds no history at all
                message = str(exc) if isinstance(exc, PredictError) else f"cannot compute target lags {lags}"
                with pytest.raises(PredictError, match=re.escape(message)):
                    reader.by_id(spec, day.to_pydatetime())
                refused += 1
                continue
            got = reader.by_id(spec, day.to_pydatetime()).X[model_columns]
            pd.testing.assert_frame_equal(got, expected[model_columns])
            if day in trained:
                pd.testing.assert_frame_equal(got, X.iloc[[trained[day]]][model_columns].reset_index(drop=True))
        assert 3 <= refused < len(frame) // 2  # the first days, and days after a gap or an unknown target
        with registry.engine.connect() as conn:
            window = sources.read_lag_window(spec, conn, dt.datetime(2024, 2, 10), dt.datetime(2024, 2, 10))
        assert len(window.rows) <= max(lags) + 1  # the row and what its lags reach, never the table
    finally:
        reader.dispose()


def test_a_corrected_row_changes_the_fingerprint(registry, tmp_path):
    _gappy_table(registry)
    spec = write_spec(tmp_path, name="parts", table=TABLE, source={"features": ["x1"], "target_lags": [1]})
    reader = FeatureReader(os.environ["RATCHET_DATABASE_URL"])
    at = dt.datetime(2024, 2, 10)
    try:
        before = reader.by_id(spec, at)
        assert reader.by_id(spec, at).fingerprint == before.fingerprint
        with registry.engine.begin() as conn:
            conn.execute(text(f"UPDATE {TABLE} SET y = y + 1 WHERE day = :d"), {"d": at - dt.timedelta(days=1)})
        after = reader.by_id(spec, at)
        assert after.fingerprint != before.fingerprint
        assert after.X["target_lag_1"].iloc[0] == before.X["target_lag_1"].iloc[0] + 1
    finally:
        reader.dispose()


def test_the_cache_expires_drops_a_model_and_stays_bounded():
    cache = TTLCache(max_entries=3)
    cache.put("m", "a", 1, ttl_seconds=0.2)
    cache.put("m", "zero", 1, ttl_seconds=0)
    cache.put("n", "a", 2, ttl_seconds=60)
    assert (cache.get("m", "a"), cache.get("m", "zero"), cache.get("n", "a")) == (1, None, 2)
    time.sleep(0.25)
    assert cache.get("m", "a") is None
    for key in "bcde":
        cache.put("m", key, key, ttl_seconds=60)
    assert [cache.get("m", k) for k in "bcde"] == [None, "c", "d", "e"]  # the oldest write went first
    cache.drop("m")
    assert cache.get("m", "e") is None and cache.get("n", "a") == 2


def test_the_split_hash_is_a_fixed_uniform_function_of_model_and_id():
    ids = [dt.datetime(2020, 1, 1) + dt.timedelta(days=i) for i in range(4000)]
    shares = np.array([candidate_share("demand", i) for i in ids])
    assert candidate_share("demand", ids[0]) == shares[0] and shares.min() >= 0 and shares.max() < 1
    assert abs(np.mean(shares < 0.1) - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 4000)
    assert not np.array_equal(shares, [candidate_share("other", i) for i in ids])  # each model splits its own ids


@pytest.mark.parametrize(("candidate", "version", "reason"), [
    ("trial", 3, None),
    (3, 3, None),
    (2, None, "v2 is not in trial: it is the champion; every id goes to the champion"),
    (1, None, "v1 is not in trial: the champion v2 is newer; every id goes to the champion"),
    (9, None, "v9 does not exist; versions: [1, 2, 3]; every id goes to the champion"),
])
def test_a_split_resolves_to_a_version_in_trial_or_says_why_not(registry, tmp_path, candidate, version, reason):
    spec = write_spec(tmp_path, name="demand", serving={"split": {"candidate": candidate, "fraction": 0.2}})
    registry.sync_model(spec)
    for run in ("r1", "r2", "r3"):
        register_fitted(registry, "demand", run)
    registry.record_promotion("demand", 2, kind="initial", outcome="promoted", triggered_by="tests", reason="x",
                              gates=[], run_id="p", expected_previous_version=None)
    state = resolve(registry, Estimators(registry), spec)
    assert (state.champion.version.version, state.trial) == (2, (3,))
    assert (state.split.version, state.split.reason) == (version, reason)
    assert (state.candidate.version.version if state.candidate else None) == version


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_without_a_version_in_trial_the_split_is_inactive(registry, tmp_path):
    spec = write_spec(tmp_path, name="demand", serving={"split": {"candidate": "trial", "fraction": 0.5}})
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1")
    registry.record_promotion("demand", 1, kind="initial", outcome="promoted", triggered_by="tests", reason="x",
                              gates=[], run_id="p", expected_previous_version=None)
    state = resolve(registry, Estimators(registry), spec)
    assert state.candidate is None
    assert state.split.reason == ("no version is in trial (none is newer than the champion v1); "
                                  "every id goes to the champion")
    assert state.arm_for(dt.datetime(2024, 1, 1)) is state.champion


def _served(model: str, i: int) -> Served:
    return Served(model=model, version=1, request_id=f"r{i}", route="id", arm="champion",
                  feature_id=dt.datetime(2024, 1, 1), prediction=float(i), label=None, probabilities=None,
                  cache_hit=False, latency_ms=1.0, status=200, error=None, replica="tests:1:1",
                  served_at=dt.datetime.now(dt.UTC))


def _sample(metrics: ServingMetrics, name: str, labels: dict | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_the_log_keeps_a_bounded_queue_while_the_database_is_down_and_counts_what_it_drops(registry, tmp_path):
    from ratchet.registry import Registry

    metrics = ServingMetrics()
    down = Registry("postgresql://postgres@127.0.0.1:1/nowhere")
    log = ServedLog(down, metrics, batch_rows=2, max_rows=5)
    log.add([_served("demand", i) for i in range(7)])
    assert not log.flush()
    assert _sample(metrics, "ratchet_serving_log_dropped_rows_total", {"reason": "buffer_full"}) == 2
    assert _sample(metrics, "ratchet_serving_log_queue_rows") == 5

    registry.sync_model(write_spec(tmp_path, name="demand"))
    log.registry = registry  # the database is back
    log.add([_served("gone", 99)])  # a model the registry does not know
    assert log.flush()
    rows = registry.served("demand", dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC))
    assert [r.prediction for r in rows] == [3.0, 4.0, 5.0, 6.0]  # the two oldest of 7 were dropped
    assert _sample(metrics, "ratchet_serving_log_dropped_rows_total", {"reason": "unknown_model"}) == 1
    assert _sample(metrics, "ratchet_serving_log_written_rows_total") == 4


def test_the_token_comes_from_the_environment_else_the_airflow_connection(monkeypatch):
    monkeypatch.setenv(auth.TOKEN_ENV, "from-env")
    monkeypatch.setenv("AIRFLOW_CONN_RATCHET_API", '{"conn_type": "http", "password": "from-connection"}')
    assert auth.api_token() == "from-env"
    monkeypatch.delenv(auth.TOKEN_ENV)
    assert auth.api_token() == "from-connection"
    monkeypatch.delenv("AIRFLOW_CONN_RATCHET_API")
    with pytest.raises(ConfigurationError, match="set RATCHET_API_TOKEN or give the Airflow connection 'ratchet_api'"):
        auth.api_token()


def test_ratchet_serve_refuses_to_start_without_a_token(monkeypatch, capsys):
    monkeypatch.delenv(auth.TOKEN_ENV, raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_RATCHET_API", raising=False)
    assert cli.main(["serve", "--port", "1"]) == 2
    assert capsys.readouterr().err.startswith("ratchet: no API token for `ratchet serve`: set RATCHET_API_TOKEN")


def test_an_unexpected_failure_is_a_short_500_logged_with_its_request_id(registry, tmp_path, monkeypatch, caplog):
    service = _warm_service(registry, tmp_path, monkeypatch)

    def broken(*args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(service, "answer_by_id", broken)
    with TestClient(create_app(service, TOKEN), raise_server_exceptions=False) as client:
        answer = client.get("/v1/models/parts/predict", params={"at": "2024-02-10"},
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 500
    detail = answer.json()["detail"]
    assert detail.startswith("internal error (request id ") and "a bug" not in detail
    request_id = detail.split("request id ")[1].split(")")[0]
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)
    rows = registry.served("parts", dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC))
    assert [(r.status, r.request_id) for r in rows] == [(500, request_id)]


def test_stopping_the_log_writes_what_is_queued(registry, tmp_path):
    registry.sync_model(write_spec(tmp_path, name="demand"))
    log = ServedLog(registry, ServingMetrics(), interval_seconds=60)  # the thread would not write for a minute
    log.start()
    log.add([_served("demand", i) for i in range(3)])
    log.stop()
    rows = registry.served("demand", dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC))
    assert [r.request_id for r in rows] == ["r0", "r1", "r2"]


def _warm_service(registry, tmp_path, monkeypatch) -> Service:
    _gappy_table(registry)
    spec = write_spec(tmp_path, name="parts", table=TABLE, source={"features": ["x1"], "target_lags": [1]})
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    registry.sync_model(spec)
    register_trained(registry, spec, {"alpha": 1.0}, promote=True)
    return Service(os.environ["RATCHET_DATABASE_URL"], replica="tests:0:0", probe_seconds=60)


def test_a_lost_notification_connection_reconnects_and_drops_every_cached_answer(registry, tmp_path, monkeypatch):
    service = _warm_service(registry, tmp_path, monkeypatch)
    service.start()
    try:
        state = service.state("parts")
        at = dt.datetime(2024, 2, 10)
        service.answer_by_id(state, at)
        assert service.cached(state, at) is not None
        with registry.engine.begin() as conn:  # what a network cut or a database restart does to the connection
            killed = conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE query LIKE 'LISTEN ratchet_models_changed%' AND datname = "
                                       "current_database()")).scalars().all()
        assert killed == [True]
        deadline = time.monotonic() + 15
        while service.cached(state, at) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert service.cached(state, at) is None
        assert service.listener.connected.wait(15)  # listening again, every model reloaded
        assert service.state("parts").champion.version.version == 1
    finally:
        service.stop()


def test_without_a_database_the_service_answers_503_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    service = Service("postgresql://postgres@127.0.0.1:1/nowhere", replica="tests:0:0", probe_seconds=60)
    with TestClient(create_app(service, TOKEN)) as client:
        health = client.get("/healthz")
        answer = client.get("/v1/models/parts/predict", params={"at": "2024-02-10"},
                            headers={"Authorization": f"Bearer {TOKEN}"})
    assert health.status_code == 503 and health.json()["detail"].startswith("database unreachable: ")
    assert answer.status_code == 503
    assert answer.json()["detail"].startswith("the service has not loaded its models: the Ratchet database is "
                                              "unreachable")
