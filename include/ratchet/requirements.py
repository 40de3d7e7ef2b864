"""Checking requirements and tightening them (the ratchet).

A requirement is a bound on one metric: absolute (`rmse <= 12`), relative to a baseline
evaluated on the same rows (`rmse <= 0.9 × best baseline`), or computational
(`predict_latency_p95_ms`, `model_size_bytes`). A missing value never passes silently.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

SCOPE_LABELS = {"backtest": "back-test", "nowtest": "now-test", "gate": "gate"}


@dataclass(frozen=True)
class RequirementResult:
    requirement_id: int | None
    metric: str
    direction: str  # 'max' | 'min'
    bound: float  # as stored
    effective_bound: float | None  # bound, or bound × baseline value for relative requirements
    relative_to: str | None
    baseline_name: str | None
    baseline_value: float | None
    value: float | None
    scope: str
    passed: bool

    def describe(self) -> str:
        """One line a person reads in a mail or a failed task log, e.g. 'rmse 12.3 > 0.9 × last_value 11 = 9.9'."""
        scope = SCOPE_LABELS.get(self.scope, self.scope)
        value = "missing" if self.value is None else _fmt(self.value)
        ok = "<=" if self.direction == "max" else ">="
        bad = ">" if self.direction == "max" else "<"
        sign = ok if self.passed else bad
        if self.relative_to is None:
            return f"{self.metric} {value} {sign} {self.direction} {_fmt(self.bound)} ({scope})"
        if self.baseline_value is None:
            return (f"{self.metric} {value}: no value of baseline {self.relative_to!r} on the same rows "
                    f"for {self.direction} {_fmt(self.bound)} × baseline ({scope})")
        return (f"{self.metric} {value} {sign} {_fmt(self.bound)} × {self.baseline_name} "
                f"{_fmt(self.baseline_value)} = {_fmt(self.effective_bound)} ({scope})")

    def as_dict(self) -> dict:
        return {"requirement_id": self.requirement_id, "metric": self.metric, "direction": self.direction,
                "bound": self.bound, "effective_bound": self.effective_bound, "relative_to": self.relative_to,
                "baseline_name": self.baseline_name, "baseline_value": self.baseline_value,
                "value": self.value, "scope": self.scope, "passed": self.passed, "text": self.describe()}


def check_requirements(requirements: Iterable, values: dict[str, float | None],
                       baseline_values: dict[str, dict[str, float | None]]) -> list[RequirementResult]:
    """Check each requirement (Requirement rows or RequirementSpec) against the contender's values.

    `baseline_values` maps baseline name -> metric -> value on the same rows; `relative_to='baseline'`
    means the best baseline for that metric.
    """
    results = []
    for req in requirements:
        value = _finite(values.get(req.metric))
        baseline_name = baseline_value = None
        effective = req.bound
        if req.relative_to is not None:
            baseline_name, baseline_value = _baseline(req.metric, req.relative_to, baseline_values)
            effective = None if baseline_value is None else req.bound * baseline_value
        passed = value is not None and effective is not None and (
            value <= effective if req.direction == "max" else value >= effective)
        results.append(RequirementResult(
            requirement_id=getattr(req, "id", None), metric=req.metric, direction=req.direction,
            bound=req.bound, effective_bound=effective, relative_to=req.relative_to,
            baseline_name=baseline_name, baseline_value=baseline_value, value=value, scope=req.scope,
            passed=passed))
    return results


def ratchet_bound(requirement, champion_value: float | None, slack: float) -> float | None:
    """The tightened bound: the champion's value loosened by `slack` (relative), if that is stricter.

    For relative requirements `champion_value` is the champion/baseline ratio. Returns None when
    nothing tightens (no value, or the slackened value is not stricter than the current bound):
    a ratchet never loosens.
    """
    value = _finite(champion_value)
    if value is None:
        return None
    margin = slack * abs(value)
    if requirement.direction == "max":
        candidate = value + margin
        return candidate if candidate < requirement.bound else None
    candidate = value - margin
    return candidate if candidate > requirement.bound else None


def best_baseline(metric: str, baseline_values: dict[str, dict[str, float | None]]) -> tuple[str | None, float | None]:
    """The baseline with the best value of `metric` (lower or higher is better depending on the metric)."""
    from ratchet.metrics import LOWER_IS_BETTER

    scored = [(name, _finite(metrics.get(metric))) for name, metrics in baseline_values.items()]
    scored = [(name, value) for name, value in scored if value is not None]
    if not scored:
        return None, None
    pick = min if LOWER_IS_BETTER.get(metric, True) else max
    return pick(scored, key=lambda item: item[1])


def _baseline(metric, relative_to, baseline_values):
    if relative_to == "baseline":
        return best_baseline(metric, baseline_values)
    return relative_to, _finite(baseline_values.get(relative_to, {}).get(metric))


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _fmt(value: float | None) -> str:
    if value is None:
        return "missing"
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
