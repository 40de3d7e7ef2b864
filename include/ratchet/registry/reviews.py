"""The review queue: rows a model answered unsurely, queued once per row key for a person to label.

Queuing is idempotent per model and day: a re-run of a day drops that day's items nobody has labelled yet and queues
again from what it finds, skipping every row key already queued on any day (labelled or not), so a re-run reaches
the state of a clean run and a row is never asked twice. A label is checked against the item
(`entities.ReviewItem.checked_label`) under a row lock and written with who gave it and when, all or nothing.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select

from ratchet.exceptions import NotFoundError
from ratchet.registry import entities
from ratchet.registry.base import Store, jsonable
from ratchet.registry.golden_cases import insert_golden_cases
from ratchet.registry.schema import ReviewItem


class ReviewStore(Store):
    """A model's review queue and the labels people gave."""

    def queue_review_items(self, model: str, items: Iterable[entities.ReviewItem], *, day: dt.date, per_day: int,
                           run_id: str) -> list[entities.ReviewItem]:
        """Queue `items` (the most doubtful first) as the model's review items of `day`, at most `per_day` of them
        with that day's items already labelled, skipping row keys already queued; one transaction. Returns what
        this call queued, in order."""
        items = list(items)
        with self._session() as session:
            m = self._model(session, model, lock=True)  # one queuing of the model at a time
            session.execute(delete(ReviewItem).where(ReviewItem.model_id == m.id, ReviewItem.queued_on == day,
                                                     ReviewItem.label.is_(None)))
            kept = session.scalar(select(func.count()).where(ReviewItem.model_id == m.id,
                                                             ReviewItem.queued_on == day)) or 0
            known = set(session.scalars(select(ReviewItem.item_key).where(
                ReviewItem.model_id == m.id, ReviewItem.item_key.in_({i.item_key for i in items}))))
            rows = []
            for item in items:
                if len(rows) + kept >= per_day:
                    break
                if item.item_key in known:
                    continue
                known.add(item.item_key)
                low, high = item.interval or (None, None)
                rows.append(ReviewItem(
                    model_id=m.id, item_key=item.item_key, feature_id=item.feature_id, series=item.series,
                    origin=item.origin, version=item.version, answer=item.answer, confidence=item.confidence,
                    interval_low=low, interval_high=high, probabilities=jsonable(item.probabilities),
                    actual=item.actual, queued_on=day, run_id=run_id))
            session.add_all(rows)
            session.flush()
            return [_item(row) for row in rows]

    def review_items(self, model: str, *, pending: bool | None = None) -> list[entities.ReviewItem]:
        """The model's review items, oldest first; `pending` True: those still without a label, False: labelled."""
        with self._session() as session:
            m = self._model(session, model)
            query = select(ReviewItem).where(ReviewItem.model_id == m.id)
            if pending is not None:
                query = query.where(ReviewItem.label.is_(None) if pending else ReviewItem.label.is_not(None))
            return [_item(row) for row in session.scalars(query.order_by(ReviewItem.queued_at, ReviewItem.id))]

    def review_queue(self, model: str) -> tuple[int, int, dt.datetime | None]:
        """(items waiting for a label, items labelled, when the oldest waiting one was queued)."""
        with self._session() as session:
            m = self._model(session, model)
            waiting = ReviewItem.label.is_(None)
            row = session.execute(select(func.count().filter(waiting), func.count().filter(~waiting),
                                         func.min(ReviewItem.queued_at).filter(waiting))
                                  .where(ReviewItem.model_id == m.id)).one()
            return int(row[0]), int(row[1]), row[2]

    def label_review_item(self, model: str, item_id: int, label: Any, *, labelled_by: str) -> entities.ReviewItem:
        """Record a person's label of one item (checked by `ReviewItem.checked_label`) with who and when.

        Raises:
            NotFoundError: the model has no such item.
            ReviewLabelError: the label is refused, or the item already has one; nothing is stored.
        """
        with self._session() as session:
            m = self._model(session, model)
            row = session.scalars(select(ReviewItem).where(ReviewItem.model_id == m.id, ReviewItem.id == item_id)
                                  .with_for_update()).one_or_none()
            if row is None:
                raise NotFoundError(f"model {model!r} has no review item {item_id}")
            row.label = _item(row).checked_label(label)
            row.labelled_by, row.labelled_at = labelled_by, dt.datetime.now(dt.UTC)
            session.flush()
            return _item(row)

    def add_reviewed_golden_cases(self, model: str, cases: dict[int, dict[str, Any]]) -> int:
        """Store the golden case made from each labelled item (item id -> case) and mark the item with the case's
        key, in one transaction; returns how many cases were new."""
        with self._session() as session:
            m = self._model(session, model)
            added = insert_golden_cases(session, m, cases.values())
            for row in session.scalars(select(ReviewItem).where(ReviewItem.model_id == m.id,
                                                                ReviewItem.id.in_(list(cases)))):
                row.golden_case_key = cases[row.id]["case_key"]
            return added


def _item(row: ReviewItem) -> entities.ReviewItem:
    interval = None if row.interval_low is None else (row.interval_low, row.interval_high)
    return entities.ReviewItem(
        item_key=row.item_key, feature_id=row.feature_id, series=row.series, origin=row.origin, version=row.version,
        answer=row.answer, confidence=row.confidence, interval=interval, probabilities=row.probabilities,
        actual=row.actual, id=row.id, queued_on=row.queued_on, queued_at=row.queued_at, label=row.label,
        labelled_by=row.labelled_by, labelled_at=row.labelled_at, golden_case_key=row.golden_case_key)
