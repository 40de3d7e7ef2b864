"""Alert quality: daily now-tests replayed with a champion trained before the replayed stretch, ratchet on.

(a) generated demand with no change: false alerts and drift warnings per 100 days (targets <= 5 each, at a
    false-alarm rate of 0.05 and 14-day windows);
(b) the demo's regime change: days from the change to the first alert (target <= window_days = 14);
(c) the real tables of ../shared/data/real: the alert days, for a person to judge.
Each replay: retrain and back-test (24 months) before the stretch, promote the best candidate with the ratchet
on (its now-test bound calibrated at alpha 0.05), then one now-test per day, as the DAG's library calls run it.

    .venv/bin/python benchmarks/alert_quality.py

Uses RATCHET_BENCH_DATABASE_URL (a server URL; a scratch database is created and dropped), else an
embedded PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

ALPHA, WINDOW = 0.05, 14
RIDGE = {"class": "sklearn.linear_model.Ridge", "search_space": {"alpha": {"loguniform": [0.01, 100.0]}}}
DEMAND = {"target": "demand", "features": ["temperature", "precipitation", "is_holiday", "promo", "day_of_week"],
          "target_lags": [1, 7]}
REAL = {  # table -> (source fields, metric of the now-test requirement)
    "peyton_manning_daily": ({"target": "log_views", "target_lags": [1, 7]}, "rmse"),
    "beijing_pm25_daily": ({"target": "pm25", "features": ["dew_point", "temperature", "pressure", "wind_speed_max",
                                                          "wind_direction"], "categorical": ["wind_direction"],
                            "target_lags": [1]}, "rmse"),
    "msft_daily": ({"target": "close", "features": [], "target_lags": [1, 2, 5], "lags_by": "rows"}, "rmse"),
    "melbourne_temperature_daily": ({"target": "min_temp", "features": [], "target_lags": [1, 7]}, "rmse"),
}


def _spec(folder: Path, name: str, table: str, source: dict, metric: str):
    from ratchet.specs import load_spec

    data = {"name": name, "task": "regression", "alert_emails": ["owner@example.com"],
            "source": {"table": table, "time_column": "day", **source}, "estimators": [RIDGE],
            "search": {"n_trials": 4, "cv_folds": 3, "seed": 1, "candidates": 2},
            "requirements": [{"metric": metric, "calibrate": ALPHA, "scope": "nowtest"}],
            "backtest": {"months": 24}, "nowtest": {"window_days": WINDOW, "min_rows": 5},
            "promotion": {"ratchet": {"enabled": True, "false_alarm_rate": ALPHA}}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def replay(registry, spec, trained_until: dt.datetime, days: list[dt.datetime]) -> list[tuple[str, bool, bool]]:
    """(day, alert, drift warning) for each replayed now-test, after training and promoting at `trained_until`."""
    from ratchet.evaluation import backtest
    from ratchet.lifecycle.monitoring import run_nowtest
    from ratchet.lifecycle.promotion import promote
    from ratchet.lifecycle.retrain import retrain_model
    from ratchet.modeling import sources

    registry.sync_model(spec)
    versions = retrain_model(registry, spec, run_id="train", logical_date=trained_until)
    frame = sources.read_source(spec, end=trained_until)
    (months,) = backtest.month_groups(spec, frame, end=trained_until, groups=1)
    backtest.run_partition(registry, spec, months, run_id="backtest", end=trained_until)
    means = backtest.backtest_summary(registry, spec)["contenders"]
    best = min(versions, key=lambda v: means[f"v{v}"]["mean"])
    promote(registry, spec, version=best, reason="alert quality replay", triggered_by="benchmark", run_id="p")
    out = []
    for day in days:
        outcome = run_nowtest(registry, spec, run_id=f"replay@{day:%Y-%m-%d}", data_interval_end=day,
                              airflow_run_url="", mail=False)
        champion = outcome.champion
        out.append((outcome.partition, outcome.alerting, bool(champion and champion.drift_warnings)))
    return out


def _write(registry, schema: str, name: str, frame: pd.DataFrame) -> str:
    from sqlalchemy import text

    with registry.engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        frame.to_sql(name, conn, schema=schema, index=False, if_exists="replace")
    return f"{schema}.{name}"


def main() -> None:
    warnings.filterwarnings("ignore")
    from real_data import real_data_dir
    from scratch import scratch_databases

    from ratchet import demo
    from ratchet.registry import Registry

    folder = Path(tempfile.mkdtemp(prefix="ratchet-alerts-"))
    rows = []
    with scratch_databases("alerts", migrated=("alerts",)) as urls:
        os.environ["RATCHET_DATABASE_URL"] = urls["alerts"]
        registry = Registry(urls["alerts"])
        start, trained = dt.date(2022, 1, 1), dt.datetime(2024, 6, 1, 6, tzinfo=dt.UTC)
        days = [trained + dt.timedelta(days=d) for d in range(WINDOW, WINDOW + 200)]

        table = _write(registry, "bench", "steady", demo.generate_demand(start, dt.date(2025, 1, 31), seed=5))
        steady = replay(registry, _spec(folder, "steady", table, DEMAND, "mape"), trained, days)
        false_alerts = 100 * sum(a for _, a, _ in steady) / len(steady)
        drift = 100 * sum(w for _, _, w in steady) / len(steady)
        rows += [("(a) no change: false alerts per 100 days", f"{false_alerts:.1f}", "<= 5"),
                 ("(a) no change: drift warnings per 100 days", f"{drift:.1f}", "<= 5")]

        change = dt.date(2024, 8, 1)
        table = _write(registry, "bench", "shifted", demo.generate_demand(start, dt.date(2025, 1, 31), seed=5,
                                                                         regime_change=change))
        shifted = replay(registry, _spec(folder, "shifted", table, DEMAND, "mape"), trained, days)
        first = next((day for day, alert, _ in shifted if alert and day >= change.isoformat()), None)
        delay = (dt.date.fromisoformat(first) - change).days if first else None
        before = sum(a for day, a, _ in shifted if day < change.isoformat())
        rows += [("(b) regime change: days to the first alert", str(delay), f"<= {WINDOW}"),
                 ("(b) regime change: alerts before the change", str(before), "0 expected")]

        for file, (source, metric) in REAL.items():
            frame = pd.read_csv(real_data_dir() / f"{file}.csv", parse_dates=["day"])
            table = _write(registry, "real", file, frame)
            last = frame["day"].max()
            trained_real = (last - pd.Timedelta(days=200)).to_pydatetime().replace(tzinfo=dt.UTC)
            replay_days = [trained_real + dt.timedelta(days=d) for d in range(WINDOW, 201)]
            result = replay(registry, _spec(folder, file.split("_")[0], table, source, metric), trained_real,
                            replay_days)
            alerts = [day for day, alert, _ in result if alert]
            rows.append((f"(c) {file}: alert days of {len(result)}", f"{len(alerts)}",
                         ", ".join(alerts[:6]) + (" ..." if len(alerts) > 6 else "")))
        registry.dispose()
    print(f"{'replay':52} {'figure':>8}  reference / detail")
    for name, figure, reference in rows:
        print(f"{name:52} {figure:>8}  {reference}")


if __name__ == "__main__":
    main()
