"""The registry: every read and write of Ratchet's PostgreSQL data goes through `Registry`.

Callers speak in model names, version numbers and plain values and get frozen entities back
(`ratchet.registry.entities`); ORM rows and sessions never leave this module. It owns the SQL, the
transactions and the constraints that make writes idempotent and atomic.
"""
from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DateTime,
    Engine,
    Integer,
    Interval,
    bindparam,
    delete,
    func,
    null,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, selectinload, sessionmaker

from ratchet import settings
from ratchet.exceptions import ConcurrentPromotionError, NotFoundError, UnknownModelError
from ratchet.modeling.metrics import finite
from ratchet.registry import entities
from ratchet.registry.entities import CHAMPION, MODELS_CHANGED, EvaluationRow, RatchetStep, in_trial
from ratchet.registry.schema import (
    Alert,
    AlertDelivery,
    Alias,
    BacktestDay,
    BacktestReport,
    Evaluation,
    GoldenCase,
    Model,
    ModelVersion,
    Promotion,
    Requirement,
    RequirementChange,
    SearchTrial,
    ServedPrediction,
    ServingProbe,
)

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec, RequirementSpec


class Registry:
    """Ratchet's PostgreSQL data, read and written in model names and version numbers.

    Every public method is one transaction. Unknown names raise `UnknownModelError` (listing the
    registered models) and unknown versions `NotFoundError` (listing the model's versions).
    """

    def __init__(self, url_or_engine: str | Engine):
        self.engine = url_or_engine if isinstance(url_or_engine, Engine) else settings.make_engine(url_or_engine)
        self._sessions = sessionmaker(self.engine)

    @classmethod
    def from_settings(cls) -> Registry:
        """The registry of `settings.database_url()` (the environment, else the `ratchet_db` connection)."""
        return cls(settings.database_url())

    def ping(self) -> None:
        """One round trip to the database (raises SQLAlchemy's OperationalError when it is unreachable)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close the engine's connections."""
        self.engine.dispose()

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session

    # -- models and requirements -------------------------------------------------
    def _model(self, session: Session, name: str, *, lock: bool = False) -> Model:
        query = select(Model).where(Model.name == name)
        if lock:
            query = query.with_for_update()
        model = session.scalars(query).one_or_none()
        if model is None:
            known = session.scalars(select(Model.name).order_by(Model.name)).all()
            raise UnknownModelError(f"unknown model {name!r}; registered models: {known}")
        return model

    def sync_model(self, spec: ModelSpec, *, changed_by: str = "yaml") -> None:
        """Create or update the model and its requirements from the spec; record every requirement change."""
        with self._session() as session:
            stmt = insert(Model).values(name=spec.name, task=spec.task, owner=spec.owner, spec=_jsonable(spec.raw))
            stmt = stmt.on_conflict_do_update(  # only a changed spec touches the row (a sync is not an edit)
                index_elements=[Model.name],
                set_={"task": spec.task, "owner": spec.owner, "spec": stmt.excluded.spec, "updated_at": func.now()},
                where=tuple_(Model.task, Model.owner, Model.spec).is_distinct_from(
                    tuple_(stmt.excluded.task, stmt.excluded.owner, stmt.excluded.spec)),
            )
            session.execute(stmt)
            model = self._model(session, spec.name, lock=True)
            self._sync_requirements(session, model, spec.requirements, changed_by, spec.path)

    def _sync_requirements(self, session: Session, model: Model, wanted: Iterable[RequirementSpec],
                           changed_by: str, path: Path) -> None:
        existing = {
            (r.metric, r.relative_to, r.scope, r.direction): r
            for r in session.scalars(select(Requirement).where(Requirement.model_id == model.id))
        }
        seen = set()
        for spec in wanted:
            key = (spec.metric, spec.relative_to, spec.scope, spec.direction)
            seen.add(key)
            req = existing.get(key)
            if req is None:
                req = Requirement(model_id=model.id, metric=spec.metric, direction=spec.direction,
                                  bound=spec.bound, relative_to=spec.relative_to, scope=spec.scope,
                                  calibrate=spec.calibrate)
                session.add(req)
                session.flush()
                why = (f"declared in {path}" if spec.calibrate is None else
                       f"declared in {path}; no bound until the first champion's back-test calibrates it "
                       f"at a false-alarm rate of {spec.calibrate:g}")
                session.add(RequirementChange(requirement_id=req.id, old_bound=None, new_bound=spec.bound,
                                              change="created", changed_by=changed_by, reason=why))
            elif not req.active or _yaml_bound_changed(session, req, spec.bound):
                session.add(RequirementChange(requirement_id=req.id, old_bound=req.bound if req.active else None,
                                              new_bound=spec.bound, change="edited", changed_by=changed_by,
                                              reason=f"bound edited in {path}"))
                req.bound, req.active, req.updated_at = spec.bound, True, func.now()
            req.calibrate = spec.calibrate
        for key, req in existing.items():
            if key not in seen and req.active:
                req.active, req.updated_at = False, func.now()
                session.add(RequirementChange(requirement_id=req.id, old_bound=req.bound, new_bound=None,
                                              change="removed", changed_by=changed_by, reason=f"removed from {path}"))

    def requirements(self, model: str, scope: str | None = None) -> list[entities.Requirement]:
        """The model's active requirements (of one scope when given), each with its history."""
        with self._session() as session:
            m = self._model(session, model)
            query = (select(Requirement).options(selectinload(Requirement.history))
                     .where(Requirement.model_id == m.id, Requirement.active).order_by(Requirement.id))
            if scope:
                query = query.where(Requirement.scope == scope)
            return [_requirement(r) for r in session.scalars(query)]

    def model_names(self) -> list[str]:
        """Names of every model the registry knows, sorted."""
        with self._session() as session:
            return list(session.scalars(select(Model.name).order_by(Model.name)))

    # -- search trials and versions ----------------------------------------------
    def record_trials(self, model: str, run_id: str, trials: Iterable[dict[str, Any]]) -> int:
        """Store a run's search trials in one transaction; returns how many were new.

        A recorded trial is never rewritten: the trials of a run are fixed once stored, so the version a
        promotion points to keeps its recorded origin whatever a re-run would sample.
        """
        with self._session() as session:
            m = self._model(session, model)
            written = 0
            for trial in trials:
                stmt = insert(SearchTrial).values(model_id=m.id, run_id=run_id, **_jsonable(trial))
                written += session.execute(stmt.on_conflict_do_nothing(constraint="uq_trial_run_index")).rowcount
            return written

    def trials(self, model: str, run_id: str | None = None) -> list[entities.Trial]:
        """The model's recorded search trials (of one run when given), in the order they were stored."""
        with self._session() as session:
            m = self._model(session, model)
            query = select(SearchTrial).where(SearchTrial.model_id == m.id).order_by(SearchTrial.id)
            if run_id:
                query = query.where(SearchTrial.run_id == run_id)
            return [_trial(t) for t in session.scalars(query)]

    def run_versions(self, model: str, run_id: str) -> dict[int, int]:
        """The versions a run registered: trial index -> version number."""
        with self._session() as session:
            m = self._model(session, model)
            return dict(session.execute(
                select(SearchTrial.trial_index, ModelVersion.version)
                .join(ModelVersion, ModelVersion.trial_id == SearchTrial.id)
                .where(SearchTrial.model_id == m.id, SearchTrial.run_id == run_id)).all())

    def register_version(self, model: str, *, run_id: str, trial_index: int | None, **fields: Any) -> int:
        """Add a version and return its number; the same (run, trial) registered twice returns the existing one.

        `trial_index` names the recorded trial of `run_id` the version was refitted from (None for a
        version that no search produced); `fields` are the version's columns (estimator, artifact...).
        """
        with self._session() as session:
            m = self._model(session, model, lock=True)  # serialises version numbering per model
            trial_id = None
            if trial_index is not None:
                trial_id = session.scalar(select(SearchTrial.id).where(
                    SearchTrial.model_id == m.id, SearchTrial.run_id == run_id,
                    SearchTrial.trial_index == trial_index))
                if trial_id is None:
                    raise NotFoundError(f"model {model!r} has no trial {trial_index} in run {run_id!r}")
            existing = session.scalars(select(ModelVersion.version).where(
                ModelVersion.model_id == m.id, ModelVersion.run_id == run_id,
                ModelVersion.trial_id == trial_id)).one_or_none()
            if existing is not None:
                return existing
            number = (session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == m.id))
                      or 0) + 1
            session.add(ModelVersion(model_id=m.id, version=number, run_id=run_id, trial_id=trial_id,
                                     **_jsonable(fields)))
            _notify_changed(session, m)  # a new version may be the candidate a serving split routes to
            return number

    def versions(self, model: str, *, with_artifact: bool = False) -> list[entities.Version]:
        """Every version of the model, oldest first (artifact bytes only when `with_artifact`)."""
        with self._session() as session:
            m = self._model(session, model)
            query = _versions_query(with_artifact).where(ModelVersion.model_id == m.id).order_by(ModelVersion.version)
            return [_version(v, model, with_artifact) for v in session.scalars(query)]

    def version(self, model: str, version: int, *, with_artifact: bool = False) -> entities.Version:
        """One version of the model (artifact bytes only when `with_artifact`).

        Raises:
            NotFoundError: the model has no such version; the message lists its versions.
        """
        with self._session() as session:
            m = self._model(session, model)
            return _version(self._version_row(session, m, version, with_artifact=with_artifact), model, with_artifact)

    def load_estimator(self, model: str, version: int) -> Any:
        """The fitted estimator of a version, checksum-verified and loaded with trusted types only."""
        from ratchet.modeling import artifacts

        row = self.version(model, version, with_artifact=True)
        return artifacts.load(row.artifact, row.artifact_sha256, row.artifact_format)

    def latest_run_versions(self, model: str) -> list[entities.Version]:
        """Versions registered by the most recent retrain run of the model."""
        with self._session() as session:
            m = self._model(session, model)
            last_run = session.scalars(select(ModelVersion.run_id).where(ModelVersion.model_id == m.id)
                                       .order_by(ModelVersion.version.desc()).limit(1)).first()
            if last_run is None:
                return []
            query = _versions_query(False).where(ModelVersion.model_id == m.id, ModelVersion.run_id == last_run)
            return [_version(v, model) for v in session.scalars(query.order_by(ModelVersion.version))]

    def trial_records(self, model: str) -> dict[int, entities.TrialRecord]:
        """Per version: the days of now-tests stored since it entered trial, and the days with a breach; and its
        served days and served breach days as a split's candidate.

        A day counts when its now-test was stored after the version's `trial_started_at`, so back-filled
        runs of past dates count as trial days as well; any failed row on a counted day is a breach. A served
        day is a day whose served evaluation of the version's candidate arm ('v<N>@candidate') says it answered
        at least one row in the day before the run's data end (`served_in_day`) and has no failed row.
        """
        with self._session() as session:
            m = self._model(session, model)
            days: dict[str, dict[int, list[str]]] = {k: defaultdict(list) for k in ("days", "breach_days",
                                                                                    "served_days",
                                                                                    "served_breach_days")}
            for number, kind, day, breached, served in session.execute(
                    select(ModelVersion.version, Evaluation.kind, Evaluation.partition,
                           func.bool_or(Evaluation.passed.is_(False)),
                           func.max(Evaluation.details["served_in_day"].as_integer()))
                    .join(Evaluation, Evaluation.version_id == ModelVersion.id)
                    .where(ModelVersion.model_id == m.id, Evaluation.created_at >= ModelVersion.trial_started_at,
                           (Evaluation.kind == "nowtest")
                           | ((Evaluation.kind == "served") & Evaluation.contender.endswith("@candidate")))
                    .group_by(ModelVersion.version, Evaluation.kind, Evaluation.partition)
                    .order_by(ModelVersion.version, Evaluation.partition)):
                if kind == "nowtest":
                    days["days"][number].append(day)
                    if breached:
                        days["breach_days"][number].append(day)
                elif breached:
                    days["served_breach_days"][number].append(day)
                elif served:
                    days["served_days"][number].append(day)
            numbers = session.scalars(select(ModelVersion.version).where(ModelVersion.model_id == m.id))
            return {n: entities.TrialRecord(n, **{k: tuple(v[n]) for k, v in days.items()}) for n in numbers}

    # -- aliases ----------------------------------------------------------------
    def champion(self, model: str) -> entities.Version | None:
        """The model's champion version (without artifact bytes), None while it has none."""
        with self._session() as session:
            m = self._model(session, model)
            row = session.scalars(_versions_query(False).join(Alias, Alias.version_id == ModelVersion.id).where(
                Alias.model_id == m.id, Alias.alias == CHAMPION)).one_or_none()
            return None if row is None else _version(row, model)

    def trial_versions(self, model: str) -> tuple[entities.Version | None, list[entities.Version]]:
        """The champion (or None) and the versions in trial (`entities.in_trial`), newest first."""
        champion = self.champion(model)
        number = champion.version if champion else None
        trial = [v for v in self.versions(model) if in_trial(v.version, number)]
        return champion, trial[::-1]

    def _move_champion(self, session: Session, model: Model, version: ModelVersion,
                       expected_previous_id: int | None) -> None:
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
        _notify_changed(session, model)

    # -- evaluations and reports -------------------------------------------------
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
            self._upsert_evaluations(session, m, rows)
            _upsert_days(session, m, days)
            _insert_golden_cases(session, m, golden_cases)
            return _insert_alert(session, m, alert) if alert else None

    def _upsert_evaluations(self, session: Session, m: Model, rows: list[EvaluationRow]) -> None:
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
                    data_fingerprint=row.data_fingerprint, passed=row.passed, details=_jsonable(row.details),
                ))
            stmt = insert(Evaluation).values(values)
            stmt = stmt.on_conflict_do_update(
                constraint="uq_evaluation_key",
                set_={k: stmt.excluded[k] for k in ("value", "n_rows", "run_id", "window_start", "window_end",
                                                     "data_fingerprint", "passed", "details", "version_id",
                                                     "baseline")} | {"created_at": func.now()},
            )
            session.execute(stmt)

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
            stmt = insert(BacktestReport).values(model_id=m.id, run_id=run_id, summary=_jsonable(summary), html=html)
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

    # -- promotions ------------------------------------------------------------
    def promotions(self, model: str) -> list[entities.Promotion]:
        """Every recorded promotion decision of the model, oldest first."""
        with self._session() as session:
            m = self._model(session, model)
            numbers = _version_numbers(session, m)
            rows = session.scalars(select(Promotion).where(Promotion.model_id == m.id).order_by(Promotion.id))
            return [_promotion(p, model, numbers) for p in rows]

    def models_with_version(self, version: int) -> list[str]:
        """Names of the models that have a version with this number (for precise error messages)."""
        with self._session() as session:
            return list(session.scalars(select(Model.name).join(ModelVersion, ModelVersion.model_id == Model.id)
                                        .where(ModelVersion.version == version).order_by(Model.name)))

    def record_promotion(self, model: str, version: int, *, kind: str, outcome: str, triggered_by: str,
                         reason: str, gates: list[dict[str, Any]], run_id: str | None,
                         expected_previous_version: int | None, ratchet_steps: Iterable[RatchetStep] = (),
                         comment: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        """Store a promotion decision; when `outcome` is 'promoted', also move the champion and ratchet.

        All of it is one transaction under a lock on the model row: two promotions of one model
        serialise here, and the second finds the champion moved (ConcurrentPromotionError) and
        changes nothing. A decision that is not 'promoted' (rejected, dry run, proposed) only writes its own
        row; re-running the same Airflow run replaces that row instead of adding another.
        Returns the promotion id and the ratchet changes applied (requirement id, metric, old, new).
        """
        with self._session() as session:
            m = self._model(session, model, lock=True)
            target = self._version_row(session, m, version)
            previous = (self._version_row(session, m, expected_previous_version)
                        if expected_previous_version is not None else None)
            row = None
            if outcome != "promoted" and run_id is not None:
                row = session.scalars(select(Promotion).where(
                    Promotion.model_id == m.id, Promotion.run_id == run_id, Promotion.version_id == target.id,
                    Promotion.outcome == outcome)).one_or_none()
            if outcome == "promoted":
                self._move_champion(session, m, target, previous.id if previous else None)
            if row is None:
                row = Promotion(model_id=m.id, version_id=target.id)
                session.add(row)
            row.previous_version_id = previous.id if previous else None
            row.kind, row.outcome, row.triggered_by, row.reason = kind, outcome, triggered_by, reason
            row.comment = comment
            row.gates, row.dry_run, row.run_id = _jsonable(gates), outcome == "dry_run", run_id
            session.flush()
            applied = self._apply_ratchet(session, m, row, triggered_by, ratchet_steps) if outcome == "promoted" else []
            return row.id, applied

    def _version_row(self, session: Session, model: Model, version: int, *,
                     with_artifact: bool = False) -> ModelVersion:
        row = session.scalars(_versions_query(with_artifact).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version)).one_or_none()
        if row is None:
            numbers = sorted(_version_numbers(session, model).values())
            raise NotFoundError(f"model {model.name!r} has no version {version}; its versions: {numbers}")
        return row

    def _apply_ratchet(self, session: Session, model: Model, promotion: Promotion, changed_by: str,
                       steps: Iterable[RatchetStep]) -> list[dict[str, Any]]:
        """Tighten bounds; each step is re-checked against the locked row so a bound never loosens."""
        applied = []
        for step in steps:
            req = session.scalars(select(Requirement).where(
                Requirement.id == step.requirement_id, Requirement.model_id == model.id,
                Requirement.active).with_for_update()).one_or_none()
            if req is None:
                continue
            stricter = step.new_bound < req.bound if req.direction == "max" else step.new_bound > req.bound
            if not stricter:
                continue
            session.add(RequirementChange(requirement_id=req.id, old_bound=req.bound, new_bound=step.new_bound,
                                          change="ratchet", changed_by=changed_by, reason=step.reason,
                                          promotion_id=promotion.id, derivation=_jsonable(step.derivation)))
            applied.append({"requirement_id": req.id, "metric": req.metric, "scope": req.scope,
                            "relative_to": req.relative_to, "direction": req.direction,
                            "old_bound": req.bound, "new_bound": step.new_bound})
            req.bound, req.updated_at = step.new_bound, func.now()
        return applied

    # -- alerts outbox ---------------------------------------------------------
    def enqueue_alert(self, model: str, *, dedupe_key: str, source: str, run_id: str | None,
                      recipients: list[str], subject: str, body_text: str, body_html: str | None = None,
                      link: str | None = None) -> int:
        """Write an alert to the outbox once per dedupe key; returns its id."""
        draft = entities.AlertDraft(dedupe_key, source, run_id, tuple(recipients), subject, body_text, body_html,
                                    link)
        with self._session() as session:
            return _insert_alert(session, self._model(session, model), draft)

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

    # -- golden cases ----------------------------------------------------------
    def add_golden_cases(self, model: str, cases: Iterable[dict[str, Any]]) -> int:
        """Insert cases not already present (by case_key). Returns how many were new."""
        with self._session() as session:
            return _insert_golden_cases(session, self._model(session, model), cases)

    def golden_cases(self, model: str) -> list[entities.GoldenCase]:
        """Every golden case of the model (from its file and harvested), oldest first."""
        with self._session() as session:
            m = self._model(session, model)
            return [entities.GoldenCase(c.case_key, c.source, c.name, c.inputs, c.expected, c.tolerance, c.created_at)
                    for c in session.scalars(select(GoldenCase).where(GoldenCase.model_id == m.id)
                                             .order_by(GoldenCase.id))]

    def sync_golden_file(self, model: str, cases: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Make the model's 'file' cases exactly `cases` (by case_key) in one transaction.

        New keys are added, an existing key takes the file's name, expectation and tolerance, and
        file cases no longer in the file are removed. Harvested cases are never touched.
        """
        cases = [dict(case, source="file") for case in cases]
        with self._session() as session:
            m = self._model(session, model, lock=True)
            existing = set(session.scalars(select(GoldenCase.case_key).where(
                GoldenCase.model_id == m.id, GoldenCase.source == "file")))
            keys = {case["case_key"] for case in cases}
            stale = existing - keys
            if stale:
                session.execute(delete(GoldenCase).where(GoldenCase.model_id == m.id, GoldenCase.source == "file",
                                                         GoldenCase.case_key.in_(stale)))
            for case in cases:
                stmt = insert(GoldenCase).values(model_id=m.id, **_jsonable(case))
                session.execute(stmt.on_conflict_do_update(
                    constraint="uq_golden_case",
                    set_={k: stmt.excluded[k] for k in ("name", "inputs", "expected", "tolerance")},
                    where=GoldenCase.source == "file"))
            return {"added": len(keys - existing), "removed": len(stale), "kept": len(keys & existing)}

    # -- serving ----------------------------------------------------------------
    def log_served(self, rows: Iterable[entities.Served]) -> int:
        """Append the REST service's answers (one batch, one transaction); returns how many rows were written.

        Rows of models the registry does not know are refused with `UnknownModelError`, the whole batch with them.
        """
        rows = list(rows)
        if not rows:
            return 0
        with self._session() as session:
            ids = dict(session.execute(select(Model.name, Model.id).where(
                Model.name.in_({r.model for r in rows}))).tuples().all())
            unknown = sorted({r.model for r in rows} - set(ids))
            if unknown:
                raise UnknownModelError(f"served rows name unknown model(s) {unknown}")
            session.execute(insert(ServedPrediction), [
                {"model_id": ids[r.model], **{k: getattr(r, k) for k in _SERVED_FIELDS}} for r in rows])
        return len(rows)

    def served(self, model: str, start: dt.datetime, end: dt.datetime) -> list[entities.Served]:
        """What the service answered for the model with `start <= served_at < end`, oldest first."""
        with self._session() as session:
            m = self._model(session, model)
            found = session.scalars(select(ServedPrediction).where(
                ServedPrediction.model_id == m.id, ServedPrediction.served_at >= start,
                ServedPrediction.served_at < end).order_by(ServedPrediction.served_at, ServedPrediction.id))
            return [entities.Served(model=model, **{k: getattr(r, k) for k in _SERVED_FIELDS}) for r in found]

    def served_answers(self, model: str, start: dt.datetime,
                       end: dt.datetime) -> list[tuple[entities.Served, int]]:
        """For each (arm, version, feature id) answered (status < 400) with `start <= feature_id < end` (naive UTC
        time keys), whenever it was served: its latest answer and how many answers were logged for it.

        De-duplicated in SQL, so a window whose ids were asked a million times still reads one row per id.
        """
        sp = ServedPrediction
        key = (sp.arm, sp.version, sp.feature_id)
        with self._session() as session:
            m = self._model(session, model)
            ranked = (select(sp.id, func.count().over(partition_by=key).label("answers"),
                             func.row_number().over(partition_by=key, order_by=(sp.served_at.desc(), sp.id.desc()))
                             .label("rank"))
                      .where(sp.model_id == m.id, sp.status < 400, sp.feature_id >= start, sp.feature_id < end)
                      .subquery())
            found = session.execute(select(sp, ranked.c.answers).join(ranked, ranked.c.id == sp.id)
                                    .where(ranked.c.rank == 1).order_by(*key))
            return [(entities.Served(model=model, **{k: getattr(r, k) for k in _SERVED_FIELDS}), answers)
                    for r, answers in found]

    def serving_log(self, model: str, start: dt.datetime, end: dt.datetime,
                    period: dt.timedelta = dt.timedelta(days=1)) -> entities.ServingLog:
        """The model's serving log and every replica's probes over [start, end), aggregated in SQL per period of
        `period` counted from `start`: per (arm, version) and in all, one latency per request (see `ServingStats`).
        """
        with self._session() as session:
            m = self._model(session, model)
            stride = bindparam("stride", period, type_=Interval())
            origin = bindparam("origin", start, type_=DateTime(timezone=True))
            sp = ServedPrediction
            answered = sp.status < 400
            per_request = (select(func.date_bin(stride, sp.served_at, origin).label("start"), sp.arm, sp.version,
                                  sp.request_id, func.max(sp.latency_ms).label("latency"),
                                  func.max(sp.status).label("status"),
                                  func.count().filter(answered).label("answered"),
                                  func.count().filter(answered & sp.cache_hit).label("hits"))
                           .where(sp.model_id == m.id, sp.served_at >= start, sp.served_at < end)
                           .group_by(text("1"), sp.arm, sp.version, sp.request_id).cte())
            both = union_all(_request_stats(per_request, by_arm=True), _request_stats(per_request, by_arm=False))
            stats = [entities.ServingStats(*row) for row in session.execute(
                both.order_by(text("start, arm NULLS FIRST, version NULLS FIRST")))]
            probe_start = func.date_bin(stride, ServingProbe.probed_at, origin)
            probes = [entities.ProbeStats(*row) for row in session.execute(
                select(probe_start, func.count(), func.count().filter(ServingProbe.healthy),
                       func.count(func.distinct(func.date_trunc("minute", ServingProbe.probed_at)))
                       .filter(ServingProbe.healthy))
                .where(ServingProbe.probed_at >= start, ServingProbe.probed_at < end)
                .group_by(probe_start).order_by(probe_start))]
            first = session.scalar(select(func.min(ServingProbe.probed_at)))
            return entities.ServingLog(start, end, period, tuple(stats), tuple(probes), first)

    def record_probe(self, probe: entities.Probe) -> None:
        """Store one health check of a service replica."""
        with self._session() as session:
            session.add(ServingProbe(replica=probe.replica, healthy=probe.healthy, detail=probe.detail,
                                     probed_at=probe.probed_at))

    def probes(self, start: dt.datetime, end: dt.datetime) -> list[entities.Probe]:
        """Every replica's health checks with `start <= probed_at < end`, oldest first."""
        with self._session() as session:
            found = session.scalars(select(ServingProbe).where(
                ServingProbe.probed_at >= start, ServingProbe.probed_at < end).order_by(ServingProbe.probed_at))
            return [entities.Probe(r.replica, r.healthy, r.detail, r.probed_at) for r in found]



# -- rows to entities ------------------------------------------------------------------------
_SERVED_FIELDS = [f.name for f in dataclass_fields(entities.Served) if f.name != "model"]


def _request_stats(requests: Any, *, by_arm: bool):
    """Per period (and per arm and version when `by_arm`): the `ServingStats` columns over the per-request rows of
    `serving_log`; otherwise arm and version are NULL and every request of the period counts once."""
    c = requests.c
    keys = [c.arm, c.version] if by_arm else [null().label("arm"), null().label("version")]
    refused = c.status.between(400, 499)
    return (select(c.start, *keys, func.count().label("requests"), func.sum(c.answered).cast(Integer),
                   func.sum(c.hits).cast(Integer), func.count().filter(c.status >= 500), func.count().filter(refused),
                   func.percentile_cont(0.5).within_group(c.latency).filter(~refused),
                   func.percentile_cont(0.95).within_group(c.latency).filter(~refused))
            .group_by(c.start, *(keys if by_arm else [])))


def _notify_changed(session: Session, model: Model) -> None:
    """NOTIFY `MODELS_CHANGED` with the model's name; PostgreSQL delivers it only if the transaction commits."""
    session.execute(text("SELECT pg_notify(:channel, :model)"), {"channel": MODELS_CHANGED, "model": model.name})


def _versions_query(with_artifact: bool):
    query = select(ModelVersion)
    return query if with_artifact else query.options(defer(ModelVersion.artifact))


def _version_numbers(session: Session, model: Model) -> dict[int, int]:
    """Version row id -> version number, for the model."""
    return dict(session.execute(select(ModelVersion.id, ModelVersion.version)
                                .where(ModelVersion.model_id == model.id)).all())


def _version(row: ModelVersion, model: str, with_artifact: bool = False) -> entities.Version:
    return entities.Version(
        model=model, version=row.version, estimator_class=row.estimator_class, hyperparameters=row.hyperparameters,
        artifact_sha256=row.artifact_sha256, artifact_format=row.artifact_format, train_start=row.train_start,
        train_end=row.train_end, dataset_fingerprint=row.dataset_fingerprint, features=tuple(row.features),
        target=row.target, package_versions=row.package_versions, author=row.author, fit_seconds=row.fit_seconds,
        predict_latency_p95_ms=row.predict_latency_p95_ms, size_bytes=row.size_bytes, cv_metric=row.cv_metric,
        cv_score=row.cv_score, run_id=row.run_id, trial_started_at=row.trial_started_at, created_at=row.created_at,
        artifact=row.artifact if with_artifact else None)


def _trial(row: SearchTrial) -> entities.Trial:
    return entities.Trial(run_id=row.run_id, trial_index=row.trial_index, estimator_class=row.estimator_class,
                          params=row.params, sampling=row.sampling, metric=row.metric, fold_scores=row.fold_scores,
                          mean_score=row.mean_score, fit_seconds=row.fit_seconds, error=row.error,
                          created_at=row.created_at)


def _evaluation(row: Evaluation, version: int | None) -> entities.Evaluation:
    return entities.Evaluation(
        kind=row.kind, contender=row.contender, partition=row.partition, metric=row.metric, value=row.value,
        n_rows=row.n_rows, run_id=row.run_id, version=version, baseline=row.baseline,
        window_start=row.window_start, window_end=row.window_end, data_fingerprint=row.data_fingerprint,
        passed=row.passed, details=row.details, created_at=row.created_at)


def _requirement(row: Requirement) -> entities.Requirement:
    history = tuple(entities.RequirementChange(c.old_bound, c.new_bound, c.change, c.changed_by, c.reason,
                                               c.promotion_id, c.changed_at, c.derivation) for c in row.history)
    return entities.Requirement(id=row.id, metric=row.metric, direction=row.direction, bound=row.bound,
                                relative_to=row.relative_to, scope=row.scope, history=history,
                                calibrate=row.calibrate)


def _promotion(row: Promotion, model: str, numbers: dict[int, int]) -> entities.Promotion:
    return entities.Promotion(
        id=row.id, model=model, version=numbers[row.version_id], previous_version=numbers.get(row.previous_version_id),
        kind=row.kind, outcome=row.outcome, triggered_by=row.triggered_by, reason=row.reason, gates=row.gates,
        dry_run=row.dry_run, run_id=row.run_id, created_at=row.created_at, comment=row.comment)


def _alerts_query():
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


def _upsert_days(session: Session, model: Model, days: Iterable[entities.DayRow]) -> None:
    """Store each (contender, month) of back-test days, replacing what a run stored before for it."""
    values = [dict(model_id=model.id, contender=d.contender, partition=d.partition, days=list(d.days),
                   actual=_floats(d.actual), predicted=_floats(d.predicted), loss=_floats(d.loss),
                   correct=None if d.correct is None else [bool(c) for c in d.correct],
                   data_fingerprint=d.data_fingerprint, run_id=d.run_id) for d in days]
    if values:
        stmt = insert(BacktestDay).values(values)
        session.execute(stmt.on_conflict_do_update(
            constraint="uq_backtest_day_month",
            set_={k: stmt.excluded[k] for k in ("days", "actual", "predicted", "loss", "correct", "data_fingerprint",
                                                 "run_id")} | {"created_at": func.now()}))


def _floats(values: Iterable[float] | None) -> list[float | None] | None:
    return None if values is None else [finite(v) for v in values]


def _day_series(contender: str, parts: list[BacktestDay]) -> entities.DaySeries:
    def joined(name: str) -> tuple | None:
        columns = [getattr(p, name) for p in parts]
        return None if any(c is None for c in columns) else tuple(v for c in columns for v in c)

    return entities.DaySeries(contender, joined("days"), joined("actual"), joined("predicted"), joined("loss"),
                              joined("correct"))


def _insert_alert(session: Session, model: Model, draft: entities.AlertDraft) -> int:
    """Queue the alert unless its dedupe key is already in the outbox; the id of the one that is."""
    stmt = insert(Alert).values(model_id=model.id, dedupe_key=draft.dedupe_key, source=draft.source,
                                run_id=draft.run_id, recipients=list(draft.recipients), subject=draft.subject,
                                body_text=draft.body_text, body_html=draft.body_html, link=draft.link,
                                status="queued", attempts=0)
    session.execute(stmt.on_conflict_do_nothing(index_elements=[Alert.dedupe_key]))
    return session.scalar(select(Alert.id).where(Alert.dedupe_key == draft.dedupe_key))


def _insert_golden_cases(session: Session, model: Model, cases: Iterable[dict[str, Any]]) -> int:
    """Add the cases whose key the model does not have yet; how many were new."""
    added = 0
    for case in cases:
        stmt = insert(GoldenCase).values(model_id=model.id, **_jsonable(case))
        added += session.execute(stmt.on_conflict_do_nothing(constraint="uq_golden_case")).rowcount or 0
    return added


def _yaml_bound_changed(session: Session, req: Requirement, bound: float) -> bool:
    """A YAML bound differs from what the YAML said last time (ratchet steps are not undone by a re-sync)."""
    last_yaml = session.scalars(select(RequirementChange.new_bound).where(
        RequirementChange.requirement_id == req.id, RequirementChange.change.in_(("created", "edited")))
        .order_by(RequirementChange.id.desc()).limit(1)).one_or_none()
    return last_yaml != bound


def _jsonable(value: Any) -> Any:
    """Convert NumPy scalars, paths and tuples so JSONB columns accept them."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):  # JSONB has no NaN or Infinity
        return None
    return value
