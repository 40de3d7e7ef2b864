"""Promotion gates: a version becomes champion only through them, and every decision is recorded.

Gates (each stored with its evidence):
  1 requirements      the version's back-test means meet every back-test and gate requirement
  2 beats_champion    better than the champion on the common back-test months, by `min_improvement`
                      on the mean of the model's metric and winning `min_months_won` months
  3 regression_tests  the model's golden cases pass with the version's stored estimator
  4 trial             `min_trial_days` days of now-tests since the version entered trial, no breach
  5 computational     latency and size bounds hold for the version
The first champion of a model (kind 'initial') and a rollback to a former champion (kind
'rollback') pass through gates 1, 3 and 5 only.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from ratchet.config import COMPUTATIONAL_METRICS, ModelSpec
from ratchet.registry import RatchetStep, Registry, RegistryError, version_contender
from ratchet.requirements import best_baseline, check_requirements, ratchet_bound

log = logging.getLogger(__name__)

GATE_NUMBERS = {"requirements": 1, "beats_champion": 2, "regression_tests": 3, "trial": 4, "computational": 5}
SHORT_KINDS = ("initial", "rollback")  # kinds that pass through gates 1, 3 and 5 only


class PromotionInputError(ValueError):
    """The promotion was asked for something that does not exist or makes no sense; nothing changed."""


class PromotionRejected(RuntimeError):
    """At least one gate failed: the decision is recorded as 'rejected', champion and requirements unchanged."""

    def __init__(self, outcome: "PromotionOutcome"):
        self.outcome = outcome
        failed = "; ".join(f"gate {g.number} {g.name} failed: {g.summary}" for g in outcome.gates if not g.passed)
        super().__init__(f"promotion of {outcome.model} v{outcome.version} rejected ({outcome.kind}): {failed}")


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> int:
        return GATE_NUMBERS[self.name]

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.number, "name": self.name, "passed": self.passed, "summary": self.summary,
                "details": self.details}


@dataclass(frozen=True)
class PromotionOutcome:
    model: str
    version: int
    kind: str  # 'initial' | 'promotion' | 'rollback'
    outcome: str  # 'promoted' | 'rejected' | 'dry_run'
    gates: tuple[Gate, ...]
    previous_version: int | None
    promotion_id: int | None
    ratchet_changes: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def describe(self) -> str:
        lines = [f"{self.model} v{self.version} ({self.kind}, previous champion "
                 f"{'v%s' % self.previous_version if self.previous_version else 'none'}): {self.outcome}"]
        lines += [f"  gate {g.number} {g.name}: {'pass' if g.passed else 'FAIL'} - {g.summary}" for g in self.gates]
        lines += [f"  ratchet {c['metric']} ({c['scope']}{', relative' if c['relative_to'] else ''}): "
                  f"{c['direction']} {c['old_bound']:.6g} -> {c['new_bound']:.6g}" for c in self.ratchet_changes]
        return "\n".join(lines)


def resolve_spec(specs: dict[str, ModelSpec], model: str) -> ModelSpec:
    """The configured spec of `model`, or an error naming the configured models."""
    if model not in specs:
        raise PromotionInputError(f"unknown model {model!r}; configured models: {sorted(specs)}")
    return specs[model]


def promote(registry: Registry, spec: ModelSpec, *, version: int, reason: str, triggered_by: str,
            dry_run: bool = False, run_id: str | None = None) -> PromotionOutcome:
    """Run the gates for `version` of `spec`'s model and, if all pass (and not a dry run), promote it.

    Raises PromotionInputError for bad inputs (nothing stored), PromotionRejected when a gate fails
    (only the rejected decision is stored) and ConcurrentPromotionError when another promotion of
    the model committed first (nothing stored).
    """
    reason = (reason or "").strip()
    if not reason:
        raise PromotionInputError("reason is required: say why this version should become the champion")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PromotionInputError(f"version must be a positive integer, got {version!r}")
    if not (triggered_by or "").strip():
        raise PromotionInputError("triggered_by is required: who asked for this promotion")
    candidate = _version(registry, spec.name, version)
    champion = registry.champion(spec.name)
    history = registry.promotions(spec.name)
    if champion is not None and champion.id == candidate.id:
        done = [p for p in history if p.outcome == "promoted" and p.version_id == candidate.id
                and run_id is not None and p.run_id == run_id]
        if done:  # a re-run of this very promotion: same state, nothing more to do
            return _recorded_outcome(registry, spec.name, version, done[-1])
        raise PromotionInputError(f"{spec.name} v{version} is already the champion; nothing to promote")
    kind = _kind(candidate, champion, history)

    backtest = _backtest_means(registry, spec)
    contender = version_contender(version)
    gates = [_requirements_gate(registry, spec, contender, backtest)]
    if kind not in SHORT_KINDS:
        gates.append(_champion_gate(spec, contender, version_contender(champion.version), backtest))
    gates.append(_regression_gate(registry, spec, version))
    if kind not in SHORT_KINDS:
        gates.append(_trial_gate(registry, spec, candidate))
    gates.append(_computational_gate(registry, spec, candidate))

    passed = all(g.passed for g in gates)
    outcome = "dry_run" if dry_run else ("promoted" if passed else "rejected")
    steps = _ratchet_steps(registry, spec, contender, backtest, reason, version) if outcome == "promoted" else []
    previous = champion.version if champion else None
    promotion_id, applied = registry.record_promotion(
        spec.name, version, kind=kind, outcome=outcome, triggered_by=triggered_by, reason=reason,
        gates=[g.as_dict() for g in gates], run_id=run_id, expected_previous_version=previous,
        ratchet_steps=steps)
    result = PromotionOutcome(model=spec.name, version=version, kind=kind, outcome=outcome, gates=tuple(gates),
                              previous_version=previous, promotion_id=promotion_id,
                              ratchet_changes=tuple(applied))
    log.info("%s", result.describe())
    if outcome == "rejected":
        raise PromotionRejected(result)
    return result


# -- inputs -------------------------------------------------------------------------------
def _version(registry: Registry, model: str, version: int):
    try:
        return registry.version(model, version)
    except RegistryError as exc:
        others = [m for m in registry.models_with_version(version) if m != model]
        hint = (f" (version {version} belongs to {others}: version numbers are per model)" if others else "")
        raise PromotionInputError(f"{exc}{hint}") from None


def _kind(candidate, champion, history) -> str:
    if champion is None:
        return "initial"
    former = any(p.outcome == "promoted" and p.version_id == candidate.id for p in history)
    return "rollback" if former and candidate.version < champion.version else "promotion"


def _recorded_outcome(registry: Registry, model: str, version: int, row) -> PromotionOutcome:
    numbers = {v.id: v.version for v in registry.versions(model)}
    gates = tuple(Gate(g["name"], g["passed"], g["summary"], g.get("details", {})) for g in row.gates)
    return PromotionOutcome(model=model, version=version, kind=row.kind, outcome=row.outcome, gates=gates,
                            previous_version=numbers.get(row.previous_version_id), promotion_id=row.id)


# -- back-test evidence -----------------------------------------------------------------------
def _backtest_means(registry: Registry, spec: ModelSpec) -> dict[str, dict[str, dict[str, float]]]:
    """contender -> metric -> month -> value, over the months the back-test report covers."""
    from ratchet.backtest import metric_table

    table: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for metric in spec.metrics:
        for contender, months in metric_table(registry, spec, metric).items():
            table[contender][metric] = months
    return table


def _months(backtest, contender: str) -> list[str]:
    return sorted({m for months in backtest.get(contender, {}).values() for m in months})


def _means_on(backtest, contender: str, months: list[str]) -> dict[str, float]:
    """Mean of each metric over `months` (only metrics present in every one of them)."""
    means = {}
    for metric, values in backtest.get(contender, {}).items():
        if months and all(m in values for m in months):
            means[metric] = fmean(values[m] for m in months)
    return means


def _baseline_means(spec: ModelSpec, backtest, months: list[str]) -> dict[str, dict[str, float]]:
    return {name: _means_on(backtest, name, months) for name in spec.baselines if name in backtest}


def _requirements_gate(registry: Registry, spec: ModelSpec, contender: str, backtest) -> Gate:
    months = _months(backtest, contender)
    if not months:
        return Gate("requirements", False, f"no back-test results for {contender}; run ratchet_backtest first",
                    {"months": []})
    requirements = [r for r in registry.requirements(spec.name)
                    if r.scope in ("backtest", "gate") and r.metric not in COMPUTATIONAL_METRICS]
    values = _means_on(backtest, contender, months)
    results = check_requirements(requirements, values, _baseline_means(spec, backtest, months))
    failed = [r.describe() for r in results if not r.passed]
    summary = ("; ".join(failed) if failed else
               f"{len(results)} requirement(s) met on the mean of {len(months)} back-test month(s)")
    return Gate("requirements", not failed, summary,
                {"months": months, "means": values, "results": [r.as_dict() for r in results]})


def _champion_gate(spec: ModelSpec, contender: str, champion: str, backtest) -> Gate:
    from ratchet.metrics import better, improvement

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
    summary = "; ".join(problems) or (f"{metric} mean {mean:.4g} vs champion {champion_mean:.4g} "
                                      f"({gain:+.2%}), won {len(won)} of {len(months)} months")
    return Gate("beats_champion", not problems, summary, details)


# -- the other gates ---------------------------------------------------------------------------
def _regression_gate(registry: Registry, spec: ModelSpec, version: int) -> Gate:
    from ratchet.regression import run_golden_cases

    result = run_golden_cases(registry, spec, version)
    return Gate("regression_tests", result.passed, result.describe(),
                {"n_cases": result.n_cases, "failures": result.failures[:50]})


@dataclass(frozen=True)
class TrialRecord:
    days: tuple[str, ...]  # days with a now-test of the version since it entered trial
    breach_days: tuple[str, ...]  # of those, the days with a failed now-test


def trial_record(registry: Registry, model: str, version) -> TrialRecord:
    """Days of now-tests recorded since the version (a ModelVersion row) entered trial.

    A day counts when its now-test was stored after `trial_started_at`, so back-filled runs of
    past dates count as trial days as well; any failed row on a counted day is a breach.
    """
    rows = [r for r in registry.evaluations(model, "nowtest", contender=version_contender(version.version))
            if r.created_at >= version.trial_started_at]
    return TrialRecord(days=tuple(sorted({r.partition for r in rows})),
                       breach_days=tuple(sorted({r.partition for r in rows if r.passed is False})))


def _trial_gate(registry: Registry, spec: ModelSpec, candidate) -> Gate:
    needed = spec.promotion.min_trial_days
    trial = trial_record(registry, spec.name, candidate)
    details = {"days": list(trial.days), "breach_days": list(trial.breach_days), "min_trial_days": needed,
               "trial_started_at": candidate.trial_started_at.isoformat()}
    problems = []
    if trial.breach_days:
        problems.append(f"now-test breaches on {len(trial.breach_days)} day(s): {list(trial.breach_days[:5])}")
    if len(trial.days) < needed:
        problems.append(f"{len(trial.days)} day(s) of now-tests in trial < required {needed}")
    summary = "; ".join(problems) or f"{len(trial.days)} day(s) of now-tests in trial, no breach"
    return Gate("trial", not problems, summary, details)


def _computational_gate(registry: Registry, spec: ModelSpec, candidate) -> Gate:
    requirements = [r for r in registry.requirements(spec.name) if r.metric in COMPUTATIONAL_METRICS]
    values = {"predict_latency_p95_ms": candidate.predict_latency_p95_ms, "model_size_bytes": candidate.size_bytes}
    results = check_requirements(requirements, values, {})
    failed = [r.describe() for r in results if not r.passed]
    summary = "; ".join(failed) or (f"{len(results)} computational bound(s) hold" if results
                                    else "no computational requirements")
    return Gate("computational", not failed, summary, {"values": values, "results": [r.as_dict() for r in results]})


# -- the ratchet -------------------------------------------------------------------------------
def _ratchet_steps(registry: Registry, spec: ModelSpec, contender: str, backtest, reason: str,
                   version: int) -> list[RatchetStep]:
    """Tighten every metric requirement towards the new champion's back-test mean (with slack).

    Absolute bounds move towards the mean itself; relative bounds move their factor towards the
    champion/baseline ratio. Computational bounds have no back-test value and stay as they are.
    """
    settings = spec.promotion.ratchet
    if not settings.enabled:
        return []
    months = _months(backtest, contender)
    values = _means_on(backtest, contender, months)
    baselines = _baseline_means(spec, backtest, months)
    steps = []
    for req in registry.requirements(spec.name):
        value = values.get(req.metric)
        if req.metric in COMPUTATIONAL_METRICS or value is None:
            continue
        target, why = value, f"{contender} back-test mean {req.metric} {value:.4g}"
        if req.relative_to is not None:
            name, base = (best_baseline(req.metric, baselines) if req.relative_to == "baseline"
                          else (req.relative_to, baselines.get(req.relative_to, {}).get(req.metric)))
            if not base:
                continue
            target, why = value / base, f"{why} / {name} {base:.4g} = {value / base:.4g}"
        new = ratchet_bound(req, target, settings.slack)
        if new is not None:
            steps.append(RatchetStep(req.id, new, f"ratchet on promotion of v{version}: {why}, "
                                                  f"slack {settings.slack:.0%}; {reason}"))
    return steps


def promote_by_name(model: str, version: int, *, reason: str, triggered_by: str, dry_run: bool = False,
                    run_id: str | None = None, registry: Registry | None = None) -> PromotionOutcome:
    """Promote by model name, reading the configured specs (what the ratchet_promote DAG calls)."""
    from ratchet.config import load_specs

    spec = resolve_spec(load_specs(), model)
    own = registry is None
    registry = registry or Registry.from_settings()
    try:
        return promote(registry, spec, version=version, reason=reason, triggered_by=triggered_by,
                       dry_run=dry_run, run_id=run_id)
    finally:
        if own:
            registry.dispose()


def promotion_status(registry: Registry, spec: ModelSpec) -> dict[str, Any]:
    """What `ratchet status` shows about promotion: champion and its promotion, trial days per
    candidate (versions newer than the champion), last now-test, open alerts, active requirements."""
    name = spec.name
    champion = registry.champion(name)
    versions = registry.versions(name)
    by_id = {v.id: v.version for v in versions}
    promoted = [p for p in registry.promotions(name)
                if champion is not None and p.outcome == "promoted" and p.version_id == champion.id]
    promotion = promoted[-1] if promoted else None
    candidates = [v for v in versions if champion is None or v.version > champion.version]
    trials = {v.version: trial_record(registry, name, v) for v in candidates}
    return {
        "champion": None if champion is None else {
            "version": champion.version,
            "promotion": None if promotion is None else {
                "id": promotion.id, "kind": promotion.kind, "triggered_by": promotion.triggered_by,
                "reason": promotion.reason, "at": promotion.created_at.isoformat(),
                "previous_version": by_id.get(promotion.previous_version_id)}},
        "trial": [{"version": v, "days": len(t.days), "breach_days": list(t.breach_days),
                   "min_trial_days": spec.promotion.min_trial_days} for v, t in trials.items()],
        "last_nowtest": _last_nowtest(registry, name, champion),
        "open_alerts": [{"id": a.id, "subject": a.subject, "status": a.status, "attempts": a.attempts,
                         "last_error": a.last_error, "created_at": a.created_at.isoformat()}
                        for a in registry.queued_alerts(name)],
        "requirements": [{"id": r.id, "metric": r.metric, "direction": r.direction, "bound": r.bound,
                          "relative_to": r.relative_to, "scope": r.scope, "history_count": len(r.history)}
                         for r in registry.requirements(name)],
    }


def _last_nowtest(registry: Registry, model: str, champion) -> dict[str, Any] | None:
    """The champion's latest now-test day; it passed if none of that day's rows failed."""
    if champion is None:
        return None
    rows = registry.evaluations(model, "nowtest", contender=version_contender(champion.version))
    if not rows:
        return None
    day = max(r.partition for r in rows)
    latest = [r for r in rows if r.partition == day]
    return {"day": day, "version": champion.version, "passed": all(r.passed is not False for r in latest),
            "failed_metrics": sorted({r.metric for r in latest if r.passed is False}),
            "run_id": latest[-1].run_id}
