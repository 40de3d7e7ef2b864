"""Serving requirements (`scope: serving`): the REST service's latency, error rate and availability for one day.

Checked by the daily now-test over the 24 hours before the run's data end, [end - 1 day, end) (for the
06:00 UTC run: yesterday 06:00 to today 06:00), from the prediction log and the replicas' health probes:
- `serving_latency_p95_ms`: the 95th percentile (interpolated) of the requests' latencies, one per request
  (`request_id`: a request of many rows counts once), requests refused with a 4xx left out.
- `serving_error_rate`: requests answered with a status >= 500 over the requests that were not refused with a
  4xx. A 4xx (no token, an unknown model or id, a bad field) is the client's mistake, not the service's: it
  counts neither as an error nor as a request here.
- `availability`: the share of wall-clock minutes (UTC) of the day, counted from the first probe ever stored if
  that is later and up to now if that is earlier, that hold at least one healthy probe of any replica.
A day without requests gives latency and error rate no verdict (stored with the reason, never as a pass). A day
without a single probe while the model has a serving requirement has availability 0 (the service did not run)
and breaches its bound.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ratchet.evaluation.requirements import RequirementResult, check_requirements
from ratchet.registry.entities import SERVICE_CONTENDER, SERVING, EvaluationRow

if TYPE_CHECKING:
    from ratchet.registry.entities import ProbeStats, Requirement, ServingLog, ServingStats

MINUTE = dt.timedelta(minutes=1)
SERVING_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class ServiceLevel:
    """One day of the model's service checked against its serving requirements, with the numbers behind them."""

    start: dt.datetime
    end: dt.datetime
    requests: int  # requests the service had to answer (4xx refusals left out)
    errors: int  # of which answered with a status >= 500
    refused: int  # requests refused with a 4xx
    probes: int
    healthy_minutes: int
    minutes: int  # the minutes availability is counted over
    metrics: tuple[str, ...]  # the metrics the model's serving requirements bound
    values: dict[str, float | None]
    results: list[RequirementResult]  # the requirements that got a verdict
    no_verdict: dict[str, str] = field(default_factory=dict)  # metric -> why it has no verdict today

    @property
    def failed(self) -> list[RequirementResult]:
        """The serving requirements breached today."""
        return [r for r in self.results if not r.passed]

    def period_text(self) -> str:
        """The day as people read it: '2025-07-31 06:00 .. 2025-08-01 06:00 UTC'."""
        return f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC"

    def summary(self) -> dict[str, Any]:
        """Small JSON-able form for XCom and logs."""
        return {"period": self.period_text(), "requests": self.requests, "errors": self.errors,
                "refused": self.refused, "values": self.values, "no_verdict": self.no_verdict,
                "failed": [r.describe() for r in self.failed]}


def floor_minute(at: dt.datetime) -> dt.datetime:
    """The start of `at`'s wall-clock minute."""
    return at.replace(second=0, microsecond=0)


def availability(probes: ProbeStats | None, first_probe: dt.datetime | None, start: dt.datetime,
                 end: dt.datetime, now: dt.datetime) -> tuple[float | None, int]:
    """(availability, minutes counted) of [start, end): healthy minutes over the wall-clock minutes from
    max(start, first probe ever) to min(end, now). None (and 0) when that span is empty: the service had never
    run yet, or the period has not begun."""
    if first_probe is None:
        return None, 0
    begin, stop = floor_minute(max(start, first_probe)), min(end, now)
    minutes = math.ceil((stop - begin) / MINUTE)
    if minutes <= 0:
        return None, 0
    return min(1.0, (probes.healthy_minutes if probes else 0) / minutes), minutes


def day_totals(log: ServingLog, start: dt.datetime) -> tuple[ServingStats | None, ProbeStats | None]:
    """The requests of every arm and the probes of the log's period starting at `start` (None without any)."""
    stats = next((s for s in log.stats if s.arm is None and s.start == start), None)
    probes = next((p for p in log.probes if p.start == start), None)
    return stats, probes


def check_service_level(requirements: list[Requirement], log: ServingLog, *,
                        now: dt.datetime | None = None) -> ServiceLevel | None:
    """Check the serving requirements on `log`, the serving log of the day [end - 1 day, end) as one period.

    None when the model has no serving requirement.
    """
    if not requirements:
        return None
    now = now or dt.datetime.now(dt.UTC)
    stats, probes = day_totals(log, log.start)
    answerable = stats.requests - stats.refused if stats else 0
    errors = stats.errors if stats else 0
    share, minutes = availability(probes, log.first_probe, log.start, log.end, now)
    values: dict[str, float | None] = {"serving_latency_p95_ms": stats.latency_p95_ms if answerable else None,
                                       "serving_error_rate": errors / answerable if answerable else None,
                                       "availability": share}
    no_verdict = {}
    if not answerable:
        why = (f"no requests between {log.start:%Y-%m-%d %H:%M} and {log.end:%Y-%m-%d %H:%M} UTC"
               + (f" (only {stats.refused} refused with a 4xx)" if stats else ""))
        no_verdict.update(serving_latency_p95_ms=why, serving_error_rate=why)
    if probes is None:  # not one probe of any replica in the day: the service did not run
        values["availability"] = 0.0
    elif share is None:
        no_verdict["availability"] = "the day is not over its first minute yet"
    checked = check_requirements([r for r in requirements if r.metric not in no_verdict], values, {})
    return ServiceLevel(start=log.start, end=log.end, requests=answerable, errors=errors,
                        refused=stats.refused if stats else 0, probes=probes.probes if probes else 0,
                        healthy_minutes=probes.healthy_minutes if probes else 0, minutes=minutes,
                        metrics=tuple(r.metric for r in requirements), values=values, results=checked,
                        no_verdict={m: why for m, why in no_verdict.items() if m in {r.metric for r in requirements}})


def evaluation_rows(level: ServiceLevel, common: dict[str, Any], mailed: str | None) -> list[EvaluationRow]:
    """One 'serving' row per serving requirement's metric (contender 'service'): its value, verdict and numbers.

    `common` holds the now-test's partition and run id; the rows' window is the checked day.
    """
    rows = []
    for metric in level.metrics:
        result = next((r for r in level.results if r.metric == metric), None)
        details = {"period": {"start": level.start.isoformat(), "end": level.end.isoformat()},
                   "requests": level.requests, "errors": level.errors, "refused": level.refused,
                   "probes": level.probes, "healthy_minutes": level.healthy_minutes, "minutes": level.minutes,
                   "requirements": [result.as_dict()] if result else [], "mailed": mailed,
                   "no_verdict": level.no_verdict.get(metric)}
        rows.append(EvaluationRow(**{**common, "kind": SERVING, "n_rows": level.requests,
                                     "window_start": level.start, "window_end": level.end},
                                  contender=SERVICE_CONTENDER, metric=metric, value=level.values.get(metric),
                                  passed=result.passed if result else None, details=details))
    return rows
