"""What the Ratchet pages show, computed from the registry in a few queries per page."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from ratchet import backtest, charts, reports
from ratchet.registry import Registry, RegistryError, version_contender


def _champion_requirement(spec, scope: str):
    return next((r for r in spec.requirements if r.scope == scope and r.metric == spec.metric), None)


def overview(registry: Registry, specs: dict) -> list[dict[str, Any]]:
    rows = []
    for name, spec in specs.items():
        try:
            champion = registry.champion(name)
            versions = registry.versions(name)
        except RegistryError:
            rows.append({"name": name, "task": spec.task, "registered": False})
            continue
        champion_mean = None
        if champion:
            values = [e.value for e in registry.evaluations(name, "backtest", contender=version_contender(
                champion.version), metric=spec.metric) if e.value is not None][-spec.backtest.months:]
            champion_mean = sum(values) / len(values) if values else None
        nowtests = registry.evaluations(name, "nowtest", contender=version_contender(champion.version)) \
            if champion else []
        last_day = max((e.partition for e in nowtests), default=None)
        rows.append({
            "name": name, "task": spec.task, "registered": True, "metric": spec.metric,
            "champion": champion.version if champion else None, "champion_mean": champion_mean,
            "requirement": _champion_requirement(spec, "backtest"),
            "last_nowtest": None if last_day is None else {
                "day": last_day,
                "passed": all(e.passed is not False for e in nowtests if e.partition == last_day)},
            "open_alerts": len(registry.queued_alerts(name)),
            "in_trial": [v.version for v in versions if champion is None or v.version > champion.version],
        })
    return rows


def _trial_days(versions, nowtests) -> dict[int, tuple[int, int]]:
    """version -> (days of now-tests in trial, days with a breach), from already fetched rows."""
    started = {version_contender(v.version): (v.version, v.trial_started_at) for v in versions}
    days, breaches = defaultdict(set), defaultdict(set)
    for row in nowtests:
        if row.contender in started and row.created_at >= started[row.contender][1]:
            days[row.contender].add(row.partition)
            if row.passed is False:
                breaches[row.contender].add(row.partition)
    return {number: (len(days[c]), len(breaches[c])) for c, (number, _) in started.items()}


CHARTED_CANDIDATES = 6


def _charted(table, spec, champion) -> list[str]:
    """Baselines, the champion and the newest candidates: a readable chart even with hundreds of versions."""
    versions = sorted((c for c in table if c not in spec.baselines), key=lambda c: int(c[1:]))
    shown = versions[-CHARTED_CANDIDATES:]
    if champion and version_contender(champion.version) in table and version_contender(champion.version) not in shown:
        shown = [version_contender(champion.version), *shown]
    return [b for b in spec.baselines if b in table] + shown


def model_page(registry: Registry, spec) -> dict[str, Any]:
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

    nowtests = registry.evaluations(name, "nowtest")
    nowtest_metric = next((r.metric for r in spec.requirements if r.scope == "nowtest"), spec.metric)
    champion_key = version_contender(champion.version) if champion else None
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
    by_id = {v.id: v.version for v in versions}
    last_gates = {by_id.get(p.version_id): p for p in promotions}
    trial = _trial_days(versions, nowtests)
    version_rows = [{
        "version": v, "role": "champion" if champion and v.id == champion.id else
        ("in trial" if champion is None or v.version > champion.version else "retired"),
        "backtest": summary["contenders"].get(version_contender(v.version)),
        "trial_days": trial.get(v.version, (0, 0)), "last_decision": last_gates.get(v.version),
    } for v in reversed(versions)]
    return {
        "spec": spec, "champion": champion, "versions": version_rows, "summary": summary,
        "backtest_chart": backtest_chart, "nowtest_chart": nowtest_chart, "requirements": registry.requirements(name),
        "promotions": [(p, by_id.get(p.version_id), by_id.get(p.previous_version_id)) for p in reversed(promotions)],
        "alerts": list(reversed(registry.alerts(name))), "report": registry.latest_report(name),
    }
