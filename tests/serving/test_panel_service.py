"""`ratchet serve` for a panel: the M4 daily panel (four series, one global model) served per series.

One real uvicorn replica over the run's PostgreSQL serves `m4` (a panel with `source.series: [series_id]` and a
split sending half of the series to a candidate in trial) and `single` (one series), each with versions fitted on
its source and promoted through the registry.
"""
from __future__ import annotations

import pandas as pd
import pytest
from conftest import emptied_registry
from real_data import real_data_dir
from serving_helpers import TOKEN, register_trained, replicas, wait_until
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.modeling import features, sources
from ratchet.serving.routing import candidate_share

pytestmark = pytest.mark.slow  # a real `ratchet serve` process and versions fitted on a real table

RIDGE = {"class": "sklearn.linear_model.Ridge"}


@pytest.fixture(scope="module")
def panel(database_url, tmp_path_factory):
    """The M4 panel (each series moved to end on 2026-11-2x) and one synthetic series, served by one replica."""
    folder = tmp_path_factory.mktemp("panel-serving")
    frame = pd.read_csv(real_data_dir() / "m4_daily_panel.csv", parse_dates=["day"])
    ends = {sid: pd.Timestamp("2026-11-20") + pd.Timedelta(days=i)
            for i, sid in enumerate(sorted(frame.series_id.unique()))}
    frame["day"] += frame["series_id"].map(ends) - frame.groupby("series_id")["day"].transform("max")
    frame = frame.sort_values(["day", "series_id"], kind="stable").reset_index(drop=True)
    single = frame[frame.series_id == "D10"][["day", "value"]].rename(columns={"value": "y"}).assign(x=1.0)
    registry = emptied_registry(database_url)
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS serving_panel CASCADE; CREATE SCHEMA serving_panel"))
        frame.to_sql("m4", conn, schema="serving_panel", index=False)
        single.to_sql("single", conn, schema="serving_panel", index=False)
    specs = {"m4": write_spec(folder, name="m4", table="serving_panel.m4", estimators=[RIDGE],
                              source={"target": "value", "series": ["series_id"], "features": [],
                                      "target_lags": [1, 7]},
                              serving={"split": {"candidate": "trial", "fraction": 0.5}}),
             "single": write_spec(folder, name="single", table="serving_panel.single", estimators=[RIDGE],
                                  source={"features": ["x"], "target_lags": [1]})}
    for spec in specs.values():
        registry.sync_model(spec)
        register_trained(registry, spec, {"alpha": 1.0}, promote=True)
    register_trained(registry, specs["m4"], {"alpha": 1e4}, run_id="r2")  # v2 in trial: the split's candidate
    env = {"RATCHET_MODELS_DIR": str(folder), "RATCHET_API_TOKEN": TOKEN, "RATCHET_PROBE_SECONDS": "1"}
    with replicas(1, env, folder) as (replica,):
        wait_until(replica, lambda r: r.get("/v1/models/m4").json().get("candidates") == [2]
                   and r.get("/healthz", token=None).status_code == 200)
        yield {"registry": registry, "specs": specs, "replica": replica, "frame": frame}
    registry.dispose()


def _offline(registry, spec, version: int) -> pd.DataFrame:
    """Every source row's prediction by `version`, built from the whole table as training builds it."""
    X, y, times = features.make_xy(spec, sources.read_source(spec))
    estimator = registry.load_estimator(spec.name, version)
    return pd.DataFrame({"series": X["_baseline_series"], "day": times, "prediction": estimator.predict(X)})


def test_each_series_row_by_id_is_the_prediction_training_would_make_for_it(panel):
    registry, spec, replica = panel["registry"], panel["specs"]["m4"], panel["replica"]
    offline = {version: _offline(registry, spec, version).set_index(["series", "day"])["prediction"]
               for version in (1, 2)}
    for series_id in ("D10", "D160", "D410", "D500"):
        last = panel["frame"][panel["frame"].series_id == series_id]["day"].max()
        for day in (last, last - pd.Timedelta(days=30)):
            answer = replica.get("/v1/models/m4/predict", params={"at": day.date().isoformat(),
                                                                  "series_id": series_id})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            label = f"series_id={series_id}"
            assert body["series"] == label
            assert body["prediction"] == pytest.approx(offline[body["version"]][(label, day)], rel=1e-9)


def test_the_split_keeps_a_series_in_one_arm_every_day(panel):
    replica, frame = panel["replica"], panel["frame"]
    for series_id in ("D10", "D160", "D410", "D500"):
        days = frame[frame.series_id == series_id]["day"].iloc[-40::7]
        arms = {replica.get("/v1/models/m4/predict", params={"at": d.date().isoformat(),
                                                             "series_id": series_id}).json()["arm"] for d in days}
        expected = "candidate" if candidate_share("m4", days.iloc[0], f"series_id={series_id}") < 0.5 else "champion"
        assert arms == {expected}, series_id


def test_posted_rows_of_two_series_get_their_own_series_lags(panel):
    replica, frame = panel["replica"], panel["frame"]
    rows, expected = [], []
    for series_id in ("D500", "D10"):
        day = frame[frame.series_id == series_id]["day"].max()
        rows.append({"series_id": series_id, "day": day.date().isoformat()})
        expected.append(replica.get("/v1/models/m4/predict", params={"at": day.date().isoformat(),
                                                                     "series_id": series_id}).json())
    answer = replica.post("/v1/models/m4/predict", {"rows": rows})
    assert answer.status_code == 200, answer.text
    got = answer.json()["predictions"]
    assert [p["series"] for p in got] == ["series_id=D500", "series_id=D10"]
    assert [p["prediction"] for p in got] == pytest.approx([e["prediction"] for e in expected], rel=1e-9)


@pytest.mark.parametrize(("model", "params", "status", "message"), [
    ("m4", {"at": "2026-11-20", "symbol": "MSFT", "series_id": "D10"}, 422,
     "unknown query parameter(s) ['symbol']; model 'm4' is a panel of series ['series_id'] and takes "
     "['at', 'series_id']"),
    ("m4", {"at": "2026-11-20"}, 422, "missing query parameter(s) ['series_id']"),
    ("m4", {"at": "2026-11-20", "series_id": "D999"}, 404, "model 'm4' has no row with series_id = D999, day = "),
    ("single", {"at": "2026-11-20", "symbol": "MSFT"}, 422,
     "unknown query parameter(s) ['symbol']; model 'single' is a single series and takes ['at']"),
])
def test_a_wrong_or_missing_series_parameter_is_refused_never_answered_with_another_series(panel, model, params,
                                                                                           status, message):
    answer = panel["replica"].get(f"/v1/models/{model}/predict", params=params)
    assert answer.status_code == status and message in answer.json()["detail"], answer.text


def test_a_posted_row_without_its_series_is_refused_naming_the_row(panel):
    answer = panel["replica"].post("/v1/models/m4/predict", {"rows": [{"series_id": "D10", "day": "2026-11-20"},
                                                                      {"day": "2026-11-19"}]})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("rows[1]: missing series column(s) ['series_id']")


def _logged(registry, done, timeout: float = 60.0) -> list:
    """The prediction log's answered rows of m4 once `done(rows)` holds (the service logs in batches, off the
    request path), or when `timeout` runs out."""
    import datetime as dt
    import time

    deadline = time.monotonic() + timeout
    while True:
        served = [s for s in registry.served("m4", dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                                             dt.datetime(2100, 1, 1, tzinfo=dt.UTC)) if s.status == 200]
        if done(served) or time.monotonic() > deadline:
            return served
        time.sleep(0.3)


def test_the_log_and_the_served_now_test_key_each_answer_by_series_and_time(panel):
    import datetime as dt

    from ratchet.evaluation import nowtest

    registry, spec, replica, frame = panel["registry"], panel["specs"]["m4"], panel["replica"], panel["frame"]
    asked = [(sid, day) for sid in ("D10", "D160", "D410", "D500")
             for day in frame[frame.series_id == sid]["day"].iloc[-3:]]  # the same days in different series
    for sid, day in asked:
        assert replica.get("/v1/models/m4/predict", params={"at": day.date().isoformat(),
                                                            "series_id": sid}).status_code == 200
    wanted = {(f"series_id={sid}", day.to_pydatetime()) for sid, day in asked}
    assert wanted <= {(s.series, s.feature_id) for s in _logged(
        registry, lambda rows: wanted <= {(s.series, s.feature_id) for s in rows})}
    # the 7-day window 11-17..11-23 holds every day asked (the series end on 11-20..11-23)
    outcome, _ = nowtest.judge_nowtest(registry, spec, data_interval_end=dt.datetime(2026, 11, 24, tzinfo=dt.UTC))
    scored = {r.arm: r.scored for r in outcome.served.results}
    arms = {"candidate" if candidate_share("m4", day, f"series_id={sid}") < 0.5 else "champion"
            for sid, day in asked}
    assert sum(scored.values()) >= len(asked) and set(scored) >= arms  # every (series, day) asked is scored once


def test_a_candidate_that_cannot_answer_leaves_the_answer_to_the_champion_and_is_logged_as_a_fallback(panel):
    """Last in the module: v3, whose contract reads a column the source does not have, enters trial and becomes
    the split's candidate; the series routed to it are answered by the champion, each answer logged as a
    fallback from v3."""
    registry, spec, replica, frame = panel["registry"], panel["specs"]["m4"], panel["replica"], panel["frame"]
    champion = registry.version("m4", 1, with_artifact=True)
    registry.register_version(
        "m4", run_id="r3", trial_index=None, estimator_class=champion.estimator_class, hyperparameters={},
        artifact=champion.artifact, artifact_sha256=champion.artifact_sha256, artifact_format=champion.artifact_format,
        dataset_fingerprint="x", features=list(champion.features), target="value", package_versions={},
        author="tests", fit_seconds=0.1, size_bytes=champion.size_bytes,
        contract={**champion.contract, "features": ["ghost"]}, spec_snapshot=spec.raw)
    wait_until(replica, lambda r: r.get("/v1/models/m4").json().get("candidates") == [3, 2])
    sid = next(s for s in ("D10", "D160", "D410", "D500")
               if candidate_share("m4", frame["day"].iloc[-1], f"series_id={s}") < 0.5)
    day = frame[frame.series_id == sid]["day"].iloc[-2]
    answer = replica.get("/v1/models/m4/predict", params={"at": day.date().isoformat(), "series_id": sid})
    assert answer.status_code == 200 and (answer.json()["arm"], answer.json()["version"]) == ("champion", 1)
    posted = replica.post("/v1/models/m4/predict", {"rows": [{"series_id": sid, "day": day.date().isoformat()}]})
    assert posted.status_code == 200 and posted.json()["predictions"][0]["version"] == 1
    fallbacks = [s for s in _logged(registry, lambda rows: sum(s.fallback_from == 3 for s in rows) >= 2)
                 if s.fallback_from == 3]
    assert {(s.series, s.feature_id, s.version, s.arm) for s in fallbacks} == {
        (f"series_id={sid}", day.to_pydatetime(), 1, "champion")} and len(fallbacks) == 2

