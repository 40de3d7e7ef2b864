"""Simplicity through a real `ratchet_retrain` run on a real table: Beijing's daily PM2.5 (2010..2014, weather
features, a categorical wind direction, 37 days without a target).

The search tries a histogram gradient-boosting ensemble and a Ridge. The ensemble is the best trial by CV rmse, but
not significantly better than a Ridge by the gate's paired test (margin 2%, 0.05): pollution is noisy, and a few
smog days decide most of the squared error. So the Ridge, a dozen coefficients against some sixteen thousand tree
nodes, wins the second candidate slot over a second ensemble; the choice and its evidence are kept with both
versions and shown on the model page and the model card (tests/lifecycle/test_retrain.py: and logged).
Re-running the date makes the same choice from the recorded trials and registers nothing new.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from dag_helpers import timed_run
from fastapi.testclient import TestClient
from real_data import real_data_dir
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.modeling import search, simplicity
from ratchet.reporting.card import build_card
from ratchet.ui.app import create_app

# A search of ensembles on five years of days inside a real Airflow run: tens of seconds.
pytestmark = pytest.mark.slow

FILE = "beijing_pm25_daily"
WHEN = dt.datetime(2014, 6, 1, 1, tzinfo=dt.UTC)  # the night's run: data up to 2014-06-01
HGB = "sklearn.ensemble.HistGradientBoostingRegressor"
RIDGE = "sklearn.linear_model.Ridge"
WEATHER = ["dew_point", "temperature", "pressure", "wind_speed_max", "snow_hours", "rain_hours", "wind_direction"]


@pytest.fixture
def pm25(registry, tmp_path, monkeypatch):
    frame = pd.read_csv(real_data_dir() / f"{FILE}.csv", parse_dates=["day"])
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS real"))
        frame.to_sql(FILE, conn, schema="real", index=False, if_exists="replace")
    spec = write_spec(tmp_path, name="pm25", table=f"real.{FILE}", owner="tests",
                      source={"target": "pm25", "features": WEATHER, "categorical": ["wind_direction"],
                              "target_lags": [1]},
                      estimators=[{"class": HGB, "params": {"random_state": 0},
                                   "search_space": {"max_iter": {"randint": [100, 300]},
                                                    "learning_rate": {"loguniform": [0.02, 0.2]}}},
                                  {"class": RIDGE, "search_space": {"alpha": {"loguniform": [0.01, 100.0]}}}],
                      search={"n_trials": 6, "cv_folds": 3, "seed": 1, "candidates": 2},
                      promotion={"min_improvement": 0.02})
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    return spec


def test_a_ridge_not_significantly_worse_than_the_best_ensemble_wins_a_slot_in_a_real_retrain(
        airflow_db, registry, pm25):
    run, seconds = timed_run("ratchet_retrain", WHEN)
    assert run.state == "success"

    best, simplest = registry.versions("pm25")
    assert (best.estimator_class, simplest.estimator_class) == (HGB, RIDGE)
    chosen = simplest.simplicity
    assert chosen["role"] == "simplest" and chosen["won_slot"] and best.simplicity["role"] == "best"
    assert {k: v for k, v in best.simplicity.items() if k not in ("role", "complexity")} == \
        {k: v for k, v in chosen.items() if k not in ("role", "complexity")}  # one choice, kept with both
    test = chosen["test"]
    assert 0.05 <= test["p_value"] < 1 and test["margin"] == 0.02 and test["n_days"] > 1000
    assert test["relative_difference"] < -0.02  # the ensemble is better, by more than the margin on average...
    assert chosen["best"]["score"] == best.cv_score < chosen["simplest"]["score"] == simplest.cv_score
    assert chosen["simplest"]["parameters"] == 12 < 1000 < chosen["best"]["parameters"]  # ...but not significantly
    assert chosen["simplest"]["counted"] == "nonzero coefficients" and chosen["best"]["counted"] == "tree nodes"

    trials = registry.trials("pm25")
    by_score = sorted((t for t in trials if t.mean_score is not None), key=lambda t: t.mean_score)
    assert by_score[1].estimator_class == HGB  # by score alone the second slot was another ensemble's
    recorded = [search.Trial(t.trial_index, t.estimator_class, t.params, t.sampling, t.metric, t.fold_scores,
                             t.mean_score, t.fit_seconds, t.error, t.details) for t in trials]
    again = simplicity.choose(pm25, recorded)  # what a re-run reads back: the same choice
    assert again.record(again.simplest) == chosen

    assert timed_run("ratchet_retrain", WHEN)[0].state == "success"  # re-run: reuses the trials, registers nothing
    assert [(v.version, v.details) for v in registry.versions("pm25")] == [(1, best.details), (2, simplest.details)]

    page = TestClient(create_app()).get("/models/pm25").text
    assert "simplest not significantly worse than the best (p = " in page and ": won a slot" in page
    assert "12 nonzero coefficients" in page and f"{chosen['best']['parameters']:,} tree nodes" in page
    card = build_card(registry, pm25, simplest.version).markdown()
    assert "## Simplicity" in card and "the simplest trial of its search not significantly worse" in card
    assert f"| #{chosen['simplest']['trial']} | simplest | Ridge |" in card
    print(f"\nsimplicity on {FILE} ({seconds:.0f} s): {chosen['text']}")
