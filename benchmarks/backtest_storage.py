"""Storage of the per-day back-test predictions: rows and bytes for 10 models x 120 months, beside a reference.

Each model has 5 contenders (champion, 2 candidates, 2 baselines) and each month 30 days of actual and
predicted values, stored as the back-test stores them (`backtest_days`: a row per contender and month, the
days as arrays). The reference is the same data as a plain row per day (model, contender, day, actual,
predicted) in a table of its own, the layout a per-day design would use.

    .venv/bin/python benchmarks/backtest_storage.py

Uses RATCHET_BENCH_DATABASE_URL (a server URL; a scratch database is created and dropped), else an
embedded PostgreSQL.
"""
from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODELS, MONTHS, CONTENDERS, DAYS = 10, 120, 5, 30


def main() -> None:
    from scratch import scratch_databases
    from sqlalchemy import text

    from ratchet.registry import Registry
    from ratchet.registry.entities import DayRow
    from ratchet.specs import parse_spec

    rng = np.random.default_rng(0)
    with scratch_databases("storage", migrated=("storage",)) as urls:
        registry = Registry(urls["storage"])
        months = [f"{2010 + m // 12}-{m % 12 + 1:02d}" for m in range(MONTHS)]
        for i in range(MODELS):
            name = f"model_{i}"
            registry.sync_model(parse_spec(Path(f"{name}.yaml"), {
                "name": name, "task": "regression", "estimators": [{"class": "sklearn.linear_model.Ridge"}],
                "source": {"table": "t", "time_column": "day", "target": "y"}}))
            rows = []
            for month in months:
                start = dt.date.fromisoformat(f"{month}-01")
                days = tuple(start + dt.timedelta(days=d) for d in range(DAYS))
                actual = rng.normal(100, 10, DAYS)
                for c in range(CONTENDERS):
                    rows.append(DayRow(f"c{c}", month, days, "bench", actual=tuple(actual),
                                       predicted=tuple(actual + rng.normal(0, 5, DAYS))))
            registry.record_evaluations(name, [], days=rows)
        with registry.engine.begin() as conn:
            conn.execute(text("CREATE TABLE per_day AS SELECT b.model_id, b.contender, d.day, d.actual, "
                              "d.predicted FROM backtest_days b, unnest(b.days, b.actual, b.predicted) "
                              "AS d(day, actual, predicted)"))
            figures = {table: conn.execute(text(f"SELECT count(*), pg_total_relation_size('{table}') "
                                                f"FROM {table}")).one() for table in ("backtest_days", "per_day")}
        registry.dispose()
    print(f"{MODELS} models x {MONTHS} months x {CONTENDERS} contenders x {DAYS} days "
          f"= {MODELS * MONTHS * CONTENDERS * DAYS:,} predictions")
    print(f"{'layout':34} {'rows':>10} {'MiB':>8}")
    print(f"{'backtest_days (array per month)':34} {figures['backtest_days'][0]:>10,} "
          f"{figures['backtest_days'][1] / 2**20:>8.1f}")
    print(f"{'reference: a row per day':34} {figures['per_day'][0]:>10,} {figures['per_day'][1] / 2**20:>8.1f}")


if __name__ == "__main__":
    main()
