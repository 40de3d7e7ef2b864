"""Models and their requirements: synced from the YAML, every change of a bound kept in its history.

The YAML declares, edits or removes a requirement (`sync_model`); a promotion's ratchet tightens it (`apply_ratchet`,
inside the promotion's transaction); a person re-baselines it (`rebaseline`, or `apply_rebaseline` inside a
promotion's transaction), the only change that may loosen it. Each change is a row of `requirement_history`, and a
re-sync never undoes a ratchet step or a re-baseline: it compares the YAML with what the YAML said last time, not
with the stored bound.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, selectinload

from ratchet.exceptions import NotFoundError
from ratchet.registry import entities
from ratchet.registry.alerts import insert_alert
from ratchet.registry.base import Store, jsonable
from ratchet.registry.entities import AlertDraft, RatchetStep
from ratchet.registry.schema import Model, Requirement, RequirementChange

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec, RequirementSpec


class ModelStore(Store):
    """Models by name, and their active requirements with their history."""

    def sync_model(self, spec: ModelSpec, *, changed_by: str = "yaml") -> None:
        """Create or update the model and its requirements from the spec; record every requirement change."""
        with self._session() as session:
            stmt = insert(Model).values(name=spec.name, task=spec.task, owner=spec.owner, spec=jsonable(spec.raw))
            stmt = stmt.on_conflict_do_update(  # only a changed spec touches the row (a sync is not an edit)
                index_elements=[Model.name],
                set_={"task": spec.task, "owner": spec.owner, "spec": stmt.excluded.spec, "updated_at": func.now()},
                where=tuple_(Model.task, Model.owner, Model.spec).is_distinct_from(
                    tuple_(stmt.excluded.task, stmt.excluded.owner, stmt.excluded.spec)),
            )
            session.execute(stmt)
            model = self._model(session, spec.name, lock=True)
            _sync_requirements(session, model, spec.requirements, changed_by, spec.path)

    def requirements(self, model: str, scope: str | None = None) -> list[entities.Requirement]:
        """The model's active requirements (of one scope when given), each with its history."""
        with self._session() as session:
            m = self._model(session, model)
            query = (select(Requirement).options(selectinload(Requirement.history))
                     .where(Requirement.model_id == m.id, Requirement.active).order_by(Requirement.id))
            if scope:
                query = query.where(Requirement.scope == scope)
            return [_requirement(r) for r in session.scalars(query)]

    def rebaseline(self, model: str, steps: Iterable[RatchetStep], *, changed_by: str, run_id: str,
                   alert: AlertDraft | None = None) -> list[dict[str, Any]]:
        """Set bounds again as a person decided (`apply_rebaseline`) and queue the mail saying so, in one
        transaction under a lock on the model row: the history and the mail never go one without the other."""
        with self._session() as session:
            m = self._model(session, model, lock=True)
            applied = apply_rebaseline(session, m, None, changed_by, run_id, steps)
            if alert is not None:
                insert_alert(session, m, alert)
            return applied

    def model_names(self) -> list[str]:
        """Names of every model the registry knows, sorted."""
        with self._session() as session:
            return list(session.scalars(select(Model.name).order_by(Model.name)))


def apply_ratchet(session: Session, model: Model, promotion_id: int, changed_by: str,
                  steps: Iterable[RatchetStep]) -> list[dict[str, Any]]:
    """Tighten bounds; each step is re-checked against the locked row so a bound never loosens.

    Returns the changes applied (requirement id, metric, scope, relative_to, direction, old and new bound).
    """
    applied = []
    for step in steps:
        req = _locked_requirement(session, model, step.requirement_id)
        if req is None:
            continue
        stricter = step.new_bound < req.bound if req.direction == "max" else step.new_bound > req.bound
        if stricter:
            applied.append(_change_bound(session, req, step, "ratchet", changed_by, promotion_id))
    return applied


def apply_rebaseline(session: Session, model: Model, promotion_id: int | None, changed_by: str, run_id: str,
                     steps: Iterable[RatchetStep]) -> list[dict[str, Any]]:
    """Set bounds again, looser or stricter, as change 'rebaseline' by the person `changed_by`, under row locks.

    `run_id` (the Airflow run that decided it) is kept in the derivation: re-running that run finds its change
    and applies it once. Returns the changes applied, as `apply_ratchet` does.

    Raises:
        NotFoundError: a step's requirement is not an active requirement of the model (nothing is applied).
    """
    applied = []
    for step in steps:
        req = _locked_requirement(session, model, step.requirement_id)
        if req is None:
            raise NotFoundError(f"requirement {step.requirement_id} is not an active requirement of {model.name!r}")
        done = session.scalars(select(RequirementChange.id).where(
            RequirementChange.requirement_id == req.id, RequirementChange.change == "rebaseline",
            RequirementChange.derivation["run_id"].as_string() == run_id)).first()
        if done is None:
            step = replace(step, derivation={**(step.derivation or {}), "run_id": run_id})
            applied.append(_change_bound(session, req, step, "rebaseline", changed_by, promotion_id))
    return applied


def _locked_requirement(session: Session, model: Model, requirement_id: int) -> Requirement | None:
    return session.scalars(select(Requirement).where(
        Requirement.id == requirement_id, Requirement.model_id == model.id,
        Requirement.active).with_for_update()).one_or_none()


def _change_bound(session: Session, req: Requirement, step: RatchetStep, change: str, changed_by: str,
                  promotion_id: int | None) -> dict[str, Any]:
    """Record `step` in the requirement's history and set its bound; the change as the callers return it."""
    session.add(RequirementChange(requirement_id=req.id, old_bound=req.bound, new_bound=step.new_bound,
                                  change=change, changed_by=changed_by, reason=step.reason,
                                  promotion_id=promotion_id, derivation=jsonable(step.derivation)))
    applied = {"change": change, "requirement_id": req.id, "metric": req.metric, "scope": req.scope,
               "relative_to": req.relative_to, "direction": req.direction, "old_bound": req.bound,
               "new_bound": step.new_bound}
    req.bound, req.updated_at = step.new_bound, func.now()
    return applied


def _sync_requirements(session: Session, model: Model, wanted: Iterable[RequirementSpec],
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


def _yaml_bound_changed(session: Session, req: Requirement, bound: float) -> bool:
    """A YAML bound differs from what the YAML said last time (ratchet steps are not undone by a re-sync)."""
    last_yaml = session.scalars(select(RequirementChange.new_bound).where(
        RequirementChange.requirement_id == req.id, RequirementChange.change.in_(("created", "edited")))
        .order_by(RequirementChange.id.desc()).limit(1)).one_or_none()
    return last_yaml != bound


def _requirement(row: Requirement) -> entities.Requirement:
    history = tuple(entities.RequirementChange(c.old_bound, c.new_bound, c.change, c.changed_by, c.reason,
                                               c.promotion_id, c.changed_at, c.derivation) for c in row.history)
    return entities.Requirement(id=row.id, metric=row.metric, direction=row.direction, bound=row.bound,
                                relative_to=row.relative_to, scope=row.scope, history=history,
                                calibrate=row.calibrate)
