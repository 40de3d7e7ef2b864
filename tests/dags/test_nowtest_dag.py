"""Real Airflow runs (dag.test()) of ratchet_nowtest: a passing day, a failing day with its mail,
a day with SMTP down (the delivery task fails, the alert stays queued) and the day after (sent once), and a
model whose YAML adds a webhook and Slack to its mail."""
from __future__ import annotations

import datetime as dt
import json
import os
from urllib.parse import quote

import pytest
from dag_helpers import load_dag
from nowtest_helpers import (
    AFTER_CHANGE,
    BEFORE_CHANGE,
    HOOK_PATH,
    MODEL,
    SLACK_NOTIFIER,
    SMTP_NOTIFIER,
    SPEC,
    WEBHOOK_NOTIFIER,
    champion_model,
    counts,
    train_champion,
    write_source,
)
from promote_helpers import register_fitted
from spec_factory import write_spec


@pytest.fixture
def models_dir(tmp_path, monkeypatch, registry):
    champion_model(registry, tmp_path)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    return tmp_path


def _states(run) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
        return {ti.task_id: ti.state for ti in tis}


def test_nowtest_dag_on_two_dates_passes_then_mails_the_breach(airflow_db, models_dir, registry, smtp_server):
    dag = load_dag("ratchet_nowtest")
    run = dag.test(logical_date=BEFORE_CHANGE)
    assert run.state == "success"
    rows = registry.evaluations(MODEL, "nowtest", metric="mape")
    assert {r.contender for r in rows} >= {"v1", "v2"} and all(r.passed for r in rows if r.version is not None)
    assert smtp_server.messages == []

    run = dag.test(logical_date=AFTER_CHANGE)
    assert run.state == "success"
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]["message"]
    assert message["Subject"].startswith(f"[Ratchet] {MODEL} now-test failed: mape ")
    body = message.get_body(("html",)).get_content()
    assert f"http://localhost:8080/dags/ratchet_nowtest/runs/{quote(run.run_id, safe='')}" in body
    # each run tests the whole days before its own day
    assert {r.partition for r in registry.evaluations(MODEL, "nowtest")} == {"2025-07-09", "2025-07-31"}

    before = counts(registry)
    assert dag.test(logical_date=AFTER_CHANGE).state == "success"  # a re-run of the date: nothing new
    assert counts(registry) == before and len(smtp_server.messages) == 1


def test_smtp_down_fails_the_delivery_task_and_the_next_run_sends_it_once(airflow_db, models_dir, registry,
                                                                         smtp_server, monkeypatch):
    from conftest import free_port

    dag = load_dag("ratchet_nowtest")
    working = os.environ["AIRFLOW_CONN_SMTP_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(json.loads(working) | {"port": free_port()}))
    run = dag.test(logical_date=AFTER_CHANGE)
    assert run.state == "failed"
    states = _states(run)
    assert states["deliver_alerts"] == "failed" and states["nowtest"] == "success"
    (alert,) = registry.alerts(MODEL)
    assert alert.status == "queued" and alert.attempts == 1 and alert.last_error

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", working)  # the server is back
    run = dag.test(logical_date=AFTER_CHANGE + dt.timedelta(days=1))
    assert run.state == "success"
    subjects = [m["message"]["Subject"] for m in smtp_server.messages]
    # yesterday's queued alert, once; today the breach goes on: mailed again after alerts.repeat_after_days
    assert len(subjects) == 1 and len(registry.alerts(MODEL)) == 1
    assert all(a.status == "sent" for a in registry.alerts(MODEL))
    assert dag.test(logical_date=AFTER_CHANGE + dt.timedelta(days=1)).state == "success"
    assert len(smtp_server.messages) == 1


def test_one_models_failure_does_not_stop_the_others(airflow_db, models_dir, registry, smtp_server):
    broken = write_spec(models_dir, name="broken_model", table="nowtest_src.missing_table", filename="broken.yaml")
    registry.sync_model(broken)
    register_fitted(registry, "broken_model", "r1")
    run = load_dag("ratchet_nowtest").test(logical_date=AFTER_CHANGE)
    assert run.state == "failed"  # the run says a model failed ...
    assert len(smtp_server.messages) == 1  # ... and the healthy model's breach was still mailed
    assert smtp_server.messages[0]["message"]["Subject"].startswith(f"[Ratchet] {MODEL} now-test failed")
    assert registry.evaluations(MODEL, "nowtest") and not registry.evaluations("broken_model", "nowtest")


def test_channels_from_the_yaml_each_get_the_alert_once_and_a_failed_one_is_retried_alone(
        airflow_db, tmp_path, monkeypatch, registry, smtp_server, webhook_server):
    from conftest import SLACK_PATH

    write_source(registry)
    train_champion(registry, write_spec(tmp_path, **{**SPEC, "alerts": {
        "notifiers": [SMTP_NOTIFIER, WEBHOOK_NOTIFIER, SLACK_NOTIFIER]}}))
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    webhook_server.answers[HOOK_PATH].append((503, "busy"))
    dag = load_dag("ratchet_nowtest")
    run = dag.test(logical_date=AFTER_CHANGE)
    assert run.state == "failed" and _states(run)["deliver_alerts"] == "failed"  # the webhook answered 503
    (alert,) = registry.alerts(MODEL)
    assert alert.status == "queued" and {d.channel: d.status for d in alert.deliveries} == {
        "smtp": "sent", "webhook": "queued", "slackwebhook": "sent"}
    assert len(smtp_server.messages) == 1 and len(webhook_server.to(SLACK_PATH)) == 1
    assert webhook_server.to(SLACK_PATH)[0]["json"]["text"].startswith(f"[Ratchet] {MODEL} now-test failed")

    run = dag.test(logical_date=AFTER_CHANGE + dt.timedelta(days=1))  # the next day: the webhook is fine
    assert run.state == "success" and registry.alerts(MODEL)[0].status == "sent"
    (_, delivered) = webhook_server.to(HOOK_PATH)
    assert delivered["json"]["alert_ids"] == [alert.id] and delivered["json"]["models"] == [MODEL]
    assert len(smtp_server.messages) == 1 and len(webhook_server.to(SLACK_PATH)) == 1  # not sent again


def test_a_dag_run_stores_the_served_evaluation_and_serving_verdicts_and_mails_a_served_breach(
        airflow_db, tmp_path, monkeypatch, registry, smtp_server):
    from nowtest_helpers import SPEC, train_champion, write_source
    from served_helpers import probe_every_minute, serve_window
    from spec_factory import spec_data

    write_source(registry)
    data = spec_data(**SPEC)
    spec = write_spec(tmp_path, data, requirements=[*data["requirements"],
                                                    {"metric": "serving_latency_p95_ms", "max": 50},
                                                    {"metric": "serving_error_rate", "max": 0.01}])
    champion, _ = train_champion(registry, spec)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    serve_window(registry, spec, BEFORE_CHANGE, champion, latency_ms=120.0)  # right answers, served slowly
    probe_every_minute(registry, BEFORE_CHANGE - dt.timedelta(minutes=20), BEFORE_CHANGE)
    dag = load_dag("ratchet_nowtest")

    assert dag.test(logical_date=BEFORE_CHANGE).state == "success"
    served = {(e.contender, e.metric): e for e in registry.evaluations(MODEL, "served")}
    assert served[(f"v{champion}@champion", "ids")].value == 14.0
    assert served[(f"v{champion}@champion", "mape")].passed is True  # what clients got was right ...
    serving = {e.metric: e for e in registry.evaluations(MODEL, "serving")}
    assert (serving["serving_latency_p95_ms"].value, serving["serving_latency_p95_ms"].passed) == (120.0, False)
    assert serving["serving_error_rate"].passed is True  # ... but it came too slowly
    (mail,) = smtp_server.messages
    assert mail["message"]["Subject"] == f"[Ratchet] {MODEL} now-test failed: serving_latency_p95_ms 120 > max 50"

    next_day = BEFORE_CHANGE + dt.timedelta(days=1)  # no request that day: no verdict, so no news either way
    assert dag.test(logical_date=next_day).state == "success"
    quiet = {e.metric: e for e in registry.evaluations(MODEL, "serving") if e.partition == "2025-07-10"}
    assert {m: (e.value, e.passed) for m, e in quiet.items()} == {"serving_latency_p95_ms": (None, None),
                                                                 "serving_error_rate": (None, None)}
    assert quiet["serving_error_rate"].details["no_verdict"] == ("no requests between 2025-07-10 06:00 and "
                                                                 "2025-07-11 06:00 UTC")
    assert len(smtp_server.messages) == 1  # a quiet day is not a recovery: latency was not measured
