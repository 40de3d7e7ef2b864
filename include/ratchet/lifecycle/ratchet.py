"""The ratchet: on a promotion, requirements tighten to what the new champion's own back-test supports.

A bound is calibrated, not guessed: for a now-test requirement it is the (1 - alpha) quantile of the
champion's metric over every now-test window (`nowtest.window_days`, at least `nowtest.min_rows` rows) of its
back-test days, so an unchanged champion breaches it in about alpha of its now-tests; for a back-test or gate
requirement (checked on the mean of the back-test months) it is the one-sided (1 - alpha) confidence bound of
the champion's monthly mean. A relative requirement calibrates the ratio to the best (or named) baseline the
same way. alpha is the requirement's own `calibrate`, else `promotion.ratchet.false_alarm_rate`. A ratchet
never loosens: a calibrated bound replaces the stored one only when it is stricter. A requirement declared
with `calibrate:` gets its first bound at the first promotion, whether the ratchet is on or not.
"""
from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ratchet.evaluation.backtest import BacktestTable, months_of
from ratchet.evaluation.requirements import reference_baseline, with_stated
from ratchet.modeling.metrics import finite
from ratchet.modeling.statistics import mean_confidence_bound, quantile_bound, window_metric, windows
from ratchet.registry.entities import DaySeries, RatchetStep

if TYPE_CHECKING:
    from ratchet.evaluation.requirements import RequirementLike
    from ratchet.registry import Registry
    from ratchet.registry.entities import Requirement
    from ratchet.specs.model import ModelSpec

log = logging.getLogger(__name__)


def tighter(requirement: RequirementLike, bound: float) -> bool:
    """Whether `bound` is stricter than the requirement's stored bound (a ratchet only ever moves this way)."""
    return bound < requirement.bound if requirement.direction == "max" else bound > requirement.bound


def ratchet_steps(registry: Registry, spec: ModelSpec, contender: str, backtest: BacktestTable, reason: str,
                  version: int) -> list[RatchetStep]:
    """The calibrated bounds a promotion of `contender` sets: every metric requirement when the ratchet is on,
    else only those declared with `calibrate:` that have no bound yet. Each step carries its derivation."""
    months = months_of(backtest, contender)
    steps = []
    for req in registry.requirements(spec.name):
        first = req.calibrate is not None and not math.isfinite(req.bound)
        if req.metric not in spec.metrics or not (spec.promotion.ratchet.enabled or first):  # quality metrics only
            continue
        alpha = req.calibrate or spec.promotion.ratchet.false_alarm_rate
        if req.scope == "nowtest":
            found = calibrate_nowtest(registry, spec, req, contender, months, alpha)
        else:
            found = calibrate_backtest(spec, req, backtest, contender, months, alpha)
        if found is None:
            log.warning("%s: no calibrated bound for %s (%s): %s has no back-test values for it",
                        spec.name, req.metric, req.scope, contender)
            continue
        bound, derivation = found
        if tighter(req, bound):
            steps.append(RatchetStep(req.id, bound, f"{'first calibration' if first else 'ratchet'} on promotion "
                                                    f"of v{version}: {derivation['text']}; {reason}", derivation))
    return steps


def calibrate_backtest(spec: ModelSpec, req: Requirement, backtest: BacktestTable, contender: str,
                       months: list[str], alpha: float) -> tuple[float, dict[str, Any]] | None:
    """The one-sided (1 - alpha) confidence bound of the champion's monthly mean of the metric (or its ratio to
    the baseline), and how it was derived; None without months."""
    values = backtest.get(contender, {}).get(req.metric, {})
    monthly = []
    for month in months:
        value = finite(values.get(month))
        if req.relative_to is not None and value is not None:
            base = _baseline_value(spec, req, {b: backtest.get(b, {}).get(req.metric, {}).get(month)
                                         for b in spec.baselines})
            value = value / base if base else None
        if value is not None:
            monthly.append(value)
    if not monthly:
        return None
    bound, mean, sd = mean_confidence_bound(np.array(monthly), alpha, req.direction)
    what = f"{req.metric}{' / ' + req.relative_to if req.relative_to else ''}"
    return bound, {"method": "one-sided confidence bound of the monthly mean", "alpha": alpha,
                   "months": len(monthly), "first_month": months[0], "last_month": months[-1], "mean": mean,
                   "sd": sd, "text": f"{1 - alpha:.0%} confidence bound of {contender}'s mean {what} over "
                                     f"{len(monthly)} back-test months (mean {mean:.4g}, sd {sd:.4g})"}


def calibrate_nowtest(registry: Registry, spec: ModelSpec, req: Requirement, contender: str, months: list[str],
                      alpha: float) -> tuple[float, dict[str, Any]] | None:
    """The (1 - alpha) quantile of the champion's metric (or its ratio to the baseline) over every now-test
    window of its back-test days, and how it was derived; None without days or for a metric that has no
    value per window (f1 and roc_auc of a classifier)."""
    if spec.task == "classification" and req.metric not in ("log_loss", "accuracy"):
        return None
    series = registry.backtest_days(spec.name, [contender, *spec.baselines], months)
    if contender not in series:
        return None
    masks = windows(np.array(series[contender].times, dtype="datetime64[D]"), spec.nowtest.window_days,
                    spec.nowtest.min_rows)
    values = []
    for mask in masks:
        value = _on(spec, req.metric, series[contender], mask)
        if req.relative_to is not None:
            base = _baseline_value(spec, req, {b: _on(spec, req.metric, series[b], mask)
                                         for b in spec.baselines if b in series})
            value = value / base if base else math.nan
        values.append(value)
    values = np.array(values, dtype=float)
    if not np.isfinite(values).any():
        return None
    bound = quantile_bound(values, alpha, req.direction)
    quantile = 1 - alpha if req.direction == "max" else alpha
    used = int(np.isfinite(values).sum())
    what = f"{req.metric}{' / ' + req.relative_to if req.relative_to else ''}"
    days = [t.date() for t in (series[contender].times[0], series[contender].times[-1])]
    return bound, {"method": "quantile of the metric over now-test windows of the back-test", "alpha": alpha,
                   "quantile": quantile, "window_days": spec.nowtest.window_days, "min_rows": spec.nowtest.min_rows,
                   "windows": used, "first_day": str(days[0]), "last_day": str(days[-1]),
                   "text": f"{quantile:.0%} quantile of {contender}'s {what} over {used} windows of "
                           f"{spec.nowtest.window_days} days of its back-test ({days[0]}..{days[-1]})"}


def _on(spec: ModelSpec, metric: str, series: DaySeries, mask: np.ndarray) -> float:
    def pick(values: tuple | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values)[mask]

    return window_metric(spec, metric, pick(series.actual), pick(series.predicted), pick(series.loss),
                         pick(series.correct))


def _baseline_value(spec: ModelSpec, req: Requirement, values: dict[str, float | None]) -> float | None:
    """The value of the baseline `req` compares with, from baseline -> value of its metric (a stated baseline's is
    its constant)."""
    return reference_baseline(req.metric, req.relative_to,
                              with_stated(spec, {b: {req.metric: v} for b, v in values.items()}))[1]
