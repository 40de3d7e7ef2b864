"""How a champion ages: its back-test metric by months since training, the age at which it breaks a requirement,
and the retrain cadence that follows.

A version in production is fitted once and then predicts month after month. To measure what that costs, the
champion is fitted the way the back-test refits it (its hyperparameters, its own inputs, the back-test's training
window) before each of several back-test months, the origins, and scored without refitting on that month (age 1)
and each following one (age 2, 3, ... up to `max_age`). Every origin is scored at every age (a balanced design), so
each age averages the same origins; the months an age scores shift with it, so a month hard for every model (a
regime change in the last month) lifts the ages that reach it: a relative bound, scored against its baselines on
the same months, allows for that, an absolute one does not.
The spread at each age is the standard deviation over the origins and the 95% Student-t interval of their mean;
origins overlap in their training rows, so they are not independent and the interval is, if anything, too narrow.

A stored requirement of scope back-test or now-test on a prediction metric is read along the curve: its bound at
each age (a relative one applied to its baselines' back-test values on the same months, averaged like the curve)
and the crossing age, the first age whose mean breaks it. The mean is a point estimate, not a test: the crossing
is where the average origin broke the bound, so about half the origins broke it there (the page counts them).

The recommended cadence: each month of age is at least 28 days, so a model that first breaks a bound at age k held
it at least 28 (k - 1) days; Ratchet recommends retraining at least every half of that (a margin of two), rounded
down to @monthly, @weekly or @daily (a schedule's longest gap between two retrains). A model that never breaks a
bound held it for every month measured; one that breaks it at age 1 gets @daily, and is told that no cadence was
shown to hold it.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ratchet.evaluation import backtest
from ratchet.evaluation.requirements import SCOPE_LABELS, check_requirements, declared_text
from ratchet.modeling import metrics, sources
from ratchet.modeling.features import ContractInputs
from ratchet.modeling.months import month_fingerprints
from ratchet.modeling.statistics import mean_confidence_bound
from ratchet.registry.entities import AgePoint, Aging, Crossing
from ratchet.specs.schedule import longest_gap

if TYPE_CHECKING:
    from ratchet.evaluation.requirements import RequirementLike
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

log = logging.getLogger(__name__)
MAX_AGE = 12  # months since training a curve reaches (at most half the back-test months: the other half are origins)
MIN_MONTHS = 4  # back-test months aging needs: two ages, each over three origins
AGED_SCOPES = ("backtest", "nowtest")  # requirements on how well a model predicts over time
MONTH_DAYS = 28  # the fewest days a month of age holds: a crossing at age k means the bound held 28 (k - 1) days
MARGIN = 2  # retrain at least every 1 / MARGIN of the time a bound held
CADENCES = ("@monthly", "@weekly", "@daily")  # what a recommendation is rounded down to, slowest first
INTERVAL = 0.05  # the curve's band: the 95% interval of each age's mean


def max_age(months: int) -> int:
    """The ages a curve reaches with `months` back-test months: half of them (the others are origins), at most
    MAX_AGE; 0 below MIN_MONTHS."""
    return 0 if months < MIN_MONTHS else min(MAX_AGE, months // 2)


def measure(spec: ModelSpec, contender: backtest.Contender, inputs: ContractInputs,
            months: list[str]) -> dict[str, dict[int, dict[str, float]]]:
    """metric -> age -> origin -> the contender's metric at that age: fitted before each origin (the first
    `len(months) - max_age + 1` months) and scored, without refitting, on it and the months after. A month without
    rows (or an origin without rows before it) leaves its values out."""
    ages = max_age(len(months))
    own, X, y, times = backtest.inputs_of(inputs, contender)
    values: dict[str, dict[int, dict[str, float]]] = {m: {age: {} for age in range(1, ages + 1)} for m in spec.metrics}
    for i, origin in enumerate(months[:len(months) - ages + 1]):
        model, trained_on = backtest.fit_before(own, contender, X, y, times, origin)
        if not trained_on:
            continue
        for age, month in enumerate(months[i:i + ages], start=1):
            test = backtest.month_rows(own, times, month)[0]
            if test.stop == test.start:
                continue
            for metric, value in metrics.evaluate(spec, model, X.iloc[test], y.iloc[test]).values.items():
                if math.isfinite(value):
                    values[metric][age][origin] = float(value)
    return values


def curve(by_age: dict[int, dict[str, float]]) -> tuple[AgePoint, ...]:
    """One point per age: the mean over the origins, their standard deviation and the 95% interval of the mean."""
    points = []
    for age, by_origin in sorted(by_age.items()):
        values = np.array(list(by_origin.values()), float)
        if values.size == 0:
            points.append(AgePoint(age, None, None, None, None, {}))
            continue
        high, mean, sd = mean_confidence_bound(values, INTERVAL / 2, "max")
        low = mean_confidence_bound(values, INTERVAL / 2, "min")[0]
        points.append(AgePoint(age, mean, sd if values.size > 1 else None, low if values.size > 1 else None,
                               high if values.size > 1 else None, dict(by_origin)))
    return tuple(points)


def crossings(spec: ModelSpec, requirements: list[RequirementLike], curves: dict[str, tuple[AgePoint, ...]],
              months: list[str], baselines: backtest.BacktestTable) -> tuple[Crossing, ...]:
    """Each requirement of scope back-test or now-test on a curve's metric (with a bound), read along the curve: its
    bound at each age and the first age whose mean breaks it. A relative bound is applied to its baselines' values
    (`baselines`: the back-test's, baseline -> metric -> month) averaged over the months each age scores; an age
    whose mean or baseline is missing is not judged."""
    out = []
    for req in requirements:
        if req.scope not in AGED_SCOPES or req.metric not in curves or not math.isfinite(req.bound):
            continue
        points = curves[req.metric]
        origins = len(months) - len(points) + 1
        bounds, crossed = [], None
        for point in points:
            scored = months[point.age - 1:point.age - 1 + origins]  # the month each origin is scored on at this age
            (result,) = check_requirements([req], {req.metric: point.mean},
                                           backtest.baseline_means(spec, baselines, scored))
            bounds.append(result.effective_bound)
            judged = result.value is not None and result.effective_bound is not None
            if crossed is None and judged and not result.passed:
                crossed = point.age
        out.append(Crossing(getattr(req, "id", None), req.metric, req.direction, req.scope,
                            f"{req.metric} {declared_text(req)} ({SCOPE_LABELS[req.scope]})", tuple(bounds), crossed))
    return tuple(out)


def run_aging(registry: Registry, spec: ModelSpec, *, run_id: str, end: Any) -> Aging | None:
    """Measure how the champion ages over the back-test months before `end` and store it (with the crossing of each
    stored requirement); None without a champion or with fewer than MIN_MONTHS back-test months.

    The curves are refitted only when the champion's rows changed (the chained fingerprint through the last month
    scored): otherwise the stored curves are read again against today's requirements and baselines, so a bound
    the ratchet tightened moves the crossing without refitting anything.

    Raises:
        DataError: the rows hold no complete back-test month (`backtest.month_groups`).
    """
    champion = registry.champion(spec.name)
    if champion is None:
        return None
    inputs = ContractInputs(spec, sources.read_rows(spec, end=end), end=end)
    inputs.settle([(champion.version, champion.contract)])  # the champion's inputs built, the rows read let go
    (months,) = backtest.month_groups(spec, inputs.frame, end=end, groups=1)
    ages = max_age(len(months))
    if not ages:
        return None
    fingerprint = month_fingerprints(spec, inputs.frame).get(months[-1])
    stored = registry.aging(spec.name, champion.version)
    if stored is not None and stored.data_fingerprint == fingerprint and stored.months == tuple(months) \
            and stored.max_age == ages:
        curves = stored.curves
    else:
        values = measure(spec, backtest.Contender.of(champion), inputs, months)
        curves = {metric: curve(by_age) for metric, by_age in values.items()}
    aging = Aging(model=spec.name, version=champion.version, run_id=run_id, months=tuple(months), max_age=ages,
                  curves=curves, data_fingerprint=fingerprint,
                  crossings=crossings(spec, registry.requirements(spec.name), curves, months,
                                      backtest.metric_tables(registry, spec)))
    registry.record_aging(aging)
    return aging


@dataclass(frozen=True)
class RetrainPlan:
    """The cadence an aging curve recommends, beside the model's configured `retrain.schedule`."""

    recommended: str  # one of CADENCES
    limit_days: float  # retrain at least this often: half the days its requirements held
    held_days: int  # a lower bound on how long it met every requirement after training
    configured: str
    configured_gap_days: float  # the configured schedule's longest gap between two retrains
    often_enough: bool  # the configured gap is within the limit (or no longer than the recommended cadence's)
    reason: str

    def describe(self) -> str:
        """One line for a log, `ratchet status` and the model card."""
        verdict = "often enough" if self.often_enough else \
            f"NOT often enough: up to {self.configured_gap_days:g} days between retrains"
        return f"recommended {self.recommended} ({self.reason}); configured {self.configured}: {verdict}"


def retrain_plan(aging: Aging, schedule: str) -> RetrainPlan:
    """The cadence `aging` recommends (see the module's docstring) and whether `schedule` (the spec's
    `retrain.schedule`) keeps to it."""
    crossing = aging.crossing
    held_months = aging.max_age if crossing is None else crossing.age - 1
    held = MONTH_DAYS * held_months
    limit = held / MARGIN
    recommended = next((c for c in CADENCES if _days(longest_gap(c)) <= limit), CADENCES[-1])
    gap = _days(longest_gap(schedule))
    if crossing is None:
        reason = (f"it met every requirement at every age measured, 1..{aging.max_age} months: at least {held} days; "
                  f"retrain at least every {limit:g} days")
    elif held_months == 0:
        reason = (f"{crossing.requirement} is broken in the first month after training already: no cadence was "
                  f"shown to hold it")
    else:
        reason = (f"{crossing.requirement} is broken at age {crossing.age} months (the mean over "
                  f"{len(aging.origins)} origins), so it held at least {held} days; retrain at least every "
                  f"{limit:g} days")
    return RetrainPlan(recommended=recommended, limit_days=limit, held_days=held, configured=schedule,
                       configured_gap_days=gap, often_enough=gap <= max(limit, _days(longest_gap(recommended))),
                       reason=reason)


def _days(gap: dt.timedelta) -> float:
    return gap.total_seconds() / 86400
