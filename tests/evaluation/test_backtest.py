"""Search and back-test behaviour: no leakage, iterated search, fingerprint skipping."""
from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from ratchet.evaluation import backtest
from ratchet.lifecycle import retrain
from ratchet.modeling import search, sources
from ratchet.specs import parse_spec

END = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)


def _spec(table: str, **overrides):
    raw = {
        "name": f"m_{uuid.uuid4().hex[:6]}", "task": "regression",
        "source": {"table": table, "time_column": "day", "target": "y", "target_lags": [1, 2]},
        "estimators": [{"class": "sklearn.linear_model.Ridge", "search_space": {"alpha": {"loguniform": [0.01, 10]}}},
                       {"class": "sklearn.ensemble.HistGradientBoostingRegressor", "params": {"max_iter": 40},
                        "search_space": {"learning_rate": {"uniform": [0.05, 0.3]}}}],
        "search": {"n_trials": 4, "cv_folds": 3, "seed": 3, "candidates": 1, "metric": "r2"},
        "backtest": {"months": 4},
    }
    raw.update(overrides)
    return parse_spec(Path(f"{raw['name']}.yaml"), raw)


def _write(registry, frame: pd.DataFrame) -> str:
    table = f"bt_{uuid.uuid4().hex[:8]}"
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS searchtest"))
        frame.to_sql(table, conn, schema="searchtest", index=False)
    return f"searchtest.{table}"


def _days(n=540):
    return pd.date_range("2023-01-01", periods=n, freq="D")


def _future_target(n=540, seed=0):
    """y_t is tomorrow's noise: nothing known at t predicts it."""
    noise = np.random.default_rng(seed).normal(size=n + 1)
    return pd.DataFrame({"day": _days(n), "y": noise[1:], "x": noise[:-1]})


def _learnable(n=540, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"day": _days(n), "y": 5 * x + rng.normal(scale=0.5, size=n) + 20, "x": x})


def _r2_by_contender(registry, spec):
    table = backtest.metric_table(registry, spec, "r2")
    return {name: float(np.mean(list(values.values()))) for name, values in table.items()}


def test_time_folds_never_train_on_rows_after_validation():
    for train, test in search.time_folds(200, 4):
        assert train.max() < test.min()


def test_a_target_from_the_future_stays_at_chance_in_cv_and_backtest(registry):
    spec = _spec(_write(registry, _future_target()))
    registry.sync_model(spec)
    versions = retrain.retrain_model(registry, spec, run_id="r", logical_date=END)
    trials = registry.trials(spec.name)
    assert max(t.mean_score for t in trials if t.mean_score is not None) < 0.05
    frame = sources.read_source(spec, end=END)
    for months in backtest.month_groups(spec, frame, end=END, groups=2):
        backtest.run_partition(registry, spec, months, run_id="b", end=END)
    r2 = _r2_by_contender(registry, spec)
    assert r2[f"v{versions[0]}"] < 0.05


def test_a_learnable_signal_beats_every_baseline_month_by_month(registry):
    spec = _spec(_write(registry, _learnable()), search={"n_trials": 3, "cv_folds": 3, "seed": 1, "candidates": 1})
    registry.sync_model(spec)
    (version,) = retrain.retrain_model(registry, spec, run_id="r", logical_date=END)
    assert registry.trials(spec.name)[0].mean_score < 1.0  # rmse, far below the noise-free spread of 5
    frame = sources.read_source(spec, end=END)
    for months in backtest.month_groups(spec, frame, end=END, groups=2):
        backtest.run_partition(registry, spec, months, run_id="b", end=END)
    table = backtest.metric_table(registry, spec, "rmse")
    ours = table[f"v{version}"]
    assert len(ours) == 4
    for baseline in spec.baselines:
        assert all(ours[m] < table[baseline][m] for m in ours), baseline
    summary = backtest.backtest_summary(registry, spec)
    assert summary["contenders"][f"v{version}"]["months_won"] == 4


def test_exploit_trials_sample_near_the_champion_within_bounds():
    spec = _spec("s.t", search={"n_trials": 10, "cv_folds": 3, "seed": 0, "candidates": 1, "explore_fraction": 0.4})

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
    spec = _spec("s.t")
    first = search.plan_trials(spec, np.random.default_rng(search.run_seed(3, "2024-07-01")))
    again = search.plan_trials(spec, np.random.default_rng(search.run_seed(3, "2024-07-01")))
    other = search.plan_trials(spec, np.random.default_rng(search.run_seed(3, "2024-07-02")))
    assert [p for _, p, _ in first] == [p for _, p, _ in again] != [p for _, p, _ in other]


def test_an_edited_row_recomputes_its_month_and_later_ones_only(registry):
    frame = _learnable()
    table = _write(registry, frame)
    spec = _spec(table, search={"n_trials": 2, "cv_folds": 3, "seed": 1, "candidates": 1})
    registry.sync_model(spec)
    retrain.retrain_model(registry, spec, run_id="r", logical_date=END)
    months = ["2024-03", "2024-04", "2024-05", "2024-06"]
    contenders = len(backtest.contenders(registry, spec))
    assert backtest.run_partition(registry, spec, months, run_id="b1", end=END) == {
        "computed": 4 * contenders, "skipped": 0}
    assert backtest.run_partition(registry, spec, months, run_id="b2", end=END) == {
        "computed": 0, "skipped": 4 * contenders}
    with registry.engine.begin() as conn:
        conn.execute(text(f"UPDATE {table} SET y = y + 1 WHERE day = '2024-05-10'"))
    assert backtest.run_partition(registry, spec, months, run_id="b3", end=END) == {
        "computed": 2 * contenders, "skipped": 2 * contenders}


def test_a_month_without_history_is_a_clear_error(registry):
    spec = _spec(_write(registry, _learnable(n=200)))
    registry.sync_model(spec)
    with pytest.raises(Exception, match="rows before it to train on"):
        backtest.run_partition(registry, spec, ["2022-06"], run_id="b", end=END)
    assert registry.evaluations(spec.name) == []
