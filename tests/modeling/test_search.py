"""Hyperparameter search (`ratchet.modeling.search`): time-ordered folds, explore and exploit, seeded trials."""
from __future__ import annotations

import numpy as np
import pytest
from backtest_helpers import SEARCH, SPEC, model_name
from spec_factory import build_spec

from ratchet.modeling import search


def test_time_folds_never_train_on_rows_after_validation():
    import pandas as pd

    days = pd.Series(pd.date_range("2024-01-01", periods=200))
    single = search.time_folds(days, 4)
    for train, test in single:
        assert train.max() < test.min()
    from sklearn.model_selection import TimeSeriesSplit  # one series: the same folds as over its rows

    assert all((a == c).all() and (b == d).all()
               for (a, b), (c, d) in zip(single, TimeSeriesSplit(4).split(range(200)), strict=True))


def test_a_panels_folds_cut_between_periods_never_through_one():
    import pandas as pd

    days = pd.date_range("2024-01-01", periods=50)
    panel = pd.Series(np.repeat(days, 3)).iloc[1:-1].reset_index(drop=True)  # 3 series; the first and last short
    for train, test in search.time_folds(panel, 4):
        assert panel[train].max() < panel[test].min()
        assert set(panel[train]).isdisjoint(panel[test]) and len(train) + len(test) <= len(panel)
        assert all((panel == day).sum() == (panel[test] == day).sum() for day in set(panel[test]))


def test_exploit_trials_sample_near_the_champion_within_bounds():
    spec = build_spec(name=model_name(), table="s.t", **SPEC,
                      search={"n_trials": 10, "cv_folds": 3, "seed": 0, "candidates": 1, "explore_fraction": 0.4})

    class Champion:
        estimator_class = "sklearn.linear_model.Ridge"
        hyperparameters = {"alpha": 1.0}

    plans = search.plan_trials(spec, np.random.default_rng(0), Champion())
    exploit = [params for _, params, sampling in plans if sampling == "exploit"]
    assert len(exploit) == 6
    width = np.log(10 / 0.01) * search.NARROW_FRACTION / 2
    for params in exploit:
        assert abs(np.log(params["alpha"])) <= width + 1e-9
        assert 0.01 <= params["alpha"] <= 10
    assert all(sampling == "explore" for _, _, sampling in search.plan_trials(spec, np.random.default_rng(0)))


def test_same_logical_date_samples_the_same_trials():
    spec = build_spec(name=model_name(), table="s.t", search=SEARCH, **SPEC)
    first = search.plan_trials(spec, np.random.default_rng(search.run_seed(3, "2024-07-01")))
    again = search.plan_trials(spec, np.random.default_rng(search.run_seed(3, "2024-07-01")))
    other = search.plan_trials(spec, np.random.default_rng(search.run_seed(3, "2024-07-02")))
    assert [p for _, p, _ in first] == [p for _, p, _ in again] != [p for _, p, _ in other]


def _sleepy_search(tmp_path, seconds, **search_fields):
    """A spec whose only estimator sleeps `seconds` (a choice) in each fit, and a 60-day series to search on."""
    import dataclasses

    import pandas as pd

    from ratchet.specs.model import EstimatorSpec

    spec = build_spec(name=model_name(), table="s.t",
                      search={"n_trials": 4, "cv_folds": 2, "seed": 0, "candidates": 1, **search_fields})
    sleepy = EstimatorSpec("slow_estimators.SleepyRegressor", {"pid_file": str(tmp_path / "pid")},
                           {"seconds": {"choice": list(seconds)}})
    days = pd.Series(pd.date_range("2024-01-01", periods=60))
    return dataclasses.replace(spec, estimators=(sleepy,)), pd.DataFrame({"x": np.arange(60.0)}), \
        pd.Series(np.arange(60.0)), days


@pytest.mark.slow  # starts processes (a forkserver child per trial, or the `ratchet` command)
def test_a_trial_over_its_timeout_is_killed_in_its_process_and_recorded_as_timed_out(tmp_path):
    import os
    import time

    import pytest

    spec, X, y, days = _sleepy_search(tmp_path, [30.0], trial_timeout_seconds=1)
    folds = search.time_folds(days, 2)
    started = time.perf_counter()
    with pytest.raises(search.TrialFailed, match=r"^timed out after 1 s \(search.trial_timeout_seconds\)$") as info:
        search.cross_validate_in_process(spec, spec.estimators[0], {"seconds": 30.0}, X, y, folds, timeout=1)
    assert time.perf_counter() - started < 10 and 1 <= info.value.seconds < 5
    pid = int((tmp_path / "pid").read_text())  # the child wrote it as its fit began
    assert pid != os.getpid()
    with pytest.raises(ProcessLookupError):  # killed (SIGKILL) and reaped: no such process any more
        os.kill(pid, 0)


def test_a_trial_in_a_process_scores_as_it_does_in_this_one_and_its_errors_come_back(tmp_path):
    import pandas as pd
    import pytest

    from ratchet.specs.model import EstimatorSpec

    spec = build_spec(name=model_name(), table="s.t", search={"n_trials": 2, "cv_folds": 3, "metric": "r2"}, **SPEC)
    rng = np.random.default_rng(0)
    days = pd.Series(pd.date_range("2024-01-01", periods=90))
    X = pd.DataFrame({"x": rng.normal(size=90)})
    y = pd.Series(3 * X.x + rng.normal(size=90))
    folds = search.time_folds(days, 3)
    ridge = spec.estimators[0]
    here = search.cross_validate(spec, ridge, {"alpha": 1.0}, X, y, folds)
    there = search.cross_validate_in_process(spec, ridge, {"alpha": 1.0}, X, y, folds, timeout=60)
    assert there.fold_scores == here.fold_scores and there.seconds > 0
    np.testing.assert_array_equal(there.row_losses, here.row_losses)  # NaN where no fold validated the row
    assert there.complexity.parameters == here.complexity.parameters == 2  # a coefficient and the intercept
    broken = EstimatorSpec("sklearn.linear_model.Ridge", {}, {})
    with pytest.raises(search.TrialFailed, match=r"^(TypeError|InvalidParameterError): .*no_such"):
        search.cross_validate_in_process(spec, broken, {"no_such": 1}, X, y, folds, timeout=60)


@pytest.mark.slow  # starts processes (a forkserver child per trial, or the `ratchet` command)
def test_a_search_with_a_trial_timeout_keeps_the_fast_trials_and_records_the_slow_ones_as_timed_out(tmp_path):
    spec, X, y, days = _sleepy_search(tmp_path, [0.0, 30.0], trial_timeout_seconds=1)
    trials = search.run_search(spec, X, y, days, seed_salt="2024-01-01")
    assert len(trials) == 4
    slow = [t for t in trials if t.params["seconds"] == 30.0]
    fast = [t for t in trials if t.params["seconds"] == 0.0]
    assert slow and fast  # this seed samples both
    for t in slow:
        assert t.timed_out and t.error == "timed out after 1 s (search.trial_timeout_seconds)"
        assert t.mean_score is None and 1 <= t.fit_seconds < 5 and t.record()["error"] == t.error
    assert all(t.error is None and t.mean_score is not None for t in fast)
    assert search.best_trials(spec, trials)[0] in fast
    assert search.budget_summary(spec, trials) is None  # no budget: nothing cut short


@pytest.mark.slow  # starts processes (a forkserver child per trial, or the `ratchet` command)
def test_a_search_out_of_budget_starts_no_further_trial_and_stops_the_running_one(tmp_path):
    import time

    spec, X, y, days = _sleepy_search(tmp_path, [0.3], time_budget_minutes=0.03, n_trials=20)  # 1.8 s; a trial 0.6
    started = time.perf_counter()
    trials = search.run_search(spec, X, y, days, seed_salt="2024-01-01")
    assert time.perf_counter() - started < 1.8 + 1.5  # the budget, and a trial's start and kill
    assert 1 <= len(trials) < 20
    scored = [t for t in trials if t.mean_score is not None]
    assert scored and all(t.error is None for t in trials[:-1])
    summary = search.budget_summary(spec, trials)
    assert summary["trials_run"] == len(trials) and summary["trials_planned"] == 20
    assert summary["trials_scored"] == len(scored) and summary["budget_minutes"] == 0.03
    assert summary["message"].startswith(f"search.time_budget_minutes (0.03) ran out: {len(trials)} of 20 trials run")
    if trials[-1].error:  # the budget ran out during the last trial: stopped, and said why
        assert trials[-1].error.startswith("timed out after") and "search.time_budget_minutes: 0.03 ran out" in \
            trials[-1].error and summary["stopped_running"] == 1


def test_without_limits_trials_run_in_this_process(tmp_path, monkeypatch):
    import os

    spec, X, y, days = _sleepy_search(tmp_path, [0.0])

    def refuse(*args, **kwargs):
        raise AssertionError("a trial without a limit must not start a process")

    monkeypatch.setattr(search, "cross_validate_in_process", refuse)
    trials = search.run_search(spec, X, y, days, seed_salt="2024-01-01")
    assert len(trials) == 4 and all(t.error is None for t in trials)
    assert int((tmp_path / "pid").read_text()) == os.getpid()


@pytest.mark.slow  # starts processes (a forkserver child per trial, or the `ratchet` command)
def test_a_trial_dies_with_the_task_that_started_it(tmp_path):
    """The task's process killed (SIGKILL: Airflow giving up on it, a worker lost) takes its running trial along."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    pid_file = tmp_path / "pid"
    script = f"""
import dataclasses, numpy as np, pandas as pd
from spec_factory import build_spec
from ratchet.modeling import search
from ratchet.specs.model import EstimatorSpec
spec = build_spec(name="m", table="s.t", search={{"n_trials": 1, "cv_folds": 2, "trial_timeout_seconds": 120}})
sleepy = EstimatorSpec("slow_estimators.SleepyRegressor", {{"seconds": 120, "pid_file": {str(pid_file)!r}}}, {{}})
days = pd.Series(pd.date_range("2024-01-01", periods=60))
search.run_search(dataclasses.replace(spec, estimators=(sleepy,)), pd.DataFrame({{"x": np.arange(60.0)}}),
                  pd.Series(np.arange(60.0)), days, seed_salt="x")
"""
    tests = str(Path(__file__).parents[1])
    task = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": tests})
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        trial = int(pid_file.read_text())
    finally:
        task.send_signal(signal.SIGKILL)
        task.wait()

    def running() -> bool:
        try:
            return Path(f"/proc/{trial}/stat").read_text().split(")")[-1].split()[0] != "Z"  # a zombie is dead
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 20
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running()


def test_a_folds_rows_without_a_gap_are_a_slice_and_others_stay_positions():
    assert search.span(np.array([4, 5, 6, 7])) == slice(4, 8)
    assert search.span(np.array([4, 6, 7])).tolist() == [4, 6, 7]
    assert search.span(np.array([], dtype=int)).tolist() == []
