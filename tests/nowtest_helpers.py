"""A model whose champion was trained before a regime change, for now-test and regression tests.

The data (2023-01-01 .. 2025-08-31) changes regime on 2025-07-15 (a lower price, a higher level and a stronger
temperature response: `ratchet.demo`). The champion and one candidate are trained on data before 2025-06-20
(so that a now-test window from 06-20 on is after their training data) with the real search, and the first
version is made champion through the registry's promotion path.
"""
from __future__ import annotations

import datetime as dt

from spec_factory import write_spec
from sqlalchemy import text

from ratchet import demo

TABLE = "nowtest_src.demand"
MODEL = "regime_demand"
REGIME_CHANGE = dt.date(2025, 7, 15)
DATA_END = dt.date(2025, 8, 31)
TRAINED_BEFORE = dt.datetime(2025, 6, 20)
BEFORE_CHANGE = dt.datetime(2025, 7, 10, 6, 0, tzinfo=dt.UTC)  # window 06-26 .. 07-09 (whole days)
AFTER_CHANGE = dt.datetime(2025, 8, 1, 6, 0, tzinfo=dt.UTC)  # window 07-18 .. 07-31 (whole days)
EMAILS = ["owner@example.com", "oncall@example.com"]
FEATURES = ["temperature", "precipitation", "is_holiday", "promo", "day_of_week"]
SPEC = {  # spec_factory overrides: write_spec(folder, **SPEC) writes the model
    "name": MODEL, "table": TABLE, "owner": "tests", "alert_emails": EMAILS,
    "source": {"target": "demand", "features": FEATURES, "target_lags": [1, 7]},
    "estimators": [{"class": "sklearn.linear_model.Ridge", "search_space": {"alpha": {"loguniform": [0.1, 10.0]}}}],
    "search": {"n_trials": 3, "cv_folds": 2, "seed": 1, "candidates": 2},
    "baselines": ["last_value", "seasonal_naive_7", "mean"],
    "requirements": [
        {"metric": "mape", "max": 0.08, "scope": "nowtest"},
        {"metric": "rmse", "max": 1.0, "relative_to": "baseline", "scope": "nowtest"},
        {"metric": "rmse", "max": 1000, "scope": "backtest"},
    ],
    "nowtest": {"window_days": 14, "min_rows": 7},
}
RUN_URL = "http://localhost:8080/dags/ratchet_nowtest/runs/scheduled__2025-08-01T06%3A00%3A00%2B00%3A00"
# `alerts.notifiers` entries: mail, Ratchet's webhook on the `ops_webhook` connection, and the Slack provider's
# notifier on `slack_ops` (both connections point at conftest's `webhook_server`)
HOOK_PATH = "/hooks/ratchet"
SMTP_NOTIFIER = {"class": "ratchet.alerting.notifiers.SmtpNotifier"}
WEBHOOK_NOTIFIER = {"class": "ratchet.alerting.notifiers.WebhookNotifier", "conn_id": "ops_webhook",
                    "endpoint": HOOK_PATH}
SLACK_NOTIFIER = {"class": "airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier",
                  "slack_webhook_conn_id": "slack_ops", "text": "{{ notification.subject }} <{{ notification.link }}>"}


def write_source(registry) -> None:
    frame = demo.generate_demand(dt.date(2023, 1, 1), DATA_END, seed=3, regime_change=REGIME_CHANGE)
    schema, table = TABLE.split(".")
    with registry.engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"))
        frame.to_sql(table, conn, schema=schema, index=False)


def train_champion(registry, spec) -> list[int]:
    """Register v1 and v2 with the real search on data before TRAINED_BEFORE; v1 becomes champion."""
    from ratchet.lifecycle.retrain import retrain_model

    registry.sync_model(spec)
    versions = retrain_model(registry, spec, run_id="retrain-2025-06-20", logical_date=TRAINED_BEFORE)
    registry.record_promotion(spec.name, versions[0], kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first champion", gates=[], run_id="promote-1", expected_previous_version=None)
    return versions


def champion_model(registry, folder):
    """The source table, the spec written into `folder` and v1 (champion) and v2 trained: (spec, versions)."""
    write_source(registry)
    spec = write_spec(folder, **SPEC)
    return spec, train_champion(registry, spec)


def run_at(registry, spec, end, run_id=None):
    """The now-test of the window ending at `end`, as the DAG run at RUN_URL would run it."""
    from ratchet.lifecycle.monitoring import run_nowtest

    return run_nowtest(registry, spec, run_id=run_id or f"nt@{end.isoformat()}", data_interval_end=end,
                       airflow_run_url=RUN_URL)


def counts(registry) -> dict[str, int]:
    with registry.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("evaluations", "alerts", "golden_cases")}
