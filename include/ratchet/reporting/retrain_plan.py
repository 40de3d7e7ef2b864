"""A model's retrain plan in words and figures: its `retrain.schedule` and when it is next due, how its champion (or
any version measured) ages, and the cadence that recommends; what the model page, `ratchet status` and the model
card show alike."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ratchet.evaluation.aging import RetrainPlan, retrain_plan
from ratchet.lifecycle.schedule import retrain_due
from ratchet.reporting import charts

if TYPE_CHECKING:
    from ratchet.registry.entities import AgePoint, Aging, Crossing
    from ratchet.specs.model import ModelSpec


@dataclass(frozen=True)
class AgeRow:
    """One age of the curve shown: the mean over the origins, its interval, the bound there and how many origins
    broke it."""

    age: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None
    origins: int
    bound: float | None
    breaking: int | None  # origins whose value breaks the bound at this age; None without a bound


@dataclass(frozen=True)
class AgingView:
    """How one version ages, as shown: the curve of one metric (the first broken requirement's, else the first
    requirement's read along it, else the ranking metric), its requirement, and the plan it recommends."""

    aging: Aging
    metric: str
    crossing: Crossing | None  # the requirement shown beside the curve
    rows: tuple[AgeRow, ...]
    plan: RetrainPlan

    def summary(self) -> str:
        """One sentence: where the curve crosses, and what that recommends."""
        a = self.aging
        head = f"v{a.version}, {len(a.origins)} origins ({a.origins[0]}..{a.origins[-1]}), ages 1..{a.max_age} months"
        if a.crossing is None:
            return f"{head}: meets every requirement at every age; {self.plan.describe()}"
        return f"{head}: {a.crossing.requirement} broken at age {a.crossing.age} months; {self.plan.describe()}"

    def chart(self) -> str:
        """The curve (mean and its 95% interval) by months since training, with the requirement's bound."""
        return charts.line_chart(
            [str(r.age) for r in self.rows],
            {"mean": [r.mean for r in self.rows], "95% interval, low": [r.low for r in self.rows],
             "95% interval, high": [r.high for r in self.rows]},
            title=f"{self.metric} by months since training (v{self.aging.version}, mean of "
                  f"{len(self.aging.origins)} origins)", y_label=self.metric,
            requirement=[r.bound for r in self.rows] if self.crossing else None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, for `ratchet status --json`."""
        a = self.aging
        return {"version": a.version, "origins": list(a.origins), "max_age": a.max_age, "metric": self.metric,
                "curve": [{"age": r.age, "mean": r.mean, "sd": r.sd, "low": r.low, "high": r.high,
                           "origins": r.origins, "bound": r.bound, "breaking": r.breaking} for r in self.rows],
                "crossings": [{"requirement": c.requirement, "requirement_id": c.requirement_id, "age": c.age}
                              for c in a.crossings],
                "crossing_age": a.crossing_age, "measured_at": a.created_at and a.created_at.isoformat(),
                "recommended": self.plan.recommended, "limit_days": self.plan.limit_days,
                "configured_often_enough": self.plan.often_enough, "reason": self.plan.reason}


def aging_view(spec: ModelSpec, aging: Aging | None) -> AgingView | None:
    """The view of `aging` (None before it was measured)."""
    if aging is None:
        return None
    crossing = aging.crossing or next((c for c in aging.crossings), None)
    metric = crossing.metric if crossing else spec.metric
    rows = tuple(_row(point, crossing) for point in aging.curves.get(metric, ()))
    return AgingView(aging, metric, crossing, rows, retrain_plan(aging, spec.retrain.schedule))


def schedule_status(spec: ModelSpec, now: dt.datetime | None = None) -> dict[str, Any]:
    """The configured `retrain.schedule` and the next time it is due after `now` (default: the clock)."""
    due = retrain_due(spec.retrain.schedule, now or dt.datetime.now(dt.UTC))
    return {"schedule": spec.retrain.schedule, "next_due": due.next_time.isoformat()}


def _row(point: AgePoint, crossing: Crossing | None) -> AgeRow:
    bound = crossing.bounds[point.age - 1] if crossing else None
    breaking = None if bound is None else sum(crossing.breaks(v, point.age) for v in point.by_origin.values())
    return AgeRow(point.age, point.mean, point.sd, point.low, point.high, point.n, bound, breaking)
