"""`ratchet status`: per model, the champion, candidates, back-test, now-test, alerts, requirements and serving."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ratchet.alerting.policy import alert_history, last_verdict
from ratchet.evaluation.backtest import backtest_summary
from ratchet.exceptions import UnknownModelError
from ratchet.registry.entities import in_trial, version_contender
from ratchet.reporting import serving

if TYPE_CHECKING:
    from ratchet.exceptions import SpecError
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec


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
            "version": number,
            "promotion": None if promotion is None else {
                "id": promotion.id, "kind": promotion.kind, "triggered_by": promotion.triggered_by,
                "reason": promotion.reason, "at": promotion.created_at.isoformat(),
                "previous_version": promotion.previous_version}},
        "trial": [{"version": v, "days": len(trials[v].days), "breach_days": list(trials[v].breach_days),
                   "served_days": len(trials[v].served_days), "served_breach_days": list(trials[v].served_breach_days),
                   "min_trial_days": spec.promotion.min_trial_days, "counted": spec.promotion.trial_days_from}
                  for v in candidates],
        "last_nowtest": None if last is None else {"day": last["day"], "version": number, "passed": last["passed"],
                                                   "failed_metrics": last["failed_metrics"], "run_id": last["run_id"]},
        "open_alerts": [{"id": a.id, "subject": a.subject, "status": a.status, "attempts": a.attempts,
                         "last_error": a.last_error, "created_at": a.created_at.isoformat(),
                         "channels": {d.channel: {"status": d.status, "attempts": d.attempts,
                                                  "last_error": d.last_error} for d in a.deliveries}}
                        for a in registry.queued_alerts(name)],
        "requirements": [{"id": r.id, "metric": r.metric, "direction": r.direction, "bound": r.bound,
                          "relative_to": r.relative_to, "scope": r.scope, "history_count": len(r.history)}
                         for r in registry.requirements(name)],
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
                              "cv_score": v.cv_score, "created_at": v.created_at.isoformat(),
                              **key_metrics(v.contender)} for v in versions],
              "last_backtest": None if report is None else {
                  "run_id": report.run_id, "at": report.created_at.isoformat(), "reference": summary["reference"],
                  "contenders": summary["contenders"], "data": report.summary.get("data")}}
    status.update(promotion_status(registry, spec))
    status["serving"] = serving.last_day(registry, spec)
    if status["champion"]:
        status["champion"].update(key_metrics(version_contender(status["champion"]["version"])))
    return status


def status_report(registry: Registry, specs: dict[str, ModelSpec],
                  broken: dict[str, SpecError] | None = None) -> dict[str, Any]:
    """Per configured model: champion, candidates with key metrics, last back-test summary, last now-test
    with pass/fail, open alerts, active requirements and the last 24 hours of serving (`reporting.serving`:
    requests, latency, cache hits, errors, availability, the latest served arms), what `ratchet status --json`
    prints; and each
    model whose file is broken, with the file and the error (it runs nowhere until the file is fixed)."""
    return {"models": [model_status(registry, spec) for spec in specs.values()],
            "broken_specs": [{"model": name, "file": error.path, "error": str(error)}
                             for name, error in sorted((broken or {}).items())]}
