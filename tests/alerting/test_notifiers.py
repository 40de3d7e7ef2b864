"""Alerts on several channels (`alerts.notifiers`): Ratchet's SMTP and webhook notifiers and the Slack provider's,
each configured in the model YAML, against a real SMTP server (aiosmtpd) and a real local HTTP server.

Each alert goes out at most once per channel; a channel that failed is retried on the next delivery alone."""
from __future__ import annotations

import json
import os

import pytest
from conftest import SLACK_PATH
from nowtest_helpers import (
    AFTER_CHANGE,
    HOOK_PATH,
    MODEL,
    RUN_URL,
    SLACK_NOTIFIER,
    SMTP_NOTIFIER,
    SPEC,
    WEBHOOK_NOTIFIER,
    run_at,
    train_champion,
    write_source,
)
from spec_factory import write_spec

from ratchet.alerting import outbox
from ratchet.exceptions import AlertDeliveryError, AlertUndeliverable


def channels(alert) -> dict[str, tuple[str, int]]:
    return {d.channel: (d.status, d.attempts) for d in alert.deliveries}


@pytest.fixture
def breach(tmp_path, registry):
    """A real failing now-test of a model whose YAML lists SMTP and the webhook: (spec, alert id)."""
    write_source(registry)
    spec = write_spec(tmp_path, **{**SPEC, "alerts": {"notifiers": [SMTP_NOTIFIER, WEBHOOK_NOTIFIER]}})
    train_champion(registry, spec)
    return spec, run_at(registry, spec, AFTER_CHANGE).alert_id


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_both_channels_receive_the_alert_once(breach, registry, smtp_server, webhook_server):
    spec, alert_id = breach
    assert outbox.deliver_alerts(registry, {MODEL: spec})["sent"] == [alert_id]
    assert outbox.deliver_alerts(registry, {MODEL: spec})["sent"] == []  # nothing left: nothing sent twice
    (alert,) = registry.alerts(MODEL)
    assert len(smtp_server.messages) == 1 and len(webhook_server.requests) == 1
    mail = smtp_server.messages[0]["message"]
    assert smtp_server.messages[0]["to"] == list(spec.alert_emails) and mail["Subject"] == alert.subject
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == alert.body_text
    hook = webhook_server.requests[0]
    assert hook["path"] == HOOK_PATH and hook["headers"]["X-Ratchet-Test"] == "webhook"  # the connection's
    assert hook["json"] | {"alerts": None} == {"subject": alert.subject, "text": alert.body_text, "models": [MODEL],
                                               "link": RUN_URL, "alert_ids": [alert_id], "alerts": None}
    assert hook["json"]["alerts"][0] | {"created_at": None} == {
        "id": alert_id, "model": MODEL, "source": "nowtest", "subject": alert.subject, "link": RUN_URL,
        "created_at": None}
    assert alert.status == "sent" and channels(alert) == {"smtp": ("sent", 1), "webhook": ("sent", 1)}
    webhook = next(d for d in alert.deliveries if d.channel == "webhook")
    assert webhook.reply == "HTTP 200 OK: ok" and webhook.sent_at is not None


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_a_failing_webhook_is_retried_on_the_next_delivery_and_mail_is_not_resent(breach, registry, smtp_server,
                                                                                  webhook_server, monkeypatch):
    from conftest import free_port

    spec, alert_id = breach
    up = json.loads(os.environ["AIRFLOW_CONN_OPS_WEBHOOK"])
    monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", json.dumps(up | {"port": free_port()}))  # nobody listens
    with pytest.raises(AlertDeliveryError, match=rf"alert {alert_id} .* on webhook: .*connection 'ops_webhook' "
                                                 r"unreachable"):
        outbox.deliver_alerts(registry, {MODEL: spec})
    monkeypatch.setenv("AIRFLOW_CONN_OPS_WEBHOOK", json.dumps(up))
    webhook_server.answers[HOOK_PATH].append((503, "upstream busy"))  # up, but answering 503 once
    with pytest.raises(AlertDeliveryError, match=r"the next delivery retries only the channels that failed: "
                                                 r".* on webhook: .*HTTP 503 Service Unavailable .*upstream busy"):
        outbox.deliver_alerts(registry, {MODEL: spec})
    (alert,) = registry.alerts(MODEL)
    assert alert.status == "queued" and alert.attempts == 2 and alert.last_error.startswith("webhook: ")
    assert channels(alert) == {"smtp": ("sent", 1), "webhook": ("queued", 2)}
    assert len(smtp_server.messages) == 1 and len(webhook_server.requests) == 1
    from ratchet.reporting.status import model_status

    (shown,) = model_status(registry, spec)["open_alerts"]  # what `ratchet status --json` prints
    assert shown["channels"]["smtp"] == {"status": "sent", "attempts": 1, "last_error": None}
    webhook = shown["channels"]["webhook"]
    assert webhook["status"] == "queued" and webhook["attempts"] == 2 and "HTTP 503" in webhook["last_error"]

    assert outbox.deliver_alerts(registry, {MODEL: spec})["sent"] == [alert_id]
    (alert,) = registry.alerts(MODEL)
    assert alert.status == "sent" and alert.attempts == 3 and alert.last_error is None
    assert channels(alert) == {"smtp": ("sent", 1), "webhook": ("sent", 3)}
    assert len(smtp_server.messages) == 1 and len(webhook_server.requests) == 2  # the mail went out once


def test_a_4xx_webhook_is_permanent_needs_a_person_and_goes_out_once_fixed(breach, registry, smtp_server,
                                                                          webhook_server):
    spec, alert_id = breach
    webhook_server.answers[HOOK_PATH].append((404, "no such hook"))
    with pytest.raises(AlertUndeliverable, match=r"need a person: .* on webhook: HTTP 404 Not "
                                                 r"Found from connection 'ops_webhook': no such hook"):
        outbox.deliver_alerts(registry, {MODEL: spec})
    (alert,) = registry.alerts(MODEL)
    assert alert.status == "queued" and channels(alert) == {"smtp": ("sent", 1), "webhook": ("queued", 1)}
    assert len(webhook_server.requests) == 1  # tried once: a 4xx is not retried within the delivery

    report = outbox.deliver_alerts(registry, {MODEL: spec})  # the hook exists again
    assert report["sent"] == [alert_id] and len(smtp_server.messages) == 1 and len(webhook_server.requests) == 2


@pytest.mark.parametrize(("status", "error"), [(400, AlertUndeliverable), (401, AlertUndeliverable),
                                               (410, AlertUndeliverable), (301, AlertUndeliverable),
                                               (408, AlertDeliveryError), (429, AlertDeliveryError),
                                               (500, AlertDeliveryError), (502, AlertDeliveryError)])
def test_the_webhooks_answer_decides_whether_retrying_can_help(registry, tmp_path, webhook_server, status, error):
    from ratchet.alerting.notifiers import WebhookNotifier

    registry.sync_model(write_spec(tmp_path, name="demand"))
    registry.enqueue_alert("demand", dedupe_key="k", source="nowtest", run_id="r", recipients=["a@example.com"],
                           subject="[Ratchet] demand now-test failed", body_text="text")
    webhook_server.answers["/hook"].append((status, "answer"))
    notifier = WebhookNotifier(url=f"http://127.0.0.1:{webhook_server.port}/hook")
    with pytest.raises(error, match=rf"HTTP {status} .*answer"):
        notifier({"notification": outbox.Notification(tuple(registry.alerts("demand")), ("a@example.com",))})


def test_slacks_notifier_works_by_configuration_alone(tmp_path, registry, webhook_server):
    """The Slack provider's SlackWebhookNotifier, listed in the YAML with a templated text, posts to the URL of its
    Airflow connection (here a local server standing in for hooks.slack.com)."""
    spec = write_spec(tmp_path, name="demand", alert_emails=[], alerts={"notifiers": [SLACK_NOTIFIER]})
    registry.sync_model(spec)
    alert_id = registry.enqueue_alert("demand", dedupe_key="k", source="nowtest", run_id="r", recipients=[],
                                      subject="[Ratchet] demand now-test failed: mape 0.3 > max 0.1",
                                      body_text="text", link="http://airflow/run/1")
    assert outbox.deliver_alerts(registry, {"demand": spec})["sent"] == [alert_id]
    (request,) = webhook_server.requests
    assert request["path"] == SLACK_PATH
    assert request["json"]["text"] == "[Ratchet] demand now-test failed: mape 0.3 > max 0.1 <http://airflow/run/1>"
    assert channels(registry.alerts("demand")[0]) == {"slackwebhook": ("sent", 1)}
    assert outbox.deliver_alerts(registry, {"demand": spec})["sent"] == [] and len(webhook_server.requests) == 1


def test_alerts_sharing_recipients_make_one_digest_per_channel(tmp_path, registry, smtp_server, webhook_server):
    team, other = ["team@example.com", "oncall@example.com"], ["cfo@example.com"]
    notifiers = {"notifiers": [SMTP_NOTIFIER, WEBHOOK_NOTIFIER]}
    specs = {name: write_spec(tmp_path, name=name, alert_emails=to, alerts=notifiers)
             for name, to in (("demand", team), ("traffic", list(reversed(team))), ("churn", other))}
    for name, spec in specs.items():
        registry.sync_model(spec)
        registry.enqueue_alert(name, dedupe_key=f"nowtest:{name}:night", source="nowtest", run_id="night",
                               recipients=list(spec.alert_emails), subject=f"[Ratchet] {name} now-test failed",
                               body_text=f"{name} text body", link="http://airflow/run/night")
    assert sorted(outbox.deliver_alerts(registry, specs)["sent"]) == [1, 2, 3]
    assert len(smtp_server.messages) == 2 and len(webhook_server.requests) == 2
    digest = next(r["json"] for r in webhook_server.requests if len(r["json"]["alert_ids"]) == 2)
    assert digest["models"] == ["demand", "traffic"] and digest["alert_ids"] == [1, 2]
    assert digest["subject"] == "[Ratchet] 2 alerts: demand now-test failed; traffic now-test failed"
    assert "demand text body" in digest["text"] and "traffic text body" in digest["text"]
    assert digest["link"] == "http://airflow/run/night"


def test_a_model_without_notifiers_in_its_yaml_is_mailed_as_before(tmp_path, registry, smtp_server, webhook_server):
    spec = write_spec(tmp_path, name="demand", alert_emails=["owner@example.com"])
    registry.sync_model(spec)
    registry.enqueue_alert("demand", dedupe_key="k", source="nowtest", run_id="r", recipients=["owner@example.com"],
                           subject="[Ratchet] demand now-test failed", body_text="text")
    assert len(outbox.deliver_alerts(registry, {"demand": spec})["sent"]) == 1
    assert len(smtp_server.messages) == 1 and webhook_server.requests == []
    assert channels(registry.alerts("demand")[0]) == {"smtp": ("sent", 1)}
