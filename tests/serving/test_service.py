"""`ratchet serve` end to end: two real uvicorn replicas on free ports over the run's PostgreSQL.

Four models, each with a version fitted on its source and promoted through the registry:
- `daily_demand`: the demo table and the demo YAML (regression, lags of 1 and 7 calendar days);
- `aqi`: Beijing's daily AQI band, a real table (six classes, a categorical feature, days without a target);
- `msft`: Microsoft's close, a real table of business days (lags by rows), with a split on v1 (the champion
  itself, so it is inactive and says why);
- `split`: a synthetic table with a split sending 30% of ids to v2 (in trial).
"""
from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import emptied_registry
from real_data import real_data_dir
from serving_helpers import TOKEN, register_trained, replicas, wait_until
from spec_factory import write_spec
from sqlalchemy import text

from ratchet import demo
from ratchet.modeling import features, sources
from ratchet.serving import predict
from ratchet.serving.routing import candidate_share
from ratchet.specs import load_spec

# Two `ratchet serve` replicas started for the module, then real-table training: minutes, not seconds.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WEATHER = ["dew_point", "temperature", "pressure", "wind_speed_max", "snow_hours", "rain_hours", "wind_direction"]
SPLIT_FRACTION = 0.3
SPLIT_IDS = 2000


@pytest.fixture(scope="module")
def world(database_url, tmp_path_factory):
    """The four models' tables, specs and champions, and two replicas serving them.

    The replicas start first, with the specs but nothing registered: they learn every version and champion
    from the registry's notifications while the tables load and the versions are fitted.
    """
    folder = tmp_path_factory.mktemp("serving-models")
    shutil.copy(REPO / "include" / "models" / "demand.yaml", folder / "demand.yaml")
    specs = {"daily_demand": load_spec(folder / "demand.yaml")}
    ridge = {"class": "sklearn.linear_model.Ridge"}
    specs["aqi"] = write_spec(folder, name="aqi", task="classification", table="serving_real.beijing",
                              source={"target": "aqi_band", "features": WEATHER, "categorical": ["wind_direction"],
                                      "target_lags": [1]},
                              estimators=[{"class": "sklearn.ensemble.HistGradientBoostingClassifier",
                                           "params": {"random_state": 0, "max_iter": 20}}],
                              baselines=["majority"])
    specs["msft"] = write_spec(folder, name="msft", table="serving_real.msft",
                               source={"target": "close", "features": [], "target_lags": [1, 2, 5], "lags_by": "rows"},
                               estimators=[ridge], serving={"split": {"candidate": 1, "fraction": 0.5}})
    specs["split"] = write_spec(folder, name="split", table="serving_real.split_source",
                                source={"features": ["x1", "x2"], "target_lags": [1]}, estimators=[ridge],
                                serving={"cache_ttl_seconds": 60, "split": {"candidate": "trial",
                                                                            "fraction": SPLIT_FRACTION}})
    registry = emptied_registry(database_url)
    env = {"RATCHET_MODELS_DIR": str(folder), "RATCHET_API_TOKEN": TOKEN, "RATCHET_PROBE_SECONDS": "1"}
    with replicas(2, env, folder) as served:
        _load_tables(registry, database_url)
        for spec in specs.values():
            registry.sync_model(spec)
        register_trained(registry, specs["daily_demand"], {"alpha": 1.0}, estimator=1, promote=True)
        register_trained(registry, specs["aqi"], {}, promote=True)
        register_trained(registry, specs["msft"], {"alpha": 1.0}, promote=True)
        register_trained(registry, specs["split"], {"alpha": 1.0}, promote=True)
        register_trained(registry, specs["split"], {"alpha": 300.0}, run_id="r2")  # v2, in trial: the candidate
        for replica in served:
            wait_until(replica, lambda r: r.get("/healthz", token=None).json()["models"] == {
                "aqi": "champion v1 loaded", "daily_demand": "champion v1 loaded", "msft": "champion v1 loaded",
                "split": "champion v1 loaded"} and r.get("/v1/models/split").json()["candidates"] == [2])
        yield {"registry": registry, "specs": specs, "replicas": served, "folder": folder}
    registry.dispose()


def _load_tables(registry, url: str) -> None:
    """The demo table, Beijing's and Microsoft's real tables, and a synthetic table of 2,100 days."""
    demo.load_demo(url, end=dt.date(2026, 11, 22))
    real = real_data_dir()
    rng = np.random.default_rng(5)
    days = pd.date_range("2019-01-01", periods=SPLIT_IDS + 100, freq="D")
    synthetic = pd.DataFrame({"day": days, "x1": rng.normal(size=len(days)), "x2": rng.normal(size=len(days))})
    synthetic["y"] = 3 * synthetic["x1"] - synthetic["x2"] + rng.normal(scale=0.3, size=len(days))
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS serving_real"))
        pd.read_csv(real / "beijing_pm25_daily.csv", parse_dates=["day"]).to_sql(
            "beijing", conn, schema="serving_real", index=False, if_exists="replace")
        pd.read_csv(real / "msft_daily.csv", parse_dates=["day"]).tail(1500).to_sql(
            "msft", conn, schema="serving_real", index=False, if_exists="replace")
        synthetic.to_sql("split_source", conn, schema="serving_real", index=False, if_exists="replace")


def _source(spec) -> pd.DataFrame:
    return sources.read_source(spec)


def _expected(registry, spec, row: pd.DataFrame) -> float:
    """What `ratchet predict` answers for this source row (the function the command runs)."""
    return predict.predict_frame(registry, spec, row)["prediction"].iloc[0]


def test_prediction_by_id_equals_ratchet_predict_on_the_same_row(world):
    registry, specs = world["registry"], world["specs"]
    a, b = world["replicas"]
    for name in ("daily_demand", "msft"):
        spec = specs[name]
        raw = pd.read_sql(text(f"SELECT * FROM {spec.source.table} ORDER BY day"), registry.engine)
        for position in (-1, -2, -30, len(raw) // 2):
            row = raw.iloc[[position]]
            at = pd.Timestamp(row["day"].iloc[0]).date().isoformat()
            for replica in (a, b):
                answer = replica.get(f"/v1/models/{name}/predict", params={"at": at})
                assert answer.status_code == 200, answer.text
                body = answer.json()
                assert body["prediction"] == pytest.approx(_expected(registry, spec, row), rel=1e-12), (name, at)
                assert (body["model"], body["version"], body["arm"], body["at"]) == (name, 1, "champion",
                                                                                   f"{at}T00:00:00")
                assert body["probabilities"] is None


def test_a_classifier_answers_its_class_and_probabilities_as_training_built_the_row(world):
    registry, spec = world["registry"], world["specs"]["aqi"]
    a, _ = world["replicas"]
    source = _source(spec)
    X, _, times = features.make_xy(spec, source)  # the whole table, as training read it
    estimator = registry.load_estimator("aqi", 1)
    for position in (-1, 100, 900):
        at = times.iloc[position]
        body = a.get("/v1/models/aqi/predict", params={"at": at.date().isoformat()}).json()
        expected = estimator.predict_proba(X.iloc[[position]])[0]
        assert body["prediction"] == estimator.predict(X.iloc[[position]])[0]
        assert list(body["probabilities"]) == [str(c) for c in estimator.classes_]
        np.testing.assert_allclose(list(body["probabilities"].values()), expected, rtol=1e-12)
        raw = pd.read_sql(text("SELECT * FROM serving_real.beijing WHERE day = :d"), registry.engine,
                          params={"d": at.to_pydatetime()})
        assert body["prediction"] == _expected(registry, spec, raw)


def test_the_post_route_and_the_get_route_answer_like_ratchet_predict(world):
    registry, spec = world["registry"], world["specs"]["daily_demand"]
    a, _ = world["replicas"]
    raw = pd.read_sql(text("SELECT * FROM demo.daily_demand ORDER BY day"), registry.engine).tail(3)
    expected = predict.predict_frame(registry, spec, raw)["prediction"].tolist()  # what `ratchet predict` runs
    rows = [{**r, "day": r["day"].isoformat()} for r in raw.to_dict("records")]
    posted = a.post("/v1/models/daily_demand/predict", {"rows": rows[::-1]})  # any order: answered in that order
    assert posted.status_code == 200, posted.text
    answers = posted.json()["predictions"][::-1]
    by_id = [a.get("/v1/models/daily_demand/predict", params={"at": r["day"]}).json()["prediction"] for r in rows]
    assert [p["at"][:10] for p in answers] == [r["day"] for r in rows]
    np.testing.assert_allclose([p["prediction"] for p in answers], expected, rtol=1e-12)
    np.testing.assert_allclose(by_id, expected, rtol=1e-12)
    assert not any(p["cached"] for p in answers)


def test_the_token_is_required_everywhere_but_healthz(world):
    a, _ = world["replicas"]
    routes = [("get", "/v1/models"), ("get", "/v1/models/daily_demand"), ("get", "/metrics"),
              ("get", "/v1/models/daily_demand/predict?at=2026-11-20"), ("post", "/v1/models/daily_demand/predict")]
    for method, path in routes:
        for token, message in ((None, "missing bearer token: send the header 'Authorization: Bearer <token>'"),
                               ("wrong", "invalid bearer token")):
            answer = a.get(path, token=token) if method == "get" else a.post(path, {"rows": [{}]}, token=token)
            assert answer.status_code == 401, (path, token)
            assert answer.json() == {"detail": message}
            assert answer.headers["www-authenticate"] == "Bearer"
    for documentation in ("/docs", "/openapi.json"):  # documentation only, no data: open
        assert a.get(documentation, token=None).status_code == 200
    assert a.get("/openapi.json", token=None).json()["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == (
        "bearer")
    health = a.get("/healthz", token=None)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["models"]["daily_demand"].startswith("champion v")
    assert a.get("/v1/models").status_code == 200


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), [
    ("get", "/v1/models/sales/predict?at=2026-11-20", None, 404,
     "unknown model 'sales'; configured models: ['aqi', 'daily_demand', 'msft', 'split']"),
    ("get", "/v1/models/sales", None, 404, "unknown model 'sales'"),
    ("get", "/v1/models/daily_demand/predict?at=2031-01-01", None, 404,
     "model 'daily_demand' has no row with day = 2031-01-01T00:00:00 in table demo.daily_demand"),
    ("get", "/v1/models/daily_demand/predict?at=next-week", None, 422,
     "query parameter 'at': expected a date or date-time in ISO 8601"),
    ("get", "/v1/models/daily_demand/predict", None, 422, "query parameter 'at': Field required"),
    ("post", "/v1/models/daily_demand/predict", {"rows": [{"day": "2026-11-23", "temperature": 5.0,
                                                            "precipitation": 0.0, "is_holiday": 0, "promo": 0,
                                                            "price": 3.99}]},
     422, "rows[0]: missing column(s) ['day_of_week']"),
    ("post", "/v1/models/daily_demand/predict", {"rows": [{"day": "2026-11-23", "temperature": "warm",
                                                            "precipitation": 0.0, "is_holiday": 0, "promo": 0,
                                                            "day_of_week": 0, "price": 3.99}]},
     422, "rows[0].temperature: expected a number or null, got 'warm'"),
    ("post", "/v1/models/daily_demand/predict", {"rows": [{"day": "23/11/2026", "temperature": 1.0}]},
     422, "rows[0].day: expected a date or date-time in ISO 8601"),
    ("post", "/v1/models/daily_demand/predict", {"rows": "day,temperature"}, 422,
     "body field 'rows': Input should be a valid list"),
    ("post", "/v1/models/daily_demand/predict", {"rows": []}, 422, "body field 'rows': List should have at least 1"),
    ("post", "/v1/models/daily_demand/predict", {"rows": [{"day": "2026-11-25", "temperature": 5.0,
                                                            "precipitation": 0.0, "is_holiday": 0, "promo": 0,
                                                            "day_of_week": 2, "price": 3.99}]},
     422, "cannot compute target lags [1, 7] for 1 input row(s), first at 2026-11-25"),
])
def test_each_bad_request_gets_its_status_and_a_message_naming_what_is_wrong(world, method, path, body, status,
                                                                             message):
    a, _ = world["replicas"]
    answer = a.get(path) if method == "get" else a.post(path, body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["detail"]
    assert "Traceback" not in answer.text


def test_an_id_whose_lag_day_has_no_target_is_refused_naming_why(world):
    a, _ = world["replicas"]
    raw = pd.read_sql(text("SELECT day, aqi_band FROM serving_real.beijing ORDER BY day"),
                      world["registry"].engine)
    unknown = raw.index[raw["aqi_band"].isna()]
    day = raw["day"].iloc[unknown[unknown + 1 < len(raw)][5] + 1].date().isoformat()
    answer = a.get("/v1/models/aqi/predict", params={"at": day})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(f"cannot compute target lags [1] for 1 input row(s), first at {day}")


def test_models_list_champions_candidates_and_why_a_split_is_inactive(world):
    a, _ = world["replicas"]
    models = {m["model"]: m for m in a.get("/v1/models").json()["models"]}
    assert set(models) == {"aqi", "daily_demand", "msft", "split"}
    assert models["split"]["champion"] == 1 and models["split"]["candidates"] == [2]
    assert models["split"]["split"] == {"candidate": "trial", "fraction": SPLIT_FRACTION, "version": 2,
                                        "active": True, "reason": None}
    msft = a.get("/v1/models/msft").json()
    assert msft["split"]["active"] is False
    assert msft["split"]["reason"] == "v1 is not in trial: it is the champion; every id goes to the champion"
    assert msft["source"] == {"time_column": "day", "target": "close", "features": None, "categorical": [],
                              "target_lags": [1, 2, 5], "lags_by": "rows"}
    answer = a.get("/v1/models/msft/predict", params={"at": "2017-01-03"})
    assert answer.json()["arm"] == "champion"


def test_the_split_sends_its_fraction_to_the_candidate_deterministically_per_id(world):
    """2,000 ids: the candidate's share is within 4 binomial standard deviations of 0.3 (about +-0.041), each id's
    arm is the hash rule's, the same on both replicas, and each arm answers with its own version's estimator."""
    registry, spec = world["registry"], world["specs"]["split"]
    a, b = world["replicas"]
    raw = pd.read_sql(text("SELECT * FROM serving_real.split_source ORDER BY day"), registry.engine)
    rows = [{**r, "day": r["day"].isoformat()} for r in raw.iloc[1:SPLIT_IDS + 1].to_dict("records")]
    first, second = (r.post("/v1/models/split/predict", {"rows": rows}) for r in (a, b))
    assert first.status_code == 200, first.text
    answers = first.json()["predictions"]
    assert [p["arm"] for p in answers] == [p["arm"] for p in second.json()["predictions"]]
    assert 'ratchet_serving_requests_total{model="split",route="rows",status="200",version="1+2"} 1.0' in a.get(
        "/metrics").text
    candidate = [p["arm"] == "candidate" for p in answers]
    tolerance = 4 * np.sqrt(SPLIT_FRACTION * (1 - SPLIT_FRACTION) / SPLIT_IDS)
    assert abs(np.mean(candidate) - SPLIT_FRACTION) <= tolerance, np.mean(candidate)
    for p, is_candidate in zip(answers, candidate, strict=True):
        assert is_candidate == (candidate_share("split", dt.datetime.fromisoformat(p["at"])) < SPLIT_FRACTION)
        assert p["version"] == (2 if is_candidate else 1)
    X, _, _ = features.make_xy(spec, sources.read_source(spec))
    X = X.iloc[:SPLIT_IDS]  # make_xy drops the first day (no lag): X[i] is rows[i]
    for arm, version in (("candidate", 2), ("champion", 1)):
        chosen = [i for i, p in enumerate(answers) if p["arm"] == arm]
        np.testing.assert_allclose([answers[i]["prediction"] for i in chosen],
                                   registry.load_estimator("split", version).predict(X.iloc[chosen]), rtol=1e-12)
    for p in answers[:6]:
        by_id = b.get("/v1/models/split/predict", params={"at": p["at"]}).json()
        assert (by_id["arm"], by_id["version"]) == (p["arm"], p["version"])


def test_served_rows_and_probes_land_in_postgresql(world):
    registry = world["registry"]
    a, b = world["replicas"]
    started = dt.datetime.now(dt.UTC)
    first = a.get("/v1/models/daily_demand/predict", params={"at": "2026-10-01"}).json()
    second = a.get("/v1/models/daily_demand/predict", params={"at": "2026-10-01"}).json()
    assert (first["cached"], second["cached"]) == (False, True)
    assert second["prediction"] == first["prediction"]
    assert a.get("/v1/models/daily_demand/predict", params={"at": "1999-01-01"}).status_code == 404
    rows = []
    deadline = time.monotonic() + 5
    while len(rows) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = registry.served("daily_demand", started, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    assert len(rows) == 3
    hit, miss = rows[1], rows[0]
    assert (miss.cache_hit, hit.cache_hit) == (False, True)
    for row in (miss, hit):
        assert (row.version, row.arm, row.route, row.status, row.error) == (1, "champion", "id", 200, None)
        assert row.feature_id == dt.datetime(2026, 10, 1) and row.prediction == first["prediction"]
        assert 0 < row.latency_ms < 5000 and row.replica.endswith(f":{a.url.rsplit(':', 1)[1]}:{a.process.pid}")
    assert miss.request_id != hit.request_id
    refused = rows[2]
    assert (refused.status, refused.version, refused.prediction, refused.cache_hit) == (404, None, None, False)
    assert refused.feature_id == dt.datetime(1999, 1, 1)
    assert refused.error.startswith("model 'daily_demand' has no row with day = 1999-01-01")

    probes = registry.probes(started - dt.timedelta(minutes=5), dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    assert {p.replica.rsplit(":", 1)[1] for p in probes} >= {str(a.process.pid), str(b.process.pid)}
    assert all(p.healthy for p in probes), [p.detail for p in probes if not p.healthy]

    metrics = a.get("/metrics").text
    assert 'ratchet_serving_cache_hits_total{model="daily_demand",version="1"}' in metrics
    assert 'ratchet_serving_requests_total{model="daily_demand",route="id",status="404",version="none"}' in metrics
    assert "ratchet_serving_request_latency_seconds_bucket" in metrics
    assert "ratchet_serving_log_written_rows_total" in metrics


def test_a_promotion_is_seen_by_both_replicas_within_one_second_and_never_reverts(world):
    registry, spec = world["registry"], world["specs"]["daily_demand"]
    replicas_ = world["replicas"]
    at = {"at": "2026-11-01"}
    new = register_trained(registry, spec, {"alpha": 30.0}, estimator=1, run_id="r-promote")
    time.sleep(0.3)  # the registration's own notification reloads the model; the champion is unchanged
    old = registry.champion("daily_demand").version
    for replica in replicas_:
        replica.get("/v1/models/daily_demand/predict", params=at)
        warm = replica.get("/v1/models/daily_demand/predict", params=at).json()
        assert (warm["version"], warm["cached"]) == (old, True)
    registry.record_promotion("daily_demand", new, kind="promotion", outcome="promoted", triggered_by="tests",
                              reason="serving test", gates=[], run_id="p-new", expected_previous_version=old)
    promoted = time.monotonic()
    seen: dict[int, float] = {}
    versions: list[tuple[int, int]] = []
    while time.monotonic() - promoted < 2.0:
        for i, replica in enumerate(replicas_):
            version = replica.get("/v1/models/daily_demand/predict", params=at).json()["version"]
            versions.append((i, version))
            if version == new:
                seen.setdefault(i, time.monotonic() - promoted)
            else:
                assert i not in seen, f"replica {i} went back to v{version} after serving v{new}"
    assert set(seen) == {0, 1}, versions
    assert max(seen.values()) < 1.0, seen
    for replica in replicas_:
        assert replica.get("/v1/models/daily_demand").json()["champion"] == new


def test_a_broken_spec_makes_the_model_unavailable_and_the_replica_unhealthy_until_fixed(world):
    folder = world["folder"]
    a, _ = world["replicas"]
    path = folder / "msft.yaml"
    good = path.read_text()
    try:
        path.write_text(good.replace("lags_by: rows", "lags_by: weeks"))
        deadline = time.monotonic() + 5
        while a.get("/healthz", token=None).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        health = a.get("/healthz", token=None)
        assert health.status_code == 503
        assert "msft.yaml: field 'source.lags_by'" in health.json()["detail"]
        answer = a.get("/v1/models/msft/predict", params={"at": "2017-01-03"})
        assert answer.status_code == 503 and "field 'source.lags_by'" in answer.json()["detail"]
    finally:
        path.write_text(good)
    deadline = time.monotonic() + 5
    while a.get("/healthz", token=None).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert a.get("/v1/models/msft/predict", params={"at": "2017-01-03"}).status_code == 200
