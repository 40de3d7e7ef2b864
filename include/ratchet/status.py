"""`ratchet status`: per model, the champion, candidates, back-test, now-test and requirements."""
from __future__ import annotations

from typing import Any


def model_status(registry, spec) -> dict[str, Any]:
    from ratchet import backtest
    from ratchet.promotion import promotion_status
    from ratchet.registry import RegistryError, version_contender

    try:
        versions = registry.latest_run_versions(spec.name)
    except RegistryError:  # configured but never run: nothing stored yet
        return {"name": spec.name, "task": spec.task, "registered": False, "champion": None, "candidates": []}
    summary = backtest.backtest_summary(registry, spec)
    report = registry.latest_report(spec.name)

    def key_metrics(version: int) -> dict[str, Any]:
        info = summary["contenders"].get(version_contender(version), {})
        return {"backtest_mean": info.get("mean"), "backtest_months": info.get("months", 0),
                "months_won": info.get("months_won")}

    status = {"name": spec.name, "task": spec.task, "registered": True, "metric": spec.metric,
              "candidates": [{"version": v.version, "estimator": v.estimator_class, "cv_metric": v.cv_metric,
                              "cv_score": v.cv_score, "created_at": v.created_at.isoformat(), **key_metrics(v.version)}
                             for v in versions],
              "last_backtest": None if report is None else {
                  "run_id": report.run_id, "at": report.created_at.isoformat(), "reference": summary["reference"],
                  "contenders": summary["contenders"]}}
    status.update(promotion_status(registry, spec))
    if status["champion"]:
        status["champion"].update(key_metrics(status["champion"]["version"]))
    return status


def status_report(registry, specs: dict) -> dict[str, Any]:
    return {"models": [model_status(registry, spec) for spec in specs.values()]}
