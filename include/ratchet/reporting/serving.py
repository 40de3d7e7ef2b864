"""What the Ratchet page's serving panel and `ratchet status` show about a model's REST service.

Per day: requests, answered rows, p50/p95 latency (one per request, 4xx refusals left out), the cache hit rate
(answered rows from the cache), errors (5xx) and refusals (4xx), availability (`evaluation.service_level`), and
the requests of each arm; and the A/B arms' served metrics from the latest served evaluation of the now-test.
Every number comes from one `Registry.serving_log` call (aggregated in SQL) and the stored evaluations.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ratchet.evaluation.service_level import availability, day_totals, floor_minute
from ratchet.registry.entities import SERVED

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.registry.entities import ServingLog
    from ratchet.specs.model import ModelSpec

PANEL_DAYS = 14


def period_figures(log: ServingLog, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    """The figures of one period [start, end) of `log`: requests, latency, cache hits, errors, availability, arms."""
    stats, probes = day_totals(log, start)
    share, minutes = availability(probes, log.first_probe, start, end, now)
    answerable = stats.requests - stats.refused if stats else 0
    arms: dict[str, int] = {}
    for s in sorted(log.stats, key=lambda s: s.arm != "champion"):  # the champion's arm first
        if s.start == start and s.arm is not None:
            arms[s.arm] = arms.get(s.arm, 0) + s.requests
    return {
        "day": start.date().isoformat(), "start": start.isoformat(), "end": end.isoformat(),
        "requests": stats.requests if stats else 0, "answered": stats.answered if stats else 0,
        "errors": stats.errors if stats else 0, "refused": stats.refused if stats else 0,
        "error_rate": stats.errors / answerable if answerable else None,
        "latency_p50_ms": stats.latency_p50_ms if stats else None,
        "latency_p95_ms": stats.latency_p95_ms if stats else None,
        "cache_hit_rate": stats.cache_hits / stats.answered if stats and stats.answered else None,
        "availability": share, "probes": probes.probes if probes else 0, "healthy_minutes":
            probes.healthy_minutes if probes else 0, "minutes": minutes, "arms": arms,
    }


def latest_served(registry: Registry, model: str) -> dict[str, Any] | None:
    """The latest served evaluation of the now-test: per 'v<N>@<arm>' its role, ids and metrics, and the A/B
    comparisons' statements; None before the first."""
    rows = registry.evaluations(model, SERVED)
    if not rows:
        return None
    day = max(r.partition for r in rows)
    arms: dict[str, dict[str, Any]] = {}
    comparisons: list[str] = []
    for row in (r for r in rows if r.partition == day):
        details = row.details or {}
        arm = arms.setdefault(row.contender, {"arm": details.get("arm"), "role": details.get("role"),
                                              "version": row.version, "ids": details.get("scored"),
                                              "awaiting": details.get("awaiting"), "checked": details.get("checked"),
                                              "metrics": {}, "failed": []})
        if row.metric != "ids":
            arm["metrics"][row.metric] = row.value
        if row.passed is False:
            arm["failed"].append(row.metric)
        comparisons += [c["text"] for c in details.get("comparisons", []) if c["text"] not in comparisons]
    return {"partition": day, "arms": arms, "comparisons": comparisons}


def serving_panel(registry: Registry, spec: ModelSpec, *, now: dt.datetime | None = None,
                  days: int = PANEL_DAYS) -> dict[str, Any]:
    """The serving panel: the figures of each of the last `days` UTC days (today up to its last complete minute,
    whose probe is due), newest first, and the latest served evaluation's arms."""
    now = floor_minute(now or dt.datetime.now(dt.UTC))
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=days - 1)
    log = registry.serving_log(spec.name, start, now)
    figures = [period_figures(log, s, e, now) for s, e in log.periods()]
    return {"days": figures[::-1], "served": latest_served(registry, spec.name),
            "active": any(f["requests"] or f["probes"] for f in figures)}


def last_day(registry: Registry, spec: ModelSpec, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """`ratchet status`'s serving block: the panel's figures over the 24 hours up to the last complete minute,
    and the latest served arms."""
    now = floor_minute(now or dt.datetime.now(dt.UTC))
    log = registry.serving_log(spec.name, now - dt.timedelta(days=1), now)
    return {**period_figures(log, log.start, log.end, now), "served": latest_served(registry, spec.name)}
