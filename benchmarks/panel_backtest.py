"""Panel back-test speed: Ratchet's walk-forward month back-test of a global model against mlforecast and skforecast.

A generated daily panel (100 series x 3 years; per-series level, weekly season, random walk and noise; series
start on different days), one global HistGradientBoostingRegressor (100 iterations, no early stopping, so every
fit does the same work whatever rows a tool hands it) on target lags [1, 7, 28] and nothing else (no series id
feature in any tool), 12 folds over the last year, each fitted on every row before it (expanding) and predicting
every series and day of it. The tools differ in what a fold's predictions are: Ratchet predicts each day one step
ahead with the observed lags (what a daily now-test does); mlforecast (`MLForecast.cross_validation`) and
skforecast (`backtesting_forecaster_multiseries`) forecast the fold recursively from its first day, their own
predictions feeding the later days' lags. Either way a fold is one fit and a month of predictions (theirs ~30
predict calls of a row per series, Ratchet's one call).

Ratchet's folds are the 12 calendar months of 2025. Neither library has folds of varying length, so each runs two
ways: the same calendar months, a call per month (`n_windows=1` with h = the month's days; one `TimeSeriesFold`
fold), which repeats the library's per-call work (validation, reshaping every series) 12 times; and its own
back-test in one call, 12 folds of 30 days ending on the same last day (360 days, where Ratchet predicts 365). The
ratio is to the fastest of the four. skforecast runs with n_jobs=1: its folds in parallel would take cores the
other arms do not get.

Ratchet runs in this process and its figure includes reading the table from PostgreSQL and writing the results;
mlforecast and skforecast run in their own virtualenv (.bench-venv-forecast/, created on the first run with this
venv's scikit-learn, numpy, pandas, scipy and skforecast; never in requirements.txt) on the same rows generated
there, and their figures are pure compute. The arms take turns for ROUNDS rounds (a new model per Ratchet round,
trained untimed) and the table shows medians, wall and CPU seconds (CPU: the process's, all threads; PostgreSQL's
own work is not in it). Every arm's native pools (the estimator's OpenMP, BLAS) run THREADS thread(s): on a
shared 2-core machine a second OpenMP thread made the same call take 7 to 44 s, depending on what else ran, and
one thread per task is how Ratchet's back-test tasks run side by side (ratchet.threads). The MAE column checks the
work: the libraries agree on the same folds (same model, same recursion); Ratchet's one-step-ahead MAE is lower.

    .venv/bin/python benchmarks/panel_backtest.py     (target: Ratchet <= 1.0x the fastest competitor)

Uses RATCHET_BENCH_DATABASE_URL (a server URL; a scratch database is created and dropped), else an
embedded PostgreSQL. `--competitors` is the step run inside the forecast virtualenv.
"""
from __future__ import annotations

import datetime as dt
import importlib.metadata
import io
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SERIES = 100
FIRST, LAST = dt.date(2023, 1, 1), dt.date(2025, 12, 31)  # three years; a series starts up to 180 days in
END = dt.datetime(2026, 1, 1)  # the back-test's end: its 12 months are 2025's
MONTHS = 12
LAGS = [1, 7, 28]
PARAMS = {"max_iter": 100, "random_state": 0, "early_stopping": False}
ESTIMATOR = {"class": "sklearn.ensemble.HistGradientBoostingRegressor", "params": PARAMS}
ROUNDS = 5
THREADS = 1  # native threads of every arm
RATCHET = "Ratchet, 12 calendar months (incl. PostgreSQL)"
MLFORECAST_VERSION = "1.1.0"
FORECAST_VENV = REPO / ".bench-venv-forecast"
SAME_AS_HERE = ("scikit-learn", "numpy", "pandas", "scipy", "skforecast")  # the same estimator code in every arm


def generate_panel(series: int, first: dt.date, last: dt.date, *, freq: str = "D", time_column: str = "day",
                   stagger_days: int = 180, seed: int = 0) -> pd.DataFrame:
    """series_id, time, y sorted by time: per-series level, weekly season (and a daily one for hourly rows), a
    random walk and noise; each series starts up to `stagger_days` days after `first`. The same rows for the same
    arguments."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(first, pd.Timestamp(last) + pd.Timedelta(days=1), freq=freq, inclusive="left")
    level = rng.uniform(20, 200, (series, 1))
    hours = times.dayofweek.to_numpy() * 24 + times.hour.to_numpy()
    season = np.sin(2 * np.pi * hours / 168 + rng.uniform(0, 2 * np.pi, (series, 1))) * rng.uniform(0.05, 0.3,
                                                                                                   (series, 1))
    if freq != "D":
        season += 0.3 * np.sin(2 * np.pi * times.hour.to_numpy() / 24 + rng.uniform(0, 2 * np.pi, (series, 1)))
    steps = len(times) / ((pd.Timestamp(last) - pd.Timestamp(first)).days + 1)  # rows per day
    walk = np.cumsum(rng.normal(0, 1 / np.sqrt(steps), (series, len(times))), axis=1)
    y = level * (1 + season + 0.01 * walk + 0.05 * rng.normal(0, 1, (series, len(times))))
    start = (rng.integers(0, stagger_days, series) * steps).astype(int)
    t, s = np.nonzero(np.arange(len(times))[:, None] >= start[None, :])
    return pd.DataFrame({"series_id": s, time_column: times[t], "y": y[s, t].round(3)})


def month_folds() -> list[pd.Period]:
    """The last MONTHS complete calendar months of the data: Ratchet's folds and the calendar-month arms'."""
    return list(pd.period_range(end=pd.Period(LAST, "M"), periods=MONTHS, freq="M"))


def write_table(url: str, table: str, frame: pd.DataFrame) -> None:
    """CREATE TABLE and COPY the rows in (the time column a date for daily rows, else a timestamp)."""
    from ratchet.settings import make_engine

    time_column = frame.columns[1]
    kind = "date" if (frame[time_column] == frame[time_column].dt.normalize()).all() else "timestamp"
    engine = make_engine(url)
    conn = engine.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (series_id integer NOT NULL, {time_column} {kind} NOT NULL, "
                        f"y double precision NOT NULL)")
            cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)",
                            io.StringIO(frame.to_csv(index=False, header=False)))
        conn.commit()
    finally:
        conn.close()
        engine.dispose()


def panel_spec(name: str, table: str, *, frequency: str = "day", time_column: str = "day", lags: list[int] = LAGS,
               **fields):
    """The model: a global HistGradientBoostingRegressor on the panel's target lags, no baselines, one trial
    (`fields` replace top-level keys)."""
    from ratchet.specs import parse_spec

    return parse_spec(Path(f"{name}.yaml"), {
        "name": name, "task": "regression", "baselines": [],
        "source": {"table": table, "time_column": time_column, "target": "y", "series": ["series_id"],
                   "frequency": frequency, "features": [], "target_lags": lags},
        "estimators": [ESTIMATOR], "search": {"n_trials": 1, "candidates": 1, "cv_folds": 2},
        "backtest": {"months": MONTHS}} | fields)


def stored_predictions(registry, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(actual, predicted) of every prediction the back-test stored for the model."""
    from sqlalchemy import text

    with registry.engine.connect() as conn:
        rows = conn.execute(text("SELECT b.actual, b.predicted FROM backtest_days b JOIN models m "
                                 "ON m.id = b.model_id WHERE m.name = :name"), {"name": name}).all()
    return (np.concatenate([np.asarray(a, float) for a, _ in rows]),
            np.concatenate([np.asarray(p, float) for _, p in rows]))


def ratchet_round(url: str, name: str) -> dict:
    """Register a version of a new model (untimed retrain), then time its back-test of the folds; native pools at
    THREADS throughout."""
    from threadpoolctl import threadpool_limits

    from ratchet.evaluation import backtest
    from ratchet.lifecycle import retrain
    from ratchet.modeling import sources
    from ratchet.registry import Registry

    spec = panel_spec(name, "panel")
    registry = Registry(url)
    with threadpool_limits(THREADS):
        registry.sync_model(spec)
        retrain.retrain_model(registry, spec, run_id="bench", logical_date=END)
        months = backtest.month_groups(spec, sources.read_source(spec, end=END), end=END, groups=1)[0]
        if months != [str(m) for m in month_folds()]:
            raise SystemExit(f"Ratchet's back-test months {months} are not the folds {month_folds()}")
        wall, cpu = time.perf_counter(), time.process_time()
        backtest.run_partition(registry, spec, months, run_id="bench", end=END)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    actual, predicted = stored_predictions(registry, name)
    registry.dispose()
    return {"seconds": wall, "cpu": cpu, "predictions": len(actual), "mae": float(np.mean(np.abs(actual - predicted)))}


def forecast_python() -> Path:
    """The forecast virtualenv's python, created and installed on the first run (or when a pin changes)."""
    pins = [f"mlforecast=={MLFORECAST_VERSION}",
            *(f"{name}=={importlib.metadata.version(name)}" for name in SAME_AS_HERE)]
    python, stamp = FORECAST_VENV / "bin" / "python", FORECAST_VENV / ".installed"
    if stamp.exists() and stamp.read_text() == " ".join(pins):
        return python
    print(f"installing {' '.join(pins)} into {FORECAST_VENV} (once) ...", flush=True)
    for step in ([sys.executable, "-m", "venv", str(FORECAST_VENV)],
                 [str(python), "-m", "pip", "install", "--quiet", *pins]):
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(step[:4])} ... failed:\n{done.stderr[-2000:]}")
    stamp.write_text(" ".join(pins))
    return python


def competitor_round(python: Path) -> dict:
    """One round of both libraries in the forecast virtualenv: {tool: figures}."""
    done = subprocess.run([str(python), __file__, "--competitors"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the competitors failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def competitors() -> dict:
    """mlforecast and skforecast back-tests, each on the calendar months and in one call (run in the forecast
    virtualenv): {arm: figures}."""
    from mlforecast import MLForecast
    from skforecast.model_selection import TimeSeriesFold, backtesting_forecaster_multiseries
    from skforecast.recursive import ForecasterRecursiveMultiSeries
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    threadpool_limits(THREADS)
    frame = generate_panel(SERIES, FIRST, LAST).rename(columns={"series_id": "unique_id", "day": "ds"})
    frame = frame.sort_values(["unique_id", "ds"], ignore_index=True)  # mlforecast's own order, untimed
    series = {str(k): g.set_index("ds")["y"].asfreq("D") for k, g in frame.groupby("unique_id")}
    last, months = pd.Timestamp(LAST), month_folds()

    def mlforecast(until: pd.Timestamp, windows: int, h: int) -> pd.DataFrame:
        forecast = MLForecast(HistGradientBoostingRegressor(**PARAMS), freq="D", lags=LAGS)
        result = forecast.cross_validation(frame[frame["ds"] <= until], n_windows=windows, h=h, refit=True)
        return result.rename(columns={"HistGradientBoostingRegressor": "pred"})[["unique_id", "ds", "pred"]]

    def skforecast(until: pd.Timestamp, first: pd.Timestamp, steps: int) -> pd.DataFrame:
        forecaster = ForecasterRecursiveMultiSeries(HistGradientBoostingRegressor(**PARAMS), lags=LAGS, encoding=None)
        cv = TimeSeriesFold(steps=steps, initial_train_size=first - pd.Timedelta(days=1), refit=True,
                            fixed_train_size=False, verbose=False)
        predicted = backtesting_forecaster_multiseries(
            forecaster, series={k: s[:until] for k, s in series.items()}, cv=cv, metric="mean_absolute_error",
            n_jobs=1, show_progress=False)[1]
        return pd.DataFrame({"unique_id": predicted["level"].astype(int).to_numpy(), "ds": predicted.index,
                             "pred": predicted["pred"].to_numpy()})

    windows = last - pd.Timedelta(days=30 * MONTHS - 1)  # the first day of 12 windows of 30 days
    arms = {
        "mlforecast, 12 calendar months (a call each)":
            lambda: [mlforecast(m.end_time.normalize(), 1, m.days_in_month) for m in months],
        "mlforecast, 12 x 30 days (one call)": lambda: [mlforecast(last, MONTHS, 30)],
        "skforecast, 12 calendar months (a call each)":
            lambda: [skforecast(m.end_time.normalize(), m.start_time, m.days_in_month) for m in months],
        "skforecast, 12 x 30 days (one call)": lambda: [skforecast(last, windows, 30)],
    }
    figures = {}
    for arm, run in arms.items():
        wall, cpu = time.perf_counter(), time.process_time()
        results = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        results = pd.concat(results).merge(frame, how="left", on=["unique_id", "ds"])
        figures[arm] = {"seconds": wall, "cpu": cpu, "predictions": len(results),
                        "mae": float((results["y"] - results["pred"]).abs().mean())}
    return figures


def load() -> str:
    """The 1, 5 and 15 minute load averages: what else the machine was doing."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    warnings.filterwarnings("ignore")
    from scratch import scratch_databases

    python = forecast_python()
    frame = generate_panel(SERIES, FIRST, LAST)
    print(f"{SERIES} series x {FIRST}..{LAST} daily: {len(frame):,} rows; folds {month_folds()[0]}..{month_folds()[-1]}"
          f"; {ROUNDS} rounds; load before {load()}", flush=True)
    arms: dict[str, list[dict]] = {RATCHET: []}
    with scratch_databases("panel", migrated=("panel",)) as urls:
        write_table(urls["panel"], "panel", frame)
        os.environ["RATCHET_DATABASE_URL"] = urls["panel"]
        for i in range(ROUNDS):
            arms[RATCHET].append(ratchet_round(urls["panel"], f"panel_{i}"))
            for arm, figures in competitor_round(python).items():
                arms.setdefault(arm, []).append(figures)
            print(f"round {i + 1}: " + ", ".join(f"{runs[-1]['seconds']:.1f}" for runs in arms.values())
                  + f" s; load {load()}", flush=True)
    medians = {arm: {key: statistics.median(run[key] for run in runs) for key in ("seconds", "cpu", "mae")}
               | {"predictions": runs[-1]["predictions"]} for arm, runs in arms.items()}
    fastest = min(m["seconds"] for arm, m in medians.items() if arm != RATCHET)
    print(f"back-test, {MONTHS} monthly refits, global HistGBR, lags {LAGS}, {SERIES} series, {THREADS} native "
          f"thread(s) per arm, medians of {ROUNDS} rounds")
    print(f"{'arm':48} {'wall s':>8} {'CPU s':>8} {'ratio':>7} {'predictions':>12} {'MAE':>7}")
    for arm, m in medians.items():
        print(f"{arm:48} {m['seconds']:8.2f} {m['cpu']:8.2f} {m['seconds'] / fastest:7.2f} "
              f"{m['predictions']:12,} {m['mae']:7.3f}")
    ours = medians[RATCHET]["seconds"] / fastest
    print(f"Ratchet / fastest competitor: {ours:.2f}   target <= 1.0   {'met' if ours <= 1.0 else 'MISSED'}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--competitors"]:
        warnings.filterwarnings("ignore")
        print(json.dumps(competitors()))
    else:
        main()
