"""Real runs (dag.test()) of the ratchet_regression DAG: a champion breaking golden cases, a broken golden file."""
from __future__ import annotations

import datetime as dt
import textwrap

from dag_helpers import DAGS
from promote_helpers import GOLDEN, register_fitted, snapshot, write_golden_spec

from ratchet.evaluation.golden import load_golden_file

LOGICAL_DATE = dt.datetime(2025, 8, 2, 4, 0, tzinfo=dt.UTC)


def _regression_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "ratchet_regression.py"))
    assert not bag.import_errors
    return bag.get_dag("ratchet_regression")


def test_ratchet_regression_dag_alerts_once_when_the_champion_breaks_a_case(airflow_db, tmp_path, monkeypatch,
                                                                            registry, smtp_server):
    from sqlalchemy import text

    spec = write_golden_spec(tmp_path, [GOLDEN[0], {**GOLDEN[1], "expected": 5.0}])
    registry.sync_model(spec)
    version = register_fitted(registry, spec.name, "r1")
    registry.record_promotion(spec.name, version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first", gates=[], run_id="p1", expected_previous_version=None)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))

    dag = _regression_dag()
    run = dag.test(logical_date=LOGICAL_DATE)
    assert run.state == "success"
    (row,) = registry.evaluations(spec.name, "regression")
    assert (row.contender, row.partition, row.metric, row.value, row.n_rows, row.passed) == (
        f"v{version}", "2025-08-01", "golden_pass_rate", 0.5, 2, False)  # the day before the run's day
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0]["message"]
    assert message["Subject"] == ("[Ratchet] demand regression tests failed: 1 of 2 golden cases "
                                  f"(champion v{version})")
    body = message.get_body(("html",)).get_content()
    assert "negative" in body and "5" in body and "/dags/ratchet_regression/runs/" in body

    assert dag.test(logical_date=LOGICAL_DATE).state == "success"  # re-run of the date
    assert len(smtp_server.messages) == 1 and len(registry.evaluations(spec.name, "regression")) == 1
    with registry.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alerts")).scalar() == 1


def test_ratchet_regression_dag_fails_the_model_task_on_a_bad_file(airflow_db, tmp_path, monkeypatch, registry,
                                                                   smtp_server):
    spec = write_golden_spec(tmp_path, GOLDEN)
    registry.sync_model(spec)
    version = register_fitted(registry, spec.name, "r1")
    registry.record_promotion(spec.name, version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first", gates=[], run_id="p1", expected_previous_version=None)
    load_golden_file(registry, spec)
    (tmp_path / "demand.golden.yaml").write_text(textwrap.dedent("""
        - name: broken
          inputs: {x1: 1.0}
          expected: 1.0
          tolerance: 0.1
    """))
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    before = snapshot(registry)
    dag = _regression_dag()
    for task in dag.tasks:
        task.retries = 0
    assert dag.test(logical_date=LOGICAL_DATE).state == "failed"
    after = snapshot(registry)
    assert after["golden_cases"] == before["golden_cases"] and after["evaluations"] == before["evaluations"]
    assert smtp_server.messages == []
