"""Panel back-test speed: Ratchet's walk-forward month back-test of a global model against mlforecast and skforecast.

A generated daily panel (100 series x 3 years; per-series level, weekly season, random walk and noise; series
start on different days), one global HistGradientBoostingRegressor (100 iterations, no early stopping, so every
fit does the same work whatever rows a tool hands it) on target lags [1, 7, 28] and nothing else (no series id
feature in any tool), the same folds: each of the last 12 complete calendar months, fitted on every row before
it (expanding) and predicted for every series and day of it. The tools differ in what a month's predictions are:
Ratchet predicts each day one step ahead with the observed lags (what a daily now-test does); mlforecast
(`MLForecast.cross_validation`) and skforecast (`backtesting_forecaster_multiseries`) forecast the month
recursively from its first day, their predictions feeding the later days' lags. Either way a fold is one fit and
one month of predictions; theirs are ~30 predict calls of a row per series, Ratchet's one call per month.
Neither library has a fold of varying length, so each is called once per month (`n_windows=1`, h = the month's
days; one `TimeSeriesFold` fold of the month's days): the fits are the ones a single 12-window call makes, and
skforecast's `n_jobs` (folds in parallel) would only fight the estimator's own threads on 2 cores.

Ratchet runs in this process and its figure includes reading the table from PostgreSQL and writing the results;
mlforecast and skforecast run in their own virtualenv (.bench-venv-forecast/, created on the first run with this
venv's scikit-learn, numpy, pandas and scipy; never in requirements.txt) on the same rows generated there, and
their figures are pure compute. The arms take turns for ROUNDS rounds (a new model per Ratchet round, trained
untimed) and the table shows medians, wall and CPU seconds (CPU: the process's, all threads; PostgreSQL's own
work is not in it). The MAE column says every arm predicted the same rows with the same model.

    .venv/bin/python benchmarks/panel_backtest.py     (target: Ratchet <= 1.0x the faster competitor)

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
ROUNDS = 3
MLFORECAST_VERSION = "1.1.0"
FORECAST_VENV = REPO / ".bench-venv-forecast"
SAME_AS_HERE = ("scikit-learn", "numpy", "pandas", "scipy", "skforecast")  # the same estimator code in every arm


def generate_panel(series: int, first: dt.date, last: dt.date, *, freq: str = "D", time_column: str = "day",
                   seed: int = 0) -> pd.DataFrame:
    """series_id, time, y sorted by time: per-series level, weekly season (and a daily one for hourly rows), a
    random walk and noise; each series starts up to 180 days after `first`. The same rows for the same arguments."""
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
    start = (rng.integers(0, 180, series) * steps).astype(int)
    t, s = np.nonzero(np.arange(len(times))[:, None] >= start[None, :])
    return pd.DataFrame({"series_id": s, time_column: times[t], "y": y[s, t].round(3)})


def month_folds() -> list[pd.Period]:
    """The last MONTHS complete calendar months of the data: the folds of every arm."""
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
               search: dict | None = None):
    """The model: a global HistGradientBoostingRegressor on the panel's target lags, no baselines."""
    from ratchet.specs import parse_spec

    return parse_spec(Path(f"{name}.yaml"), {
        "name": name, "task": "regression", "baselines": [],
        "source": {"table": table, "time_column": time_column, "target": "y", "series": ["series_id"],
                   "frequency": frequency, "features": [], "target_lags": lags},
        "estimators": [ESTIMATOR], "search": search or {"n_trials": 1, "candidates": 1, "cv_folds": 2},
        "backtest": {"months": MONTHS}})


def stored_predictions(registry, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(actual, predicted) of every prediction the back-test stored for the model."""
    from sqlalchemy import text

    with registry.engine.connect() as conn:
        rows = conn.execute(text("SELECT b.actual, b.predicted FROM backtest_days b JOIN models m "
                                 "ON m.id = b.model_id WHERE m.name = :name"), {"name": name}).all()
    return (np.concatenate([np.asarray(a, float) for a, _ in rows]),
            np.concatenate([np.asarray(p, float) for _, p in rows]))


def ratchet_round(url: str, name: str) -> dict:
    """Register a version of a new model (untimed retrain), then time its back-test of the folds."""
    from ratchet.evaluation import backtest
    from ratchet.lifecycle import retrain
    from ratchet.modeling import sources
    from ratchet.registry import Registry

    spec = panel_spec(name, "panel")
    registry = Registry(url)
    try:
        registry.sync_model(spec)
        retrain.retrain_model(registry, spec, run_id="bench", logical_date=END)
        months = backtest.month_groups(spec, sources.read_source(spec, end=END), end=END, groups=1)[0]
        if months != [str(m) for m in month_folds()]:
            raise SystemExit(f"Ratchet's back-test months {months} are not the folds {month_folds()}")
        wall, cpu = time.perf_counter(), time.process_time()
        result = backtest.run_partition(registry, spec, months, run_id="bench", end=END)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        actual, predicted = stored_predictions(registry, name)
    finally:
        registry.dispose()
    return {"seconds": wall, "cpu": cpu, "predictions": len(actual), "mae": float(np.mean(np.abs(actual - predicted))),
            "fits": result["computed"]}


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
    """mlforecast and skforecast back-tests of the folds (run in the forecast virtualenv), timed apart."""
    from mlforecast import MLForecast
    from skforecast.model_selection import TimeSeriesFold, backtesting_forecaster_multiseries
    from skforecast.recursive import ForecasterRecursiveMultiSeries
    from sklearn.ensemble import HistGradientBoostingRegressor

    frame = generate_panel(SERIES, FIRST, LAST).rename(columns={"series_id": "unique_id", "day": "ds"})
    frame = frame.sort_values(["unique_id", "ds"], ignore_index=True)  # mlforecast's own order, untimed
    series = {str(k): g.set_index("ds")["y"].asfreq("D") for k, g in frame.groupby("unique_id")}
    figures = {}

    def mlforecast_fold(month: pd.Period) -> pd.DataFrame:
        rows = frame[frame["ds"] < month.end_time.normalize() + pd.Timedelta(days=1)]
        forecast = MLForecast(HistGradientBoostingRegressor(**PARAMS), freq="D", lags=LAGS)
        return forecast.cross_validation(rows, n_windows=1, h=month.days_in_month, refit=True).rename(
            columns={"HistGradientBoostingRegressor": "pred"})

    def skforecast_fold(month: pd.Period) -> pd.DataFrame:
        last = month.end_time.normalize()
        forecaster = ForecasterRecursiveMultiSeries(HistGradientBoostingRegressor(**PARAMS), lags=LAGS, encoding=None)
        cv = TimeSeriesFold(steps=month.days_in_month, initial_train_size=month.start_time - pd.Timedelta(days=1),
                            refit=True, fixed_train_size=False, verbose=False)
        return backtesting_forecaster_multiseries(
            forecaster, series={k: s[:last] for k, s in series.items()}, cv=cv, metric="mean_absolute_error",
            n_jobs=1, show_progress=False)[1]

    def skforecast_actual(predicted: pd.DataFrame) -> pd.DataFrame:
        keys = pd.DataFrame({"unique_id": predicted["level"].astype(int).to_numpy(), "ds": predicted.index})
        return keys.merge(frame, how="left").assign(pred=predicted["pred"].to_numpy())

    for tool, fold, actual in (("mlforecast", mlforecast_fold, lambda result: result),
                               ("skforecast", skforecast_fold, skforecast_actual)):
        wall, cpu = time.perf_counter(), time.process_time()
        results = pd.concat([fold(month) for month in month_folds()])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        results = actual(results)
        figures[tool] = {"seconds": wall, "cpu": cpu, "predictions": len(results),
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
    arms: dict[str, list[dict]] = {"Ratchet run_partition (incl. PostgreSQL read/write)": [], "mlforecast": [],
                                   "skforecast": []}
    with scratch_databases("panel", migrated=("panel",)) as urls:
        write_table(urls["panel"], "panel", frame)
        os.environ["RATCHET_DATABASE_URL"] = urls["panel"]
        for i in range(ROUNDS):
            arms["Ratchet run_partition (incl. PostgreSQL read/write)"].append(ratchet_round(urls["panel"],
                                                                                             f"panel_{i}"))
            for tool, figures in competitor_round(python).items():
                arms[tool].append(figures)
            print(f"round {i + 1}: " + ", ".join(f"{tool.split()[0]} {runs[-1]['seconds']:.1f} s"
                                                  for tool, runs in arms.items()), flush=True)
    medians = {tool: {key: statistics.median(run[key] for run in runs) for key in ("seconds", "cpu", "mae")}
               | {"predictions": runs[-1]["predictions"]} for tool, runs in arms.items()}
    faster = min(medians["mlforecast"]["seconds"], medians["skforecast"]["seconds"])
    print(f"back-test, {MONTHS} monthly refits, global HistGBR, lags {LAGS}, {SERIES} series; load after {load()}")
    print(f"{'tool':54} {'wall s':>8} {'CPU s':>8} {'x faster':>9} {'predictions':>12} {'MAE':>8}")
    for tool, m in medians.items():
        print(f"{tool:54} {m['seconds']:8.2f} {m['cpu']:8.2f} {m['seconds'] / faster:9.2f} "
              f"{m['predictions']:12,} {m['mae']:8.3f}")
    ours = medians["Ratchet run_partition (incl. PostgreSQL read/write)"]["seconds"] / faster
    print(f"Ratchet / faster competitor: {ours:.2f}   target <= 1.0   {'met' if ours <= 1.0 else 'MISSED'}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--competitors"]:
        warnings.filterwarnings("ignore")
        print(json.dumps(competitors()))
    else:
        main()
