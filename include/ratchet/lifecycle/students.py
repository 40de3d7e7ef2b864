"""Students in the nightly retrain (`distill:`): lighter candidates trained on the best teacher's outputs.

Once the night's best teachers are registered, the best one is checked against the model's computational
requirements as registered (latency p95, size, fit seconds: gate 5's own check). With `distill.when: gate_fails`
a teacher that meets them needs no student; otherwise (or with `when: always`) each student of `distill.students`
is tuned by a small random search (`distill.n_trials` draws of its space, the search's time-ordered folds: each
fold's teacher and student are fitted on the fold's past, the student scored against the true labels of its
validation rows) and its best trial is registered as a candidate whose details name its teacher. From there a
student is a version like any other: back-test, gates, trial and promotion. How a student learns from its teacher
is `modeling.distill`'s.

The student trials are recorded with the run's trials (sampling 'student', indexed after the teachers'): a re-run
of the same run reuses them and registers only what is not registered yet, like the teachers.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ratchet.exceptions import SearchFailed
from ratchet.faults import checkpoint
from ratchet.lifecycle.promotion import computational_gate
from ratchet.modeling.distill import STUDENT, student_plans, targets_of
from ratchet.modeling.search import Trial, best_trials, failure_summary, run_seed, run_trials

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

log = logging.getLogger(__name__)


def split_students(trials: list[Trial]) -> tuple[list[Trial], list[Trial]]:
    """A run's recorded trials as (the night's search trials, its student trials)."""
    return [t for t in trials if t.sampling != STUDENT], [t for t in trials if t.sampling == STUDENT]


def students_to_register(registry: Registry, spec: ModelSpec, *, teacher: int, teacher_trials: list[Trial],
                         recorded: list[Trial], run_id: str, X: pd.DataFrame, y: pd.Series, times: pd.Series,
                         seed_salt: str) -> list[tuple[Trial, dict[str, Any]]]:
    """(trial, details) of each student version the run registers: the best trial of each student class, with the
    details that name its teacher (`details.teacher`). None without `distill:`, or when `when: gate_fails` and
    version `teacher` meets every computational requirement. `recorded`: the run's student trials already
    recorded (searched and recorded here when there are none).

    Raises:
        SearchFailed: every trial of a student failed (e.g. a regressor student of a label with three classes).
    """
    if spec.distill is None:
        return []
    version = registry.version(spec.name, teacher)
    gate = computational_gate(registry, spec, version)
    if spec.distill.when == "gate_fails" and gate.passed:
        log.info("%s: teacher v%d meets its computational requirements (%s): no student (distill.when: gate_fails)",
                 spec.name, teacher, gate.summary)
        return []
    why = (f"v{teacher} fails a computational requirement: {gate.summary}" if not gate.passed
           else f"distill.when: always (v{teacher}: {gate.summary})")
    teacher_params = {**spec.estimator(version.estimator_class).params, **version.hyperparameters}
    trials = recorded
    if trials:
        log.info("%s: reusing the %d student trials recorded for %s", spec.name, len(trials), run_id)
    else:
        rng = np.random.default_rng(run_seed(spec.search.seed, f"{seed_salt}:students"))
        plans = student_plans(spec, version.estimator_class, teacher_params, rng)
        # the search's trial timeout holds for students; its time budget was the teachers' search's
        searched = replace(spec, search=replace(spec.search, time_budget_minutes=None))
        trials = run_trials(searched, plans, X, y, times,
                            first_index=max((t.trial_index for t in teacher_trials), default=-1) + 1)
        registry.record_trials(spec.name, run_id, [t.record() for t in trials])
        checkpoint("retrain:students-recorded")
    best_one = replace(spec, search=replace(spec.search, candidates=1))
    picks = []
    for student in dict.fromkeys(t.params["student"] for t in trials):  # in `distill.students` order
        own = [t for t in trials if t.params["student"] == student]
        best = best_trials(best_one, own)
        if not best:
            raise SearchFailed(failure_summary(spec, own, f" student {student} of v{teacher}"))
        targets, words = targets_of(spec.task, version.estimator_class, teacher_params, student)
        log.info("%s: student %s of v%d (%s) learns from %s; best of %d trials: CV %s %.4g (v%d: %.4g)",
                 spec.name, student, teacher, why, words, len(own), spec.metric, best[0].mean_score, teacher,
                 version.cv_score)
        picks.append((best[0], {"teacher": {"version": teacher, "estimator_class": version.estimator_class,
                                            "why": why, "student": student, "targets": targets,
                                            "learns_from": words, "trials": len(own)}}))
    return picks
