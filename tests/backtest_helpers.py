"""Search and back-test fixtures: the spec fields of a two-estimator model and daily sources to learn from."""
from __future__ import annotations

import datetime as dt
import uuid

import numpy as np
import pandas as pd
from sqlalchemy import text

END = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
SEARCH = {"n_trials": 4, "cv_folds": 3, "seed": 3, "candidates": 1, "metric": "r2"}
# spec_factory overrides besides name, table and search (tests give the whole `search`, never merged into SEARCH)
SPEC = {
    "source": {"target_lags": [1, 2]},
    "estimators": [{"class": "sklearn.linear_model.Ridge", "search_space": {"alpha": {"loguniform": [0.01, 10]}}},
                   {"class": "sklearn.ensemble.HistGradientBoostingRegressor", "params": {"max_iter": 40},
                    "search_space": {"learning_rate": {"uniform": [0.05, 0.3]}}}],
    "backtest": {"months": 4},
}


def model_name() -> str:
    return f"m_{uuid.uuid4().hex[:6]}"


def write_frame(registry, frame: pd.DataFrame) -> str:
    table = f"bt_{uuid.uuid4().hex[:8]}"
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS searchtest"))
        frame.to_sql(table, conn, schema="searchtest", index=False)
    return f"searchtest.{table}"


def _days(n=540):
    return pd.date_range("2023-01-01", periods=n, freq="D")


def future_target(n=540, seed=0):
    """y_t is tomorrow's noise: nothing known at t predicts it."""
    noise = np.random.default_rng(seed).normal(size=n + 1)
    return pd.DataFrame({"day": _days(n), "y": noise[1:], "x": noise[:-1]})


def learnable(n=540, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"day": _days(n), "y": 5 * x + rng.normal(scale=0.5, size=n) + 20, "x": x})
