"""Search trials and the versions refitted from them: what a nightly search tried, and what it registered.

A version is numbered per model under a lock on the model row, and the same (run, trial) registered twice is one
version, so a retried retrain adds nothing. Its artifact bytes are loaded only when asked for. The helpers below
(`version_row`, `version_entity`...) are shared with the promotions, which point the champion at a version.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, defer

from ratchet.exceptions import NotFoundError
from ratchet.registry import entities
from ratchet.registry.base import Store, jsonable, notify_changed
from ratchet.registry.schema import Model, ModelVersion, SearchTrial


class VersionStore(Store):
    """A model's search trials and registered versions. Unknown versions raise `NotFoundError`, listing the
    model's versions."""

    def record_trials(self, model: str, run_id: str, trials: Iterable[dict[str, Any]]) -> int:
        """Store a run's search trials in one transaction; returns how many were new.

        A recorded trial is never rewritten: the trials of a run are fixed once stored, so the version a
        promotion points to keeps its recorded origin whatever a re-run would sample.
        """
        with self._session() as session:
            m = self._model(session, model)
            written = 0
            for trial in trials:
                stmt = insert(SearchTrial).values(model_id=m.id, run_id=run_id, **jsonable(trial))
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
                                     **jsonable(fields)))
            notify_changed(session, m)  # a new version may be the candidate a serving split routes to
            return number

    def versions(self, model: str, *, with_artifact: bool = False) -> list[entities.Version]:
        """Every version of the model, oldest first (artifact bytes only when `with_artifact`)."""
        with self._session() as session:
            m = self._model(session, model)
            query = versions_query(with_artifact).where(ModelVersion.model_id == m.id).order_by(ModelVersion.version)
            return [version_entity(v, model, with_artifact) for v in session.scalars(query)]

    def version(self, model: str, version: int, *, with_artifact: bool = False) -> entities.Version:
        """One version of the model (artifact bytes only when `with_artifact`).

        Raises:
            NotFoundError: the model has no such version; the message lists its versions.
        """
        with self._session() as session:
            m = self._model(session, model)
            return version_entity(version_row(session, m, version, with_artifact=with_artifact), model,
                                  with_artifact)

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
            query = versions_query(False).where(ModelVersion.model_id == m.id, ModelVersion.run_id == last_run)
            return [version_entity(v, model) for v in session.scalars(query.order_by(ModelVersion.version))]

    def models_with_version(self, version: int) -> list[str]:
        """Names of the models that have a version with this number (for precise error messages)."""
        with self._session() as session:
            return list(session.scalars(select(Model.name).join(ModelVersion, ModelVersion.model_id == Model.id)
                                        .where(ModelVersion.version == version).order_by(Model.name)))


def versions_query(with_artifact: bool) -> Select[tuple[ModelVersion]]:
    """SELECT of version rows, leaving the artifact bytes unread unless `with_artifact`."""
    query = select(ModelVersion)
    return query if with_artifact else query.options(defer(ModelVersion.artifact))


def version_row(session: Session, model: Model, version: int, *, with_artifact: bool = False) -> ModelVersion:
    """The row of one version of the model; `NotFoundError` listing its versions when it has no such version."""
    row = session.scalars(versions_query(with_artifact).where(
        ModelVersion.model_id == model.id, ModelVersion.version == version)).one_or_none()
    if row is None:
        numbers = sorted(version_numbers(session, model).values())
        raise NotFoundError(f"model {model.name!r} has no version {version}; its versions: {numbers}")
    return row


def version_numbers(session: Session, model: Model) -> dict[int, int]:
    """Version row id -> version number, for the model."""
    return dict(session.execute(select(ModelVersion.id, ModelVersion.version)
                                .where(ModelVersion.model_id == model.id)).all())


def version_entity(row: ModelVersion, model: str, with_artifact: bool = False) -> entities.Version:
    """The version as callers see it (artifact bytes only when `with_artifact`, so the row must have them)."""
    return entities.Version(
        model=model, version=row.version, estimator_class=row.estimator_class, hyperparameters=row.hyperparameters,
        artifact_sha256=row.artifact_sha256, artifact_format=row.artifact_format, train_start=row.train_start,
        train_end=row.train_end, dataset_fingerprint=row.dataset_fingerprint, features=tuple(row.features),
        target=row.target, package_versions=row.package_versions, author=row.author, fit_seconds=row.fit_seconds,
        predict_latency_p95_ms=row.predict_latency_p95_ms, size_bytes=row.size_bytes, cv_metric=row.cv_metric,
        cv_score=row.cv_score, run_id=row.run_id, trial_started_at=row.trial_started_at, created_at=row.created_at,
        contract=row.contract, spec_snapshot=row.spec_snapshot, code_version=row.code_version,
        python_version=row.python_version, artifact=row.artifact if with_artifact else None, details=row.details)


def _trial(row: SearchTrial) -> entities.Trial:
    return entities.Trial(run_id=row.run_id, trial_index=row.trial_index, estimator_class=row.estimator_class,
                          params=row.params, sampling=row.sampling, metric=row.metric, fold_scores=row.fold_scores,
                          mean_score=row.mean_score, fit_seconds=row.fit_seconds, error=row.error,
                          created_at=row.created_at, details=row.details)
