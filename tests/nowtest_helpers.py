"""A model whose champion was trained before a regime change, for now-test and regression tests.

The data (2023-01-01 .. 2025-08-31) changes regime on 2025-07-15 (level and temperature response
ramp up over ten days). The champion and one candidate are trained on data before 2025-07-01 with
the real search, and the first version is made champion through the registry's promotion path.
"""
from __future__ import annotations

import datetime as dt
import textwrap

from sqlalchemy import text

from ratchet import demo

TABLE = "nowtest_src.demand"
MODEL = "regime_demand"
REGIME_CHANGE = dt.date(2025, 7, 15)
DATA_END = dt.date(2025, 8, 31)
TRAINED_BEFORE = dt.datetime(2025, 7, 1)
BEFORE_CHANGE = dt.datetime(2025, 7, 10, 6, 0, tzinfo=dt.UTC)  # window 06-26 .. 07-10
AFTER_CHANGE = dt.datetime(2025, 8, 1, 6, 0, tzinfo=dt.UTC)  # window 07-18 .. 08-01
EMAILS = ["owner@example.com", "oncall@example.com"]


def write_source(registry) -> None:
    frame = demo.generate_demand(dt.date(2023, 1, 1), DATA_END, seed=3, regime_change=REGIME_CHANGE)
    schema, table = TABLE.split(".")
    with registry.engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
        frame.to_sql(table, conn, schema=schema, index=False)


def write_spec(folder, *, golden: str | None = None):
    path = folder / f"{MODEL}.yaml"
    path.write_text(textwrap.dedent(f"""
        name: {MODEL}
        task: regression
        owner: tests
        alert_emails: {EMAILS}
        source:
          table: {TABLE}
          time_column: day
          target: demand
          features: [temperature, precipitation, is_holiday, promo, day_of_week]
          target_lags: [1, 7]
        estimators:
          - class: sklearn.linear_model.Ridge
            search_space: {{alpha: {{loguniform: [0.1, 10.0]}}}}
        search: {{n_trials: 3, cv_folds: 2, seed: 1, candidates: 2}}
        baselines: [last_value, seasonal_naive_7, mean]
        requirements:
          - {{metric: mape, max: 0.08, scope: nowtest}}
          - {{metric: rmse, max: 1.0, relative_to: baseline, scope: nowtest}}
          - {{metric: rmse, max: 1000, scope: backtest}}
        nowtest: {{window_days: 14, min_rows: 7}}
    """))
    if golden is not None:
        (folder / f"{MODEL}.golden.yaml").write_text(textwrap.dedent(golden))
    from ratchet.specs import load_spec

    return load_spec(path)


def train_champion(registry, spec) -> list[int]:
    """Register v1 and v2 with the real search on data before 2025-07-01; v1 becomes champion."""
    from ratchet.lifecycle.retrain import retrain_model

    registry.sync_model(spec)
    versions = retrain_model(registry, spec, run_id="retrain-2025-07-01", logical_date=TRAINED_BEFORE)
    registry.record_promotion(spec.name, versions[0], kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first champion", gates=[], run_id="promote-1", expected_previous_version=None)
    return versions


def counts(registry) -> dict[str, int]:
    with registry.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("evaluations", "alerts", "golden_cases")}
