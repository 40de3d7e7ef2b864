"""Nightly random search with time-ordered cross-validation, iterated around the champion.

Part of each night's trials explore the whole search space; the rest sample a space narrowed
around the current champion's hyperparameters, so the search converges over nights while
still looking elsewhere. Every fold trains only on rows before its validation rows. Each trial also keeps its rows'
out-of-fold losses (in memory) and its last fold model's complexity, what the simplicity choice reads
(`modeling.simplicity`).

Budgets: with `search.trial_timeout_seconds` or `search.time_budget_minutes`, each trial's cross-validation runs in
a child process (multiprocessing's 'forkserver': a clean process, since a fork of a process that has run OpenMP
hangs in scikit-learn's next OpenMP call), which is killed (SIGKILL) at its limit and recorded as timed out; once
the budget is spent no further trial starts. Without either, trials run in this process.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.modeling import metrics
from ratchet.modeling.complexity import Complexity, measure
from ratchet.modeling.features import make_estimator
from ratchet.specs.model import lower_is_better

if TYPE_CHECKING:
    from ratchet.specs.model import EstimatorSpec, ModelSpec

NARROW_FRACTION = 0.25
TIMED_OUT = "timed out"  # how a killed trial's error begins
BUDGET_FIELD = "search.time_budget_minutes"
TIMEOUT_FIELD = "search.trial_timeout_seconds"
# what the trials' child processes import once, in the forkserver, rather than in each trial (scikit-learn's
# estimator families among them: an estimator's module imported in each child would cost every trial its import;
# skops, a second, for the complexity of a family `modeling.complexity` counts by its artifact)
PRELOAD = ["ratchet.modeling.search", "ratchet.modeling.features", "ratchet.modeling.metrics",
           "ratchet.modeling.threshold", "ratchet.modeling.distill", "skops.io", "sklearn.compose", "sklearn.impute",
           "sklearn.pipeline", "sklearn.preprocessing", "sklearn.metrics", "sklearn.linear_model", "sklearn.ensemble",
           "sklearn.tree", "sklearn.neighbors", "sklearn.svm", "sklearn.neural_network", "sklearn.kernel_ridge",
           "sklearn.dummy"]


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
    # what a scored trial keeps beside its scores: its `complexity` (`modeling.complexity`, of its last fold's model)
    # and its paired test against the best trial (`versus_best`, `modeling.simplicity`)
    details: dict[str, Any] | None = None
    # each row's out-of-fold loss (`metrics.row_losses`; NaN for rows no fold validated): not stored, only what the
    # paired test against the best reads while the search's trials are in memory
    row_losses: np.ndarray | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """The trial as the registry stores it."""
        return {k: getattr(self, k) for k in ("trial_index", "estimator_class", "params", "sampling", "metric",
                                              "fold_scores", "mean_score", "fit_seconds", "error", "details")}

    @property
    def timed_out(self) -> bool:
        """Killed at `search.trial_timeout_seconds` or when `search.time_budget_minutes` ran out."""
        return bool(self.error and self.error.startswith(TIMED_OUT))


class TrialFailed(Exception):
    """A trial's child process timed out (and was killed), raised, or died; the message is the trial's error."""

    def __init__(self, message: str, seconds: float = 0.0):
        super().__init__(message)
        self.seconds = seconds


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


@dataclass(frozen=True)
class CrossValidation:
    """One trial's cross-validation."""

    fold_scores: list[float]  # the ranking metric on each fold
    seconds: float  # what all folds took (fitting and scoring; not measuring the complexity)
    row_losses: np.ndarray  # each row's loss where its fold validated it (`metrics.row_losses`), else NaN
    complexity: Complexity  # of the last fold's model (trained on the most rows), its time on that fold's rows


def cross_validate(spec: ModelSpec, estimator_spec: EstimatorSpec, params: dict[str, Any], X: pd.DataFrame,
                   y: pd.Series, folds: list[tuple[np.ndarray, np.ndarray]]) -> CrossValidation:
    """Fit on each fold's past, score its validation rows."""
    scores, losses, started = [], np.full(len(X), np.nan), time.perf_counter()
    for train, test in folds:
        train, test = span(train), span(test)
        model = make_estimator(spec, estimator_spec, params).fit(X.iloc[train], y.iloc[train])
        scored = metrics.evaluate(spec, model, X.iloc[test], y.iloc[test])
        scores.append(scored.values[spec.metric])
        losses[test] = metrics.row_losses(spec, y.iloc[test], scored.predictions, scored.row_loss)
    seconds = time.perf_counter() - started
    return CrossValidation(scores, seconds, losses, measure(model, X.iloc[test]))


def span(positions: np.ndarray) -> slice | np.ndarray:
    """Increasing positions with no gap as a slice (a fold of time-ordered rows is one): `iloc` then takes a view of
    millions of rows, not a copy."""
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


@functools.cache
def _context() -> Any:
    """The forkserver context, its server started and its modules imported (a first child waited for): the seconds
    that takes, once per process, are no trial's time and no budget's."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    warm_up = context.Process(target=_no_trial, name="ratchet-trial-warm-up")
    with _main_not_rerun():
        warm_up.start()
    warm_up.join()
    return context


def _no_trial() -> None:
    pass


@contextlib.contextmanager
def _main_not_rerun() -> Any:
    """Start a child without its re-running the main script as `__mp_main__` (what spawn and forkserver children do
    to find functions defined there): the trial's function lives in this module, and the main script is `airflow`,
    `celery`, `pytest` or `ratchet`, whose import would cost every trial seconds. Hides `__main__.__file__` while
    the start reads it."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None:
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _die_with_parent(alive: Any) -> None:
    """Kill this trial (SIGKILL) when the process that started it goes, whatever ends it: `alive` is the read end of
    a pipe only that process writes to, so it reads end-of-file then. (The forkserver, this process's parent,
    outlives it while any trial runs, so Linux's parent-death signal would not fire.)"""
    def watch() -> None:
        with contextlib.suppress(EOFError, OSError):
            alive.recv()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="ratchet-trial-watch", daemon=True).start()


def _trial_child(conn: Any, alive: Any, spec: ModelSpec, estimator_spec: EstimatorSpec, params: dict[str, Any],
                 X: pd.DataFrame, y: pd.Series, folds: list[tuple[np.ndarray, np.ndarray]]) -> None:
    _die_with_parent(alive)
    try:
        result: tuple[str, Any] = ("validated", cross_validate(spec, estimator_spec, params, X, y, folds))
    except Exception as exc:
        result = ("error", f"{type(exc).__name__}: {exc}")
    conn.send(result)
    conn.close()


def cross_validate_in_process(spec: ModelSpec, estimator_spec: EstimatorSpec, params: dict[str, Any],
                              X: pd.DataFrame, y: pd.Series, folds: list[tuple[np.ndarray, np.ndarray]], *,
                              timeout: float, reason: str = TIMEOUT_FIELD) -> CrossValidation:
    """`cross_validate` in a child process that is killed (SIGKILL) when it takes more than `timeout` seconds.

    Raises:
        TrialFailed: timed out (the message names `reason`, the setting that set the limit), raised in the child
            (its type and message), or the child died without an answer.
    """
    receive, send = _context().Pipe(duplex=False)
    alive, keep_alive = _context().Pipe(duplex=False)  # closed by this process's end, however it ends
    process = _context().Process(target=_trial_child,
                                 args=(send, alive, spec, estimator_spec, params, X, y, folds),
                                 name=f"ratchet-trial-{spec.name}")
    with _main_not_rerun():
        process.start()  # the limit counts from here: starting the forkserver (once) is not the trial's time
    started = time.perf_counter()
    send.close()
    alive.close()
    try:
        if not receive.poll(max(timeout, 0.0)):
            raise TrialFailed(f"{TIMED_OUT} after {timeout:.3g} s ({reason})", time.perf_counter() - started)
        try:
            kind, value = receive.recv()
        except EOFError:
            process.join()
            raise TrialFailed(f"TrialDied: the trial's process ended with exit code {process.exitcode} and no "
                              "result", time.perf_counter() - started) from None
    finally:  # also when the task itself is stopped (Airflow's execution_timeout raises in here)
        if process.is_alive():
            process.kill()
        process.join()
        receive.close()
        keep_alive.close()
    if kind == "error":
        raise TrialFailed(value, time.perf_counter() - started)
    return value


def run_search(spec: ModelSpec, X: pd.DataFrame, y: pd.Series, times: pd.Series, *, seed_salt: str,
               champion: Any = None) -> list[Trial]:
    """Every trial of the night, scored by time-ordered CV (folds cut between the rows' `times`); a failing trial
    is kept with its error.

    With `search.trial_timeout_seconds` or `search.time_budget_minutes` each trial runs in a child process killed at
    the smaller of the timeout and what is left of the budget (recorded as timed out); no trial starts once the
    budget is spent, so fewer than `n_trials` trials come back (`budget_summary` says so)."""
    rng = np.random.default_rng(run_seed(spec.search.seed, seed_salt))
    return run_trials(spec, plan_trials(spec, rng, champion), X, y, times)


def run_trials(spec: ModelSpec, plans: list[tuple[EstimatorSpec, dict[str, Any], str]], X: pd.DataFrame,
               y: pd.Series, times: pd.Series, *, first_index: int = 0) -> list[Trial]:
    """`run_search` of the given (estimator spec, params, sampling) plans, indexed from `first_index`: what a
    search of any kind (the night's trials, a student's: `modeling.distill`) runs under the spec's limits."""
    folds = time_folds(times, spec.search.cv_folds)
    budget = spec.search.time_budget_minutes
    if budget is not None or spec.search.trial_timeout_seconds is not None:
        _context()  # started before the budget's clock
    deadline = None if budget is None else time.monotonic() + budget * 60
    trials = []
    for index, (estimator_spec, params, sampling) in enumerate(plans, start=first_index):
        limit, reason = spec.search.trial_timeout_seconds, TIMEOUT_FIELD
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if limit is None or left < limit:
                limit, reason = left, f"{BUDGET_FIELD}: {budget:g} ran out"
        trial = Trial(index, estimator_spec.class_path, params, sampling, spec.metric)
        try:
            if limit is None:
                validated = cross_validate(spec, estimator_spec, params, X, y, folds)
            else:
                validated = cross_validate_in_process(spec, estimator_spec, params, X, y, folds, timeout=limit,
                                                      reason=reason)
            trial.fold_scores, trial.fit_seconds = validated.fold_scores, validated.seconds
            trial.row_losses, trial.details = validated.row_losses, {"complexity": validated.complexity.as_dict()}
            finite = [s for s in trial.fold_scores if math.isfinite(s)]
            trial.mean_score = float(np.mean(finite)) if finite else None
        except TrialFailed as exc:
            trial.error, trial.fit_seconds = str(exc), exc.seconds
        except Exception as exc:  # one bad configuration must not end the search
            trial.error = f"{type(exc).__name__}: {exc}"
        trials.append(trial)
    return trials


def budget_summary(spec: ModelSpec, trials: list[Trial]) -> dict[str, Any] | None:
    """How `search.time_budget_minutes` cut the search short (what a version's `details` keep as `search_budget`),
    or None: no budget, or every planned trial ran to its end. Minutes are the trials' own (their CV seconds)."""
    budget = spec.search.time_budget_minutes
    stopped = sum(1 for t in trials if t.timed_out and BUDGET_FIELD in (t.error or ""))
    if budget is None or (len(trials) >= spec.search.n_trials and not stopped):
        return None
    scored = sum(1 for t in trials if t.error is None and t.mean_score is not None)
    seconds = sum(t.fit_seconds for t in trials)
    took = f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} minutes"
    return {"budget_minutes": budget, "trials_run": len(trials), "trials_planned": spec.search.n_trials,
            "trials_scored": scored, "stopped_running": stopped, "minutes": round(seconds / 60, 2),
            "message": f"{BUDGET_FIELD} ({budget:g}) ran out: {len(trials)} of {spec.search.n_trials} trials run "
                       f"in {took} ({scored} scored{', the last stopped' if stopped else ''})"}


def ranked(spec: ModelSpec, trials: list[Trial]) -> list[Trial]:
    """The scored trials, best first by their mean CV score (failed trials never count; ties keep the trials' order)."""
    scored = [t for t in trials if t.error is None and t.mean_score is not None]
    sign = 1 if lower_is_better(spec.metric) else -1
    return sorted(scored, key=lambda t: sign * t.mean_score)


def best_trials(spec: ModelSpec, trials: list[Trial]) -> list[Trial]:
    """The `search.candidates` best scored trials, best first."""
    return ranked(spec, trials)[: spec.search.candidates]


def failure_summary(spec: ModelSpec, trials: list[Trial], what: str = "") -> str:
    """Why none of the trials can become a version: each distinct error once, with how many trials it ended
    (`what` names the trials, e.g. a student's, after the model)."""
    errors = Counter(t.error.splitlines()[0] for t in trials if t.error)
    unscored = sum(1 for t in trials if not t.error)
    reasons = [f"{n}× {error}" for error, n in errors.most_common()]
    if unscored:
        reasons.append(f"{unscored}× no finite {spec.metric} on any CV fold")
    return f"model {spec.name!r}{what}: none of the {len(trials)} trials can become a version: " + "; ".join(reasons)
