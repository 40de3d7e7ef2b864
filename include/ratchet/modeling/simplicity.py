"""Simplicity: among the search's trials not significantly worse than the best, the simplest wins a candidate slot
(`search.prefer_simpler`, on by default), so a 500-tree model that is not significantly better than a linear one
does not win alone.

The test is promotion gate 2's (`statistics.diebold_mariano`): would the best trial pass the gate's paired test
against this one? One-sided Diebold-Mariano on the two trials' out-of-fold row losses (`metrics.row_losses`: the
ranking metric's loss, or the task's when that metric is no mean of row losses), margin `promotion.min_improvement`
(H0: the best's loss is not that much lower), at `search.simpler_significance` (default `promotion.significance`,
0.05). Both trials predicted the same rows (the same time-ordered folds), so they pair row by row; the losses are
averaged per period across series (per day for events, `statistics.period_losses`), and the test runs on that
series of periods with a Newey-West variance whose lag follows the differences' own persistence, so errors that
persist from one period to the next, or a fold's model that is off for a whole block, are no extra evidence. A
p-value below the level: the best is significantly better and this trial is out; otherwise it is not
significantly worse. Fewer than 10 common periods is no evidence (p = 1): the simpler trial is kept.

The simplest of the not-significantly-worse trials (the best among them) has the fewest fitted parameters
(`modeling.complexity`, counted on each trial's last-fold model); between equal counts, the faster prediction per
row when at least `MATERIALLY_FASTER` times faster; then the better score. The best stays the simplest unless
another has strictly fewer parameters.

Its slot: when the simplest is not among the `search.candidates` best by score, it takes the last of those slots
(with one slot, the only one), so it is registered and goes through the back-test, the gates and the trial like any
candidate; the best keeps the first slot whenever there are two or more. Every registered version of the run
keeps the choice and its evidence (`details['simplicity']`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.modeling.metrics import row_loss_metric
from ratchet.modeling.search import best_trials, ranked
from ratchet.modeling.statistics import diebold_mariano, period_losses

if TYPE_CHECKING:
    from ratchet.modeling.search import Trial
    from ratchet.specs.model import ModelSpec

# between equal counts, prediction time decides only at this many times faster: one batch's timing on a shared
# machine varies by tens of percent, and the same model at other hyperparameters is no simpler for that
MATERIALLY_FASTER = 2.0


def significance(spec: ModelSpec) -> float:
    """The level below which the best trial counts as significantly better than another."""
    return spec.search.simpler_significance or spec.promotion.significance


def compare_with_best(spec: ModelSpec, trials: list[Trial], times: pd.Series) -> None:
    """Add to each scored trial's details the paired test of the best trial against it (`versus_best`), from their
    out-of-fold row losses (`times`: each row's time, as the search's folds cut them). Nothing when
    `search.prefer_simpler` is off."""
    order = ranked(spec, trials)
    if not spec.search.prefer_simpler or len(order) < 2:
        return
    best, positions = order[0], np.arange(len(times))

    def frame(trial: Trial) -> pd.DataFrame:  # each row its own key: the two trials pair row by row
        return pd.DataFrame({"time": times.to_numpy(), "series": positions, "loss": trial.row_losses})

    for trial in order[1:]:
        best_loss, trial_loss, rows = period_losses(frame(best), frame(trial), events=spec.source.events)
        test = diebold_mariano(best_loss, trial_loss, margin=spec.promotion.min_improvement)
        trial.details = {**(trial.details or {}), "versus_best": {
            "best_trial": best.trial_index, "metric": row_loss_metric(spec), "rows": rows, **test.as_dict()}}


@dataclass(frozen=True)
class Choice:
    """The best trial, the simplest of those not significantly worse than it, and the evidence."""

    best: Trial
    simplest: Trial
    not_worse: int  # trials not significantly worse than the best (the best among them)
    scored: int
    significance: float
    margin: float
    slots: tuple[Trial, ...]  # the trials to register, best first
    won_slot: bool  # the simplest is registered because it is the simplest (its score alone would not have)

    def evidence(self) -> dict[str, Any]:
        """The choice as a version's details keep it (`details['simplicity']`, with `role` added per version)."""
        test = None if self.simplest is self.best else self.simplest.details["versus_best"]
        return {"best": _summary(self.best), "simplest": _summary(self.simplest), "test": test,
                "not_worse": self.not_worse, "scored": self.scored, "significance": self.significance,
                "margin": self.margin, "won_slot": self.won_slot, "text": self.text()}

    def record(self, trial: Trial) -> dict[str, Any]:
        """The evidence, what `trial` (a registered one) is in it (`role`: 'best', 'simplest', 'best and simplest' or
        'ranked', registered for its score alone) and its own complexity."""
        roles = [name for name, t in (("best", self.best), ("simplest", self.simplest)) if t is trial]
        return {**self.evidence(), "role": " and ".join(roles) or "ranked", "complexity": _complexity(trial)}

    def text(self) -> str:
        """One line for the log, the model page and the card."""
        margin = f", margin {self.margin:.0%}" if self.margin else ""
        of = (f"of the {self.not_worse} of {self.scored} scored trials not significantly worse than the best (the "
              f"gate's paired test{margin}, p >= {self.significance:g})")
        if self.simplest is self.best:
            return f"the best trial {_words(self.best)} is also the simplest {of}"
        test = self.simplest.details["versus_best"]
        slot = "wins a candidate slot" if self.won_slot else "is registered for its score anyway"
        difference = test["relative_difference"]
        return (f"trial {_words(self.simplest)} {slot}: the simplest {of}; against the best trial "
                f"{_words(self.best)} p = {test['p_value']:.3g} on {test['metric']} loss over {test['n_days']:,} "
                f"periods ({test['rows']:,} rows)" + (
                    f", the best's mean loss {abs(difference):.2%} {'lower' if difference < 0 else 'higher'}"
                    if difference is not None and math.isfinite(difference)
                    else ": too few to test, so no evidence against the simpler"))


def choose(spec: ModelSpec, trials: list[Trial]) -> Choice | None:
    """The simplest of the trials not significantly worse than the best, and the slots it leaves (see the module);
    None when `search.prefer_simpler` is off or the trials carry no complexity (recorded before it was measured)."""
    order = ranked(spec, trials)
    if not spec.search.prefer_simpler or not order or not all(_complexity(t) for t in order):
        return None
    best, level = order[0], significance(spec)
    not_worse = [best] + [t for t in order[1:] if "versus_best" in t.details
                          and t.details["versus_best"]["p_value"] >= level]
    fewest = min(_complexity(t)["parameters"] for t in not_worse)
    simplest = best
    if fewest < _complexity(best)["parameters"]:
        smallest = [t for t in not_worse if _complexity(t)["parameters"] == fewest]  # best score first
        fastest = min(_complexity(t)["predict_us"] for t in smallest)
        simplest = next(t for t in smallest if _complexity(t)["predict_us"] < MATERIALLY_FASTER * fastest)
    slots = best_trials(spec, trials)
    won = not any(t is simplest for t in slots)
    if won:
        slots = [*slots[:-1], simplest]  # its score ranks it below every slot it keeps
    return Choice(best, simplest, len(not_worse), len(order), level, spec.promotion.min_improvement, tuple(slots),
                  won)


def candidates(spec: ModelSpec, trials: list[Trial]) -> tuple[list[Trial], Choice | None]:
    """The trials to register, best first: the `search.candidates` best by score, or the slots `choose` leaves; and
    the choice (None: see `choose`)."""
    choice = choose(spec, trials)
    return (list(choice.slots) if choice else best_trials(spec, trials)), choice


def _complexity(trial: Trial) -> dict[str, Any] | None:
    return (trial.details or {}).get("complexity")


def _summary(trial: Trial) -> dict[str, Any]:
    return {"trial": trial.trial_index, "estimator": trial.estimator_class, "params": trial.params,
            "metric": trial.metric, "score": trial.mean_score, **_complexity(trial)}


def _words(trial: Trial) -> str:
    c = _complexity(trial)
    return (f"#{trial.trial_index} ({trial.estimator_class.rsplit('.', 1)[-1]}, {trial.metric} "
            f"{trial.mean_score:.4g}, {c['parameters']:,} {c['counted']}, {c['predict_us']:.3g} µs/row)")
