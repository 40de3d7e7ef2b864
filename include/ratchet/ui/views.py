"""What the Ratchet pages show, computed from the registry in a few queries per page."""
from __future__ import annotations

from typing import Any

from ratchet.alerting.policy import alert_history, last_verdict
from ratchet.evaluation import backtest
from ratchet.exceptions import UnknownModelError
from ratchet.lifecycle.promotion import open_proposal, proposal_run_id
from ratchet.registry import Registry, in_trial
from ratchet.registry.entities import BACKTEST, NOWTEST, Version
from ratchet.reporting import charts, reports, serving
from ratchet.specs.catalog import Catalog
from ratchet.specs.model import ModelSpec, RequirementSpec

CHARTED_CANDIDATES = 6


def _champion_requirement(spec: ModelSpec, scope: str) -> RequirementSpec | None:
    return next((r for r in spec.requirements if r.scope == scope and r.metric == spec.metric), None)


def overview(registry: Registry, catalog: Catalog) -> list[dict[str, Any]]:
    """One row per configured model: champion, its back-test mean, last now-test, open alerts, versions in trial;
    a model whose file is broken gets a row with the file's error."""
    rows = [{"name": name, "broken": str(error)} for name, error in sorted(catalog.broken.items())]
    for name, spec in catalog.specs.items():
        try:
            champion = registry.champion(name)
            versions = registry.versions(name)
        except UnknownModelError:
            rows.append({"name": name, "task": spec.task, "registered": False})
            continue
        number = champion.version if champion else None
        champion_mean = last = None
        if champion:
            values = [e.value for e in registry.evaluations(name, BACKTEST, contender=champion.contender,
                                                            metric=spec.metric) if e.value is not None]
            values = values[-spec.backtest.months:]
            champion_mean = sum(values) / len(values) if values else None
            last = last_verdict(alert_history(registry, name, champion.version))
        rows.append({
            "name": name, "task": spec.task, "registered": True, "metric": spec.metric,
            "champion": number, "champion_mean": champion_mean,
            "requirement": _champion_requirement(spec, "backtest"), "last_nowtest": last,
            "open_alerts": len(registry.queued_alerts(name)),
            "in_trial": [v.version for v in versions if in_trial(v.version, number)],
        })
    return rows


def _charted(table: dict[str, dict[str, float]], spec: ModelSpec, champion: Version | None) -> list[str]:
    """Baselines, the champion and the newest candidates: a readable chart even with hundreds of versions."""
    versions = sorted((c for c in table if c not in spec.baselines), key=lambda c: int(c[1:]))
    shown = versions[-CHARTED_CANDIDATES:]
    if champion and champion.contender in table and champion.contender not in shown:
        shown = [champion.contender, *shown]
    return [b for b in spec.baselines if b in table] + shown


def model_page(registry: Registry, spec: ModelSpec) -> dict[str, Any]:
    """Everything the model page shows: charts, versions with their roles, requirements, promotions, alerts, and
    the serving panel (last 14 days of the REST service, the A/B arms' served metrics)."""
    name = spec.name
    champion = registry.champion(name)
    versions = registry.versions(name)
    table = backtest.metric_table(registry, spec)
    summary = backtest.backtest_summary(registry, spec, table)
    months = summary["months"]
    backtest_chart = charts.line_chart(
        months, {c: [table[c].get(m) for m in months] for c in _charted(table, spec, champion)},
        title=f"Back-test {spec.metric} per month", y_label=spec.metric,
        requirement=reports.requirement_line(spec, table, months))

    nowtests = registry.evaluations(name, NOWTEST)
    nowtest_metric = next((r.metric for r in spec.requirements if r.scope == "nowtest"), spec.metric)
    champion_key = champion.contender if champion else None
    timeline = sorted((e for e in nowtests if e.contender == champion_key and e.metric == nowtest_metric),
                      key=lambda e: e.partition)
    bound = next((r.bound for r in registry.requirements(name, "nowtest")
                  if r.metric == nowtest_metric and not r.relative_to), None)
    nowtest_chart = charts.line_chart(
        [e.partition for e in timeline], {f"champion {champion_key}": [e.value for e in timeline]},
        title=f"Now-test {nowtest_metric} of the champion (breaches circled)", y_label=nowtest_metric,
        requirement=[bound] * len(timeline) if bound is not None else None,
        marks=[e.passed is False for e in timeline])

    promotions = registry.promotions(name)
    last_gates = {p.version: p for p in promotions}
    trials = registry.trial_records(name)
    number = champion.version if champion else None
    version_rows = [{
        "version": v, "role": "champion" if v.version == number else
        ("in trial" if in_trial(v.version, number) else "retired"),
        "backtest": summary["contenders"].get(v.contender),
        "trial_days": (len(trials[v.version].days), len(trials[v.version].breach_days)),
        "last_decision": last_gates.get(v.version),
    } for v in reversed(versions)]
    pending = open_proposal(promotions)
    return {
        "proposal": pending and {"promotion": pending, "url": required_actions_url(name, pending.version)},
        "spec": spec, "champion": champion, "versions": version_rows, "summary": summary,
        "backtest_chart": backtest_chart, "nowtest_chart": nowtest_chart, "requirements": registry.requirements(name),
        "promotions": list(reversed(promotions)),
        "alerts": list(reversed(registry.alerts(name))), "report": registry.latest_report(name),
        "serving": serving.serving_panel(registry, spec),
    }


def required_actions_url(model: str, version: int) -> str:
    """The Airflow UI page where a person approves or rejects the proposal of `version` (relative to the UI)."""
    from urllib.parse import quote

    return (f"/dags/ratchet_promote/runs/{quote(proposal_run_id(model, version), safe='')}"
            "/tasks/approve/required_actions")
