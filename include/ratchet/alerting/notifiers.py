"""Ratchet's own Airflow notifiers: the alert mail (the default channel) and a JSON webhook.

Each is an Airflow `BaseNotifier`, listed by import path in a model's `alerts.notifiers` like any other (the
Slack provider's `SlackWebhookNotifier`, say). The outbox builds one per message and calls it with a context
holding `notification` (an `outbox.Notification`: one alert or a digest), sending once: the outbox and the
task's own retries decide what is tried again. A notifier says that retrying cannot help by raising
`AlertUndeliverable`; anything else it raises is taken as transient. `reply` keeps what the receiving server
answered, for the delivery's record.
"""
from __future__ import annotations

import base64
import email.policy
import email.utils
import json
import urllib.error
import urllib.request
from collections.abc import Iterable
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from airflow.providers.smtp.notifications import smtp
from airflow.sdk import BaseHook, BaseNotifier

from ratchet.exceptions import AlertDeliveryError, AlertUndeliverable
from ratchet.settings import SMTP_CONN_ID

if TYPE_CHECKING:
    from ratchet.alerting.outbox import Notification

UNFOLDED = email.policy.SMTP.clone(max_line_length=998)  # RFC 5322 limit: a long subject stays one line
RETRYABLE_HTTP = (408, 429)  # 4xx answers that mean "later", not "never"
REPLY_EXCERPT = 300


class SmtpNotifier(smtp.SmtpNotifier):
    """The SMTP provider's notifier sending an alert mail (plain text and HTML) once, to `to` or else the
    alerts' `alert_emails`.

    The provider's own send retries every error up to the connection's retry limit, a 550 refusal included;
    this one sends the message once over the connection the hook opened (with its TLS and login settings), so
    a 5xx refusal reaches the outbox as it is, with the server's reply.
    """

    template_fields = ("from_email", "to", "cc", "bcc", "smtp_conn_id")

    def __init__(self, to: str | Iterable[str] | None = None, from_email: str | None = None,
                 cc: str | Iterable[str] | None = None, bcc: str | Iterable[str] | None = None,
                 smtp_conn_id: str | None = None, auth_type: str = "basic"):
        super().__init__(to=to or (), from_email=from_email, cc=cc, bcc=bcc,
                         smtp_conn_id=smtp_conn_id or SMTP_CONN_ID, auth_type=auth_type)
        self.reply: str | None = None

    def notify(self, context: dict[str, Any]) -> None:
        """Send the notification as one mail; its `X-Ratchet-Alert` header names the alerts it carries, its `Date`
        (RFC 5322, UTC) is the time of sending, which mail clients sort and show by."""
        notification: Notification = context["notification"]
        to = _addresses(self.to) or list(notification.recipients)
        if not to:
            raise AlertUndeliverable(f"no recipient for the alerts of {', '.join(notification.models)}: set "
                                     "alert_emails in the model's YAML (or `to` of this notifier) and the next "
                                     "delivery sends them")
        message = EmailMessage(policy=UNFOLDED)
        message["To"] = ", ".join(to)
        for header, value in (("Cc", self.cc), ("Bcc", self.bcc)):
            if _addresses(value):
                message[header] = ", ".join(_addresses(value))
        message["Subject"] = notification.subject
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["X-Ratchet-Alert"] = ", ".join(a.dedupe_key for a in notification.alerts)
        message.set_content(notification.text)
        if notification.html:
            message.add_alternative(notification.html, subtype="html")
        with self.hook as hook:
            message["From"] = self.from_email or hook.from_email or "ratchet@localhost"
            refused = hook._smtp_client.send_message(message)
        if refused:  # accepted for some recipients, refused for these
            self.reply = "refused: " + "; ".join(f"{address} {code} {reply.decode(errors='replace')}"
                                                 for address, (code, reply) in sorted(refused.items()))


def _addresses(value: str | Iterable[str] | None) -> list[str]:
    """Addresses given as one string (comma- or semicolon-separated) or a list."""
    if not value:
        return []
    if isinstance(value, str):
        return [a.strip() for a in value.replace(";", ",").split(",") if a.strip()]
    return list(value)


class WebhookNotifier(BaseNotifier):
    """POSTs the notification as JSON to a webhook: the URL of an Airflow HTTP connection (`conn_id`, plus an
    optional `endpoint` path), or a `url`.

    The body is `Notification.payload()`: subject, text, models, link, alert_ids and each alert. A connection's
    login and password become basic auth and its extra the request headers (as the HTTP provider reads them).
    A 2xx answer is success; 4xx (but 408 and 429) and a redirect are permanent (`AlertUndeliverable`: the URL or
    its credentials need a person), 5xx, 408, 429, a timeout or a refused connection are transient.
    """

    template_fields = ("conn_id", "url", "endpoint", "headers")

    def __init__(self, *, conn_id: str | None = None, url: str | None = None, endpoint: str = "",
                 headers: dict[str, str] | None = None, timeout: float = 10.0):
        super().__init__()
        if (conn_id is None) == (url is None):
            raise ValueError("give exactly one of conn_id (an Airflow HTTP connection) or url")
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.conn_id, self.url, self.endpoint, self.headers, self.timeout = conn_id, url, endpoint, headers, timeout
        self.reply: str | None = None

    def notify(self, context: dict[str, Any]) -> None:
        """POST the notification once, without following redirects; classify the answer (see the class)."""
        notification: Notification = context["notification"]
        url, headers, where = self._target()
        request = urllib.request.Request(url, data=json.dumps(notification.payload()).encode(), method="POST",
                                         headers={"Content-Type": "application/json", **headers})
        try:
            with urllib.request.build_opener(_NoRedirect).open(request, timeout=self.timeout) as response:
                self.reply = f"HTTP {response.status} {response.reason}: {_excerpt(response.read())}".rstrip(": ")
        except urllib.error.HTTPError as exc:
            answer = f"HTTP {exc.code} {exc.reason} from {where}: {_excerpt(exc.read())}".rstrip(": ")
            if exc.code >= 500 or exc.code in RETRYABLE_HTTP:
                raise AlertDeliveryError(answer) from None
            raise AlertUndeliverable(f"{answer} (the webhook refuses this request; fix its URL or credentials)") \
                from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AlertDeliveryError(f"{where} unreachable within {self.timeout} s: {reason}") from None

    def _target(self) -> tuple[str, dict[str, str], str]:
        """The URL to POST to, the request headers, and how errors name the target (a connection by its id, so a
        token in its URL never reaches the alert's record)."""
        headers = dict(self.headers or {})
        if self.url is not None:
            return _join(self.url, self.endpoint), headers, self.url
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(self.conn_id)
        except AirflowNotFoundException as exc:
            raise AlertUndeliverable(f"webhook connection {self.conn_id!r}: {exc}; define it as an HTTP "
                                     "connection") from None
        host = conn.host or ""
        base = host if "://" in host else f"{conn.schema or 'http'}://{host}"
        if conn.port and "://" not in host:
            base += f":{conn.port}"
        if conn.login:
            token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
            headers.setdefault("Authorization", f"Basic {token}")
        return _join(base, self.endpoint), {**conn.extra_dejson, **headers}, f"connection {self.conn_id!r}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect comes back as the HTTPError it is: a POST is not silently turned into a GET elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _join(base: str, endpoint: str) -> str:
    return f"{base.rstrip('/')}/{endpoint.lstrip('/')}" if endpoint else base


def _excerpt(body: bytes) -> str:
    text = body.decode(errors="replace").strip()
    return text if len(text) <= REPLY_EXCERPT else text[:REPLY_EXCERPT] + "..."
