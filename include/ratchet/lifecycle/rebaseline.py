"""Re-baselining: a person sets a requirement's bound again, the only way a bound ever loosens.

A ratchet derives its bounds from the champion's months; after a regime change they may fail every model,
the champion included, and nothing could pass again. A person then decides: a new bound as a number, or
`calibrate: alpha` derived from a version's own back-test with the ratchet's calibration (`lifecycle.ratchet`;
by default the current champion's). The change is recorded as 'rebaseline' in the requirement's history with
who, why and the evidence (the old bound and how it had been derived, the new one and how it was), and the
owners are mailed in the same transaction. Two ways in: the `ratchet_requirements` DAG (`rebaseline`), and a
proposal's "Promote and re-baseline" (`proposal_steps`, applied with the promotion by `lifecycle.promotion`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ratchet import settings
from ratchet.alerting.mails import build_rebaseline_alert
from ratchet.alerting.outbox import alert_draft
from ratchet.evaluation.backtest import BacktestTable, metric_tables, months_of
from ratchet.exceptions import RebaselineInputError
from ratchet.lifecycle.ratchet import calibrate_backtest, calibrate_nowtest
from ratchet.registry.entities import REQUIREMENT_CHANGE, RatchetStep, version_contender
from ratchet.specs.model import COMPUTATIONAL_METRICS, SERVING_METRICS

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.registry.entities import AlertDraft, Requirement
    from ratchet.specs.model import ModelSpec

FRACTIONS = ("accuracy", "f1", "roc_auc", "serving_error_rate", "availability")  # bounds within [0, 1]


def rebaseline(registry: Registry, spec: ModelSpec, *, metric: str, scope: str, reason: str, changed_by: str,
               run_id: str, link: str, bound: float | None = None, calibrate: float | None = None,
               relative_to: str | None = None, version: int | None = None) -> list[dict[str, Any]]:
    """Set one requirement's bound again (a number, or calibrated at `calibrate` from `version`'s back-test,
    default the champion's), record it as `changed_by`'s decision and queue the owners' mail; returns the change.

    Re-running the same `run_id` changes nothing more.

    Raises:
        RebaselineInputError: a bad input, named (nothing is changed).
    """
    reason = (reason or "").strip()
    if not reason:
        raise RebaselineInputError("reason is required: say why the bound is set again (it is kept in the history)")
    if (bound is None) == (calibrate is None):
        raise RebaselineInputError(f"give exactly one of bound (a number) or calibrate (a false-alarm rate), got "
                                   f"bound={bound!r}, calibrate={calibrate!r}")
    req = _requirement(registry, spec, metric, scope, relative_to)
    if bound is not None:
        step = RatchetStep(req.id, _checked(req, bound), reason,
                           {**_evidence(req), "method": "set by a person", "text": f"set to {bound:g} by {changed_by}"})
    else:
        step = calibrated_step(registry, spec, req, _version(registry, spec, version), _alpha(calibrate), reason)
    return registry.rebaseline(spec.name, [step], changed_by=changed_by, run_id=run_id,
                               alert=_mail(spec, [(req, step)], changed_by, run_id, link))


def calibrated_step(registry: Registry, spec: ModelSpec, req: Requirement, version: int, alpha: float, reason: str,
                    backtest: BacktestTable | None = None) -> RatchetStep:
    """The step setting `req` to what `version`'s own back-test supports at a false-alarm rate of `alpha`, derived
    as the ratchet derives it (`lifecycle.ratchet`), with the old bound's evidence beside.

    Raises:
        RebaselineInputError: `req` cannot be calibrated, or the version has no back-test for it.
    """
    if req.metric in COMPUTATIONAL_METRICS + SERVING_METRICS:
        raise RebaselineInputError(f"calibrate: {req.metric} has no back-test to calibrate from; give a bound")
    backtest = backtest if backtest is not None else metric_tables(registry, spec)
    contender = version_contender(version)
    months = months_of(backtest, contender)
    found = None
    if months:
        found = (calibrate_nowtest(registry, spec, req, contender, months, alpha) if req.scope == "nowtest"
                 else calibrate_backtest(spec, req, backtest, contender, months, alpha))
    if found is None:
        raise RebaselineInputError(f"version: {spec.name} v{version} has no back-test values of {req.metric} to "
                                   "calibrate from; run ratchet_backtest first")
    bound, derivation = found
    return RatchetStep(req.id, bound, reason, {**_evidence(req), **derivation, "version": version})


def ratcheted(req: Requirement) -> bool:
    """Whether the requirement's current bound came from a ratchet (derived from an earlier champion's months)."""
    return bool(req.history) and req.history[-1].change == "ratchet"


def proposal_steps(registry: Registry, spec: ModelSpec, requirements: list[Requirement], version: int,
                   backtest: BacktestTable, *, approver: str, proposal: str) -> tuple[list[RatchetStep], AlertDraft]:
    """The steps of a proposal's "Promote and re-baseline": each ratcheted bound that fails `version` calibrated
    from its own back-test at `promotion.ratchet.false_alarm_rate`, and the owners' mail (queued with them)."""
    alpha = spec.promotion.ratchet.false_alarm_rate
    reason = f"re-baselined on promotion of v{version} from {proposal}"
    steps = [calibrated_step(registry, spec, req, version, alpha, reason, backtest) for req in requirements]
    return steps, _mail(spec, list(zip(requirements, steps, strict=True)), approver, proposal, proposal,
                        settings.card_url(spec.name, version))


def _requirement(registry: Registry, spec: ModelSpec, metric: str, scope: str, relative_to: str | None) -> Requirement:
    stored = registry.requirements(spec.name)
    found = [r for r in stored if (r.metric, r.scope, r.relative_to) == (metric, scope, relative_to or None)]
    if not found:
        known = ", ".join(_label(r.metric, r.scope, r.relative_to) for r in stored) or "none"
        raise RebaselineInputError(f"metric/scope: {spec.name} has no requirement "
                                   f"{_label(metric, scope, relative_to)}; its requirements: {known}")
    return found[0]


def _label(metric: str, scope: str, relative_to: str | None) -> str:
    return f"{metric}{' relative to ' + relative_to if relative_to else ''} ({scope})"


def _checked(req: Requirement, bound: Any) -> float:
    """`bound` if it is a bound `req` can have, else a RebaselineInputError saying what it can be."""
    if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
        raise RebaselineInputError(f"bound must be a finite number, got {bound!r}")
    if req.relative_to is not None:
        ok, expected = bound > 0, "a positive ratio to the baseline (0.9: 10% better than it)"
    elif req.metric == "mape":
        ok, expected = 0 < bound <= 1, "a fraction in (0, 1] for mape (0.08 is 8%)"
    elif req.metric in FRACTIONS:
        ok, expected = 0 <= bound <= 1, f"a fraction in [0, 1] for {req.metric}"
    elif req.metric == "r2":
        ok, expected = bound <= 1, "at most 1 for r2"
    else:
        ok, expected = bound >= 0, f"a non-negative number for {req.metric}"
    if not ok:
        raise RebaselineInputError(f"bound {bound:g} for {_label(req.metric, req.scope, req.relative_to)}: expected "
                                   f"{expected}")
    return float(bound)


def _alpha(calibrate: Any) -> float:
    if isinstance(calibrate, bool) or not isinstance(calibrate, int | float) or not 0 < calibrate < 0.5:
        raise RebaselineInputError(f"calibrate must be a false-alarm rate between 0 and 0.5 (0.05: one false alarm "
                                   f"in 20 windows), got {calibrate!r}")
    return float(calibrate)


def _version(registry: Registry, spec: ModelSpec, version: int | None) -> int:
    """The version to calibrate from: `version` when it is one of the model's, else the champion."""
    if version is None:
        champion = registry.champion(spec.name)
        if champion is None:
            raise RebaselineInputError(f"version: {spec.name} has no champion to calibrate from; name a version")
        return champion.version
    if version not in {v.version for v in registry.versions(spec.name)}:
        raise RebaselineInputError(f"version: {spec.name} has no version {version}")
    return version


def _evidence(req: Requirement) -> dict[str, Any]:
    """The bound being replaced and how it had been set (its last change)."""
    last = req.history[-1] if req.history else None
    return {"old_bound": req.bound, "old_change": last.change if last else None,
            "old_reason": last.reason if last else None, "old_derivation": last.derivation if last else None}


def _mail(spec: ModelSpec, changes: list[tuple[Requirement, RatchetStep]], changed_by: str, run_id: str,
          link: str, card_url: str | None = None) -> AlertDraft:
    lines = [(_label(req.metric, req.scope, req.relative_to), req.direction, req.bound, step.new_bound,
              step.derivation.get("text", ""), (step.derivation.get("old_derivation") or {}).get("text", ""))
             for req, step in changes]
    return alert_draft(spec, REQUIREMENT_CHANGE, run_id,
                       build_rebaseline_alert(spec.name, lines, changed_by, changes[0][1].reason, link, card_url))
