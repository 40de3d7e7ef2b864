"""Checking requirements, and the one way a requirement's verdict is written down.

A requirement is a bound on one metric: absolute (`rmse <= 12`), relative to a baseline
evaluated on the same rows (`rmse <= 0.9 × best baseline`), or computational
(`predict_latency_p95_ms`, `model_size_bytes`). A missing value never passes silently.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from ratchet.modeling.metrics import best_baseline, finite

if TYPE_CHECKING:
    from ratchet.registry.entities import Requirement
    from ratchet.specs.model import ModelSpec

SCOPE_LABELS = {"backtest": "back-test", "nowtest": "now-test", "gate": "gate"}


class RequirementLike(Protocol):
    """A stored requirement (`registry.entities.Requirement`) or a declared one (`specs.model.RequirementSpec`)."""

    metric: str
    direction: str
    bound: float
    relative_to: str | None
    scope: str


@dataclass(frozen=True)
class RequirementResult:
    """The verdict of one requirement on one contender's values, with everything needed to explain it."""

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
    series: str | None = None  # the series of a panel this verdict is on (a `per_series` requirement); None: all
    slice: str | None = None  # the slice ("column=value") this verdict is on (a `per_slice` requirement)

    def describe(self, *, scope: bool = True) -> str:
        """One line a person reads in a task log or a mail, naming the series or slice of its verdict first:
        'series store=3: mae 14.2 > max 10 (now-test)', 'slice channel=web: ...' (see `_describe`)."""
        text = self._describe(scope=scope)
        if self.series is not None:
            return f"series {self.series}: {text}"
        return f"slice {self.slice}: {text}" if self.slice is not None else text

    def _describe(self, *, scope: bool = True) -> str:
        """One line a person reads in a task log or a mail.

        With the scope (logs, gate evidence): 'mape 0.231 > max 0.15 (now-test)',
        'rmse 12.3 > 0.9 × last_value 11 = 9.9 (back-test)'. Without it (mail subjects, where every
        line is of one now-test) a relative bound keeps its direction instead: 'rmse 12.3 > max 0.9 ×
        last_value 11 = 9.9'.
        """
        value = "missing" if self.value is None else _fmt(self.value)
        sign = ("<=" if self.passed else ">") if self.direction == "max" else (">=" if self.passed else "<")
        suffix = f" ({SCOPE_LABELS.get(self.scope, self.scope)})" if scope else ""
        if self.relative_to is None:
            return f"{self.metric} {value} {sign} {self.bound_text()}{suffix}"
        if self.baseline_value is None:
            detail = (f" for {self.direction} {_fmt(self.bound)} × baseline" if scope else "")
            return (f"{self.metric} {value}: no value of baseline {self.relative_to!r} on the same rows"
                    f"{detail}{suffix}")
        return f"{self.metric} {value} {sign} {self.bound_text(direction=not scope)}{suffix}"

    def bound_text(self, *, direction: bool = True) -> str:
        """The bound as stored and, for a relative one, as applied: 'max 0.15', 'max 0.9 × last_value 11 = 9.9'.

        `direction=False` leaves 'max'/'min' out of a relative bound (an absolute one always has it).
        """
        if not math.isfinite(self.bound):
            return f"{self.direction}: no bound yet (calibrated at the first promotion)"
        if self.relative_to is None:
            return f"{self.direction} {_fmt(self.bound)}"
        return (f"{self.direction + ' ' if direction else ''}{_fmt(self.bound)} × "
                f"{self.baseline_name or self.relative_to} {_fmt(self.baseline_value)} = {_fmt(self.effective_bound)}")

    def as_dict(self) -> dict[str, Any]:
        """The verdict as JSON-able evidence (stored with evaluations and promotion gates)."""
        return {"requirement_id": self.requirement_id, "metric": self.metric, "direction": self.direction,
                "bound": self.bound, "effective_bound": self.effective_bound, "relative_to": self.relative_to,
                "baseline_name": self.baseline_name, "baseline_value": self.baseline_value,
                "value": self.value, "scope": self.scope, "passed": self.passed, "series": self.series,
                **({"slice": self.slice} if self.slice is not None else {}), "text": self.describe()}


def check_requirements(requirements: Iterable[RequirementLike], values: dict[str, float | None],
                       baseline_values: dict[str, dict[str, float | None]]) -> list[RequirementResult]:
    """Check each requirement against the contender's values.

    Args:
        requirements: stored requirements or declared ones.
        values: metric -> the contender's value.
        baseline_values: baseline name -> metric -> value on the same rows; `relative_to='baseline'`
            means the best baseline for that metric.
    """
    results = []
    for req in requirements:
        value = finite(values.get(req.metric))
        baseline_name = baseline_value = None
        effective = req.bound
        if req.relative_to is not None:
            baseline_name, baseline_value = reference_baseline(req.metric, req.relative_to, baseline_values)
            effective = None if baseline_value is None else req.bound * baseline_value
        passed = value is not None and effective is not None and (
            value <= effective if req.direction == "max" else value >= effective)
        results.append(RequirementResult(
            requirement_id=getattr(req, "id", None), metric=req.metric, direction=req.direction,
            bound=req.bound, effective_bound=effective, relative_to=req.relative_to,
            baseline_name=baseline_name, baseline_value=baseline_value, value=value, scope=req.scope,
            passed=passed))
    return results


def check_per_series(requirements: Iterable[RequirementLike], declared: Iterable[Any],
                     by_series: dict[str, dict[str, Any]], baselines_by_series: dict[str, dict[str, dict[str, Any]]],
                     default_min_rows: int) -> list[RequirementResult]:
    """The verdicts of the `per_series` requirements (`declared`: the spec's) on each series of a panel with enough
    rows (the requirement's `min_rows`, else `default_min_rows`), against the same bound, a relative one against
    the series' own baseline value. `by_series` maps series -> {"rows": n, metric: value} (`metrics.per_series`),
    `baselines_by_series` baseline -> series -> the same. Only the breaches are returned: a passing series is no
    news, and the panel's own verdict stays beside them."""
    return [replace(result, series=group) for group, result in
            _breaching_groups(requirements, [d for d in declared if d.per_series], by_series, baselines_by_series,
                              default_min_rows)]


def check_per_slice(requirements: Iterable[RequirementLike], declared: Iterable[Any],
                    by_slice: dict[str, dict[str, Any]], baselines_by_slice: dict[str, dict[str, dict[str, Any]]],
                    default_min_rows: int) -> list[RequirementResult]:
    """`check_per_series` for the `per_slice` requirements on each slice ("column=value", `modeling.slices`)."""
    return [replace(result, slice=group) for group, result in
            _breaching_groups(requirements, [d for d in declared if d.per_slice], by_slice, baselines_by_slice,
                              default_min_rows)]


def _breaching_groups(requirements: Iterable[RequirementLike], declared: list[Any],
                      by_group: dict[str, dict[str, Any]], baselines_by_group: dict[str, dict[str, dict[str, Any]]],
                      default_min_rows: int) -> list[tuple[str, RequirementResult]]:
    """(group, verdict) of each breach of a `declared` requirement by a group (series or slice) with enough rows."""
    wanted = {d.key: d for d in declared}
    results = []
    for req in requirements:
        spec = wanted.get((req.metric, req.relative_to, req.scope, req.direction))
        if spec is None:
            continue
        needed = spec.min_rows or default_min_rows
        for group, values in by_group.items():
            if values["rows"] < needed:
                continue
            baselines = {name: per.get(group, {}) for name, per in baselines_by_group.items()}
            (result,) = check_requirements([req], values, baselines)
            if not result.passed:
                results.append((group, result))
    return results


def with_stated(spec: ModelSpec, baseline_values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Baseline -> metric -> value, with the spec's stated baselines (`baselines: [{name, metrics, source}]`) as
    the constants they are: what relative requirements and 'the best baseline' compare with."""
    return {**baseline_values, **{b.name: dict(b.metrics) for b in spec.stated_baselines}}


def reference_baseline(metric: str, relative_to: str,
                       baseline_values: dict[str, dict[str, float | None]]) -> tuple[str | None, float | None]:
    """(name, value) of the baseline a relative requirement compares with: the named one, or the best one
    when `relative_to` is 'baseline'. `baseline_values` maps baseline -> metric -> value on the same rows."""
    if relative_to == "baseline":
        return best_baseline(metric, baseline_values)
    return relative_to, finite(baseline_values.get(relative_to, {}).get(metric))


def declared_text(req: RequirementLike) -> str:
    """A bound as a requirement states it: 'max 0.08', 'max 0.9 × baseline', 'max: calibrated, no bound yet'."""
    if not math.isfinite(req.bound):
        return f"{req.direction}: calibrated, no bound yet"
    return f"{req.direction} {_fmt(req.bound)}{' × ' + req.relative_to if req.relative_to else ''}"


def bound_origin(req: Requirement, declared: Iterable[RequirementLike]) -> str:
    """How a stored bound came to be, from its history: the change that set it (a ratchet's derivation, an edit,
    the YAML) and, when they differ, what the YAML (`declared`: the spec's requirements) declares.

    'mape max 0.0466 (now-test): set 2026-11-02 by alice: ratchet on promotion of v2: 95% quantile of ...; the
    YAML says max 0.08'.
    """
    head = f"{req.metric} {declared_text(req)} ({SCOPE_LABELS.get(req.scope, req.scope)})"
    key = (req.metric, req.relative_to, req.scope, req.direction)
    declared = next((d for d in declared if (d.metric, d.relative_to, d.scope, d.direction) == key), None)
    setting = next((c for c in reversed(req.history)
                    if c.new_bound is not None and (c.new_bound == req.bound or math.isclose(c.new_bound, req.bound))),
                   None)
    if setting is not None:
        head += f": set {setting.changed_at:%Y-%m-%d} by {setting.changed_by}: {setting.reason}"
    if declared is None:
        return f"{head}; no longer in the YAML"
    if declared.bound != req.bound:
        return f"{head}; the YAML says {declared_text(declared)}"
    return f"{head}; as the YAML says"


def _fmt(value: float | None) -> str:
    if value is None:
        return "missing"
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"
