"""The ratchet: on a promotion, requirements tighten towards the new champion's back-test, and never loosen."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ratchet.evaluation.backtest import BacktestTable, baseline_means, means_on, months_of
from ratchet.modeling.metrics import best_baseline, finite
from ratchet.registry.entities import RatchetStep
from ratchet.specs.model import COMPUTATIONAL_METRICS

if TYPE_CHECKING:
    from ratchet.evaluation.requirements import RequirementLike
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec


def ratchet_bound(requirement: RequirementLike, champion_value: float | None, slack: float) -> float | None:
    """The tightened bound: the champion's value loosened by `slack` (relative), if that is stricter.

    For relative requirements `champion_value` is the champion/baseline ratio. Returns None when
    nothing tightens (no value, or the slackened value is not stricter than the current bound):
    a ratchet never loosens.
    """
    value = finite(champion_value)
    if value is None:
        return None
    margin = slack * abs(value)
    if requirement.direction == "max":
        candidate = value + margin
        return candidate if candidate < requirement.bound else None
    candidate = value - margin
    return candidate if candidate > requirement.bound else None


def ratchet_steps(registry: Registry, spec: ModelSpec, contender: str, backtest: BacktestTable, reason: str,
                  version: int) -> list[RatchetStep]:
    """The steps that tighten every metric requirement towards the new champion's back-test mean (with slack).

    Absolute bounds move towards the mean itself; relative bounds move their factor towards the
    champion/baseline ratio. Computational bounds have no back-test value and stay as they are.
    Empty when the spec's ratchet is off.
    """
    settings = spec.promotion.ratchet
    if not settings.enabled:
        return []
    months = months_of(backtest, contender)
    values = means_on(backtest, contender, months)
    baselines = baseline_means(spec, backtest, months)
    steps = []
    for req in registry.requirements(spec.name):
        value = values.get(req.metric)
        if req.metric in COMPUTATIONAL_METRICS or value is None:
            continue
        target, why = value, f"{contender} back-test mean {req.metric} {value:.4g}"
        if req.relative_to is not None:
            name, base = (best_baseline(req.metric, baselines) if req.relative_to == "baseline"
                          else (req.relative_to, baselines.get(req.relative_to, {}).get(req.metric)))
            if not base:
                continue
            target, why = value / base, f"{why} / {name} {base:.4g} = {value / base:.4g}"
        new = ratchet_bound(req, target, settings.slack)
        if new is not None:
            steps.append(RatchetStep(req.id, new, f"ratchet on promotion of v{version}: {why}, "
                                                  f"slack {settings.slack:.0%}; {reason}"))
    return steps
