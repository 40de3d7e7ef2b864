"""Retraining (`ratchet.lifecycle.retrain`): bad data fails before anything is stored; the latency it records."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from source_helpers import sample_frame, write_table
from spec_factory import build_spec
from sqlalchemy import text
from threadpoolctl import threadpool_info

from ratchet.exceptions import DataError
from ratchet.lifecycle import retrain


def test_bad_data_leaves_the_registry_unchanged(registry):
    frame = sample_frame(120).drop(columns=["kind"])
    frame.loc[50, "y"] = np.nan
    spec = build_spec(name="m", table=write_table(registry, frame), source={"missing_target": "error"})
    registry.sync_model(spec)

    def counts():
        with registry.engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                    for t in ("model_versions", "search_trials", "evaluations")}

    before = counts()
    with pytest.raises(DataError, match="missing values"):
        retrain.retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2024, 6, 1))
    assert counts() == before == {"model_versions": 0, "search_trials": 0, "evaluations": 0}


def test_a_search_whose_every_trial_fails_fails_with_each_distinct_error_counted(registry):
    from ratchet.exceptions import SearchFailed

    frame = sample_frame(120).drop(columns=["kind"])
    spec = build_spec(name="m", table=write_table(registry, frame), search={"n_trials": 3, "cv_folds": 2},
                      estimators=[{"class": "sklearn.ensemble.HistGradientBoostingRegressor",
                                   "params": {"categorical_features": ["no_such_column"]}}])
    registry.sync_model(spec)
    with pytest.raises(SearchFailed, match=r"none of the 3 trials can become a version: 3× ValueError: "):
        retrain.retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2024, 6, 1))
    assert registry.versions("m") == [] and len(registry.trials("m")) == 3  # the trials stay, with their errors


def test_prediction_latency_is_timed_on_one_native_thread_as_the_service_predicts():
    """Each timed prediction runs with every OpenMP/BLAS pool at one thread (as in `ratchet serve`), and the pools
    get their threads back afterwards."""

    def widest_pool() -> int:
        return max(pool["num_threads"] for pool in threadpool_info())

    class Recorder:
        seen: list[int] = []

        def predict(self, X):
            self.seen.append(widest_pool())
            return np.zeros(len(X))

    before = widest_pool()
    assert before > 1, "this machine's pools have one thread already: the test would prove nothing"
    latency = retrain.latency_p95_ms(Recorder(), pd.DataFrame({"x": [1.0, 2.0]}))
    assert Recorder.seen == [1] * retrain.LATENCY_REPEATS
    assert widest_pool() == before and latency >= 0


def test_a_search_without_probabilities_logs_why_it_ranks_by_f1_and_its_versions_keep_the_reason(registry, caplog):
    import logging

    rng = np.random.default_rng(1)
    x = rng.normal(size=400)
    frame = pd.DataFrame({"day": pd.date_range("2023-01-01", periods=400), "x": x,
                          "y": np.where(x + rng.normal(0, 0.5, 400) > 0.8, "yes", "no")})
    spec = build_spec(name="m", task="classification", table=write_table(registry, frame),
                      search={"n_trials": 2, "cv_folds": 2, "candidates": 1},
                      estimators=[{"class": "sklearn.linear_model.SGDClassifier", "params": {"loss": "hinge"}}])
    registry.sync_model(spec)
    with caplog.at_level(logging.INFO, logger="ratchet.lifecycle.retrain"):
        (version,) = retrain.retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2024, 1, 1))
    reason = spec.search.metric_reason
    assert reason.startswith("ranked by f1, not log_loss: sklearn.linear_model.SGDClassifier") and reason in caplog.text
    stored = registry.version("m", version)
    assert stored.cv_metric == "f1" and stored.details["metric_reason"] == reason and stored.threshold is None
    assert stored.simplicity["role"] == "best and simplest"  # two trials of one configuration: no simpler one


@pytest.mark.slow  # starts processes (a forkserver child per trial, or the `ratchet` command)
def test_a_search_out_of_time_registers_the_best_so_far_and_says_so_in_log_status_and_page(
        registry, tmp_path, monkeypatch, caplog):
    import logging

    from fastapi.testclient import TestClient
    from spec_factory import write_spec

    from ratchet.reporting.status import model_status
    from ratchet.ui.app import create_app

    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    spec = write_spec(tmp_path, name="budgeted", table=write_table(registry, sample_frame(120).drop(columns=["kind"])),
                      search={"n_trials": 500, "cv_folds": 2, "candidates": 2, "time_budget_minutes": 0.02},
                      estimators=[{"class": "sklearn.linear_model.Ridge",
                                   "search_space": {"alpha": {"loguniform": [0.01, 10]}}}])
    registry.sync_model(spec)
    with caplog.at_level(logging.WARNING, logger="ratchet.lifecycle.retrain"):
        versions = retrain.retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2024, 6, 1))
    run = len(registry.trials("budgeted"))
    assert 2 <= run < 500 and len(versions) == 2  # 1.2 s of trials: some, never all
    said = f"search.time_budget_minutes (0.02) ran out: {run} of 500 trials run"
    assert said in caplog.text and "registering the best 2 so far" in caplog.text
    budget = registry.version("budgeted", versions[0]).search_budget
    assert budget["trials_run"] == run and budget["trials_planned"] == 500 and budget["message"].startswith(said)
    candidates = model_status(registry, spec)["candidates"]
    assert [c["search_budget"]["trials_run"] for c in candidates] == [run, run]
    page = TestClient(create_app()).get("/models/budgeted").text
    assert page.count(f"search cut short: {run} of 500 trials") == 2


@pytest.mark.slow  # starts processes (a forkserver child per trial, or the `ratchet` command)
def test_a_budget_spent_before_any_trial_scored_fails_the_search_and_says_why(registry):
    import dataclasses

    from ratchet.exceptions import SearchFailed
    from ratchet.specs.model import EstimatorSpec

    spec = build_spec(name="m", table=write_table(registry, sample_frame(120).drop(columns=["kind"])),
                      search={"n_trials": 3, "cv_folds": 2, "time_budget_minutes": 0.02})
    registry.sync_model(spec)
    sleepy = EstimatorSpec("slow_estimators.SleepyRegressor", {"seconds": 30.0}, {})
    spec = dataclasses.replace(spec, estimators=(sleepy,))
    with pytest.raises(SearchFailed, match=r"none of the 1 trials can become a version: 1× timed out after 1.2 s "
                                           r"\(search.time_budget_minutes: 0.02 ran out\) \(search.time_budget_minutes "
                                           r"\(0.02\) ran out: 1 of 3 trials run in 1.2 s \(0 scored, the last "
                                           r"stopped\)\)"):
        retrain.retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2024, 6, 1))
    assert registry.versions("m") == [] and registry.trials("m")[0].error.startswith("timed out")


def test_the_simplicity_choice_is_logged_kept_with_each_version_and_made_again_by_a_rerun(registry, caplog):
    import logging

    frame = sample_frame(200).drop(columns=["kind"])
    spec = build_spec(name="m", table=write_table(registry, frame), search={"n_trials": 4, "cv_folds": 2, "seed": 5},
                      estimators=[{"class": "sklearn.linear_model.Ridge"},
                                  {"class": "sklearn.tree.DecisionTreeRegressor",
                                   "search_space": {"max_depth": {"randint": [2, 6]}}}])
    registry.sync_model(spec)
    with caplog.at_level(logging.INFO, logger="ratchet.lifecycle.retrain"):
        versions = retrain.retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2024, 7, 1))
    assert len(versions) == 2
    chosen = [registry.version("m", v).simplicity for v in versions]
    assert f"m: {chosen[0]['text']}" in caplog.text  # the task's log says what was chosen and why
    assert {c["role"] for c in chosen} <= {"best", "simplest", "best and simplest", "ranked"}
    assert chosen[0]["role"].startswith("best") and chosen[0]["best"]["score"] == registry.version("m", 1).cv_score
    trials = registry.trials("m")
    assert all(t.details["complexity"]["parameters"] >= 1 for t in trials)
    assert sum("versus_best" not in t.details for t in trials) == 1  # every trial but the best was tested

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ratchet.lifecycle.retrain"):
        assert retrain.retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2024, 7, 1)) == versions
    assert "reusing the 4 trials recorded for r" in caplog.text and f"m: {chosen[0]['text']}" in caplog.text
    assert [registry.version("m", v).simplicity for v in versions] == chosen
