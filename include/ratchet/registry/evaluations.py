"""Evaluations (one metric of one contender on one slice of data), back-test days and back-test reports.

An evaluation is keyed by (model, kind, contender, partition, metric) and upserted, so a re-run replaces what it
stored instead of adding to it. A verdict is written in one transaction with the golden cases it harvested and the
alert it calls for: never a verdict without its alert, nor an alert without its verdict.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from operator import methodcaller
from typing import Any

import numpy as np
from sqlalchemy import Text, cast, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from ratchet.exceptions import NotFoundError
from ratchet.modeling.metrics import finite
from ratchet.registry import entities
from ratchet.registry.alerts import insert_alert
from ratchet.registry.base import Store, jsonable
from ratchet.registry.entities import EvaluationRow
from ratchet.registry.golden_cases import insert_golden_cases
from ratchet.registry.schema import BacktestDay, BacktestReport, Evaluation, Model, ModelVersion


class EvaluationStore(Store):
    """Every stored metric value of a model (back-tests, now-tests, regression tests, the served predictions and
    the service), the back-test's daily predictions, and its reports."""

    def record_evaluations(self, model: str, rows: Iterable[EvaluationRow], *,
                           days: Iterable[entities.DayRow] = (), golden_cases: Iterable[dict[str, Any]] = (),
                           alert: entities.AlertDraft | None = None) -> int | None:
        """Upsert evaluation rows, add harvested golden cases and queue an alert, all in one transaction.

        So a verdict is never stored without the alert it calls for, nor an alert without its verdict. The
        evaluation key is (model, kind, contender, partition, metric); cases and alerts are added once per
        key. Returns the alert's id (None without one).
        """
        rows = list(rows)
        with self._session() as session:
            m = self._model(session, model)
            _upsert_evaluations(session, m, rows)
            _upsert_days(session, m, days)
            insert_golden_cases(session, m, golden_cases)
            return insert_alert(session, m, alert) if alert else None

    def evaluations(self, model: str, kind: str | None = None, *, contender: str | None = None,
                    metric: str | None = None) -> list[entities.Evaluation]:
        """Stored evaluations of the model, filtered by kind, contender and metric when given."""
        with self._session() as session:
            m = self._model(session, model)
            query = (select(Evaluation, ModelVersion.version)
                     .outerjoin(ModelVersion, ModelVersion.id == Evaluation.version_id)
                     .where(Evaluation.model_id == m.id))
            for column, value in ((Evaluation.kind, kind), (Evaluation.contender, contender),
                                  (Evaluation.metric, metric)):
                if value is not None:
                    query = query.where(column == value)
            query = query.order_by(Evaluation.partition, Evaluation.contender, Evaluation.id)
            return [_evaluation(row, number) for row, number in session.execute(query)]

    def backtest_days(self, model: str, contenders: Iterable[str],
                      months: Iterable[str]) -> dict[str, entities.DaySeries]:
        """Each contender's back-test days over `months`, joined in day order (contenders without any are left out)."""
        with self._session() as session:
            m = self._model(session, model)
            rows = session.scalars(select(BacktestDay).where(
                BacktestDay.model_id == m.id, BacktestDay.contender.in_(list(contenders)),
                BacktestDay.partition.in_(list(months))).order_by(BacktestDay.contender, BacktestDay.partition))
            grouped: dict[str, list[BacktestDay]] = defaultdict(list)
            for row in rows:
                grouped[row.contender].append(row)
            return {contender: _day_series(contender, parts) for contender, parts in grouped.items()}

    def metric_values(self, model: str, kind: str, metric: str) -> list[tuple[str, str, float | None]]:
        """(contender, partition, value) rows of one metric, without building entities (long histories)."""
        with self._session() as session:
            m = self._model(session, model)
            return [tuple(row) for row in session.execute(
                select(Evaluation.contender, Evaluation.partition, Evaluation.value)
                .where(Evaluation.model_id == m.id, Evaluation.kind == kind, Evaluation.metric == metric))]

    def evaluated_fingerprints(self, model: str, kind: str) -> dict[tuple[str, str], str | None]:
        """(contender, partition) -> data fingerprint of what is already stored, to skip unchanged work."""
        with self._session() as session:
            m = self._model(session, model)
            rows = session.execute(select(Evaluation.contender, Evaluation.partition, Evaluation.data_fingerprint)
                                   .where(Evaluation.model_id == m.id, Evaluation.kind == kind).distinct())
            return {(c, p): f for c, p, f in rows}

    def save_report(self, model: str, run_id: str, summary: dict[str, Any], html: str) -> None:
        """Store the back-test report of a run (a re-run replaces it)."""
        with self._session() as session:
            m = self._model(session, model)
            stmt = insert(BacktestReport).values(model_id=m.id, run_id=run_id, summary=jsonable(summary), html=html)
            session.execute(stmt.on_conflict_do_update(
                constraint="uq_report_run", set_={"summary": stmt.excluded.summary, "html": stmt.excluded.html,
                                                   "created_at": func.now()}))

    def latest_report(self, model: str) -> entities.Report | None:
        """The model's most recent back-test report, None before the first."""
        with self._session() as session:
            m = self._model(session, model)
            row = session.scalars(select(BacktestReport).where(BacktestReport.model_id == m.id)
                                  .order_by(BacktestReport.created_at.desc(), BacktestReport.id.desc())
                                  .limit(1)).one_or_none()
            return None if row is None else entities.Report(model, row.run_id, row.summary, row.html, row.created_at)


def _upsert_evaluations(session: Session, m: Model, rows: list[EvaluationRow]) -> None:
    if rows:
        version_ids = dict(session.execute(select(ModelVersion.version, ModelVersion.id)
                                           .where(ModelVersion.model_id == m.id)).all())
        values = []
        for row in rows:
            if row.version is not None and row.version not in version_ids:
                raise NotFoundError(f"model {m.name!r} has no version {row.version}")
            values.append(dict(
                model_id=m.id, kind=row.kind, contender=row.contender, partition=row.partition,
                metric=row.metric, value=finite(row.value), n_rows=row.n_rows, run_id=row.run_id,
                version_id=version_ids.get(row.version) if row.version is not None else None,
                baseline=row.baseline, window_start=row.window_start, window_end=row.window_end,
                data_fingerprint=row.data_fingerprint, passed=row.passed, details=jsonable(row.details),
            ))
        stmt = insert(Evaluation).values(values)
        stmt = stmt.on_conflict_do_update(
            constraint="uq_evaluation_key",
            set_={k: stmt.excluded[k] for k in ("value", "n_rows", "run_id", "window_start", "window_end",
                                                 "data_fingerprint", "passed", "details", "version_id",
                                                 "baseline")} | {"created_at": func.now()},
        )
        session.execute(stmt)


def _upsert_days(session: Session, model: Model, days: Iterable[entities.DayRow]) -> None:
    """Store each (contender, month) of back-test days, replacing what a run stored before for it: one statement a
    (contender, month), in the caller's transaction, so a panel's millions of predictions are never rendered into
    one statement at once (that doubled a back-test's memory). Each array is sent as one array literal for the
    server to parse (`_array`): a parameter per prediction took half a second for a year of 100 series."""
    for d in days:
        stmt = insert(BacktestDay).values(
            model_id=model.id, contender=d.contender, partition=d.partition,
            times=_array("times", _texts(d.times, methodcaller("isoformat"))),
            series=_array("series", _texts(d.series, _quoted)), actual=_array("actual", _float_texts(d.actual)),
            predicted=_array("predicted", _float_texts(d.predicted)), loss=_array("loss", _float_texts(d.loss)),
            correct=_array("correct", None if d.correct is None else ("t" if c else "f" for c in d.correct)),
            data_fingerprint=d.data_fingerprint, run_id=d.run_id)
        session.execute(stmt.on_conflict_do_update(
            constraint="uq_backtest_day_month",
            set_={k: stmt.excluded[k] for k in ("times", "series", "actual", "predicted", "loss", "correct",
                                                 "data_fingerprint", "run_id")} | {"created_at": func.now()}))


def _array(column: str, elements: Iterable[str] | None) -> Any:
    """An array column's value from its elements' text: one PostgreSQL array literal cast to the column's type, or
    NULL."""
    if elements is None:
        return None
    return cast(literal("{" + ",".join(elements) + "}", Text), BacktestDay.__table__.c[column].type)


def _texts(values: Iterable[Any] | None, text: Callable[[Any], str]) -> Iterable[str] | None:
    """Each value's text, computed once per distinct value: a month of a panel repeats each time and series."""
    if values is None:
        return None
    values = list(values)
    texts = {value: text(value) for value in set(values)}
    return map(texts.__getitem__, values)


def _quoted(value: str) -> str:
    """A text element of an array literal, quoted and escaped as PostgreSQL reads it back unchanged."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _float_texts(values: Iterable[float] | None) -> Iterable[str] | None:
    """Each value's repr (what psycopg2 sends for a float), NULL where missing or not finite. -0.0 is stored as 0,
    as when it was a parameter (the SQL `-0.0` is 0 negated)."""
    if values is None:
        return None
    array = np.asarray(values, dtype=float) + 0.0
    texts = list(map(repr, array.tolist()))
    for i in np.flatnonzero(~np.isfinite(array)).tolist():
        texts[i] = "NULL"
    return texts


def _day_series(contender: str, parts: list[BacktestDay]) -> entities.DaySeries:
    def joined(name: str) -> tuple | None:
        columns = [getattr(p, name) for p in parts]
        return None if any(c is None for c in columns) else tuple(v for c in columns for v in c)

    return entities.DaySeries(contender, joined("times"), joined("series"), joined("actual"), joined("predicted"),
                              joined("loss"), joined("correct"))


def _evaluation(row: Evaluation, version: int | None) -> entities.Evaluation:
    return entities.Evaluation(
        kind=row.kind, contender=row.contender, partition=row.partition, metric=row.metric, value=row.value,
        n_rows=row.n_rows, run_id=row.run_id, version=version, baseline=row.baseline,
        window_start=row.window_start, window_end=row.window_end, data_fingerprint=row.data_fingerprint,
        passed=row.passed, details=row.details, created_at=row.created_at)
