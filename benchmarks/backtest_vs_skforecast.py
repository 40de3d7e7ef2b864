"""Back-test speed: Ratchet's walk-forward month back-test against skforecast's `backtesting_forecaster`.

Same data (the demo's daily demand), same estimator (HistGradientBoostingRegressor, 100 iterations),
same lags (1 and 7) and exogenous features, 24 monthly folds with a refit in each. Ratchet's figure
includes reading the table from PostgreSQL and writing the results; skforecast's is pure compute.
skforecast predicts each ~30-day fold recursively, Ratchet one day ahead with observed lags (what a
daily now-test does), so the compute per fold is one fit and one month of predictions for both.

    .venv/bin/python benchmarks/backtest_vs_skforecast.py     (target: ratio <= 1.0)

Uses RATCHET_BENCH_DATABASE_URL (a server URL; a scratch database is created and dropped), else
an embedded PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import os
import time
import warnings
from pathlib import Path

MONTHS = 24
ESTIMATOR = {"class": "sklearn.ensemble.HistGradientBoostingRegressor",
             "params": {"max_iter": 100, "random_state": 0}}
FEATURES = ["temperature", "precipitation", "is_holiday", "promo", "day_of_week"]
END = dt.date(2026, 6, 30)


def ratchet_backtest(url: str) -> tuple[float, int]:
    from ratchet import demo
    from ratchet.evaluation import backtest
    from ratchet.lifecycle import retrain
    from ratchet.modeling import sources
    from ratchet.registry import Registry
    from ratchet.specs import parse_spec

    demo.load_demo(url, end=END)
    os.environ["RATCHET_DATABASE_URL"] = url
    spec = parse_spec(Path("bench.yaml"), {
        "name": "bench", "task": "regression", "baselines": [],
        "source": {"table": "demo.daily_demand", "time_column": "day", "target": "demand",
                   "features": FEATURES, "target_lags": [1, 7]},
        "estimators": [ESTIMATOR], "search": {"n_trials": 1, "candidates": 1, "cv_folds": 2},
        "backtest": {"months": MONTHS}})
    registry = Registry(url)
    registry.sync_model(spec)
    end = dt.datetime.combine(END + dt.timedelta(days=1), dt.time())
    retrain.retrain_model(registry, spec, run_id="bench", logical_date=end)
    months = backtest.month_groups(spec, sources.read_source(spec, end=end), end=end, groups=1)[0]
    started = time.perf_counter()
    result = backtest.run_partition(registry, spec, months, run_id="bench", end=end)
    elapsed = time.perf_counter() - started
    registry.dispose()
    return elapsed, result["computed"]


def skforecast_backtest(n_jobs) -> tuple[float, int]:
    import pandas as pd
    from skforecast.model_selection import TimeSeriesFold, backtesting_forecaster
    from skforecast.recursive import ForecasterRecursive
    from sklearn.ensemble import HistGradientBoostingRegressor

    from ratchet import demo

    frame = demo.generate_demand(dt.date(END.year - 3, END.month, 1), END, seed=7,
                                 regime_change=demo.regime_change_day(END))
    frame.index = pd.DatetimeIndex(frame.pop("day"), freq="D")
    y, exog = frame["demand"], frame[FEATURES].astype(float)
    steps, folds = 30, MONTHS
    forecaster = ForecasterRecursive(HistGradientBoostingRegressor(**ESTIMATOR["params"]), lags=[1, 7])
    cv = TimeSeriesFold(steps=steps, initial_train_size=len(y) - steps * folds, refit=True,
                        fixed_train_size=False, verbose=False)
    started = time.perf_counter()
    backtesting_forecaster(forecaster, y=y, exog=exog, cv=cv, metric="mean_squared_error", n_jobs=n_jobs,
                           show_progress=False)
    return time.perf_counter() - started, folds


def main() -> None:
    warnings.filterwarnings("ignore")
    from scratch import scratch_databases

    with scratch_databases("ratchet", migrated=("ratchet",)) as urls:
        ours, computed = ratchet_backtest(urls["ratchet"])
    theirs_serial, folds = skforecast_backtest(n_jobs=1)
    theirs_auto, _ = skforecast_backtest(n_jobs="auto")
    print(f"{'back-test, 24 monthly refits, HistGBR, lags [1, 7] + 5 exog':62} {'seconds':>8}")
    print(f"{'Ratchet run_partition (incl. PostgreSQL read/write)':62} {ours:8.2f}   ({computed} month fits)")
    print(f"{'skforecast backtesting_forecaster n_jobs=1':62} {theirs_serial:8.2f}   ({folds} folds)")
    print(f"{'skforecast backtesting_forecaster n_jobs=auto':62} {theirs_auto:8.2f}")
    print(f"ratio Ratchet / skforecast (n_jobs=1): {ours / theirs_serial:.2f}   target <= 1.0")
    print(f"ratio Ratchet / skforecast (n_jobs=auto): {ours / theirs_auto:.2f}")


if __name__ == "__main__":
    main()
