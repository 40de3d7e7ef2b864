"""Real runs of the ratchet_promote DAG (dag.test) against the run's Airflow and Ratchet databases."""
from __future__ import annotations

import pytest
from dag_helpers import DAGS
from promote_helpers import BASELINES, SPEC, register_fitted, snapshot, store_backtest
from spec_factory import spec_data, write_spec
from sqlalchemy import text

DAG_FILE = DAGS / "ratchet_promote.py"


@pytest.fixture
def models_dir(tmp_path, monkeypatch, registry):
    """A models folder with one YAML whose source table exists in the Ratchet database."""
    folder = tmp_path / "models"
    folder.mkdir()
    spec = write_spec(folder, spec_data(table="promote_dag_source", **SPEC),
                      promotion={"min_trial_days": 0, "ratchet": {"enabled": False}})
    with registry.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS promote_dag_source"))
        conn.execute(text("CREATE TABLE promote_dag_source (ts timestamp PRIMARY KEY, x1 float, x2 float, y float)"))
        conn.execute(text("INSERT INTO promote_dag_source SELECT d, random(), random(), random() "
                          "FROM generate_series('2024-01-01'::timestamp, '2024-04-30', '1 day') d"))
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(folder))
    registry.sync_model(spec)
    return folder


def _dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["ratchet_promote"]


def _run(conf):
    from airflow.utils.state import DagRunState

    run = _dag().test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["gates"] == states["approve"] == states["reject"] == "skipped"  # a manual trigger asks nobody
    [ti] = [ti for ti in run.get_task_instances() if ti.task_id == "promote"]
    return run.state == DagRunState.SUCCESS, ti


def test_trigger_form_params(airflow_db, models_dir):
    dag = _dag()
    params = {k: dag.params.get_param(k).schema for k in dag.params}
    assert params["model"]["enum"] == ["demand"] and params["model"]["type"] == "string"
    assert params["version"] == {**params["version"], "type": "integer", "minimum": 1}
    assert params["reason"]["minLength"] == 1 and params["dry_run"]["type"] == "boolean"
    assert dag.params["dry_run"] is False and dag.default_args["retries"] >= 1
    assert params["proposal"]["type"] == "boolean" and dag.params["proposal"] is False


def test_promote_then_reject_a_weaker_candidate(airflow_db, models_dir, registry):
    for run in ("r1", "r2"):
        register_fitted(registry, "demand", run)
    store_backtest(registry, "demand", {"v1": [9.0] * 4, "v2": [9.5] * 4, **BASELINES})

    ok, ti = _run({"model": "demand", "version": 1, "reason": "first champion", "dry_run": False})
    assert ok and registry.champion("demand").version == 1
    [promotion] = registry.promotions("demand")
    assert (promotion.outcome, promotion.kind, promotion.triggered_by) == ("promoted", "initial", "dag_test")
    assert promotion.run_id == ti.run_id

    ok, ti = _run({"model": "demand", "version": 2, "reason": "try v2", "dry_run": False})
    assert not ok and ti.state == "failed" and ti.try_number == 1  # a failed gate is not retried
    assert registry.champion("demand").version == 1
    rejected = registry.promotions("demand")[-1]
    assert rejected.outcome == "rejected"
    failed = [g for g in rejected.gates if not g["passed"]]
    assert [g["name"] for g in failed] == ["beats_champion"]
    assert "improvement -5.56% < required 5.00%" in failed[0]["summary"]


def test_dry_run_moves_nothing(airflow_db, models_dir, registry):
    register_fitted(registry, "demand", "r1")
    store_backtest(registry, "demand", {"v1": [9.0] * 4, **BASELINES})
    ok, _ = _run({"model": "demand", "version": 1, "reason": "check", "dry_run": True})
    assert ok and registry.champion("demand") is None
    assert [p.outcome for p in registry.promotions("demand")] == ["dry_run"]


@pytest.mark.parametrize("conf, message", [
    ({"model": "sales", "version": 1, "reason": "x"}, "'sales' is not one of ['demand']"),
    ({"model": "demand", "version": 0, "reason": "x"}, "0 is less than the minimum of 1"),
    ({"model": "demand", "version": 1, "reason": ""}, "should be non-empty"),
    ({"model": "demand", "version": 9, "reason": "x"}, "model 'demand' has no version 9; its versions: [1]"),
], ids=["unknown-model", "version-zero", "empty-reason", "unknown-version"])
def test_bad_params_fail_clearly_and_change_nothing(airflow_db, models_dir, registry, conf, message, capfd):
    register_fitted(registry, "demand", "r1")
    before = snapshot(registry)
    try:
        ok, ti = _run({"dry_run": False, **conf})
    except Exception as exc:  # noqa: BLE001 - Param validation refuses the run before it starts
        assert message in str(exc)
    else:
        assert not ok and ti.try_number == 1
        captured = capfd.readouterr()
        assert f"AirflowFailException: {message}" in captured.out + captured.err
    assert snapshot(registry) == before


def test_a_proposal_that_no_longer_passes_asks_nobody_and_records_nothing(airflow_db, models_dir, registry, capfd):
    for run in ("r1", "r2"):
        register_fitted(registry, "demand", run)
    store_backtest(registry, "demand", {"v1": [9.0] * 4, "v2": [9.5] * 4, **BASELINES})
    registry.record_promotion("demand", 1, kind="initial", outcome="promoted", triggered_by="alice", reason="first",
                              gates=[], run_id="first", expected_previous_version=None)
    before = snapshot(registry)
    run = _dag().test(run_conf={"model": "demand", "version": 2, "reason": "proposed by ratchet", "proposal": True})
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert run.state == "failed" and tis["gates"].state == "failed" and tis["gates"].try_number == 1
    assert {tis[t].state for t in ("approve", "promote", "reject")} == {"upstream_failed"}  # nobody is asked
    assert snapshot(registry) == before
    captured = capfd.readouterr()
    assert ("demand v2 does not pass every gate now, so there is nothing to approve: gate 2 beats_champion: "
            "rmse mean 9.5 vs champion v1 9: improvement -5.56%") in captured.out + captured.err
