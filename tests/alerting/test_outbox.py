"""The alert outbox (`ratchet.alerting.outbox`) with a real SMTP server: a down server keeps alerts queued,
a claimed alert is never sent twice. The alerts come from a real failing now-test."""
from __future__ import annotations

import json

import pytest
from nowtest_helpers import AFTER_CHANGE, MODEL, champion_model, run_at

from ratchet.alerting import outbox
from ratchet.exceptions import AlertDeliveryError, AlertUndeliverable


@pytest.fixture
def model(tmp_path, registry):
    return champion_model(registry, tmp_path)


def smtp_down(monkeypatch) -> str:
    """Point `smtp_default` at a port nobody listens on; returns the working connection to restore."""
    import os

    from conftest import free_port

    working = os.environ["AIRFLOW_CONN_SMTP_DEFAULT"]
    down = json.loads(working) | {"port": free_port()}
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(down))
    return working


def test_smtp_down_keeps_the_alert_queued_and_it_is_sent_exactly_once_when_back(model, registry, smtp_server,
                                                                                 monkeypatch):
    spec, _ = model
    outcome = run_at(registry, spec, AFTER_CHANGE)
    up = smtp_down(monkeypatch)
    with pytest.raises(AlertDeliveryError, match=r"could not be sent.*stay queued"):
        outbox.deliver_alerts(registry)
    with pytest.raises(AlertDeliveryError):
        outbox.deliver_alerts(registry)  # the next run while still down: tried again, still kept
    (alert,) = registry.alerts(MODEL)
    assert alert.id == outcome.alert_id and alert.status == "queued" and alert.attempts == 2
    assert "Connection refused" in alert.last_error or "ConnectionRefused" in alert.last_error
    assert smtp_server.messages == []

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", up)  # the server is reachable again
    assert outbox.deliver_alerts(registry)["sent"] == [alert.id]
    assert outbox.deliver_alerts(registry)["sent"] == []
    assert len(smtp_server.messages) == 1
    (alert,) = registry.alerts(MODEL)
    assert alert.status == "sent" and alert.attempts == 3 and alert.last_error is None and alert.sent_at


def test_an_alert_being_sent_elsewhere_is_not_sent_again(model, registry, smtp_server):
    spec, _ = model
    outcome = run_at(registry, spec, AFTER_CHANGE)
    assert registry.claim_alert(outcome.alert_id) is not None  # another sender claimed it (or died after sending)
    report = outbox.deliver_alerts(registry)
    assert report["sent"] == [] and report["stuck_sending"] == [outcome.alert_id]
    assert smtp_server.messages == []


def test_a_permanent_refusal_is_tried_once_kept_queued_with_the_reply_and_shown(model, registry, smtp_server,
                                                                                 monkeypatch):
    spec, _ = model
    outcome = run_at(registry, spec, AFTER_CHANGE)
    smtp_server.refuse = "550 5.1.1 <owner@example.com>: no such user"
    with pytest.raises(AlertUndeliverable, match=r"need a person.*550 5.1.1"):
        outbox.deliver_alerts(registry)
    assert smtp_server.refused == len(spec.alert_emails)  # one try per recipient: a 5xx reply is not retried
    (alert,) = registry.alerts(MODEL)
    assert (alert.id, alert.status, alert.attempts) == (outcome.alert_id, "queued", 1)
    assert "550 5.1.1" in alert.last_error and "no such user" in alert.last_error


    from fastapi.testclient import TestClient

    from ratchet.ui.app import create_app

    monkeypatch.setenv("RATCHET_MODELS_DIR", str(spec.path.parent))
    page = TestClient(create_app()).get(f"/models/{MODEL}").text
    assert "550 5.1.1" in page and "smtp queued" in page  # the server's reply and the channel's state

    smtp_server.refuse = None  # the address is fixed on the server side: the next delivery sends it, once
    assert outbox.deliver_alerts(registry)["sent"] == [outcome.alert_id]
    assert outbox.deliver_alerts(registry)["sent"] == [] and len(smtp_server.messages) == 1


def test_an_alert_without_recipients_fails_delivery_until_the_yaml_names_them(tmp_path, registry, smtp_server):
    from nowtest_helpers import SPEC, train_champion, write_source
    from spec_factory import write_spec

    write_source(registry)
    spec = write_spec(tmp_path, **{**SPEC, "alert_emails": []})
    train_champion(registry, spec)
    outcome = run_at(registry, spec, AFTER_CHANGE)
    assert outcome.alert_id is not None
    with pytest.raises(AlertUndeliverable, match=rf"alert {outcome.alert_id} .* on smtp: .*no recipient for the "
                                                 rf"alerts of {MODEL}: set alert_emails"):
        outbox.deliver_alerts(registry, {MODEL: spec})
    assert registry.alerts(MODEL)[0].status == "queued" and smtp_server.messages == []
    fixed = write_spec(tmp_path, **{**SPEC, "alert_emails": ["owner@example.com"]})  # the YAML now has one
    sent = outbox.deliver_alerts(registry, {MODEL: fixed})
    assert sent["sent"] == [outcome.alert_id] and smtp_server.messages[0]["to"] == ["owner@example.com"]


def test_alerts_of_one_night_with_the_same_recipients_go_out_as_one_digest(tmp_path, registry, smtp_server):
    from spec_factory import write_spec

    for name in ("demand", "traffic", "churn"):
        registry.sync_model(write_spec(tmp_path, name=name))
    team, other = ["team@example.com", "oncall@example.com"], ["cfo@example.com"]
    for name, to in (("demand", team), ("traffic", list(reversed(team))), ("churn", other)):
        registry.enqueue_alert(name, dedupe_key=f"nowtest:{name}:night", source="nowtest", run_id="night",
                               recipients=to, subject=f"[Ratchet] {name} now-test failed: mape 0.3 > max 0.1",
                               body_text=f"{name} text body", body_html=f"<html><body><p>{name} html</p></body></html>")
    report = outbox.deliver_alerts(registry)
    assert sorted(report["sent"]) == [1, 2, 3] and len(smtp_server.messages) == 2
    digest = next(m for m in smtp_server.messages if sorted(m["to"]) == sorted(team))["message"]
    assert digest["Subject"] == ("[Ratchet] 2 alerts: demand now-test failed: mape 0.3 > max 0.1; "
                                 "traffic now-test failed: mape 0.3 > max 0.1")
    assert "demand text body" in digest.get_body(("plain",)).get_content()
    assert "traffic html" in digest.get_body(("html",)).get_content()
    single = next(m for m in smtp_server.messages if m["to"] == other)["message"]
    assert single["Subject"].startswith("[Ratchet] churn now-test failed")
    assert all(a.status == "sent" for name in ("demand", "traffic", "churn") for a in registry.alerts(name))
