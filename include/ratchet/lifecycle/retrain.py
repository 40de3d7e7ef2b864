"""Nightly retraining: search, record every trial, refit the best (and the simplest not significantly worse,
`modeling.simplicity`) on all history and register them."""
from __future__ import annotations

import functools
import importlib.metadata
import logging
import platform
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet import threads
from ratchet.exceptions import SearchFailed
from ratchet.faults import checkpoint
from ratchet.lifecycle.students import split_students, students_to_register
from ratchet.modeling import artifacts, simplicity, sources
from ratchet.modeling.distill import check_students
from ratchet.modeling.features import contract_of, make_estimator, make_xy
from ratchet.modeling.months import dataset_fingerprint
from ratchet.modeling.search import Trial, budget_summary, failure_summary, run_search
from ratchet.modeling.threshold import ThresholdClassifier

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

log = logging.getLogger(__name__)
LATENCY_REPEATS = 50


def latency_p95_ms(model: Any, X: pd.DataFrame) -> float:
    """p95 of single-row prediction time, the way a serving call sees it: on one native (OpenMP, BLAS) thread, as
    `ratchet serve` predicts, so that threads fighting over a busy machine's cores do not decide the gate."""
    row = X.iloc[[len(X) - 1]]
    timings = []
    with threads.serving_limits():
        for _ in range(LATENCY_REPEATS):
            started = time.perf_counter()
            model.predict(row)
            timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 95))


def package_versions() -> dict[str, str]:
    """The versions of the libraries a fitted artifact depends on, stored with every version."""
    return {name: importlib.metadata.version(name) for name in ("scikit-learn", "pandas", "numpy", "skops", "ratchet")}


@functools.cache
def code_version() -> str:
    """Ratchet's package version, and the git commit of the checkout it runs from when there is one (a version
    records the code that trained it)."""
    version = importlib.metadata.version("ratchet")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}" if commit else version


def retrain_model(registry: Registry, spec: ModelSpec, *, run_id: str, logical_date: Any,
                  author: str = "ratchet_retrain") -> list[int]:
    """Search on the data before `logical_date`, store every trial, refit the best on all of it and register them
    (the simplest trial not significantly worse than the best may take a slot: `modeling.simplicity`).

    Each version keeps its feature contract (`Source.contract`), a snapshot of the YAML, the code and Python
    versions, and `author` (who triggered the run: a person's manual trigger, else the DAG).

    The trials of a run are searched once: a re-run of the same run reuses the recorded trials (whatever the
    champion is by then) and registers only the best ones not registered yet, so it converges to the state
    of a clean run. With `distill:`, the students of the best version follow (`lifecycle.students`). Returns the
    run's best versions, best first, then its students.

    Raises:
        DataError: the source cannot be read or has too little history.
        SearchFailed: no trial has a score (every trial failed, or none has a finite score), or none of a student's.
    """
    frame = sources.read_source(spec, end=sources.labelled_end(spec, logical_date))  # rows with mature labels
    sources.require_rows(spec, frame, (spec.search.cv_folds + 1) * 14, "time-ordered cross-validation")
    X, y, times = make_xy(spec, frame)
    check_students(spec, y)
    if spec.search.metric_reason:
        log.info("%s: %s", spec.name, spec.search.metric_reason)
    trials, recorded_students = split_students(_recorded_trials(registry, spec, run_id))
    if trials:
        log.info("%s: reusing the %d trials recorded for %s", spec.name, len(trials), run_id)
    else:
        trials = run_search(spec, X, y, times, seed_salt=str(logical_date), champion=registry.champion(spec.name))
        simplicity.compare_with_best(spec, trials, times)
        registry.record_trials(spec.name, run_id, [t.record() for t in trials])
        checkpoint("retrain:trials-recorded")
    best, choice = simplicity.candidates(spec, trials)  # the best by score; the simplest not worse may take a slot
    budget = budget_summary(spec, trials)
    if not best:
        raise SearchFailed(failure_summary(spec, trials) + (f" ({budget['message']})" if budget else ""))
    if budget:
        log.warning("%s: %s; registering the best %d so far", spec.name, budget["message"], len(best))
    if choice:
        log.info("%s: %s", spec.name, choice.text())
    register = functools.partial(_register, registry, spec, registered=registry.run_versions(spec.name, run_id),
                                 run_id=run_id, frame=frame, fingerprint=dataset_fingerprint(frame), X=X, y=y,
                                 times=times, author=author)
    versions = [register(trial, budget=budget, chosen=choice and choice.record(trial)) for trial in best]
    versions += [register(trial, extra=extra) for trial, extra in students_to_register(
        registry, spec, teacher=versions[0], teacher_trials=trials, recorded=recorded_students, run_id=run_id,
        X=X, y=y, times=times, seed_salt=str(logical_date))]
    return versions


def _register(registry: Registry, spec: ModelSpec, trial: Trial, *, registered: dict[int, int], run_id: str,
              frame: pd.DataFrame, fingerprint: str, X: pd.DataFrame, y: pd.Series, times: pd.Series, author: str,
              budget: dict[str, Any] | None = None, chosen: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None) -> int:
    """The version of `trial` refitted on all the rows, registered (the one `registered` already, if so); `extra`
    joins its details (a student's teacher), `chosen` is the run's simplicity choice."""
    if trial.trial_index in registered:
        return registered[trial.trial_index]
    started = time.perf_counter()
    model = make_estimator(spec, spec.estimator(trial.estimator_class), trial.params).fit(X, y)
    fit_seconds = time.perf_counter() - started
    artifact = artifacts.dump(model)
    version = registry.register_version(
        spec.name, run_id=run_id, trial_index=trial.trial_index,
        estimator_class=trial.estimator_class, hyperparameters=trial.params, artifact=artifact.data,
        artifact_sha256=artifact.sha256, artifact_format=artifact.format,
        train_start=times.iloc[0].to_pydatetime(), train_end=times.iloc[-1].to_pydatetime(),
        dataset_fingerprint=fingerprint, features=list(X.columns), target=spec.source.target,
        package_versions=package_versions(), author=author, fit_seconds=fit_seconds,
        predict_latency_p95_ms=latency_p95_ms(model, X), size_bytes=artifact.size_bytes,
        cv_metric=spec.metric, cv_score=trial.mean_score,
        contract=contract_of(spec, frame), spec_snapshot=spec.raw,
        code_version=code_version(), python_version=platform.python_version(),
        details={**(fit_details(spec, model, budget, chosen) or {}), **(extra or {})} or None,
    )
    if isinstance(model, ThresholdClassifier):
        log.info("%s v%d decides at threshold %s", spec.name, version, model.record())
    return version


def fit_details(spec: ModelSpec, model: Any, budget: dict[str, Any] | None = None,
                chosen: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """What a version keeps beside its hyperparameters: the decision threshold its fit chose or applied
    (`classification.threshold`), why the search ranked by its metric (`search.metric_reason`), how
    `search.time_budget_minutes` cut its search short (`search_budget`, from `budget_summary`) and the simplicity
    choice of its run (`simplicity`, from `simplicity.Choice.record`); None: none of them."""
    details = {"threshold": model.record()} if isinstance(model, ThresholdClassifier) else {}
    if spec.search.metric_reason:
        details["metric_reason"] = spec.search.metric_reason
    if budget:
        details["search_budget"] = budget
    if chosen:
        details["simplicity"] = chosen
    return details or None


def _recorded_trials(registry: Registry, spec: ModelSpec, run_id: str) -> list[Trial]:
    return [Trial(t.trial_index, t.estimator_class, t.params, t.sampling, t.metric, list(t.fold_scores),
                  t.mean_score, t.fit_seconds, t.error, t.details) for t in registry.trials(spec.name, run_id)]
