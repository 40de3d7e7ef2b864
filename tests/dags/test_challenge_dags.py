"""Real Airflow runs of ratchet_retrain then ratchet_backtest, for a regression and a classification model."""
from __future__ import annotations

import datetime as dt

import pytest
from dag_helpers import load_dag
from spec_factory import write_spec
from sqlalchemy import text

from ratchet import demo

LOGICAL_DATE = dt.datetime(2025, 7, 2, 1, 0, tzinfo=dt.UTC)
TABLES = {"regression": "dagtest.demand", "classification": "dagtest.busy"}


@pytest.fixture
def two_models(tmp_path, monkeypatch, registry, database_url):
    start, end = dt.date(2023, 1, 1), dt.date(2025, 7, 1)
    frames = {"regression": demo.generate_demand(start, end, seed=3),
              "classification": demo.generate_classification(start, end, seed=5)}
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS dagtest CASCADE; CREATE SCHEMA dagtest"))
        for task, frame in frames.items():
            frame.to_sql(TABLES[task].split(".")[1], conn, schema="dagtest", index=False)
    write_spec(tmp_path, name="demand_test", table=TABLES["regression"], filename="demand.yaml",
               alert_emails=["ops@example.com"], source={"target": "demand", "target_lags": [1, 7]},
               estimators=[{"class": "sklearn.linear_model.Ridge",
                            "search_space": {"alpha": {"loguniform": [0.01, 10.0]}}}],
               search={"n_trials": 4, "cv_folds": 3, "seed": 1, "candidates": 2}, backtest={"months": 6})
    write_spec(tmp_path, name="busy_test", table=TABLES["classification"], filename="busy.yaml",
               task="classification", source={"target": "busy", "target_lags": [1]},
               estimators=[{"class": "sklearn.linear_model.LogisticRegression",
                            "search_space": {"C": {"loguniform": [0.01, 10.0]}}}],
               search={"n_trials": 3, "cv_folds": 3, "seed": 2, "candidates": 1}, baselines=["majority", "last_value"],
               backtest={"months": 4, "window": 12})
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("RATCHET_REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path


def _states(run) -> dict[tuple[str, str | None], str]:
    """(task id, rendered map index) -> state, for every task instance of the run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return {(ti.task_id, ti.rendered_map_index): ti.state for ti in session.query(TaskInstance).filter(
            TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)}


def _counts(registry) -> dict[str, int]:
    with registry.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("model_versions", "search_trials", "evaluations", "backtest_reports")}


def test_retrain_then_backtest_store_versions_trials_and_month_metrics(airflow_db, two_models, registry):
    run = load_dag("ratchet_retrain").test(logical_date=LOGICAL_DATE)
    assert run.state == "success"
    assert [v.version for v in registry.versions("demand_test")] == [1, 2]
    assert [v.version for v in registry.versions("busy_test")] == [1]
    assert len(registry.trials("demand_test")) == 4 and len(registry.trials("busy_test")) == 3
    version = registry.versions("demand_test")[0]
    assert version.train_end.date() == dt.date(2025, 7, 1)  # nothing after the data interval end
    assert version.size_bytes > 0 and version.predict_latency_p95_ms > 0 and version.cv_score > 0

    run = load_dag("ratchet_backtest").test(logical_date=LOGICAL_DATE)
    assert run.state == "success"
    months = {e.partition for e in registry.evaluations("demand_test", "backtest")}
    assert months == {"2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"}
    contenders = {e.contender for e in registry.evaluations("busy_test", "backtest")}
    assert contenders == {"v1", "majority", "last_value"}
    assert {e.metric for e in registry.evaluations("busy_test", "backtest")} == {"accuracy", "f1", "roc_auc",
                                                                                 "log_loss", "pr_auc", "brier"}
    report = registry.latest_report("demand_test")
    assert "<svg" in report.html and "v1" in report.summary["contenders"]

    before = _counts(registry)
    stamps = {(e.contender, e.partition, e.metric): e.created_at
              for e in registry.evaluations("demand_test", "backtest")}
    assert load_dag("ratchet_retrain").test(logical_date=LOGICAL_DATE).state == "success"
    assert _counts(registry) == before  # a rerun of the same date: no duplicates
    assert load_dag("ratchet_backtest").test(logical_date=LOGICAL_DATE).state == "success"
    after = {(e.contender, e.partition, e.metric): e.created_at
             for e in registry.evaluations("demand_test", "backtest")}
    assert after == stamps  # unchanged data: nothing recomputed


def test_a_model_whose_retrain_fails_fails_the_run_and_the_other_model_announces_its_versions(
        airflow_db, two_models, registry):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with registry.engine.begin() as conn:  # busy_test gets a duplicate day
        conn.execute(text(f"UPDATE {TABLES['classification']} SET day = '2025-03-04' WHERE day = '2025-03-03'"))

    run = load_dag("ratchet_retrain").test(logical_date=LOGICAL_DATE)

    assert run.state == "failed"
    assert _states(run) == {("retrain", "demand_test"): "success", ("retrain", "busy_test"): "failed"}
    assert [v.version for v in registry.versions("demand_test")] == [1, 2]
    assert registry.versions("busy_test") == []
    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_run_id == run.run_id).all()
        assert [(e.asset.name, e.extra) for e in events] == [
            ("ratchet_model_versions", {"model": "demand_test", "versions": [1, 2]})]


def test_a_model_whose_backtest_fails_fails_the_run_and_not_the_other_model(airflow_db, two_models, registry):
    assert load_dag("ratchet_retrain").test(logical_date=LOGICAL_DATE).state == "success"
    with registry.engine.begin() as conn:  # busy_test loses a month it back-tests
        conn.execute(text(f"DELETE FROM {TABLES['classification']} WHERE day >= '2025-05-01' AND day < '2025-06-01'"))

    run = load_dag("ratchet_backtest").test(logical_date=LOGICAL_DATE)

    assert run.state == "failed"
    states = _states(run)
    assert states[("report", "demand_test")] == "success"
    assert states[("report", "busy_test")] == "failed"
    assert {e.partition for e in registry.evaluations("demand_test", "backtest")} == {
        "2025-01", "2025-02", "2025-03", "2025-04", "2025-05", "2025-06"}
    assert registry.latest_report("demand_test") is not None
    assert registry.latest_report("busy_test") is not None  # written from the groups that finished


def test_a_broken_spec_fails_only_its_own_task_at_once_and_every_report_names_it(airflow_db, two_models, registry):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag
    from dag_helpers import DAGS

    (two_models / "broken.yaml").write_text("name: broken\ntask: regression\nsource: {table: t, time_column: day, "
                                            "target: y}\nestimators: [{class: sklearn.linear_model.Ridge}]\n"
                                            "search: {n_trials: ten}\n")
    dag = DagBag(dag_folder=str(DAGS / "ratchet_retrain.py")).get_dag("ratchet_retrain")
    assert dag.default_args["retries"] >= 1  # retries stay on: a broken spec must not use them
    run = dag.test(logical_date=LOGICAL_DATE)
    assert run.state == "failed"
    assert _states(run) == {("retrain", "demand_test"): "success", ("retrain", "busy_test"): "success",
                            ("retrain", "broken"): "failed"}
    assert registry.versions("demand_test") and registry.versions("busy_test")

    ratchet = str(Path(sys.executable).parent / "ratchet")
    status = subprocess.run([ratchet, "status", "--json"], capture_output=True, text=True, env=os.environ.copy())
    report = json.loads(status.stdout)
    assert status.returncode == 2 and "broken.yaml: field 'search.n_trials'" in status.stderr
    assert [m["name"] for m in report["models"]] == ["busy_test", "demand_test"]
    assert [(b["model"], Path(b["file"]).name) for b in report["broken_specs"]] == [("broken", "broken.yaml")]
    good = subprocess.run([ratchet, "status", "--model", "demand_test"], capture_output=True, text=True,
                          env=os.environ.copy())
    assert good.returncode == 0 and "demand_test (regression)" in good.stdout

    from fastapi.testclient import TestClient

    from ratchet.ui.app import create_app

    page = TestClient(create_app()).get("/").text
    assert "broken model file, not running" in page and "search.n_trials" in page


def test_a_run_for_a_date_before_any_schedule_creates_its_tasks(airflow_db, two_models, registry):
    when = dt.datetime(2023, 12, 1, 1, tzinfo=dt.UTC)  # a replay of history: before 2024, the old start date
    run = load_dag("ratchet_retrain").test(logical_date=when)
    assert run.state == "success"
    assert _states(run) == {("retrain", "demand_test"): "success", ("retrain", "busy_test"): "success"}
    assert {v.train_end for v in registry.versions("demand_test")} == {dt.datetime(2023, 12, 1, tzinfo=dt.UTC)}
