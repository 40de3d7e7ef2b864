"""The alert outbox: alerts are written to PostgreSQL first, then delivered through Airflow notifiers.

Every alert is written to the `alerts` table (the outbox) before anything is sent. A delivery sends each queued
alert on every channel of its model (`alerts.notifiers`, each an Airflow `BaseNotifier`; default: mail to the
`alert_emails` through the `smtp_default` connection) that has not had it yet. It claims the alert (status
'sending', attempts + 1, row lock with SKIP LOCKED so two senders never take the same alert); then, per
channel, marks it 'sending' in `alert_deliveries`, calls the channel's notifier once, and marks the channel
'sent' or queued with the error. The alert is 'sent' once every channel has it; otherwise it goes back to
'queued' naming each channel that failed, and `deliver_alerts` raises so the task fails visibly. The task's
retry, or any later delivery, sends it again on the failed channels only.

Delivery is at-most-once per channel: the alert and its channel are claimed (committed) before the call, so
if the process dies between a server accepting the alert and the channel being marked 'sent', the alert stays
'sending' and is NOT sent again automatically (a duplicate page at 3 am is worse than an alert that an
operator sees as "sending" in `ratchet status` open alerts and in the log warning each delivery prints for
such rows; its deliveries show which channel was under way). Nothing is silently dropped: the row is still
there.
"""
from __future__ import annotations

import html
import logging
import smtplib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.alerting.mails import SUBJECT_PREFIX
from ratchet.exceptions import AlertDeliveryError, AlertUndeliverable, RatchetError
from ratchet.registry.entities import AlertDraft
from ratchet.specs.model import DEFAULT_NOTIFIERS

if TYPE_CHECKING:
    from ratchet.alerting.mails import Mail
    from ratchet.registry import Registry
    from ratchet.registry.entities import Alert
    from ratchet.specs.model import ModelSpec, NotifierSpec

log = logging.getLogger(__name__)


def alert_draft(spec: ModelSpec, source: str, run_id: str, mail: Mail) -> AlertDraft:
    """`mail` as an outbox row for the model's `alert_emails`, queued once per (source, model, run)."""
    return AlertDraft(dedupe_key=f"{source}:{spec.name}:{run_id}", source=source, run_id=run_id,
                      recipients=tuple(spec.alert_emails), subject=mail.subject, body_text=mail.text,
                      body_html=mail.html, link=mail.link)


@dataclass(frozen=True)
class Notification:
    """What one message on one channel says: one alert, or a digest of the alerts of one delivery that share
    their recipients (several models breaching on one night make one message per channel and recipient list).

    A notifier finds it in its context as `notification`, so a templated notifier argument can use it, e.g.
    `text: "{{ notification.subject }} {{ notification.link }}"`.
    """

    alerts: tuple[Alert, ...]
    recipients: tuple[str, ...]

    @property
    def subject(self) -> str:
        """The alert's subject, or for a digest the count and each alert's subject."""
        if len(self.alerts) == 1:
            return self.alerts[0].subject
        return f"{SUBJECT_PREFIX} {len(self.alerts)} alerts: " + "; ".join(
            a.subject.removeprefix(SUBJECT_PREFIX).strip() for a in self.alerts)

    @property
    def text(self) -> str:
        """The plain-text body: each alert a section under its subject when there are several."""
        if len(self.alerts) == 1:
            return self.alerts[0].body_text
        return "\n\n".join(f"{a.subject}\n\n{a.body_text}" for a in self.alerts)

    @property
    def html(self) -> str | None:
        """The HTML body: each alert a section, separated by a rule, when there are several."""
        if len(self.alerts) == 1:
            return self.alerts[0].body_html
        return "<html><body>" + "<hr>".join(_html_body(a) for a in self.alerts) + "</body></html>"

    @property
    def models(self) -> tuple[str, ...]:
        """The models the alerts are about, in alert order."""
        return tuple(dict.fromkeys(a.model for a in self.alerts))

    @property
    def alert_ids(self) -> tuple[int, ...]:
        """The outbox ids of the alerts."""
        return tuple(a.id for a in self.alerts)

    @property
    def link(self) -> str | None:
        """The Airflow run the alerts come from when they share one (the usual case), else None."""
        links = {a.link for a in self.alerts}
        return links.pop() if len(links) == 1 else None

    def payload(self) -> dict[str, Any]:
        """The notification as JSON data: what `WebhookNotifier` posts."""
        return {"subject": self.subject, "text": self.text, "models": list(self.models), "link": self.link,
                "alert_ids": list(self.alert_ids),
                "alerts": [{"id": a.id, "model": a.model, "source": a.source, "subject": a.subject, "link": a.link,
                            "created_at": a.created_at.isoformat()} for a in self.alerts]}


def deliver_alerts(registry: Registry, specs: Mapping[str, ModelSpec] | None = None) -> dict[str, list[int]]:
    """Send every queued alert on each channel of its model that does not have it yet, once per call.

    `specs` (model -> its current spec) gives each alert its channels (`alerts.notifiers`) and, to an alert
    queued without recipients, the spec's current `alert_emails`, so fixing the YAML is enough for the next
    delivery to send it. An alert of a model not in `specs` goes out by mail to the recipients it was queued
    with. Returns the ids of the alerts now sent on every channel, refused (for good) or failed (may pass) on
    some channel, and stuck in 'sending'.

    Raises:
        AlertDeliveryError: some channel failed for a reason that may pass (server down, 4xx SMTP, HTTP 5xx); retry.
        AlertUndeliverable: nothing transient failed, but some alerts were refused for good (a 5xx SMTP reply,
            HTTP 4xx, no recipient): a person must fix the address, URL or YAML; retrying cannot help.
    Either way every alert was tried on every channel first, and each failed one stays queued with the reason
    recorded on its channel.
    """
    specs = specs or {}
    report: dict[str, list[int]] = {"sent": [], "refused": [], "failed": [], "stuck_sending": []}
    batches: dict[tuple, tuple[NotifierSpec, list[Alert]]] = {}
    claimed: list[Alert] = []
    for alert in registry.queued_alerts():
        if alert.status == "sending":
            report["stuck_sending"].append(alert.id)
            continue
        spec = specs.get(alert.model)
        if spec is not None and not alert.recipients and spec.alert_emails:
            registry.set_alert_recipients(alert.id, spec.alert_emails)
        taken = registry.claim_alert(alert.id)
        if taken is None:  # another sender has it, or it was just sent
            continue
        claimed.append(taken)
        for channel in spec.alerts.notifiers if spec is not None else DEFAULT_NOTIFIERS:
            if not taken.sent_on(channel.name):
                batches.setdefault((channel.key, tuple(sorted(taken.recipients))), (channel, []))[1].append(taken)
    failures: dict[int, dict[str, tuple[str, bool]]] = {}  # alert id -> channel -> (error, refused for good)
    for channel, alerts in batches.values():
        for alert_id, failure in _deliver(registry, channel, alerts).items():
            failures.setdefault(alert_id, {})[channel.name] = failure
    transient, permanent = [], []
    for alert in claimed:
        failed = failures.get(alert.id, {})
        registry.finish_alert(alert.id, "; ".join(f"{name}: {error}" for name, (error, _) in failed.items()) or None)
        for name, (error, refused) in failed.items():
            (permanent if refused else transient).append(f"alert {alert.id} ({alert.subject}) on {name}: {error}")
        if not failed:
            report["sent"].append(alert.id)
        else:
            report["refused" if all(refused for _, refused in failed.values()) else "failed"].append(alert.id)
    if report["stuck_sending"]:
        log.warning("alerts %s are 'sending' from an earlier delivery that did not finish; they are not re-sent "
                    "automatically (at-most-once). Check the mailbox and the task logs.", report["stuck_sending"])
    if transient:
        raise AlertDeliveryError(f"{len(report['failed'])} alert(s) could not be sent and stay queued; the next "
                                 "delivery retries only the channels that failed: " + "; ".join(transient + permanent))
    if permanent:
        raise AlertUndeliverable(f"{len(report['refused'])} alert(s) stay queued and need a person: "
                                 + "; ".join(permanent))
    return report


def _deliver(registry: Registry, channel: NotifierSpec, alerts: list[Alert]) -> dict[int, tuple[str, bool]]:
    """Send `alerts` (one recipient list) on `channel` as one message; the failure (error, refused for good) of
    each alert not sent."""
    ids = registry.claim_deliveries(channel.name, [a.id for a in alerts])
    unclaimed = {a.id: (f"already 'sending' on {channel.name} from a delivery that did not finish", False)
                 for a in alerts if a.id not in ids}
    if not ids:
        return unclaimed
    claimed = tuple(a for a in alerts if a.id in ids)
    try:
        reply = _send(channel, Notification(claimed, claimed[0].recipients))
    except Exception as exc:  # noqa: BLE001 - any failure of a notifier keeps the alerts queued on its channel
        error = _describe(exc)
        registry.finish_deliveries(channel.name, ids, error)
        return unclaimed | {alert_id: (error, _refused_for_good(exc)) for alert_id in ids}
    registry.finish_deliveries(channel.name, ids, None, reply)
    return unclaimed


def _send(channel: NotifierSpec, notification: Notification) -> str | None:
    """Call the channel's notifier once with the notification; the server's reply when the notifier keeps one.

    A new notifier per message: a notifier renders its templated arguments in place, against this context.
    """
    notifier = channel.load_class()(**channel.kwargs)
    notifier({"notification": notification})
    return getattr(notifier, "reply", None)


def _html_body(alert: Alert) -> str:
    """An alert's HTML without its html/body wrapper, to be one section of a digest."""
    if not alert.body_html:
        return f"<pre>{html.escape(alert.body_text)}</pre>"
    return alert.body_html.removeprefix("<html><body>").removesuffix("</body></html>")


def _refused_for_good(exc: Exception) -> bool:
    """Whether the same message would be refused again: a notifier said so (`AlertUndeliverable`), a connection
    is not defined, or an SMTP server answered 5xx (unknown recipient, refused sender or content)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    if isinstance(exc, (AlertUndeliverable, AirflowNotFoundException)):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def _describe(exc: Exception) -> str:
    """The server's reply when there is one ('550 no such user'), else the error (a notifier of Ratchet's words
    its own)."""
    if isinstance(exc, RatchetError):
        return str(exc)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = {f"{code} {reply.decode(errors='replace')}" for code, reply in exc.recipients.values()}
        return f"{type(exc).__name__}: " + "; ".join(sorted(replies))
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{type(exc).__name__}: {exc.smtp_code} {reply}"
    return f"{type(exc).__name__}: {exc}"
