"""`ratchet status`: per model, the champion, candidates, back-test, now-test, alerts, requirements and serving."""
from __future__ import annotations

from statistics import fmean
from typing import TYPE_CHECKING, Any

from ratchet.alerting.policy import alert_history, last_verdict, open_breach
from ratchet.evaluation.backtest import backtest_summary, metric_table
from ratchet.evaluation.requirements import check_requirements, with_stated
from ratchet.exceptions import UnknownModelError
from ratchet.registry.entities import in_trial, version_contender
from ratchet.reporting import serving
from ratchet.reporting.retrain_plan import aging_view, schedule_status

if TYPE_CHECKING:
    from ratchet.evaluation.requirements import RequirementResult
    from ratchet.exceptions import SpecError
    from ratchet.registry import Registry
    from ratchet.registry.entities import Evaluation, Version
    from ratchet.specs.model import ModelSpec


def backtest_verdict(registry: Registry, spec: ModelSpec, champion: Version | None,
                     table: dict[str, dict[str, float]] | None = None) -> RequirementResult | None:
    """The champion's back-test mean of the ranking metric against the model's CURRENT back-test bound on it (as
    stored: after any ratchet), a relative bound resolved with the baseline's mean over the same months; None
    without a champion, its back-test, or such a requirement. `table` is `metric_table` when the caller has it."""
    requirement = next((r for r in registry.requirements(spec.name, "backtest") if r.metric == spec.metric), None)
    table = metric_table(registry, spec) if table is None else table
    months = sorted(table.get(champion.contender, {})) if champion else []
    if requirement is None or not months:
        return None
    baselines = with_stated(spec, {b: {spec.metric: fmean(table[b][m] for m in months)} for b in spec.baselines
                                   if all(m in table.get(b, {}) for m in months)})
    mean = fmean(table[champion.contender][m] for m in months)
    return check_requirements([requirement], {spec.metric: mean}, baselines)[0]


def alert_counts(registry: Registry, model: str, history: list[Evaluation]) -> dict[str, Any]:
    """The model's alerts in words a page shows: the breach still open after the verdict days of `history`
    (`alerting.policy.alert_history`; an open alert lasts until its recovery), alerts sent, and alerts waiting in
    the outbox to be sent."""
    alerts = registry.alerts(model)
    sent = sum(a.status == "sent" for a in alerts)
    return {"open": open_breach(history), "sent": sent, "waiting": len(alerts) - sent}


def promotion_status(registry: Registry, spec: ModelSpec) -> dict[str, Any]:
    """What `ratchet status` shows about promotion: champion and its promotion, trial days per
    candidate (versions in trial: now-test days and served days, and which of them gate 4 counts), last
    now-test, open alerts, active requirements."""
    name = spec.name
    champion = registry.champion(name)
    number = champion.version if champion else None
    promoted = [p for p in registry.promotions(name)
                if champion is not None and p.outcome == "promoted" and p.version == number]
    promotion = promoted[-1] if promoted else None
    trials = registry.trial_records(name)
    candidates = sorted(v for v in trials if in_trial(v, number))
    last = last_verdict(alert_history(registry, name, number)) if champion else None
    return {
        "champion": None if champion is None else {
            "version": number, "threshold": champion.threshold,
            "promotion": None if promotion is None else {
                "id": promotion.id, "kind": promotion.kind, "triggered_by": promotion.triggered_by,
                "reason": promotion.reason, "at": promotion.created_at.isoformat(),
                "previous_version": promotion.previous_version}},
        "trial": [{"version": v, "days": len(trials[v].days), "breach_days": list(trials[v].breach_days),
                   "served_days": len(trials[v].served_days), "served_breach_days": list(trials[v].served_breach_days),
                   "min_trial_days": spec.promotion.min_trial_days, "counted": spec.promotion.trial_days_from}
                  for v in candidates],
        "last_nowtest": None if last is None else {"day": last["day"], "version": number, "passed": last["passed"],
                                                   "failed_metrics": last["failed_metrics"],
                                                   "breaching_series": last["breaching_series"],
                                                   "breaching_slices": last["breaching_slices"],
                                                   "run_id": last["run_id"]},
        "open_alerts": [{"id": a.id, "subject": a.subject, "status": a.status, "attempts": a.attempts,
                         "last_error": a.last_error, "created_at": a.created_at.isoformat(),
                         "channels": {d.channel: {"status": d.status, "attempts": d.attempts,
                                                  "last_error": d.last_error} for d in a.deliveries}}
                        for a in registry.queued_alerts(name)],
        "requirements": [{"id": r.id, "metric": r.metric, "direction": r.direction, "bound": r.bound,
                          "relative_to": r.relative_to, "scope": r.scope, "history_count": len(r.history)}
                         for r in registry.requirements(name)],
        "stated_baselines": [{"name": b.name, "metrics": b.metrics, "source": b.source}
                             for b in spec.stated_baselines],
    }


def model_status(registry: Registry, spec: ModelSpec) -> dict[str, Any]:
    """One model's status (see `status_report`); `registered` is False for a model never run."""
    try:
        versions = registry.latest_run_versions(spec.name)
    except UnknownModelError:  # configured but never run: nothing stored yet
        return {"name": spec.name, "task": spec.task, "registered": False, "champion": None, "candidates": []}
    summary = backtest_summary(registry, spec)
    report = registry.latest_report(spec.name)

    def key_metrics(contender: str) -> dict[str, Any]:
        info = summary["contenders"].get(contender, {})
        return {"backtest_mean": info.get("mean"), "backtest_months": info.get("months", 0),
                "months_won": info.get("months_won")}

    status = {"name": spec.name, "task": spec.task, "registered": True, "metric": spec.metric,
              "candidates": [{"version": v.version, "estimator": v.estimator_class, "cv_metric": v.cv_metric,
                              "cv_score": v.cv_score, "threshold": v.threshold, "created_at": v.created_at.isoformat(),
                              "search_budget": v.search_budget, "teacher": (v.teacher or {}).get("version"),
                              **key_metrics(v.contender)} for v in versions],
              "last_backtest": None if report is None else {
                  "run_id": report.run_id, "at": report.created_at.isoformat(), "reference": summary["reference"],
                  "contenders": summary["contenders"], "data": report.summary.get("data")}}
    status.update(promotion_status(registry, spec))
    status["serving"] = serving.last_day(registry, spec)
    status["retrain"] = schedule_status(spec)
    status["aging"] = None
    if status["champion"]:
        number = status["champion"]["version"]
        status["champion"].update(key_metrics(version_contender(number)))
        view = aging_view(spec, registry.aging(spec.name, number))
        status["aging"] = view and view.as_dict()
    return status


def status_report(registry: Registry, specs: dict[str, ModelSpec],
                  broken: dict[str, SpecError] | None = None) -> dict[str, Any]:
    """Per configured model: champion, candidates with key metrics, last back-test summary, last now-test
    with pass/fail, open alerts, active requirements, the last 24 hours of serving (`reporting.serving`:
    requests, latency, cache hits, errors, availability, the latest served arms), the retrain schedule and when it
    is next due, and how the champion ages with the cadence that recommends (`reporting.retrain_plan`), what
    `ratchet status --json` prints; and each
    model whose file is broken, with the file and the error (it runs nowhere until the file is fixed)."""
    return {"models": [model_status(registry, spec) for spec in specs.values()],
            "broken_specs": [{"model": name, "file": error.path, "error": str(error)}
                             for name, error in sorted((broken or {}).items())]}
