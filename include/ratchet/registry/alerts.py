"""The alert outbox and its deliveries: an alert is written before any attempt to send it, so none is lost.

An alert is queued once per dedupe key (often in the transaction of the verdict it reports: `insert_alert`, called
by `EvaluationStore.record_evaluations`). A sender claims it, then each notifier channel claims its delivery, both
committed before the send: a channel that already sent an alert never sends it again, and a failed channel is
retried alone.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ratchet.registry import entities
from ratchet.registry.base import Store
from ratchet.registry.schema import Alert, AlertDelivery, Model


class AlertStore(Store):
    """Queue, claim and finish alerts, on the whole and per notifier channel."""

    def enqueue_alert(self, model: str, *, dedupe_key: str, source: str, run_id: str | None,
                      recipients: list[str], subject: str, body_text: str, body_html: str | None = None,
                      link: str | None = None) -> int:
        """Write an alert to the outbox once per dedupe key; returns its id."""
        draft = entities.AlertDraft(dedupe_key, source, run_id, tuple(recipients), subject, body_text, body_html,
                                    link)
        with self._session() as session:
            return insert_alert(session, self._model(session, model), draft)

    def claim_alert(self, alert_id: int) -> entities.Alert | None:
        """Lock a queued alert for sending (skip it if another sender holds it or it was sent)."""
        with self._session() as session:
            row = session.execute(_alerts_query().where(Alert.id == alert_id, Alert.status == "queued")
                                  .with_for_update(of=Alert, skip_locked=True)).one_or_none()
            if row is None:
                return None
            alert, model = row
            alert.status, alert.attempts = "sending", alert.attempts + 1
            session.flush()
            return _alert(alert, model)

    def set_alert_recipients(self, alert_id: int, recipients: tuple[str, ...]) -> None:
        """Give a queued alert its recipients (it was queued when the model had none)."""
        with self._session() as session:
            session.execute(update(Alert).where(Alert.id == alert_id, Alert.status == "queued")
                            .values(recipients=list(recipients)))

    def claim_deliveries(self, channel: str, alert_ids: Iterable[int]) -> list[int]:
        """Mark the alerts 'sending' on `channel` (attempts + 1), committed before the send; returns the ids
        claimed, leaving out any alert that channel already sent or is sending."""
        values = [{"alert_id": alert_id, "channel": channel, "status": "sending", "attempts": 1}
                  for alert_id in alert_ids]
        if not values:
            return []
        stmt = insert(AlertDelivery).values(values)
        stmt = stmt.on_conflict_do_update(
            constraint="uq_alert_delivery_channel", where=AlertDelivery.status == "queued",
            set_={"status": "sending", "attempts": AlertDelivery.attempts + 1}).returning(AlertDelivery.alert_id)
        with self._session() as session:
            return sorted(session.scalars(stmt))

    def finish_deliveries(self, channel: str, alert_ids: Iterable[int], error: str | None,
                          reply: str | None = None) -> None:
        """Mark claimed alerts sent on `channel` (`error` None, with the server's `reply`) or queued again with
        the error, for the next delivery to retry on that channel alone."""
        values = ({"status": "sent", "sent_at": func.now(), "last_error": None, "reply": reply} if error is None
                  else {"status": "queued", "last_error": error})
        with self._session() as session:
            session.execute(update(AlertDelivery).where(AlertDelivery.channel == channel,
                                                        AlertDelivery.alert_id.in_(list(alert_ids))).values(**values))

    def finish_alert(self, alert_id: int, error: str | None) -> None:
        """Mark a claimed alert sent (`error` None) or put it back in the queue with the error."""
        with self._session() as session:
            values = ({"status": "sent", "sent_at": func.now(), "last_error": None} if error is None
                      else {"status": "queued", "last_error": error})
            session.execute(update(Alert).where(Alert.id == alert_id).values(**values))

    def queued_alerts(self, model: str | None = None) -> list[entities.Alert]:
        """Alerts not sent yet ('queued' or 'sending'), of one model or of all, oldest first."""
        with self._session() as session:
            query = _alerts_query().where(Alert.status != "sent").order_by(Alert.id)
            if model:
                query = query.where(Alert.model_id == self._model(session, model).id)
            return [_alert(a, name) for a, name in session.execute(query)]

    def alerts(self, model: str) -> list[entities.Alert]:
        """Every alert of the model, oldest first."""
        with self._session() as session:
            m = self._model(session, model)
            return [_alert(a, name) for a, name in session.execute(
                _alerts_query().where(Alert.model_id == m.id).order_by(Alert.id))]


def insert_alert(session: Session, model: Model, draft: entities.AlertDraft) -> int:
    """Queue the alert unless its dedupe key is already in the outbox; the id of the one that is."""
    stmt = insert(Alert).values(model_id=model.id, dedupe_key=draft.dedupe_key, source=draft.source,
                                run_id=draft.run_id, recipients=list(draft.recipients), subject=draft.subject,
                                body_text=draft.body_text, body_html=draft.body_html, link=draft.link,
                                status="queued", attempts=0)
    session.execute(stmt.on_conflict_do_nothing(index_elements=[Alert.dedupe_key]))
    return session.scalar(select(Alert.id).where(Alert.dedupe_key == draft.dedupe_key))


def _alerts_query() -> Select[tuple[Alert, str]]:
    return select(Alert, Model.name).join(Model, Model.id == Alert.model_id)


def _alert(row: Alert, model: str) -> entities.Alert:
    return entities.Alert(
        id=row.id, model=model, dedupe_key=row.dedupe_key, source=row.source, run_id=row.run_id,
        recipients=tuple(row.recipients), subject=row.subject, body_text=row.body_text, body_html=row.body_html,
        link=row.link, status=row.status, attempts=row.attempts, last_error=row.last_error,
        created_at=row.created_at, sent_at=row.sent_at,
        deliveries=tuple(entities.AlertDelivery(channel=d.channel, status=d.status, attempts=d.attempts,
                                                last_error=d.last_error, reply=d.reply, sent_at=d.sent_at)
                         for d in row.deliveries))
