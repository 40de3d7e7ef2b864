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

import html
import logging
from typing import TYPE_CHECKING

from ratchet.exceptions import AlertDeliveryError
from ratchet.settings import SMTP_CONN_ID

if TYPE_CHECKING:
    from ratchet.alerting.mails import Mail
    from ratchet.registry import Registry
    from ratchet.registry.entities import Alert
    from ratchet.specs.model import ModelSpec

log = logging.getLogger(__name__)


def queue_alert(registry: Registry, spec: ModelSpec, source: str, run_id: str, mail: Mail) -> int:
    """Write `mail` to the outbox for the model's `alert_emails`, once per (source, model, run); returns its id."""
    return registry.enqueue_alert(spec.name, dedupe_key=f"{source}:{spec.name}:{run_id}", source=source,
                                  run_id=run_id, recipients=list(spec.alert_emails), subject=mail.subject,
                                  body_text=mail.text, body_html=mail.html)


def deliver_alerts(registry: Registry, conn_id: str = SMTP_CONN_ID) -> dict[str, list[int]]:
    """Send every queued alert through the Airflow SMTP connection `conn_id`.

    Returns the ids sent, kept back (no recipients) and stuck in 'sending'. Raises
    AlertDeliveryError after trying every alert if any send failed (they stay queued).
    """
    report: dict[str, list[int]] = {"sent": [], "failed": [], "no_recipients": [], "stuck_sending": []}
    errors = []
    for alert in registry.queued_alerts():
        if alert.status == "sending":
            report["stuck_sending"].append(alert.id)
            continue
        if not alert.recipients:
            report["no_recipients"].append(alert.id)
            continue
        claimed = registry.claim_alert(alert.id)
        if claimed is None:  # another sender has it, or it was just sent
            continue
        try:
            _send(conn_id, claimed)
        except Exception as exc:  # noqa: BLE001 - any SMTP/connection failure keeps the alert queued
            error = f"{type(exc).__name__}: {exc}"
            registry.finish_alert(claimed.id, error)
            report["failed"].append(claimed.id)
            errors.append(f"alert {claimed.id} ({claimed.subject}): {error}")
            continue
        registry.finish_alert(claimed.id, None)
        report["sent"].append(claimed.id)
    if report["stuck_sending"]:
        log.warning("alerts %s are 'sending' from an earlier delivery that did not finish; they are not re-sent "
                    "automatically (at-most-once). Check the mailbox and the task logs.", report["stuck_sending"])
    if report["no_recipients"]:
        log.warning("alerts %s have no recipients: set alert_emails in the model's YAML", report["no_recipients"])
    if errors:
        raise AlertDeliveryError(f"{len(errors)} alert(s) could not be sent through SMTP connection {conn_id!r} "
                                 "and stay queued for the next delivery: " + "; ".join(errors))
    return report


def _send(conn_id: str, alert: Alert) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=list(alert.recipients), subject=alert.subject,
                             html_content=alert.body_html or f"<pre>{html.escape(alert.body_text)}</pre>",
                             custom_headers={"X-Ratchet-Alert": alert.dedupe_key})
