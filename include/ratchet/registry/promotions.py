"""The champion alias, the versions in trial, and promotion decisions.

One champion per model is a database fact (the alias's primary key), and a promotion moves it under a lock on the
model row, checking the champion its gates were judged against is still the champion: two promotions of one model
serialise, and the second changes nothing. The decision, the move and the ratchet of the requirements are one
transaction.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ratchet.exceptions import ConcurrentPromotionError
from ratchet.registry import entities
from ratchet.registry.alerts import insert_alert
from ratchet.registry.base import jsonable, notify_changed
from ratchet.registry.entities import CHAMPION, NOWTEST, SERVED, RatchetStep, in_trial
from ratchet.registry.models import apply_ratchet, apply_rebaseline
from ratchet.registry.schema import Alias, Evaluation, Model, ModelVersion, Promotion
from ratchet.registry.versions import VersionStore, version_entity, version_numbers, version_row, versions_query


class PromotionStore(VersionStore):
    """Which version is champion, which are in trial and what their trial days say, and every promotion decision."""

    def champion(self, model: str) -> entities.Version | None:
        """The model's champion version (without artifact bytes), None while it has none."""
        with self._session() as session:
            m = self._model(session, model)
            row = session.scalars(versions_query(False).join(Alias, Alias.version_id == ModelVersion.id).where(
                Alias.model_id == m.id, Alias.alias == CHAMPION)).one_or_none()
            return None if row is None else version_entity(row, model)

    def trial_versions(self, model: str) -> tuple[entities.Version | None, list[entities.Version]]:
        """The champion (or None) and the versions in trial (`entities.in_trial`), newest first."""
        champion = self.champion(model)
        number = champion.version if champion else None
        trial = [v for v in self.versions(model) if in_trial(v.version, number)]
        return champion, trial[::-1]

    def trial_records(self, model: str) -> dict[int, entities.TrialRecord]:
        """Per version: the days of now-tests stored since it entered trial, and the days with a breach; and its
        served days and served breach days as a split's candidate.

        A day counts when its now-test was stored after the version's `trial_started_at`, so back-filled
        runs of past dates count as trial days as well, and judged the version (not a day it waited for rows
        after its training data: `no_verdict`); any failed row on a counted day is a breach. A served
        day is a day whose served evaluation of the version's candidate arm ('v<N>@candidate') says it answered
        at least one row in the day before the run's data end (`served_in_day`) and has no failed row.
        """
        with self._session() as session:
            m = self._model(session, model)
            days: dict[str, dict[int, list[str]]] = {k: defaultdict(list) for k in ("days", "breach_days",
                                                                                    "served_days",
                                                                                    "served_breach_days")}
            for number, kind, day, breached, judged, served in session.execute(
                    select(ModelVersion.version, Evaluation.kind, Evaluation.partition,
                           func.bool_or(Evaluation.passed.is_(False)),
                           func.bool_or(Evaluation.details["no_verdict"].as_string().is_(None)),
                           func.max(Evaluation.details["served_in_day"].as_integer()))
                    .join(Evaluation, Evaluation.version_id == ModelVersion.id)
                    .where(ModelVersion.model_id == m.id, Evaluation.created_at >= ModelVersion.trial_started_at,
                           (Evaluation.kind == NOWTEST)
                           | ((Evaluation.kind == SERVED) & Evaluation.contender.endswith("@candidate")))
                    .group_by(ModelVersion.version, Evaluation.kind, Evaluation.partition)
                    .order_by(ModelVersion.version, Evaluation.partition)):
                if kind == NOWTEST and not judged:
                    continue  # no verdict yet: too few rows after the version's training data
                if kind == NOWTEST:
                    days["days"][number].append(day)
                    if breached:
                        days["breach_days"][number].append(day)
                elif breached:
                    days["served_breach_days"][number].append(day)
                elif served:
                    days["served_days"][number].append(day)
            numbers = session.scalars(select(ModelVersion.version).where(ModelVersion.model_id == m.id))
            return {n: entities.TrialRecord(n, **{k: tuple(v[n]) for k, v in days.items()}) for n in numbers}

    def promotions(self, model: str) -> list[entities.Promotion]:
        """Every recorded promotion decision of the model, oldest first."""
        with self._session() as session:
            m = self._model(session, model)
            numbers = version_numbers(session, m)
            rows = session.scalars(select(Promotion).where(Promotion.model_id == m.id).order_by(Promotion.id))
            return [_promotion(p, model, numbers) for p in rows]

    def record_promotion(self, model: str, version: int, *, kind: str, outcome: str, triggered_by: str,
                         reason: str, gates: list[dict[str, Any]], run_id: str | None,
                         expected_previous_version: int | None, ratchet_steps: Iterable[RatchetStep] = (),
                         comment: str | None = None, rebaseline_steps: Iterable[RatchetStep] = (),
                         alert: entities.AlertDraft | None = None) -> tuple[int, list[dict[str, Any]]]:
        """Store a promotion decision; when `outcome` is 'promoted', also move the champion, re-baseline the
        bounds a person chose to set again (`rebaseline_steps`, recorded as theirs with this promotion, the mail
        `alert` saying so queued with them) and ratchet.

        All of it is one transaction under a lock on the model row: two promotions of one model
        serialise here, and the second finds the champion moved (ConcurrentPromotionError) and
        changes nothing. A decision that is not 'promoted' (rejected, dry run, proposed) only writes its own
        row; re-running the same Airflow run replaces that row instead of adding another.
        Returns the promotion id and the ratchet changes applied (requirement id, metric, old, new).
        """
        with self._session() as session:
            m = self._model(session, model, lock=True)
            target = version_row(session, m, version)
            previous = (version_row(session, m, expected_previous_version)
                        if expected_previous_version is not None else None)
            row = None
            if outcome != "promoted" and run_id is not None:
                row = session.scalars(select(Promotion).where(
                    Promotion.model_id == m.id, Promotion.run_id == run_id, Promotion.version_id == target.id,
                    Promotion.outcome == outcome)).one_or_none()
            if outcome == "promoted":
                _move_champion(session, m, target, previous.id if previous else None)
            if row is None:
                row = Promotion(model_id=m.id, version_id=target.id)
                session.add(row)
            row.previous_version_id = previous.id if previous else None
            row.kind, row.outcome, row.triggered_by, row.reason = kind, outcome, triggered_by, reason
            row.comment = comment
            row.gates, row.dry_run, row.run_id = jsonable(gates), outcome == "dry_run", run_id
            session.flush()
            if outcome != "promoted":
                return row.id, []
            applied = apply_rebaseline(session, m, row.id, triggered_by, run_id or f"promotion-{row.id}",
                                       rebaseline_steps)
            if alert is not None and applied:
                insert_alert(session, m, alert)
            return row.id, applied + apply_ratchet(session, m, row.id, triggered_by, ratchet_steps)


def _move_champion(session: Session, model: Model, version: ModelVersion, expected_previous_id: int | None) -> None:
    """Point the champion alias at `version` inside the caller's transaction.

    `expected_previous_id` is the champion the caller's gates were evaluated against; if
    another promotion moved it meanwhile, this raises instead of overwriting it.
    """
    current = session.scalars(select(Alias).where(Alias.model_id == model.id, Alias.alias == CHAMPION)
                              .with_for_update()).one_or_none()
    current_id = current.version_id if current else None
    if current_id != expected_previous_id:
        raise ConcurrentPromotionError(
            f"the champion of {model.name!r} changed while this promotion was running; nothing was changed")
    try:
        if current is None:
            session.add(Alias(model_id=model.id, alias=CHAMPION, version_id=version.id))
            session.flush()
        else:
            current.version_id, current.updated_at = version.id, func.now()
    except IntegrityError as exc:
        raise ConcurrentPromotionError(
            f"another promotion of {model.name!r} set the first champion at the same time; nothing was changed"
        ) from exc
    notify_changed(session, model)


def _promotion(row: Promotion, model: str, numbers: dict[int, int]) -> entities.Promotion:
    return entities.Promotion(
        id=row.id, model=model, version=numbers[row.version_id], previous_version=numbers.get(row.previous_version_id),
        kind=row.kind, outcome=row.outcome, triggered_by=row.triggered_by, reason=row.reason, gates=row.gates,
        dry_run=row.dry_run, run_id=row.run_id, created_at=row.created_at, comment=row.comment)
