"""What the Ratchet pages show, computed from the registry in a few queries per page."""
from __future__ import annotations

from statistics import fmean
from typing import Any

from ratchet.alerting.policy import alert_history, last_verdict
from ratchet.evaluation import backtest
from ratchet.evaluation.requirements import bound_origin
from ratchet.exceptions import UnknownModelError
from ratchet.lifecycle.next_step import next_step, required_actions_path
from ratchet.lifecycle.promotion import open_proposal
from ratchet.modeling import sources
from ratchet.modeling.distill import shown
from ratchet.registry import Registry, in_trial
from ratchet.registry.entities import NOWTEST, Evaluation, Version
from ratchet.reporting import charts, reports, serving
from ratchet.reporting.retrain_plan import aging_view, schedule_status
from ratchet.reporting.status import alert_counts, backtest_verdict
from ratchet.specs.catalog import Catalog
from ratchet.specs.model import SERIES_METRICS, ModelSpec, lower_is_better

CHARTED_CANDIDATES = 6


def overview(registry: Registry, catalog: Catalog) -> list[dict[str, Any]]:
    """One row per configured model: champion, its back-test verdict against the current bound, last now-test,
    open and sent alerts, versions in trial; a model whose file is broken gets a row with the file's error."""
    rows = [{"name": name, "broken": str(error)} for name, error in sorted(catalog.broken.items())]
    for name, spec in catalog.specs.items():
        try:
            champion = registry.champion(name)
            versions = registry.versions(name)
        except UnknownModelError:
            rows.append({"name": name, "task": spec.task, "registered": False})
            continue
        number = champion.version if champion else None
        history = alert_history(registry, name, number) if champion else []
        rows.append({
            "name": name, "task": spec.task, "registered": True, "metric": spec.metric, "champion": number,
            "verdict": backtest_verdict(registry, spec, champion), "last_nowtest": last_verdict(history),
            "alerts": alert_counts(registry, name, history),
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


GROUPS = {"series": ("series", "series"), "slices": ("slice", "slice")}  # details key -> (name, query parameter)


def group_view(registry: Registry, spec: ModelSpec, champion: Version | None, months: list[str],
               chosen: str | None, kind: str) -> dict[str, Any] | None:
    """A panel's series (`kind` 'series') or a model's slices ('slices', `evaluation.slices`) on the model page:
    the champion's back-test mean per group over `months` beside the best baseline of the group and its last
    now-test value, worst first; and the monthly chart of one group (`chosen`). The metric is the ranking metric
    when it is kept per group, else the task's first that is (`SERIES_METRICS`). None without groups or before
    the champion has a back-test."""
    if champion is None or not (spec.source.series if kind == "series" else spec.evaluation.slices):
        return None
    metric = spec.metric if spec.metric in SERIES_METRICS[spec.task] else SERIES_METRICS[spec.task][0]
    per_month = {contender: {row.partition: row.details.get(kind, {})
                             for row in registry.evaluations(spec.name, "backtest", contender=contender,
                                                             metric=metric)
                             if row.partition in months and row.details}
                 for contender in (champion.contender, *spec.baselines)}

    def mean_of(contender: str, group: str) -> float | None:
        values = [v[group] for v in per_month[contender].values() if v.get(group) is not None]
        return fmean(values) if values else None

    names = sorted({g for by_month in per_month.values() for values in by_month.values() for g in values})
    lower = lower_is_better(metric)
    nowtest = [row for row in registry.evaluations(spec.name, NOWTEST, contender=champion.contender,
                                                   metric=metric) if (row.details or {}).get(kind)]
    latest = nowtest[-1].details[kind] if nowtest else {}
    rows = []
    for name in names:
        baselines = {b: mean_of(b, name) for b in spec.baselines if mean_of(b, name) is not None}
        best = (min if lower else max)(baselines, key=baselines.get) if baselines else None
        rows.append({"group": name, "champion": mean_of(champion.contender, name), "baseline": best,
                     "baseline_value": baselines.get(best), "nowtest": (latest.get(name) or {}).get(metric)})
    rows.sort(key=lambda r: (r["champion"] is None, -(r["champion"] or 0) if lower else (r["champion"] or 0)))
    noun, parameter = GROUPS[kind]
    chart = None
    if chosen in names:
        chart = charts.line_chart(
            months, {c: [per_month[c].get(m, {}).get(chosen) for m in months] for c in per_month},
            title=f"Back-test {metric} per month of {noun} {chosen}", y_label=metric)
    return {"kind": kind, "noun": noun, "parameter": parameter, "metric": metric, "rows": rows,
            "chosen": chosen if chart else None, "chart": chart,
            "nowtest_day": nowtest[-1].partition if nowtest else None}


def model_page(registry: Registry, spec: ModelSpec, *, series: str | None = None,
               slice_: str | None = None) -> dict[str, Any]:
    """Everything the model page shows: the verdicts and the next step, charts, versions with their roles,
    requirements, promotions, alerts, the serving panel (last 14 days of the REST service, the A/B arms' served
    metrics), the retrain schedule beside how the champion ages and the cadence that recommends, and the latest
    back-test report inline."""
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

    nowtest_metric = next((r.metric for r in spec.requirements if r.scope == "nowtest"), spec.metric)
    current = next((r.bound for r in registry.requirements(name, "nowtest")
                    if r.metric == nowtest_metric and not r.relative_to), None)
    timeline = _champion_days(registry.evaluations(name, NOWTEST, metric=nowtest_metric),
                              champion.contender if champion else None)
    bounds = [_judged_bound(e, current) for e in timeline]
    nowtest_chart = charts.line_chart(
        [e.partition for e in timeline], {"champion of the day": [e.value for e in timeline]},
        title=f"Now-test {nowtest_metric} of each day's champion (breaches circled)", y_label=nowtest_metric,
        requirement=bounds if any(b is not None for b in bounds) else None, marks=[e.passed is False for e in timeline])

    promotions = registry.promotions(name)
    last_gates = {p.version: p for p in promotions}
    trials = registry.trial_records(name)
    number = champion.version if champion else None
    common = _common_months(table, versions)
    version_rows = [{
        "version": v, "role": "champion" if v.version == number else
        ("in trial" if in_trial(v.version, number) else "retired"),
        "backtest": summary["contenders"].get(v.contender),
        "common_mean": fmean(table[v.contender][m] for m in common) if common else None,
        "trial_days": (len(trials[v.version].days), len(trials[v.version].breach_days)),
        "last_decision": last_gates.get(v.version), "shown": shown(v.estimator_class, v.hyperparameters),
    } for v in reversed(versions)]
    pending = open_proposal(promotions)
    history = alert_history(registry, name, number) if champion else []
    report = registry.latest_report(name)
    requirements = registry.requirements(name)
    return {
        "proposal": pending and {"promotion": pending, "url": required_actions_path(name, pending.version)},
        "spec": spec, "champion": champion, "versions": version_rows, "summary": summary, "common_months": common,
        "reference_role": "champion" if champion and summary["reference"] == champion.contender else "best baseline",
        "verdict": backtest_verdict(registry, spec, champion, table), "last_nowtest": last_verdict(history),
        "alert_counts": alert_counts(registry, name, history), "next_step": next_step(registry, spec),
        "backtest_chart": backtest_chart, "nowtest_chart": nowtest_chart,
        "requirements": [(r, bound_origin(r, spec.requirements)) for r in requirements],
        "promotions": list(reversed(promotions)), "alerts": list(reversed(registry.alerts(name))),
        "report": report, "report_html": reports.fragment(report.html) if report else None,
        "serving": serving.serving_panel(registry, spec), "students": student_pairs(versions, table),
        "groups": [view for view in (group_view(registry, spec, champion, months, series, "series"),
                                     group_view(registry, spec, champion, months, slice_, "slices")) if view],
        "contract_problem": sources.contract_problem(spec.for_version(champion.version, champion.contract))
        if champion else None,
        "retrain": schedule_status(spec),
        "aging": aging_view(spec, registry.aging(name, champion.version)) if champion else None,
    }


def student_pairs(versions: list[Version], table: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Each student beside its teacher (`lifecycle.students`), newest first: the two versions, and their back-test
    means of the ranking metric (`table`: contender -> month -> value) over the months both have."""
    by_number = {v.version: v for v in versions}
    pairs = []
    for student in reversed(versions):
        teacher = by_number.get((student.teacher or {}).get("version"))
        if teacher is None:
            continue
        months = sorted(set(table.get(teacher.contender, {})) & set(table.get(student.contender, {})))
        pairs.append({"teacher": teacher, "student": student, "months": len(months),
                      "means": {v.version: fmean(table[v.contender][m] for m in months) if months else None
                                for v in (teacher, student)}})
    return pairs


def _champion_days(rows: list[Evaluation], champion: str | None) -> list[Evaluation]:
    """One row per now-test day, of the version that was champion that day (its stored role; rows stored without
    one count for the current champion), oldest first: the champion's line over time across promotions."""
    days: dict[str, Evaluation] = {}
    for row in sorted(rows, key=lambda e: e.partition):  # stable: a day's later row wins
        role = (row.details or {}).get("role")
        if role == "champion" or (role is None and row.contender == champion):
            days[row.partition] = row
    return [days[d] for d in sorted(days)]


def _judged_bound(row: Evaluation, current: float | None) -> float | None:
    """The bound a now-test day was judged against (stored with its verdict; a relative one as applied), else the
    current bound."""
    stored = [r.get("effective_bound") for r in (row.details or {}).get("requirements", [])
              if r.get("metric") == row.metric]
    return next((b for b in stored if b is not None), current)


def _common_months(table: dict[str, dict[str, float]], versions: list[Version]) -> list[str]:
    """The back-test months every listed version with a back-test has: the months their means are compared on."""
    have = [set(table[v.contender]) for v in versions if v.contender in table]
    return sorted(set.intersection(*have)) if have else []
