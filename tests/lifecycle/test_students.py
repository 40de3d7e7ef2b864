"""Students in the retrain (`lifecycle.students`): registered beside a teacher that fails a computational bound, once
per run whatever re-runs it, not at all beside a teacher that meets its bounds, and a student that cannot be trained
fails the run saying why."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from source_helpers import write_table
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.exceptions import SearchFailed
from ratchet.lifecycle import retrain
from ratchet.modeling.distill import STUDENT
from ratchet.reporting.status import model_status

END = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
FOREST = {"class": "sklearn.ensemble.RandomForestRegressor", "params": {"random_state": 0, "n_estimators": 40},
          "search_space": {"min_samples_leaf": {"randint": [1, 3]}}}
TREE = {"class": "sklearn.tree.DecisionTreeRegressor", "params": {"random_state": 0},
        "search_space": {"max_depth": {"randint": [2, 5]}}}


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(420, 2))
    return pd.DataFrame({"day": pd.date_range("2024-01-01", periods=420), "x1": x[:, 0], "x2": x[:, 1],
                         "y": np.sin(2 * x[:, 0]) * 5 + x[:, 1] ** 2 + rng.normal(scale=0.3, size=420)})


def _spec(registry, folder, size_bound: int, search: dict | None = None, **distill):
    spec = write_spec(folder, name="m", table=write_table(registry, _frame()), estimators=[FOREST],
                      search={"n_trials": 2, "cv_folds": 2, "candidates": 1, "seed": 3, **(search or {})},
                      requirements=[{"metric": "model_size_bytes", "max": size_bound}],
                      distill={"n_trials": 3, "students": [TREE], **distill})
    registry.sync_model(spec)
    return spec


def test_a_teacher_over_its_size_bound_gets_one_student_per_run_however_often_it_runs(registry, tmp_path):
    spec = _spec(registry, tmp_path, 300_000)
    assert retrain.retrain_model(registry, spec, run_id="r1", logical_date=END) == [1, 2]
    teacher, student = registry.versions("m")
    assert teacher.size_bytes > 300_000 > student.size_bytes
    assert student.estimator_class == "ratchet.modeling.distill.StudentRegressor"
    assert student.hyperparameters["teacher"] == FOREST["class"] and student.hyperparameters["teacher_params"] == {
        "random_state": 0, "n_estimators": 40, **teacher.hyperparameters}  # fixed and searched: refittable alone
    assert student.teacher == {
        "version": 1, "estimator_class": FOREST["class"], "student": TREE["class"], "targets": "predictions",
        "learns_from": "the teacher's predictions", "trials": 3,
        "why": f"v1 fails a computational requirement: model_size_bytes {teacher.size_bytes} > max 3e+05 (gate)"}
    assert student.contract == teacher.contract and student.features == teacher.features
    trials = registry.trials("m", "r1")
    assert [(t.trial_index, t.sampling == STUDENT) for t in trials] == [(0, False), (1, False), (2, True), (3, True),
                                                                        (4, True)]
    best = min((t for t in trials if t.sampling == STUDENT), key=lambda t: t.mean_score)
    assert student.cv_score == best.mean_score and student.hyperparameters == best.params
    loaded = registry.load_estimator("m", 2)  # the student alone: its trees, no forest
    assert not hasattr(loaded[-1], "teacher_") and loaded[-1].student_.get_depth() <= 5

    assert [c["teacher"] for c in model_status(registry, spec)["candidates"]] == [None, 1]

    assert retrain.retrain_model(registry, spec, run_id="r1", logical_date=END) == [1, 2]  # a re-run adds nothing
    assert [v.version for v in registry.versions("m")] == [1, 2] and len(registry.trials("m", "r1")) == 5


def test_a_teacher_within_its_bounds_gets_no_student_unless_always(registry, tmp_path):
    spec = _spec(registry, tmp_path, 50_000_000)
    assert retrain.retrain_model(registry, spec, run_id="r1", logical_date=END) == [1]
    assert {t.sampling for t in registry.trials("m")} == {"explore"}
    spec = _spec(registry, tmp_path, 50_000_000, when="always")
    assert retrain.retrain_model(registry, spec, run_id="r2", logical_date=END) == [2, 3]
    assert registry.version("m", 3).teacher["why"] == "distill.when: always (v2: 1 computational bound(s) hold)"


def test_a_student_whose_every_trial_fails_fails_the_run_after_its_teacher_is_registered(registry, tmp_path):
    spec = _spec(registry, tmp_path, 300_000, students=[{**TREE, "params": {"monotonic_cst": [1, 1, 1]}}])
    with pytest.raises(SearchFailed, match=r"model 'm' student sklearn.tree.DecisionTreeRegressor of v1: none of "
                                           r"the 3 trials can become a version: 3× ValueError: monotonic_cst has "):
        retrain.retrain_model(registry, spec, run_id="r1", logical_date=END)
    assert [v.version for v in registry.versions("m")] == [1]  # the teacher is a version of its own


@pytest.mark.slow  # each trial in a forkserver child
def test_student_trials_run_in_killable_children_under_a_trial_timeout_and_score_the_same(registry, tmp_path):
    spec = _spec(registry, tmp_path, 300_000, search={"trial_timeout_seconds": 120})
    assert retrain.retrain_model(registry, spec, run_id="r1", logical_date=END) == [1, 2]
    in_children = [(t.params, t.fold_scores) for t in registry.trials("m", "r1") if t.sampling == STUDENT]
    spec = _spec(registry, tmp_path, 300_000)  # no limit: trials in this process
    retrain.retrain_model(registry, spec, run_id="r2", logical_date=END)
    assert in_children == [(t.params, t.fold_scores) for t in registry.trials("m", "r2") if t.sampling == STUDENT]


@pytest.mark.slow  # a retrain in a new process, killed, then re-run
def test_a_retrain_killed_after_recording_its_students_reruns_to_a_clean_runs_rows(registry, tmp_path, monkeypatch):
    _spec(registry, tmp_path, 300_000)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))

    def run(kill: bool) -> int:
        env = {**os.environ, "RATCHET_KILL_AT": "retrain:students-recorded" if kill else ""}
        return subprocess.run([sys.executable, "-c", f"import datetime; from ratchet import pipeline; "
                                                     f"pipeline.retrain('m', end={END!r})"],
                              env=env, capture_output=True, text=True, timeout=300).returncode

    def rows() -> dict[str, list]:
        return {"trials": [(t.trial_index, t.params, t.sampling, t.fold_scores) for t in registry.trials("m")],
                "versions": [(v.version, v.estimator_class, v.hyperparameters,
                              v.cv_score, v.teacher) for v in registry.versions("m")]}

    assert run(kill=False) == 0
    clean = rows()
    assert [v[0] for v in clean["versions"]] == [1, 2]
    with registry.engine.begin() as conn:
        conn.execute(text("DELETE FROM model_versions; DELETE FROM search_trials"))
    assert run(kill=True) == -signal.SIGKILL
    assert [v.version for v in registry.versions("m")] == [1] and len(registry.trials("m")) == 5
    assert run(kill=False) == 0
    assert rows() == clean
