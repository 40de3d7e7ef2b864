"""Significant wins on real tables: a random walk never lets a candidate beat `last_value` by luck, a
seasonal temperature series lets a good candidate show it is better (`lifecycle.promotion.paired_test`).

Both use the default significance (0.05) and a 2% `min_improvement`, the paired test's margin: H0 is that the
candidate's daily loss is not 2% below the reference's. The twenty Microsoft nights are a year apart
(1996..2015), so their twelve back-test months never overlap and each night is its own evidence.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from real_data import real_data_dir
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.evaluation import backtest
from ratchet.lifecycle.promotion import paired_test
from ratchet.lifecycle.retrain import retrain_model
from ratchet.modeling import sources

# Twenty back-test nights on a real table: minutes, not seconds.
pytestmark = pytest.mark.slow

RIDGE = {"class": "sklearn.linear_model.Ridge", "search_space": {"alpha": {"loguniform": [0.01, 100.0]}}}


def _load(registry, file: str) -> str:
    frame = pd.read_csv(real_data_dir() / f"{file}.csv", parse_dates=["day"])
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS real"))
        frame.to_sql(file, conn, schema="real", index=False, if_exists="replace")
    return f"real.{file}"


def _night(registry, spec, end: dt.datetime) -> dict[int, dict]:
    """One nightly retrain and back-test at `end`; each new version's paired test against last_value."""
    run = f"retrain@{end.isoformat()}"
    versions = retrain_model(registry, spec, run_id=run, logical_date=end)
    frame = sources.read_source(spec, end=end)
    (months,) = backtest.month_groups(spec, frame, end=end, groups=1)
    backtest.run_partition(registry, spec, months, run_id=f"backtest@{end.isoformat()}", end=end)
    return {v: paired_test(registry, spec, f"v{v}", "last_value", months) for v in versions}


def test_on_a_random_walk_no_candidate_beats_last_value_in_at_least_19_of_20_nights(tmp_path, registry):
    spec = write_spec(tmp_path, name="msft", table=_load(registry, "msft_daily"),
                      source={"target": "close", "features": [], "target_lags": [1, 2, 5], "lags_by": "rows"},
                      estimators=[RIDGE], search={"n_trials": 3, "cv_folds": 3, "seed": 11, "candidates": 2},
                      backtest={"months": 12}, promotion={"min_improvement": 0.02})
    registry.sync_model(spec)
    nights = [dt.datetime(1996 + i, 1, 2, tzinfo=dt.UTC) for i in range(20)]
    passed = []
    for end in nights:
        tests = _night(registry, spec, end)
        assert tests and all(t["p_value"] is not None and t["n_days"] > 200 for t in tests.values())
        if any(t["p_value"] < spec.promotion.significance for t in tests.values()):
            passed.append(end.date())
    assert len(passed) <= 1, f"candidates 'beat' a random walk's last value on {passed}"


def test_on_melbourne_temperatures_a_good_candidate_beats_last_value_significantly(tmp_path, registry):
    spec = write_spec(tmp_path, name="melbourne", table=_load(registry, "melbourne_temperature_daily"),
                      source={"target": "min_temp", "features": [], "target_lags": [1, 7]},
                      estimators=[RIDGE], search={"n_trials": 3, "cv_folds": 3, "seed": 1, "candidates": 2},
                      backtest={"months": 24}, promotion={"min_improvement": 0.02})
    registry.sync_model(spec)
    tests = _night(registry, spec, dt.datetime(1991, 1, 1, tzinfo=dt.UTC))
    best = min(tests.values(), key=lambda t: t["p_value"])
    assert best["p_value"] < 0.01 and best["relative_difference"] < -0.05 and best["n_days"] > 700
