"""Nightly random search with time-ordered cross-validation, iterated around the champion.

Part of each night's trials explore the whole search space; the rest sample a space narrowed
around the current champion's hyperparameters, so the search converges over nights while
still looking elsewhere. Every fold trains only on rows before its validation rows.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.modeling import metrics
from ratchet.modeling.features import make_estimator
from ratchet.specs.model import lower_is_better

if TYPE_CHECKING:
    from ratchet.specs.model import EstimatorSpec, ModelSpec

NARROW_FRACTION = 0.25


@dataclass
class Trial:
    """One trial of a search: the estimator and parameters tried, its fold scores, or its error."""

    trial_index: int
    estimator_class: str
    params: dict[str, Any]
    sampling: str
    metric: str
    fold_scores: list[float] = field(default_factory=list)
    mean_score: float | None = None
    fit_seconds: float = 0.0
    error: str | None = None

    def record(self) -> dict[str, Any]:
        """The trial as the registry stores it."""
        return {k: getattr(self, k) for k in ("trial_index", "estimator_class", "params", "sampling", "metric",
                                              "fold_scores", "mean_score", "fit_seconds", "error")}


def run_seed(seed: int, salt: str) -> int:
    """A seed fixed by the spec's seed and the run's logical date: a rerun samples the same trials."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{salt}".encode()).digest()[:4], "big")


def sample(space: dict[str, dict[str, Any]], rng: np.random.Generator) -> dict[str, Any]:
    """One draw of every parameter from its distribution (uniform, loguniform, randint, choice)."""
    params = {}
    for name, dist in space.items():
        (kind, args), = dist.items()
        if kind == "choice":
            params[name] = args[int(rng.integers(len(args)))]
        elif kind == "uniform":
            params[name] = float(rng.uniform(*args))
        elif kind == "loguniform":
            params[name] = float(math.exp(rng.uniform(math.log(args[0]), math.log(args[1]))))
        elif kind == "randint":
            params[name] = int(rng.integers(args[0], args[1] + 1))
    return params


def narrow(space: dict[str, dict[str, Any]], center: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The space shrunk to NARROW_FRACTION of each range around the champion's values (on log scale for loguniform)."""
    narrowed = {}
    for name, dist in space.items():
        (kind, args), = dist.items()
        value = center.get(name)
        if value is None or kind == "choice":
            narrowed[name] = {"choice": [value]} if kind == "choice" and value in args else dist
            continue
        low, high = args
        if kind == "loguniform":
            half = (math.log(high) - math.log(low)) * NARROW_FRACTION / 2
            centre = math.log(min(max(value, low), high))
            narrowed[name] = {kind: [math.exp(max(math.log(low), centre - half)),
                                     math.exp(min(math.log(high), centre + half))]}
        else:
            half = (high - low) * NARROW_FRACTION / 2
            lo, hi = max(low, value - half), min(high, value + half)
            if kind == "randint":
                lo, hi = int(math.floor(lo)), int(math.ceil(hi))
                hi = max(hi, lo + 1)
            narrowed[name] = {kind: [lo, hi]}
    return narrowed


def plan_trials(spec: ModelSpec, rng: np.random.Generator,
                champion: Any = None) -> list[tuple[EstimatorSpec, dict[str, Any], str]]:
    """(estimator spec, params, sampling) for every trial of the night.

    `champion` is the current champion (anything with `estimator_class` and `hyperparameters`) or None;
    with one, `1 - explore_fraction` of the trials sample the space narrowed around its parameters.
    """
    exploit_target = None
    if champion is not None:
        exploit_target = next((e for e in spec.estimators if e.class_path == champion.estimator_class), None)
    n_exploit = 0 if exploit_target is None else int(round(spec.search.n_trials * (1 - spec.search.explore_fraction)))
    plans = []
    for i in range(spec.search.n_trials):
        if i < n_exploit:
            space = narrow(exploit_target.search_space, champion.hyperparameters)
            plans.append((exploit_target, sample(space, rng), "exploit"))
        else:
            estimator = spec.estimators[int(rng.integers(len(spec.estimators)))]
            plans.append((estimator, sample(estimator.search_space, rng), "explore"))
    return plans


def time_folds(times: pd.Series, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds over time-ordered rows, cut between periods: each validation block comes after its
    training rows, and the rows of one time (a panel's series) are all on one side of a cut."""
    from sklearn.model_selection import TimeSeriesSplit

    periods, position = np.unique(np.asarray(times), return_inverse=True)
    return [(np.flatnonzero(np.isin(position, train)), np.flatnonzero(np.isin(position, test)))
            for train, test in TimeSeriesSplit(n_splits=n_folds).split(periods)]


def cross_validate(spec: ModelSpec, estimator_spec: EstimatorSpec, params: dict[str, Any], X: pd.DataFrame,
                   y: pd.Series, folds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[list[float], float]:
    """The ranking metric on each fold, and the seconds all folds took."""
    scores, started = [], time.perf_counter()
    for train, test in folds:
        model = make_estimator(spec, estimator_spec, params).fit(X.iloc[train], y.iloc[train])
        scores.append(metrics.evaluate(spec, model, X.iloc[test], y.iloc[test]).values[spec.metric])
    return scores, time.perf_counter() - started


def run_search(spec: ModelSpec, X: pd.DataFrame, y: pd.Series, times: pd.Series, *, seed_salt: str,
               champion: Any = None) -> list[Trial]:
    """Every trial of the night, scored by time-ordered CV (folds cut between the rows' `times`); a failing trial
    is kept with its error."""
    rng = np.random.default_rng(run_seed(spec.search.seed, seed_salt))
    folds = time_folds(times, spec.search.cv_folds)
    trials = []
    for index, (estimator_spec, params, sampling) in enumerate(plan_trials(spec, rng, champion)):
        trial = Trial(index, estimator_spec.class_path, params, sampling, spec.metric)
        try:
            trial.fold_scores, trial.fit_seconds = cross_validate(spec, estimator_spec, params, X, y, folds)
            finite = [s for s in trial.fold_scores if math.isfinite(s)]
            trial.mean_score = float(np.mean(finite)) if finite else None
        except Exception as exc:  # one bad configuration must not end the search
            trial.error = f"{type(exc).__name__}: {exc}"
        trials.append(trial)
    return trials


def best_trials(spec: ModelSpec, trials: list[Trial]) -> list[Trial]:
    """The `search.candidates` best scored trials, best first (failed trials never count)."""
    scored = [t for t in trials if t.error is None and t.mean_score is not None]
    sign = 1 if lower_is_better(spec.metric) else -1
    return sorted(scored, key=lambda t: sign * t.mean_score)[: spec.search.candidates]
