"""Promotion gates: a version becomes champion only through them, and every decision is recorded.

Gates (each stored with its evidence):
  1 requirements      the version's back-test means meet every back-test and gate requirement
  2 beats_champion    better than the champion on the common back-test months, by `min_improvement`
                      on the mean of the model's metric and winning `min_months_won` months; while the
                      champion breaches its now-test, better on the now-test rows after the candidate's
                      training data instead (and no worse on the back-test than `min_improvement` allows)
  3 regression_tests  the model's golden cases pass with the version's stored estimator
  4 trial             `min_trial_days` days since the version entered trial, no breach: now-test days, or
                      days it served as a split's candidate (`promotion.trial_days_from: served`)
  5 computational     latency and size bounds hold for the version
The first champion of a model (kind 'initial') and a rollback to a former champion (kind
'rollback') pass through gates 1, 3 and 5 only.

Proposals: `propose` records ('proposed') a candidate in trial that passes every gate, for a person to
approve; approving runs `promote` (the gates again, then the move), rejecting records `decline`. A candidate
that passes every gate but bounds the ratchet derived from a former champion's months (`rebaseline_only`) is
proposed too: only a person's "Promote and re-baseline" (`promote(rebaseline=True)`) can promote it, setting
those bounds again from its own back-test (`lifecycle.rebaseline`) in the promotion's transaction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from statistics import fmean
from typing import Any

import pandas as pd

from ratchet.evaluation.backtest import BacktestTable, baseline_means, means_on, metric_tables, months_of
from ratchet.evaluation.golden import run_golden_cases
from ratchet.evaluation.nowtest import ROWS, TRIAL_LIMIT, comparison_metric
from ratchet.evaluation.requirements import check_requirements
from ratchet.exceptions import NotFoundError, PromotionInputError, PromotionRejected, UnknownModelError
from ratchet.lifecycle.ratchet import ratchet_steps
from ratchet.lifecycle.rebaseline import proposal_steps, ratcheted
from ratchet.modeling.metrics import better, daily_losses, improvement
from ratchet.modeling.statistics import diebold_mariano, period_losses
from ratchet.registry import Registry
from ratchet.registry.entities import NOWTEST, AlertDraft, Promotion, Requirement, Version
from ratchet.specs import get_spec
from ratchet.specs.model import COMPUTATIONAL_METRICS, ModelSpec, lower_is_better

log = logging.getLogger(__name__)

GATE_NUMBERS = {"requirements": 1, "beats_champion": 2, "regression_tests": 3, "trial": 4, "computational": 5}
SHORT_KINDS = ("initial", "rollback")  # kinds that pass through gates 1, 3 and 5 only
PROPOSER = "ratchet"  # who a proposal is recorded as triggered by


@dataclass(frozen=True)
class Gate:
    """One gate's verdict on a version, with a one-line summary and the evidence behind it."""

    name: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> int:
        """The gate's number (1 requirements .. 5 computational)."""
        return GATE_NUMBERS[self.name]

    def as_dict(self) -> dict[str, Any]:
        """The verdict as stored with the promotion decision."""
        return {"gate": self.number, "name": self.name, "passed": self.passed, "summary": self.summary,
                "details": self.details}


@dataclass(frozen=True)
class PromotionOutcome:
    """A promotion decision: the kind, the outcome, every gate and the ratchet changes applied."""

    model: str
    version: int
    kind: str  # 'initial' | 'promotion' | 'rollback'
    outcome: str  # 'promoted' | 'rejected' | 'dry_run' | 'proposed', or 'review' (gates evaluated, nothing recorded)
    gates: tuple[Gate, ...]
    previous_version: int | None
    promotion_id: int | None
    ratchet_changes: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        """Every gate passed."""
        return all(g.passed for g in self.gates)

    def describe(self) -> str:
        """The decision, each gate and each ratchet change, one line each (for the task log)."""
        lines = [f"{self.model} v{self.version} ({self.kind}, previous champion "
                 f"{'v' + str(self.previous_version) if self.previous_version else 'none'}): {self.outcome}"]
        lines += [f"  gate {g.number} {g.name}: {'pass' if g.passed else 'FAIL'} - {g.summary}" for g in self.gates]
        lines += [f"  {c['change']} {c['metric']} ({c['scope']}{', relative' if c['relative_to'] else ''}): "
                  f"{c['direction']} {c['old_bound']:.6g} -> {c['new_bound']:.6g}" for c in self.ratchet_changes]
        return "\n".join(lines)

    def markdown(self) -> str:
        """The gates as a Markdown table: what the person asked to approve a proposal reads."""
        against = f"the champion v{self.previous_version}" if self.previous_version else "no champion"
        verdict = "every gate passes" if self.passed else "a gate fails"
        lines = [f"**{self.model} v{self.version}** against {against} ({self.kind}): {verdict}.", "",
                 "| gate | verdict | evidence |", "| --- | --- | --- |"]
        lines += [f"| {g.number} {g.name} | {'pass' if g.passed else '**FAIL**'} | {_table_cell(g.summary)} |"
                  for g in self.gates]
        return "\n".join(lines)


def _table_cell(text: str) -> str:
    """`text` inside a Markdown table cell: pipes escaped, on one line."""
    return " ".join(text.split()).replace("|", "\\|")


def promote(registry: Registry, spec: ModelSpec, *, version: int, reason: str, triggered_by: str,
            dry_run: bool = False, run_id: str | None = None, comment: str | None = None,
            rebaseline: bool = False) -> PromotionOutcome:
    """Run the gates for `version` of `spec`'s model and, if all pass (and not a dry run), promote it.

    `comment` is what the person who approved a proposal wrote, stored with the decision. `rebaseline` is a
    person's "Promote and re-baseline": when gate 1 fails only on ratcheted bounds (`rebaseline_only`), those are
    set again from the version's own back-test at `promotion.ratchet.false_alarm_rate`, gate 1 judges the new
    bounds, and the change is recorded as `triggered_by`'s with the promotion, in its transaction.

    Raises:
        PromotionInputError: bad inputs (nothing stored).
        PromotionRejected: a gate failed (only the rejected decision is stored).
        ConcurrentPromotionError: another promotion of the model committed first (nothing stored).
        GoldenFileError: the model's golden file is invalid (nothing stored).
    """
    reason = _required_reason(reason, triggered_by)
    _check_version_number(version)
    candidate = _version(registry, spec.name, version)
    champion = registry.champion(spec.name)
    history = registry.promotions(spec.name)
    if champion is not None and champion.version == candidate.version:
        done = [p for p in history if p.outcome == "promoted" and p.version == version
                and run_id is not None and p.run_id == run_id]
        if done:  # a re-run of this very promotion: same state, nothing more to do
            return _recorded_outcome(done[-1])
    kind, gates, backtest = _run_gates(registry, spec, candidate, champion, history)
    reset, mail = [], None
    ids = rebaseline_only(gates) if rebaseline else []
    if ids:
        requirements = [r for r in registry.requirements(spec.name) if r.id in ids]
        reset, mail = proposal_steps(registry, spec, requirements, version, backtest, approver=triggered_by,
                                     proposal=run_id or f"promotion of v{version}")
        bounds = {step.requirement_id: step.new_bound for step in reset}
        gates = [_requirements_gate(registry, spec, candidate.contender, backtest, [], bounds)  # on the new bounds
                 if g.name == "requirements" else
                 _trial_on_new_bounds(registry, spec, candidate, g, bounds) if g.name == "trial" and not g.passed
                 else g for g in gates]
    passed = all(g.passed for g in gates)
    outcome = "dry_run" if dry_run else ("promoted" if passed else "rejected")
    steps = (ratchet_steps(registry, spec, candidate.contender, backtest, reason, version)
             if outcome == "promoted" else [])
    result = _record(registry, spec, candidate, champion, kind=kind, outcome=outcome, gates=gates,
                     triggered_by=triggered_by, reason=reason, run_id=run_id, comment=comment, ratchet=steps,
                     rebaseline=reset if outcome == "promoted" else [], alert=mail)
    if outcome == "rejected":
        raise PromotionRejected(result)
    return result


def review(registry: Registry, spec: ModelSpec, version: int) -> PromotionOutcome:
    """The gates' verdicts on `version` against the current champion, recording nothing (outcome 'review').

    What a proposal shows the person asked to approve it; `promote` evaluates the same gates again when
    the decision is taken, since the champion or the data may have changed meanwhile.
    """
    _check_version_number(version)
    candidate = _version(registry, spec.name, version)
    champion = registry.champion(spec.name)
    kind, gates, _ = _run_gates(registry, spec, candidate, champion, registry.promotions(spec.name))
    return PromotionOutcome(model=spec.name, version=version, kind=kind, outcome="review", gates=tuple(gates),
                            previous_version=champion.version if champion else None, promotion_id=None)


def propose(registry: Registry, spec: ModelSpec, *, reason: str, run_id: str) -> Promotion | None:
    """Record a proposal for the model's best candidate in trial that passes every gate now, or return None.

    A candidate that passes every gate but ratcheted bounds (`rebaseline_only`) is proposed too, after any that
    passes them all: a person can promote it only by re-baselining them.

    A model has at most one open proposal (a 'proposed' decision that no promotion or rejection of its
    version has followed): while one is open, nothing new is proposed, so a person answers one question
    per model at a time. A version is proposed once: after a person answered, it is not proposed again
    (a manual trigger can still promote it). Only candidates newer than a champion are proposed; the
    first champion is a person's choice. `run_id` names the run that proposes (the night): re-running
    it returns the proposal it recorded instead of skipping it as already open. The best candidate is
    the one with the largest improvement over the champion (gate 2).
    """
    reason = _required_reason(reason, PROPOSER)
    champion, candidates = registry.trial_versions(spec.name)
    if champion is None:
        return None
    history = registry.promotions(spec.name)
    pending = open_proposal(history)
    if pending is not None:
        return pending if pending.run_id == run_id else None
    proposed_before = {p.version for p in history if p.outcome == "proposed"}
    passing = []
    for candidate in candidates[:TRIAL_LIMIT]:  # the candidates the now-test tests, so only they gain trial days
        if candidate.version in proposed_before:
            continue
        kind, gates, _ = _run_gates(registry, spec, candidate, champion, history)
        passed = all(g.passed for g in gates)
        if passed or rebaseline_only(gates):
            gain = next(g.details["improvement"] for g in gates if g.name == "beats_champion")
            passing.append(((passed, gain), candidate, kind, gates))
    if not passing:
        return None
    _, candidate, kind, gates = max(passing, key=lambda found: found[0])
    outcome = _record(registry, spec, candidate, champion, kind=kind, outcome="proposed", gates=gates,
                      triggered_by=PROPOSER, reason=reason, run_id=run_id)
    return next(p for p in registry.promotions(spec.name) if p.id == outcome.promotion_id)


def proposal_run_id(model: str, version: int) -> str:
    """The id of the ratchet_promote run that proposes `version` of `model`: one id per version, so a re-run
    of the night that proposed it finds the run open instead of opening a second one."""
    return f"proposal__{model}__v{version}"


def open_proposal(history: list[Promotion]) -> Promotion | None:
    """The model's proposal still waiting for a person: the last 'proposed' decision that no promotion or
    rejection of the same version has followed (`history` oldest first, as `Registry.promotions` gives it)."""
    pending = None
    for decision in history:
        if decision.outcome == "proposed":
            pending = decision
        elif pending is not None and decision.version == pending.version and decision.outcome != "dry_run":
            pending = None
    return pending


def rebaseline_only(gates: list[Gate] | tuple[Gate, ...]) -> list[int]:
    """The requirements a "Promote and re-baseline" would set again, when only they stand in the way: gate 1
    failing only on bounds the ratchet derived from a former champion's months, and gate 4 failing only on now-test
    breaches of such bounds that the champion breached too, with its days counted; their ids, else none."""
    failing = {g.name: g.details for g in gates if not g.passed}
    if not failing or set(failing) - {"requirements", "trial"}:
        return []
    ids: list[int] = []
    if "requirements" in failing:
        details = failing["requirements"]
        failed = [r["requirement_id"] for r in details.get("results", []) if not r["passed"]]
        if not failed or not set(failed) <= set(details.get("ratcheted", [])):
            return []
        ids += failed
    if "trial" in failing:
        trial = failing["trial"]
        counted = trial["days"] if trial["counted"] == "nowtest" else trial["served_days"]
        if not trial.get("data_changed") or len(counted) < trial["min_trial_days"]:
            return []
        ids += [i for i in trial["data_changed"]["requirement_ids"] if i not in ids]
    return ids


def decline(registry: Registry, spec: ModelSpec, *, version: int, reason: str, rejected_by: str,
            comment: str | None, run_id: str | None) -> PromotionOutcome:
    """Record that a person rejected a proposal of `version`: a 'rejected' decision with the gates as they
    stand, who rejected it and their comment; the champion and the requirements do not change.

    Re-running the same Airflow run replaces its decision instead of adding another.
    """
    reason = _required_reason(reason, rejected_by)
    _check_version_number(version)
    candidate = _version(registry, spec.name, version)
    champion = registry.champion(spec.name)
    kind, gates, _ = _run_gates(registry, spec, candidate, champion, registry.promotions(spec.name))
    return _record(registry, spec, candidate, champion, kind=kind, outcome="rejected", gates=gates,
                   triggered_by=rejected_by, reason=reason, run_id=run_id, comment=comment)


# -- inputs -------------------------------------------------------------------------------
def _required_reason(reason: str, decided_by: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise PromotionInputError("reason is required: say why this version should become the champion")
    if not (decided_by or "").strip():
        raise PromotionInputError("triggered_by is required: who asked for this promotion")
    return reason


def _check_version_number(version: Any) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PromotionInputError(f"version must be a positive integer, got {version!r}")


def _version(registry: Registry, model: str, version: int) -> Version:
    try:
        return registry.version(model, version)
    except NotFoundError as exc:
        others = [m for m in registry.models_with_version(version) if m != model]
        hint = (f" (version {version} belongs to {others}: version numbers are per model)" if others else "")
        raise PromotionInputError(f"{exc}{hint}") from None


def _kind(candidate: Version, champion: Version | None, history: list[Promotion]) -> str:
    if champion is None:
        return "initial"
    former = any(p.outcome == "promoted" and p.version == candidate.version for p in history)
    return "rollback" if former and candidate.version < champion.version else "promotion"


def _run_gates(registry: Registry, spec: ModelSpec, candidate: Version, champion: Version | None,
               history: list[Promotion]) -> tuple[str, list[Gate], BacktestTable]:
    """The decision's kind and each gate's verdict on `candidate`, with the back-test table they read."""
    if champion is not None and champion.version == candidate.version:
        raise PromotionInputError(f"{spec.name} v{candidate.version} is already the champion; nothing to promote")
    kind = _kind(candidate, champion, history)
    backtest = metric_tables(registry, spec)
    contender = candidate.contender
    others = [] if champion is None else [champion.contender] + [
        v.contender for v in registry.trial_versions(spec.name)[1][:TRIAL_LIMIT]]
    gates = [_requirements_gate(registry, spec, contender, backtest, others)]
    if kind not in SHORT_KINDS:
        gates.append(_champion_gate(registry, spec, contender, champion.contender, backtest))
    gates.append(_regression_gate(registry, spec, candidate.version))
    if kind not in SHORT_KINDS:
        gates.append(_trial_gate(registry, spec, candidate, champion))
    gates.append(computational_gate(registry, spec, candidate))
    return kind, gates, backtest


def _record(registry: Registry, spec: ModelSpec, candidate: Version, champion: Version | None, *, kind: str,
            outcome: str, gates: list[Gate], triggered_by: str, reason: str, run_id: str | None,
            comment: str | None = None, ratchet: list | None = None, rebaseline: list | None = None,
            alert: AlertDraft | None = None) -> PromotionOutcome:
    """Store the decision (and, when it is 'promoted', move the champion, re-baseline and ratchet); log and
    return it."""
    previous = champion.version if champion else None
    promotion_id, applied = registry.record_promotion(
        spec.name, candidate.version, kind=kind, outcome=outcome, triggered_by=triggered_by, reason=reason,
        gates=[g.as_dict() for g in gates], run_id=run_id, expected_previous_version=previous,
        ratchet_steps=ratchet or [], comment=comment, rebaseline_steps=rebaseline or [],
        alert=alert if rebaseline else None)
    result = PromotionOutcome(model=spec.name, version=candidate.version, kind=kind, outcome=outcome,
                              gates=tuple(gates), previous_version=previous, promotion_id=promotion_id,
                              ratchet_changes=tuple(applied))
    log.info("%s", result.describe())
    return result


def _recorded_outcome(row: Promotion) -> PromotionOutcome:
    gates = tuple(Gate(g["name"], g["passed"], g["summary"], g.get("details", {})) for g in row.gates)
    return PromotionOutcome(model=row.model, version=row.version, kind=row.kind, outcome=row.outcome, gates=gates,
                            previous_version=row.previous_version, promotion_id=row.id)


# -- the gates ---------------------------------------------------------------------------------
def _requirements_gate(registry: Registry, spec: ModelSpec, contender: str, backtest: BacktestTable,
                       others: list[str], rebaselined: dict[int, float] | None = None) -> Gate:
    """Gate 1. `others` are the champion then the candidates in trial: when a bound the ratchet derived from
    earlier months fails all of them too on the latest months, the gate says the data changed (`_data_changed`).
    `rebaselined` (requirement id -> bound) judges with the bounds a "Promote and re-baseline" sets."""
    months = months_of(backtest, contender)
    if not months:
        return Gate("requirements", False, f"no back-test results for {contender}; run ratchet_backtest first",
                    {"months": []})
    rebaselined = rebaselined or {}
    requirements = [replace(r, bound=rebaselined.get(r.id, r.bound)) for r in registry.requirements(spec.name)
                    if r.scope in ("backtest", "gate") and r.metric not in COMPUTATIONAL_METRICS]
    values = means_on(backtest, contender, months)
    results = check_requirements(requirements, values, baseline_means(spec, backtest, months))
    by_id = {r.id: r for r in requirements}
    changed = {r.requirement_id: _data_changed(spec, by_id[r.requirement_id], backtest, contender, others)
               for r in results if not r.passed}
    failed = [r.describe() + (f": {changed[r.requirement_id]['text']}" if changed[r.requirement_id] else "")
              for r in results if not r.passed]
    summary = ("; ".join(failed) if failed else
               f"{len(results)} requirement(s) met on the mean of {len(months)} back-test month(s)")
    if rebaselined:
        summary += f" ({len(rebaselined)} of them re-baselined from {contender}'s own back-test)"
    return Gate("requirements", not failed, summary,
                {"months": months, "means": values, "results": [r.as_dict() for r in results],
                 "data_changed": [found for found in changed.values() if found],
                 "ratcheted": [r.id for r in requirements if ratcheted(r) and r.id not in rebaselined],
                 "rebaselined": rebaselined})


LATEST_MONTHS = 3  # the months gate 1 compares everyone on when a ratcheted bound fails: where a change shows first


def _data_changed(spec: ModelSpec, req: Requirement, backtest: BacktestTable, contender: str,
                  others: list[str]) -> dict[str, Any] | None:
    """When `req`'s bound came from a ratchet (derived from a champion's earlier months) and fails the champion
    (`others[0]`) and every candidate in trial on the latest months as well, the evidence and the words for it:
    no candidate can pass it, the data changed, and only a person can set it again. Else None."""
    last = req.history[-1] if req.history else None
    if not others or not ratcheted(req) or "first_month" not in (last.derivation or {}):
        return None
    latest = months_of(backtest, contender)[-LATEST_MONTHS:]
    baselines = baseline_means(spec, backtest, latest)
    scores = {}
    for name in dict.fromkeys([*others, contender]):
        values = means_on(backtest, name, latest)
        if req.metric in values:
            [result] = check_requirements([req], values, baselines)
            if result.passed or result.effective_bound is None:  # it passes, or a missing baseline is why
                return None
            scores[name] = values[req.metric]
    champion = others[0]
    candidates = {name: value for name, value in scores.items() if name != champion}
    if champion not in scores or not candidates:
        return None
    best = min(candidates, key=lambda name: candidates[name] if lower_is_better(req.metric) else -candidates[name])
    derived = f"{last.derivation['first_month']}..{last.derivation['last_month']}"
    text = (f"the bound {req.bound:.4g} was derived from {derived}; on the latest {len(latest)} months "
            f"({latest[0]}..{latest[-1]}) the champion {champion} scores {scores[champion]:.3g} and the best candidate "
            f"{best} {candidates[best]:.3g}: the data changed. A person can re-baseline it (ratchet_requirements "
            "DAG, or 'Promote and re-baseline' on the proposal)")
    return {"requirement_id": req.id, "metric": req.metric, "scope": req.scope, "bound": req.bound,
            "derived_from": derived, "latest_months": latest, "scores": scores, "text": text}


def _champion_gate(registry: Registry, spec: ModelSpec, contender: str, champion: str,
                   backtest: BacktestTable) -> Gate:
    """Gate 2: better than the champion on the common back-test months, by `min_improvement` on the mean, in
    `min_months_won` months and by the paired test. While the champion breaches its now-test, a back-test cannot
    show what a fresher fit is worth (it refits every version on the same months), so the gate judges on the
    now-test instead (`_fresh_route`) when the back-test alone does not pass."""
    metric, rules = spec.metric, spec.promotion
    mine, theirs = backtest.get(contender, {}).get(metric, {}), backtest.get(champion, {}).get(metric, {})
    months = sorted(set(mine) & set(theirs))
    details: dict[str, Any] = {"metric": metric, "champion": champion, "months": months,
                               "min_improvement": rules.min_improvement, "min_months_won": rules.min_months_won}
    if not months:
        return Gate("beats_champion", False,
                    f"no common back-test months of {contender} and the champion {champion} on {metric}", details)
    mean, champion_mean = fmean(mine[m] for m in months), fmean(theirs[m] for m in months)
    gain = improvement(metric, mean, champion_mean)
    won = [m for m in months if better(metric, mine[m], theirs[m])]
    details.update({"mean": mean, "champion_mean": champion_mean, "improvement": gain, "months_won": won,
                    "per_month": {m: {"candidate": mine[m], "champion": theirs[m]} for m in months}})
    problems = []
    if not gain >= rules.min_improvement:
        problems.append(f"{metric} mean {mean:.4g} vs champion {champion} {champion_mean:.4g}: improvement "
                        f"{gain:+.2%} < required {rules.min_improvement:.2%}")
    if len(won) < rules.min_months_won:
        problems.append(f"won {len(won)} of {len(months)} months < required {rules.min_months_won}")
    test = paired_test(registry, spec, contender, champion, months)
    details["paired_test"] = test
    if test.get("p_value") is None:
        problems.append(test["text"])
    elif not test["p_value"] < rules.significance:
        problems.append(f"not significantly better: {test['text']} >= significance {rules.significance:g}")
    summary = "; ".join(problems) or (f"{metric} mean {mean:.4g} vs champion {champion_mean:.4g} "
                                      f"({gain:+.2%}), won {len(won)} of {len(months)} months, {test['text']}")
    breach = champion_breach(registry, spec.name, champion) if problems else None
    if breach is None:
        return Gate("beats_champion", not problems, summary, details)
    return _fresh_route(registry, spec, contender, champion, breach, gain, summary, details)


def champion_breach(registry: Registry, model: str, champion: str) -> dict[str, Any] | None:
    """The champion's latest re-predicted now-test, when it breached a now-test requirement: {day, metrics};
    else None (it passed, had no verdict, the data was stale, or it has none)."""
    rows = [r for r in registry.evaluations(model, NOWTEST, contender=champion) if r.metric != ROWS]
    if not rows:
        return None
    day = max(r.partition for r in rows)
    failed = sorted({r.metric for r in rows if r.partition == day and r.passed is False})
    return {"day": day, "metrics": failed} if failed else None


def fresh_evidence(registry: Registry, model: str, champion: str, contender: str | None = None
                   ) -> dict[int, dict[str, Any]]:
    """Version -> its latest now-test evidence against `champion` on the rows after its training data
    (`evaluation.nowtest.versus_champion`), for `contender` only when given."""
    latest = {}
    for row in registry.evaluations(model, NOWTEST, contender=contender):  # oldest partition first
        versus = (row.details or {}).get("versus_champion")
        if row.version is not None and versus and versus["champion"] == champion:
            latest[row.version] = versus
    return latest


def _fresh_route(registry: Registry, spec: ModelSpec, contender: str, champion: str, breach: dict[str, Any],
                 gain: float, backtest_summary: str, details: dict[str, Any]) -> Gate:
    """Gate 2 while the champion breaches: the candidate beats it on the latest now-test's rows after the
    candidate's training data (both out of sample; the paired test, margin `min_improvement`, at
    `significance`), and is not worse on the back-test than `min_improvement` allows."""
    rules = spec.promotion
    fresh = fresh_evidence(registry, spec.name, champion, contender).get(int(contender[1:]))
    details.update({"route": "now-test after a champion breach", "champion_breach": breach, "now_test": fresh})
    problems = []
    if fresh is None:
        problems.append(f"no now-test of {contender} beside the champion {champion} on rows after its training data")
    elif not fresh["p_value"] < rules.significance:
        problems.append(f"not significantly better {fresh['text']} >= significance {rules.significance:g}"
                        + (" (the paired test needs 10 rows)" if fresh["rows"] < 10 else ""))
    if not gain >= -rules.min_improvement:
        problems.append(f"worse than the champion on the back-test by more than {rules.min_improvement:.0%}: "
                        f"{spec.metric} {gain:+.2%}")
    head = (f"the champion {champion} breaches its now-test ({', '.join(breach['metrics'])} on {breach['day']}), so "
            "gate 2 judges on the now-test")
    if problems:
        return Gate("beats_champion", False, f"{backtest_summary}; {head}: " + "; ".join(problems), details)
    return Gate("beats_champion", True, f"{head}: {fresh['text']}; on the back-test {spec.metric} {gain:+.2%} vs "
                                        f"the champion (no worse than {rules.min_improvement:.0%} allows)", details)


def paired_test(registry: Registry, spec: ModelSpec, contender: str, reference: str,
                months: list[str]) -> dict[str, Any]:
    """The Diebold–Mariano test (`modeling.statistics`) that `contender`'s back-test losses are lower than
    `reference`'s on their common rows of `months`, as gate evidence with a one-line `text`.

    Every row counts, at any frequency: the losses of the rows both predicted (same series, same time) are
    averaged per period across series (`statistics.period_losses`), and the test runs on that series of periods,
    whose Newey–West variance absorbs the dependence from one period to the next (within a day, too).

    The loss is the ranking metric's daily loss; a ranking metric that is not a mean over days is tested on
    the task's (squared error for r2, log loss for f1 and roc_auc), and the evidence says so. The margin is
    `promotion.min_improvement`: H0 is that the candidate's loss is not that much lower, so a candidate must
    be materially better, not just better than noise. Without stored days of both, `p_value` is None and the
    text says what to run.
    """
    metric = comparison_metric(spec)
    series = registry.backtest_days(spec.name, [contender, reference], months)
    if contender not in series or reference not in series:
        return {"metric": metric, "p_value": None, "text": f"no back-test days of both {contender} and {reference} "
                                                         "for a paired test; run ratchet_backtest"}
    candidate_loss, reference_loss, rows = period_losses(
        *(pd.DataFrame({"time": series[name].times, "series": series[name].series or "",
                        "loss": daily_losses(spec, metric, series[name])}) for name in (contender, reference)),
        events=spec.source.events)
    result = diebold_mariano(candidate_loss, reference_loss, margin=spec.promotion.min_improvement)
    over = f"{result.n_days} periods ({rows} rows{' of every series' if spec.source.series else ''})"
    return {"metric": metric, **result.as_dict(), "rows": rows, "significance": spec.promotion.significance,
            "text": f"paired test on {metric} loss per period over {over}: mean difference "
                    f"{result.relative_difference:+.2%} (H0: not {result.margin:.0%} better), statistic "
                    f"{result.statistic:.3g}, p = {result.p_value:.3g}"}


def _regression_gate(registry: Registry, spec: ModelSpec, version: int) -> Gate:
    result = run_golden_cases(registry, spec, version)
    return Gate("regression_tests", result.passed, result.describe(),
                {"n_cases": result.n_cases, "failures": result.failures[:50]})


TRIAL_DAY_WORDING = {"nowtest": "of now-tests in trial", "served": "served as the split's candidate"}


def data_changed_breaches(registry: Registry, spec: ModelSpec, candidate: Version,
                          champion: Version | None) -> dict[str, Any] | None:
    """The candidate's now-test breaches in trial when every one of them is of a bound the ratchet derived from a
    former champion's months that the champion breached on the same day too: the data changed under the bound, not
    the candidate (`{"days", "requirement_ids"}`, what a "Promote and re-baseline" sets again); None when it has no
    breach, a breach of a bound the YAML declared, one the champion met, or a breach of what it served."""
    trial = registry.trial_records(spec.name)[candidate.version]
    if champion is None or not trial.breach_days or trial.served_breach_days:
        return None
    ratcheted_ids = ratcheted_requirement_ids(registry, spec.name)
    mine, theirs = (_failed_by_day(registry, spec.name, c) for c in (candidate.contender, champion.contender))
    ids: set[int] = set()
    for day in trial.breach_days:
        failed = mine.get(day, set())
        if not data_changed_day(failed, theirs.get(day, set()), ratcheted_ids):
            return None
        ids |= failed
    return {"days": list(trial.breach_days), "requirement_ids": sorted(ids)}


def ratcheted_requirement_ids(registry: Registry, model: str) -> set[int]:
    """The ids of the model's requirements whose current bound a ratchet set."""
    return {r.id for r in registry.requirements(model) if ratcheted(r)}


def data_changed_day(failed: set[int], champion_failed: set[int], ratcheted_ids: set[int]) -> bool:
    """Whether a candidate's breaches of one day (`failed` requirement ids) are the data changing: each of a
    ratcheted bound the champion breached that day too."""
    return bool(failed) and failed <= ratcheted_ids and failed <= champion_failed


def _failed_by_day(registry: Registry, model: str, contender: str) -> dict[str, set[int]]:
    """Now-test day -> the ids of the requirements `contender` failed that day."""
    return {day: set(verdicts) for day, verdicts in _failed_verdicts(registry, model, contender).items()}


def _failed_verdicts(registry: Registry, model: str, contender: str) -> dict[str, dict[int, dict[str, Any]]]:
    """Now-test day -> requirement id -> the stored verdict (`RequirementResult.as_dict`) `contender` failed."""
    failed: dict[str, dict[int, dict[str, Any]]] = {}
    for row in registry.evaluations(model, NOWTEST, contender=contender):
        for verdict in (row.details or {}).get("requirements", []):
            if verdict.get("passed") is False and verdict.get("requirement_id") is not None:
                failed.setdefault(row.partition, {})[verdict["requirement_id"]] = verdict
    return failed


def _trial_on_new_bounds(registry: Registry, spec: ModelSpec, candidate: Version, gate: Gate,
                         bounds: dict[int, float]) -> Gate:
    """Gate 4 again after a "Promote and re-baseline" (`bounds`: requirement id -> new bound): the trial's
    breaches of the bounds set again are judged against them (a relative bound with the baseline value stored
    that day); a day still beyond one fails it."""
    still = []
    for day, verdicts in sorted(_failed_verdicts(registry, spec.name, candidate.contender).items()):
        for requirement_id, verdict in verdicts.items():
            bound = bounds.get(requirement_id)
            if bound is None or verdict.get("value") is None:
                continue
            if verdict.get("relative_to") and verdict.get("baseline_value") is None:
                still.append(f"{day}: {verdict['metric']} has no baseline value to apply the new bound to")
                continue
            limit = bound * verdict["baseline_value"] if verdict.get("relative_to") else bound
            if (verdict["value"] > limit) if verdict["direction"] == "max" else (verdict["value"] < limit):
                still.append(f"{day}: {verdict['metric']} {verdict['value']:.4g} beyond the new bound {limit:.4g}")
    details = {**gate.details, "rebaselined": bounds, "still_breaching": still}
    if still:
        return Gate("trial", False, "on the re-baselined bounds it still breaches: " + "; ".join(still[:5]), details)
    return Gate("trial", True, f"{len(gate.details['days'])} trial day(s); its breaches were of the bounds now "
                                "re-baselined, and it meets them on every one of those days", details)


def _trial_gate(registry: Registry, spec: ModelSpec, candidate: Version, champion: Version | None) -> Gate:
    """Gate 4: `min_trial_days` days in trial, counted from now-tests or from served days as
    `promotion.trial_days_from` says, and no breach of either kind since the version entered trial. Breaches only
    of ratcheted bounds the champion breached too (`data_changed_breaches`) still fail it, and say so: a person
    can promote the candidate by re-baselining those bounds."""
    needed, source = spec.promotion.min_trial_days, spec.promotion.trial_days_from
    trial = registry.trial_records(spec.name)[candidate.version]
    counted = trial.days if source == "nowtest" else trial.served_days
    changed = data_changed_breaches(registry, spec, candidate, champion)
    details = {"days": list(trial.days), "breach_days": list(trial.breach_days),
               "served_days": list(trial.served_days), "served_breach_days": list(trial.served_breach_days),
               "counted": source, "min_trial_days": needed, "trial_started_at": candidate.trial_started_at.isoformat(),
               "data_changed": changed}
    problems = []
    if changed:
        problems.append(f"now-test breaches on {len(trial.breach_days)} day(s) {list(trial.breach_days[:5])}, each "
                        "of a bound the ratchet derived from a former champion's months that the champion breached "
                        "too: the data changed under the bound; re-baselining it would let this candidate through")
    elif trial.breach_days:
        problems.append(f"now-test breaches on {len(trial.breach_days)} day(s): {list(trial.breach_days[:5])}")
    if trial.served_breach_days:
        problems.append(f"breaches on what it served on {len(trial.served_breach_days)} day(s): "
                        f"{list(trial.served_breach_days[:5])}")
    if len(counted) < needed:
        problems.append(f"{len(counted)} day(s) {TRIAL_DAY_WORDING[source]} < required {needed}"
                        + (" (promotion.trial_days_from: served)" if source == "served" else ""))
    other = "served" if source == "nowtest" else "nowtest"
    evidence = len(trial.days) if other == "nowtest" else len(trial.served_days)
    summary = "; ".join(problems) or (f"{len(counted)} day(s) {TRIAL_DAY_WORDING[source]}, no breach "
                                      f"({evidence} day(s) {TRIAL_DAY_WORDING[other]})")
    return Gate("trial", not problems, summary, details)


def computational_values(version: Version) -> dict[str, float]:
    """What a version's computational requirements bound, as registered: p95 single-row latency, artifact size, and
    `fit_seconds` (its refit on all history)."""
    return {"predict_latency_p95_ms": version.predict_latency_p95_ms, "model_size_bytes": version.size_bytes,
            "fit_seconds": version.fit_seconds}


def computational_gate(registry: Registry, spec: ModelSpec, candidate: Version) -> Gate:
    """Gate 5: the model's computational requirements on the version's figures as registered (also what decides
    whether a retrain's best teacher needs a student: `lifecycle.students`)."""
    requirements = [r for r in registry.requirements(spec.name) if r.metric in COMPUTATIONAL_METRICS]
    values = computational_values(candidate)
    results = check_requirements(requirements, values, {})
    failed = [r.describe() for r in results if not r.passed]
    summary = "; ".join(failed) or (f"{len(results)} computational bound(s) hold" if results
                                    else "no computational requirements")
    return Gate("computational", not failed, summary, {"values": values, "results": [r.as_dict() for r in results]})


def promote_by_name(model: str, version: int, *, reason: str, triggered_by: str, dry_run: bool = False,
                    run_id: str | None = None, comment: str | None = None, rebaseline: bool = False,
                    registry: Registry | None = None) -> PromotionOutcome:
    """Promote by model name, reading the configured specs (what the ratchet_promote DAG calls).

    Raises what `promote` raises; an unknown model is a PromotionInputError listing the configured ones.
    """
    try:
        spec = get_spec(model)
    except UnknownModelError as exc:
        raise PromotionInputError(str(exc)) from None
    own = registry is None
    registry = registry or Registry.from_settings()
    try:
        return promote(registry, spec, version=version, reason=reason, triggered_by=triggered_by,
                       dry_run=dry_run, run_id=run_id, comment=comment, rebaseline=rebaseline)
    finally:
        if own:
            registry.dispose()
