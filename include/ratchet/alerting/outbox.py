"""The alert outbox: alerts are written to PostgreSQL first, then delivered through Airflow's SMTP connection.

Every alert is written to the `alerts` table (the outbox) before anything is sent; delivery
claims one queued row at a time (status 'sending', attempts + 1, row lock with SKIP LOCKED so
two senders never take the same row), sends it, and marks it 'sent'. An SMTP failure puts the
row back to 'queued' with the error, and `deliver_alerts` raises so the task fails visibly;
the task's retry, or any later delivery, sends it.

Delivery is at-most-once: a row is claimed (committed) before the SMTP call, so if the process
dies between the SMTP server accepting the mail and the row being marked 'sent', the row stays
'sending' and is NOT sent again automatically (a duplicate page at 3 am is worse than an alert
that an operator sees as "sending" in `ratchet status` open alerts and in the log warning each
delivery prints for such rows). Nothing is silently dropped: the row is still there.
"""
from __future__ import annotations

import email.policy
import html
import logging
import smtplib
from email.message import EmailMessage
from typing import TYPE_CHECKING

from ratchet.alerting.mails import SUBJECT_PREFIX
from ratchet.exceptions import AlertDeliveryError, AlertUndeliverable
from ratchet.registry.entities import AlertDraft
from ratchet.settings import SMTP_CONN_ID

if TYPE_CHECKING:
    from ratchet.alerting.mails import Mail
    from ratchet.registry import Registry
    from ratchet.registry.entities import Alert
    from ratchet.specs.model import ModelSpec

log = logging.getLogger(__name__)
UNFOLDED = email.policy.SMTP.clone(max_line_length=998)  # RFC 5322 limit: a long subject stays one line


def alert_draft(spec: ModelSpec, source: str, run_id: str, mail: Mail) -> AlertDraft:
    """`mail` as an outbox row for the model's `alert_emails`, queued once per (source, model, run)."""
    return AlertDraft(dedupe_key=f"{source}:{spec.name}:{run_id}", source=source, run_id=run_id,
                      recipients=tuple(spec.alert_emails), subject=mail.subject, body_text=mail.text,
                      body_html=mail.html)


def deliver_alerts(registry: Registry, conn_id: str = SMTP_CONN_ID,
                   recipients: dict[str, tuple[str, ...]] | None = None) -> dict[str, list[int]]:
    """Send every queued alert through the Airflow SMTP connection `conn_id`, each at most once per call.

    `recipients` (model -> its spec's current `alert_emails`) fills in an alert queued without any, so
    fixing the YAML is enough for the next delivery to send it. Returns the ids sent, refused, failed,
    still without recipients, and stuck in 'sending'.

    Raises:
        AlertDeliveryError: some sends failed for a reason that may pass (server down, 4xx); retry.
        AlertUndeliverable: nothing transient failed, but some alerts were refused for good (5xx) or have
            no recipient: a person must fix the address or the model's `alert_emails`; retrying cannot help.
    Either way every alert was tried first, and each failed one stays queued with the reason recorded.
    """
    report: dict[str, list[int]] = {"sent": [], "refused": [], "failed": [], "no_recipients": [],
                                    "stuck_sending": []}
    transient, permanent = [], []
    digests: dict[tuple[str, ...], list[Alert]] = {}
    for alert in registry.queued_alerts():
        if alert.status == "sending":
            report["stuck_sending"].append(alert.id)
            continue
        if not alert.recipients and (recipients or {}).get(alert.model):
            registry.set_alert_recipients(alert.id, recipients[alert.model])
        elif not alert.recipients:
            report["no_recipients"].append(alert.id)
            permanent.append(f"alert {alert.id} of model {alert.model!r} has no recipient: set alert_emails "
                             "in the model's YAML and the next delivery sends it")
            continue
        claimed = registry.claim_alert(alert.id)
        if claimed is not None:  # else another sender has it, or it was just sent
            digests.setdefault(tuple(sorted(claimed.recipients)), []).append(claimed)
    for group in digests.values():
        try:
            _send(conn_id, group)
        except Exception as exc:  # noqa: BLE001 - any SMTP/connection failure keeps the alerts queued
            error = _describe(exc)
            refused = _refused_for_good(exc)
            for claimed in group:
                registry.finish_alert(claimed.id, error)
                report["refused" if refused else "failed"].append(claimed.id)
                (permanent if refused else transient).append(f"alert {claimed.id} ({claimed.subject}): {error}")
            continue
        for claimed in group:
            registry.finish_alert(claimed.id, None)
            report["sent"].append(claimed.id)
    if report["stuck_sending"]:
        log.warning("alerts %s are 'sending' from an earlier delivery that did not finish; they are not re-sent "
                    "automatically (at-most-once). Check the mailbox and the task logs.", report["stuck_sending"])
    if transient:
        raise AlertDeliveryError(f"{len(transient)} alert(s) could not be sent through SMTP connection {conn_id!r} "
                                 "and stay queued for the next delivery: " + "; ".join(transient + permanent))
    if permanent:
        raise AlertUndeliverable(f"{len(permanent)} alert(s) stay queued and need a person: " + "; ".join(permanent))
    return report


def _send(conn_id: str, alerts: list[Alert]) -> None:
    """One SMTP transaction, no retry: the outbox and the task's own retries decide what is tried again.

    Alerts with the same recipients go out as one digest: several models breaching on one night make one mail
    per recipient list, each alert a section of it, in text and in HTML.
    """
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    message = EmailMessage(policy=UNFOLDED)
    message["To"] = ", ".join(alerts[0].recipients)
    message["X-Ratchet-Alert"] = ", ".join(a.dedupe_key for a in alerts)
    if len(alerts) == 1:
        message["Subject"], text, body = alerts[0].subject, alerts[0].body_text, alerts[0].body_html
    else:
        message["Subject"] = f"{SUBJECT_PREFIX} {len(alerts)} alerts: " + "; ".join(
            a.subject.removeprefix(SUBJECT_PREFIX).strip() for a in alerts)
        text = "\n\n".join(f"{a.subject}\n\n{a.body_text}" for a in alerts)
        body = "<html><body>" + "<hr>".join(_html_body(a) for a in alerts) + "</body></html>"
    message.set_content(text)
    if body:
        message.add_alternative(body, subtype="html")
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        message["From"] = hook.from_email or "ratchet@localhost"
        # The hook's own send retries every error up to retry_limit times, a 550 refusal included; the
        # connection it opened (with its TLS and login settings) sends the message once instead.
        hook._smtp_client.send_message(message)


def _html_body(alert: Alert) -> str:
    """An alert's HTML without its html/body wrapper, to be one section of a digest."""
    if not alert.body_html:
        return f"<pre>{html.escape(alert.body_text)}</pre>"
    return alert.body_html.removeprefix("<html><body>").removesuffix("</body></html>")


def _refused_for_good(exc: Exception) -> bool:
    """A 5xx answer (unknown recipient, refused sender or content): the same mail would be refused again."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    return isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500


def _describe(exc: Exception) -> str:
    """The server's reply when there is one ('550 no such user'), else the error."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = {f"{code} {reply.decode(errors='replace')}" for code, reply in exc.recipients.values()}
        return f"{type(exc).__name__}: " + "; ".join(sorted(replies))
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{type(exc).__name__}: {exc.smtp_code} {reply}"
    return f"{type(exc).__name__}: {exc}"
