"""Alert mails: building them, and delivering the outbox through Airflow's SMTP connection.

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
from typing import Any

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[Ratchet]"


class AlertDeliveryError(RuntimeError):
    """Some alerts could not be sent; they stay queued with the error and are retried later."""


# -- building ------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def requirement_line(result) -> str:
    """'mape 0.31 > max 0.15' or 'rmse 12.3 > max 0.9 × last_value 11 = 9.9' for a failed requirement."""
    value = "missing" if result.value is None else _fmt(result.value)
    sign = ">" if result.direction == "max" else "<"
    if result.relative_to is None:
        return f"{result.metric} {value} {sign} {result.direction} {_fmt(result.bound)}"
    if result.baseline_value is None:
        return f"{result.metric} {value}: no value of baseline {result.relative_to} on the same rows"
    return (f"{result.metric} {value} {sign} {result.direction} {_fmt(result.bound)} × {result.baseline_name} "
            f"{_fmt(result.baseline_value)} = {_fmt(result.effective_bound)}")


def _table_text(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells)


def _table_html(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(_fmt(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table style='border-collapse:collapse'><tr>{head}</tr>{body}</table>"


class _Mail:
    """Sections written once, rendered as plain text and as HTML."""

    def __init__(self, title: str):
        self.title, self.parts = title, []

    def para(self, text: str) -> None:
        self.parts.append(("p", text))

    def table(self, heading: str, headers: list[str], rows: list[list[Any]]) -> None:
        if rows:
            self.parts.append(("t", (heading, headers, rows)))

    def link(self, label: str, url: str) -> None:
        self.parts.append(("a", (label, url)))

    def render(self) -> tuple[str, str]:
        text, body = [self.title, ""], [f"<h2>{html.escape(self.title)}</h2>"]
        for kind, part in self.parts:
            if kind == "p":
                text += [part, ""]
                body.append(f"<p>{html.escape(part)}</p>")
            elif kind == "t":
                heading, headers, rows = part
                text += [heading, _table_text(headers, rows), ""]
                body.append(f"<h3>{html.escape(heading)}</h3>{_table_html(headers, rows)}")
            else:
                label, url = part
                text += [f"{label}: {url}", ""]
                body.append(f"<p><a href='{html.escape(url, quote=True)}'>{html.escape(label)}</a>: "
                            f"{html.escape(url)}</p>")
        return "\n".join(text), "<html><body>" + "".join(body) + "</body></html>"


def build_nowtest_alert(outcome, airflow_run_url: str) -> tuple[str, str, str]:
    """Subject, text and HTML of the mail for a failed now-test (a `nowtest.NowtestOutcome`)."""
    window = f"{outcome.window_start:%Y-%m-%d %H:%M} .. {outcome.window_end:%Y-%m-%d %H:%M} (end excluded)"
    champion = outcome.champion
    if outcome.stale:
        reason = (f"stale data: {outcome.n_rows} rows < min_rows {outcome.min_rows} in the last "
                  f"{outcome.window_days} days")
    else:
        reason = "; ".join(requirement_line(r) for r in champion.failed)
    subject = f"{SUBJECT_PREFIX} {outcome.model} now-test failed: {reason}"
    mail = _Mail(f"{outcome.model} now-test failed ({champion.contender if champion else 'no champion'})")
    mail.para(f"Window: {window}. Rows: {outcome.n_rows} (min_rows {outcome.min_rows}).")
    if outcome.stale:
        mail.para(f"Stale data: the source has {outcome.n_rows} usable rows in the window, fewer than the "
                  f"{outcome.min_rows} the now-test needs. Check that the source table is still being loaded.")
    for result in outcome.results:
        if result.requirements:
            mail.table(f"Requirements of {result.contender} ({result.role})",
                       ["metric", "value", "bound", "best baseline value", "passed"],
                       [[r.metric, r.value, _bound_text(r), _baseline_text(r, outcome.baselines), r.passed]
                        for r in result.requirements])
    if champion and champion.worst_misses:
        mail.table(f"Worst misses of {champion.contender}", ["time", "actual", "predicted", "abs error"],
                   [[m["time"], m["actual"], m["predicted"], m["abs_error"]] for m in champion.worst_misses])
    if champion and champion.drift_warnings:
        mail.table("Drift warnings (PSI > 0.2 against the training window)", ["feature", "psi"],
                   [[name, value] for name, value in champion.drift_warnings.items()])
    if outcome.harvested:
        mail.para(f"{outcome.harvested} worst miss(es) were added to the model's golden regression cases.")
    mail.link("Airflow run", airflow_run_url)
    text, body = mail.render()
    return subject, text, body


def _bound_text(result) -> str:
    if result.relative_to is None:
        return f"{result.direction} {_fmt(result.bound)}"
    return (f"{result.direction} {_fmt(result.bound)} × {result.baseline_name or result.relative_to} "
            f"= {_fmt(result.effective_bound)}")


def _baseline_text(result, baselines: dict[str, dict[str, float]]) -> str:
    from ratchet.requirements import best_baseline

    name, value = ((result.baseline_name, result.baseline_value) if result.relative_to
                   else best_baseline(result.metric, baselines))
    return f"{name} {_fmt(value)}" if name else "-"


def build_regression_alert(model: str, version: int, result, airflow_run_url: str) -> tuple[str, str, str]:
    """Subject, text and HTML of the mail for failed golden cases of the champion (a GoldenResult)."""
    subject = (f"{SUBJECT_PREFIX} {model} regression tests failed: {len(result.failures)} of {result.n_cases} "
               f"golden cases (champion v{version})")
    mail = _Mail(f"{model} regression tests failed for champion v{version}")
    mail.para(f"{len(result.failures)} of {result.n_cases} golden case(s) are outside their tolerance.")
    mail.table("Failed cases", ["case", "source", "expected", "predicted", "tolerance", "error"],
               [[f["name"], f["source"], f["expected"], f["predicted"], f["tolerance"], f["error"]]
                for f in result.failures[:20]])
    mail.link("Airflow run", airflow_run_url)
    text, body = mail.render()
    return subject, text, body


# -- delivery ------------------------------------------------------------------------------
def deliver_alerts(registry, conn_id: str = "smtp_default") -> dict[str, list[int]]:
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


def _send(conn_id: str, alert) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=list(alert.recipients), subject=alert.subject,
                             html_content=alert.body_html or f"<pre>{html.escape(alert.body_text)}</pre>",
                             custom_headers={"X-Ratchet-Alert": alert.dedupe_key})
