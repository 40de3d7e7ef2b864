"""`ratchet serve` for events: car-loan applications answered by their id, whatever time they share.

One real uvicorn replica over the run's PostgreSQL serves `loans`: the first three months of the real car-loan book
(`car_loans_events.csv`, moved to end on 2026-11-20), an event model (`frequency: event`, `source.id:
application_id`) with a fixed decision threshold of 0.7 and a split sending half of the applications (by a hash of
the id) to a candidate in trial. Each version is fitted on the whole table and registered through the registry.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import emptied_registry
from real_data import real_data_dir
from serving_helpers import TOKEN, register_trained, replicas, wait_until
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.modeling import features, sources
from ratchet.modeling.baselines import ROW
from ratchet.serving.routing import candidate_share

pytestmark = pytest.mark.slow  # a real `ratchet serve` process and versions fitted on a real table

LOANS = {"task": "classification",
         "estimators": [{"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 1000}}],
         "source": {"time_column": "applied_at", "target": "repaid", "frequency": "event", "id": "application_id",
                    "categorical": ["salary_range", "size_of_downpayment"]},
         "classification": {"threshold": 0.7}, "baselines": ["majority"],
         "serving": {"split": {"candidate": "trial", "fraction": 0.5}}}


@pytest.fixture(scope="module")
def loans(database_url, tmp_path_factory):
    """Three months of applications ending on 2026-11-20, served by one replica (v1 champion, v2 in trial)."""
    folder = tmp_path_factory.mktemp("event-serving")
    frame = pd.read_csv(real_data_dir() / "car_loans_events.csv", parse_dates=["applied_at"])
    frame = frame[frame["applied_at"] < "2018-04-01"].copy()
    frame["applied_at"] += pd.Timestamp("2026-11-20 23:00") - frame["applied_at"].max()
    frame.loc[frame.index[-40:], "applied_at"] = frame["applied_at"].iloc[-40]  # 40 applications at one moment
    registry = emptied_registry(database_url)
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS serving_events CASCADE; CREATE SCHEMA serving_events"))
        frame.to_sql("loans", conn, schema="serving_events", index=False)
    spec = write_spec(folder, name="loans", table="serving_events.loans", **LOANS)
    by_band = write_spec(folder, name="by_band", table="serving_events.loans",
                         **{**LOANS, "serving": {"split": {**LOANS["serving"]["split"], "by": "salary_range"}}})
    for each in (spec, by_band):
        registry.sync_model(each)
        register_trained(registry, each, {"C": 1.0}, promote=True)
        register_trained(registry, each, {"C": 0.01}, run_id="r2")  # v2 in trial: the split's candidate
    env = {"RATCHET_MODELS_DIR": str(folder), "RATCHET_API_TOKEN": TOKEN, "RATCHET_PROBE_SECONDS": "1"}
    with replicas(1, env, folder) as (replica,):
        wait_until(replica, lambda r: r.get("/v1/models/loans").json().get("candidates") == [2]
                   and r.get("/v1/models/by_band").json().get("candidates") == [2]
                   and r.get("/healthz", token=None).status_code == 200)
        yield {"registry": registry, "spec": spec, "replica": replica, "frame": frame}
    registry.dispose()


def _offline(registry, spec, version: int) -> pd.DataFrame:
    """Every application's decision and P(repaid) by `version`, built from the whole table as training builds it."""
    X, _, times = features.make_xy(spec, sources.read_source(spec))
    estimator = registry.load_estimator(spec.name, version)
    return pd.DataFrame({"prediction": estimator.predict(X), "p": estimator.predict_proba(X)[:, 1],
                         "time": times.to_numpy()}, index=features.id_labels(spec, X[ROW]))


def test_an_application_by_id_gets_the_decision_training_would_make_at_the_versions_threshold(loans):
    registry, spec, replica, frame = loans["registry"], loans["spec"], loans["replica"], loans["frame"]
    offline = {version: _offline(registry, spec, version) for version in (1, 2)}
    same_moment = frame["application_id"].iloc[-40:].tolist()
    for application in [*same_moment[:6], *frame["application_id"].iloc[:3]]:
        answer = replica.get("/v1/models/loans/predict", params={"id": str(application)})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        label = f"application_id={application}"
        expected = offline[body["version"]].loc[label]
        assert body["series"] == label and pd.Timestamp(body["at"]) == expected["time"]
        assert body["prediction"] == expected["prediction"] and body["probabilities"]["1"] == pytest.approx(
            expected["p"], rel=1e-9)
        assert body["prediction"] == int(body["probabilities"]["1"] >= 0.7)  # the version's threshold, not 0.5
        arm = "candidate" if candidate_share("loans", dt.datetime(2000, 1, 1), label) < 0.5 else "champion"
        assert body["arm"] == arm


def test_posted_applications_sharing_a_time_are_each_answered_by_their_own_row(loans):
    replica, frame = loans["replica"], loans["frame"]
    picked = frame.iloc[-5:]
    assert picked["applied_at"].nunique() == 1
    rows = [{k: (v.isoformat() if isinstance(v, pd.Timestamp) else v.item() if isinstance(v, np.generic) else v)
             for k, v in row.items() if k != "repaid"} for row in picked.to_dict("records")]
    answer = replica.post("/v1/models/loans/predict", {"rows": rows})
    assert answer.status_code == 200, answer.text
    got = answer.json()["predictions"]
    by_id = [replica.get("/v1/models/loans/predict", params={"id": str(r["application_id"])}).json() for r in rows]
    assert [p["series"] for p in got] == [f"application_id={r['application_id']}" for r in rows]
    assert [p["probabilities"]["1"] for p in got] == pytest.approx([b["probabilities"]["1"] for b in by_id],
                                                                    rel=1e-9)
    repeated = replica.post("/v1/models/loans/predict", {"rows": [rows[0], rows[1], rows[0]]})
    assert repeated.status_code == 422 and repeated.json()["detail"].startswith(
        f"rows[2].application_id: {rows[0]['application_id']} repeats rows[0]")
    anonymous = replica.post("/v1/models/loans/predict", {"rows": [{k: v for k, v in rows[0].items()
                                                                     if k != "application_id"}]})
    assert anonymous.status_code == 422 and anonymous.json()["detail"].startswith(
        "rows[0]: missing 'application_id'; model 'loans' scores events")


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"at": "2026-11-20"}, 422, "unknown query parameter(s) ['at']; model 'loans' is events, each answered by its "
                                "id (source.id) and takes ['id']"),
    ({}, 422, "missing query parameter(s) ['id']"),
    ({"id": "999999"}, 404, "model 'loans' has no event with application_id = 999999 in table serving_events.loans"),
    ({"id": "x'; DROP TABLE loans; --"}, 404, "model 'loans' has no event with application_id = x'; DROP"),
])
def test_a_wrong_or_missing_id_is_refused_never_answered_with_another_application(loans, params, status, message):
    answer = loans["replica"].get("/v1/models/loans/predict", params=params)
    assert answer.status_code == status and message in answer.json()["detail"], answer.text


def test_the_log_keys_each_answer_by_the_applications_id_and_the_served_now_test_scores_it(loans):
    import time

    from ratchet.evaluation import nowtest

    registry, spec, replica, frame = loans["registry"], loans["spec"], loans["replica"], loans["frame"]
    asked = frame["application_id"].iloc[-40:-20].tolist()  # twenty applications of one moment
    for application in asked:
        assert replica.get("/v1/models/loans/predict", params={"id": str(application)}).status_code == 200
    moment = frame["applied_at"].iloc[-1].to_pydatetime()
    wanted = {(f"application_id={a}", moment) for a in asked}
    deadline = time.monotonic() + 60
    while True:  # the service logs in batches, off the request path
        logged = {(s.series, s.feature_id) for s in registry.served(
            "loans", dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
            if s.status == 200}
        if wanted <= logged or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert wanted <= logged
    outcome, _ = nowtest.judge_nowtest(registry, spec, data_interval_end=dt.datetime(2026, 11, 21, tzinfo=dt.UTC))
    scored = sum(r.scored for r in outcome.served.results)
    in_window = {s for s, at in logged if outcome.window_start <= at < outcome.window_end}
    assert len(in_window) >= len(asked) and scored == len(in_window)  # each application once, against its label


def test_a_split_by_entity_keeps_every_application_of_a_salary_band_in_one_arm(loans):
    """`serving.split.by: salary_range`: the split hashes the band read from the application's row (GET) or sent
    with it (POST), not the application's id; the band is read once and remembered with the row."""
    replica, frame = loans["replica"], loans["frame"]
    for band, rows in frame.groupby("salary_range"):
        expected = "candidate" if candidate_share("by_band", None, f"salary_range={band}") < 0.5 else "champion"
        ids = rows["application_id"].iloc[:4].tolist()
        arms = {replica.get("/v1/models/by_band/predict", params={"id": str(i)}).json()["arm"] for i in ids}
        again = {replica.get("/v1/models/by_band/predict", params={"id": str(i)}).json()["arm"] for i in ids}
        assert arms == again == {expected}, band
        posted = rows.iloc[:3].drop(columns="repaid").assign(applied_at=lambda f: f["applied_at"].astype(str))
        answer = replica.post("/v1/models/by_band/predict", {"rows": posted.to_dict("records")})
        assert answer.status_code == 200 and {p["arm"] for p in answer.json()["predictions"]} == {expected}
    bandless = frame.iloc[:1].drop(columns=["repaid", "salary_range"]).assign(applied_at=lambda f: f["applied_at"]
                                                                               .astype(str))
    refused = replica.post("/v1/models/by_band/predict", {"rows": bandless.to_dict("records")})
    assert refused.status_code == 422 and "rows[0]: missing column(s) ['salary_range']" in refused.json()["detail"]


def test_ratchet_predict_answers_applications_as_the_service_does_and_names_each_by_id(loans):
    from ratchet.serving import predict

    registry, spec, replica, frame = loans["registry"], loans["spec"], loans["replica"], loans["frame"]
    rows = frame.iloc[-6:].drop(columns="repaid").astype({"applied_at": str})  # as read from a CSV
    result = predict.predict_frame(registry, spec, rows)
    assert result["application_id"].tolist() == rows["application_id"].tolist() and set(result["version"]) == {1}
    for application, probability in zip(result["application_id"], result["probability"], strict=True):
        served = replica.get("/v1/models/loans/predict", params={"id": str(application)}).json()
        if served["version"] == 1:
            assert served["probabilities"]["1"] == pytest.approx(probability, rel=1e-9)
