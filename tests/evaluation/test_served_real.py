"""On a real table (Melbourne's daily minimum temperature): when the service served the champion's own predictions
of real rows, what `ratchet predict` answers for them, the served metrics equal the re-predicted ones on the same
ids."""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from real_data import real_data_dir
from served_helpers import answer
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.lifecycle.monitoring import run_nowtest
from ratchet.lifecycle.retrain import retrain_model
from ratchet.modeling.months import window_bounds
from ratchet.serving.predict import predict_frame

END = dt.datetime(1990, 7, 1, 6, tzinfo=dt.UTC)


def test_served_metrics_of_the_champions_own_answers_equal_the_repredicted_ones(registry, tmp_path):
    frame = pd.read_csv(real_data_dir() / "melbourne_temperature_daily.csv", parse_dates=["day"])
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS served_real CASCADE; CREATE SCHEMA served_real"))
        frame.to_sql("melbourne", conn, schema="served_real", index=False)
    spec = write_spec(tmp_path, name="melbourne", table="served_real.melbourne", owner="tests",
                      source={"target": "min_temp", "features": ["max_temp"], "target_lags": [1, 7]},
                      search={"n_trials": 2, "cv_folds": 2, "candidates": 1},
                      requirements=[{"metric": "mae", "max": 4.0, "scope": "nowtest"}],
                      nowtest={"window_days": 28, "min_rows": 20})
    registry.sync_model(spec)
    (version,) = retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(1990, 6, 1))
    registry.record_promotion("melbourne", version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first", gates=[], run_id="p", expected_previous_version=None)

    start, end, _ = window_bounds(END, 28)
    rows = frame[(frame["day"] >= start) & (frame["day"] < end)]
    answers = predict_frame(registry, spec, rows)  # what `ratchet predict` (and the service) answers for them
    served_at = END - dt.timedelta(hours=3)
    registry.log_served([answer("melbourne", version, day, float(p), served_at, cache_hit=i % 3 == 0)
                         for i, (day, p) in enumerate(zip(answers["day"], answers["prediction"], strict=True))])

    outcome = run_nowtest(registry, spec, run_id="nt", data_interval_end=END, airflow_run_url="http://airflow/run")
    served = outcome.served.champion
    assert served.scored == outcome.n_rows == 28 and served.awaiting == 0
    for metric in ("rmse", "mae", "mape", "r2"):
        assert served.scores[metric] == pytest.approx(outcome.champion.scores[metric], rel=1e-9)
    (repredicted,) = outcome.champion.requirements
    (checked,) = served.requirements
    assert checked.value == pytest.approx(repredicted.value) and checked.passed == repredicted.passed
