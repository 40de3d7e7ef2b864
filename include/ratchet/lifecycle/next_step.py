"""What a person does next about a model, in plain words: the one answer the Ratchet page and the alert mail give.

Read from the registry, in this order: a proposal waiting in Required Actions; a candidate in trial that beats the
champion (on the back-test, or, while the champion breaches, on the now-test rows after its training data) and
needs more trial days; one that has its days but is not proposed (a gate fails); one held back only by now-test
breaches of a ratcheted bound the champion breaches too (the data changed: re-baseline); else no candidate beats
the champion, and a retrain is the way forward.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import TYPE_CHECKING
from urllib.parse import quote

from ratchet import settings
from ratchet.evaluation.backtest import metric_table
from ratchet.lifecycle.promotion import (
    champion_breach,
    data_changed_breaches,
    data_changed_day,
    fresh_evidence,
    open_proposal,
    proposal_run_id,
    ratcheted_requirement_ids,
)
from ratchet.modeling.metrics import improvement
from ratchet.registry.entities import in_trial

if TYPE_CHECKING:
    from ratchet.evaluation.nowtest import NowtestOutcome
    from ratchet.registry import Registry
    from ratchet.registry.entities import TrialRecord, Version
    from ratchet.specs.model import ModelSpec

RETRAIN_DAG = "ratchet_retrain"
ON_BACKTEST, ON_NOWTEST = "on the back-test", "on the now-test rows after its training data"  # gate 2's two routes


@dataclass(frozen=True)
class NextStep:
    """The next step: what to do, in one sentence, and where (`url`, absolute, labelled `label`)."""

    text: str
    label: str
    url: str


def required_actions_path(model: str, version: int) -> str:
    """The Airflow UI page where a person approves or rejects the proposal of `version`, relative to the UI."""
    return (f"/dags/ratchet_promote/runs/{quote(proposal_run_id(model, version), safe='')}"
            "/tasks/approve/required_actions")


def next_step(registry: Registry, spec: ModelSpec, *, today: NowtestOutcome | None = None) -> NextStep:
    """The model's next step. `today` is a now-test not stored yet (the one mailing): its passing candidates count
    a trial day of its partition, as they will once it is stored."""
    name, page = spec.name, settings.ratchet_page_url(spec.name)
    champion = registry.champion(name)
    if champion is None:
        return NextStep(f"{name} has no champion yet: pick a version on the Ratchet page and promote it (Promote "
                        "triggers ratchet_promote).", "Ratchet page", page)
    pending = open_proposal(registry.promotions(name))
    if pending is not None:
        return NextStep(f"v{pending.version} passed every gate on {pending.created_at:%Y-%m-%d} and waits for a "
                        "person: approve or reject it in Required Actions.", "Required Actions",
                        settings.airflow_base_url() + required_actions_path(name, pending.version))
    trials = registry.trial_records(name)
    needed = spec.promotion.min_trial_days
    ahead, held = [], []  # (days still needed, version, days counted, gain, where) of candidates beating the champion
    for version, (gain, where) in _beating(registry, spec, champion.contender).items():
        if not in_trial(version, champion.version):
            continue
        counted, breached = _trial_days(trials[version], spec, version, today)
        found = (max(needed - counted, 0), version, counted, gain, where)
        if not breached:
            ahead.append(found)
        elif _data_changed(registry, spec, version, champion, today):
            held.append(found)
    retrain = f"{settings.airflow_base_url()}/dags/{RETRAIN_DAG}"
    if not ahead and held:
        missing, version, counted, gain, where = min(held)
        when = f"Once it has {needed} trial days ({missing} more), the" if missing else "The"
        return NextStep(f"v{version} is in trial and beats the champion v{champion.version} {where} ({gain:+.1%} "
                        f"{spec.metric}), but it breaches a now-test bound the ratchet derived from a former "
                        "champion's months, which the champion breaches too: the data changed under the bound. "
                        f"{when} nightly now-test proposes it to \"Promote and re-baseline\" in Required Actions "
                        "if every other gate passes; or set the bound again yourself (trigger ratchet_requirements).",
                        "ratchet_requirements", f"{settings.airflow_base_url()}/dags/ratchet_requirements")
    if not ahead:
        return NextStep(f"No candidate beats the champion v{champion.version} yet: retrain (trigger {RETRAIN_DAG}) "
                        "to train candidates on the latest data; they enter trial at once.", RETRAIN_DAG, retrain)
    missing, version, counted, gain, where = min(ahead)
    if missing:
        return NextStep(f"v{version} is in trial and beats the champion v{champion.version} {where} "
                        f"({gain:+.1%} {spec.metric}): it has {counted} of {needed} trial day(s) and needs {missing} "
                        "more without a breach; then the nightly now-test proposes it if every gate passes.",
                        "Ratchet page", page)
    return NextStep(f"v{version} has enough trial days ({counted} of {needed}) and beats the champion "
                    f"v{champion.version} {where}{' mean' if where == ON_BACKTEST else ''} ({gain:+.1%} "
                    f"{spec.metric}), but is not proposed: a "
                    "gate fails. A dry run of its promotion shows which.", f"promote v{version}",
                    f"{page}/promote?version={version}")


def _beating(registry: Registry, spec: ModelSpec, champion: str) -> dict[int, tuple[float, str]]:
    """Version -> (its improvement over the champion, where): on their common back-test months, for the versions
    that improve on it by at least `promotion.min_improvement` (gate 2's mean rule); and while the champion
    breaches its now-test, on the latest now-test's rows after the version's training data (gate 2's other
    route), for those that do there."""
    table = metric_table(registry, spec)
    theirs = table.get(champion, {})
    found = {}
    for contender, mine in table.items():
        months = [m for m in mine if m in theirs]
        if contender == champion or contender in spec.baselines or not months:
            continue
        gain = improvement(spec.metric, fmean(mine[m] for m in months), fmean(theirs[m] for m in months))
        if gain >= spec.promotion.min_improvement:
            found[int(contender[1:])] = (gain, ON_BACKTEST)
    if champion_breach(registry, spec.name, champion) is None:
        return found
    for version, versus in fresh_evidence(registry, spec.name, champion).items():
        gain = -(versus.get("relative_difference") or 0.0)  # None: no common rows yet
        if version not in found and gain >= spec.promotion.min_improvement:
            found[version] = (gain, ON_NOWTEST)
    return found


def _data_changed(registry: Registry, spec: ModelSpec, version: int, champion: Version,
                  today: NowtestOutcome | None) -> bool:
    """Whether the version's trial breaches, `today`'s unstored verdict included, are all of ratcheted bounds the
    champion breached too (`promotion.data_changed_breaches`)."""
    mine = next((r for r in today.results if r.version == version), None) if today else None
    theirs = today.champion if today else None
    if mine is not None and mine.judged and not mine.passed:
        theirs_failed = {r.requirement_id for r in theirs.failed} if theirs is not None else set()
        if not data_changed_day({r.requirement_id for r in mine.failed}, theirs_failed,
                                ratcheted_requirement_ids(registry, spec.name)):
            return False
        if not registry.trial_records(spec.name)[version].breach_days:
            return True
    return data_changed_breaches(registry, spec, registry.version(spec.name, version), champion) is not None


def _trial_days(trial: TrialRecord, spec: ModelSpec, version: int, today: NowtestOutcome | None) -> tuple[int, bool]:
    """(days the trial gate counts, whether the trial has a breach), `today`'s verdict on the version included."""
    served = spec.promotion.trial_days_from == "served"
    days, breached = set(trial.served_days if served else trial.days), bool(trial.breach_days
                                                                           or trial.served_breach_days)
    result = next((r for r in today.results if r.version == version), None) if today and not served else None
    if result is not None and result.judged:
        if result.passed and not today.stale:
            days.add(today.partition)
        else:
            breached = True
    return len(days), breached
