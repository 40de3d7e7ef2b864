"""The way back after a regime change, through real Airflow runs: a champion's now-test breach starts a retrain and
back-test of that model only, whose versions go into trial.

The model of nowtest_helpers (v1 champion and v2 trained before the 2025-07-15 regime change) breaches on
AFTER_CHANGE; a second model reading the same table has no version yet, so it has no champion to breach.
"""
from __future__ import annotations

import datetime as dt

import pytest
from dag_helpers import load_dag
from nowtest_helpers import AFTER_CHANGE, BEFORE_CHANGE, MODEL, SPEC, champion_model
from spec_factory import write_spec

OTHER = "other_demand"
BREACH_RUN = f"breach__{MODEL}__{AFTER_CHANGE.isoformat()}"


@pytest.fixture
def models_dir(tmp_path, monkeypatch, registry, airflow_db):
    champion_model(registry, tmp_path)
    write_spec(tmp_path, **{**SPEC, "name": OTHER}, filename="other.yaml")
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    _delete_runs("ratchet_retrain")
    return tmp_path


def _delete_runs(dag_id: str) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == dag_id):
            session.delete(run)


def _breach_runs() -> dict[str, tuple[dict, dt.datetime, dt.datetime | None]]:
    """ratchet_retrain runs a breach started: run id -> (conf, run_after, logical_date)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id: (r.conf, r.run_after, r.logical_date) for r in session.query(DagRun).filter(
            DagRun.dag_id == "ratchet_retrain", DagRun.run_id.like("breach__%"))}


def _states(run) -> dict[tuple[str, str | None], str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        return {(ti.task_id, ti.rendered_map_index): ti.state for ti in session.query(TaskInstance).filter(
            TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)}


def test_a_champion_breach_retrains_and_backtests_that_model_at_once(models_dir, registry, smtp_server):
    nowtest = load_dag("ratchet_nowtest")
    run = nowtest.test(logical_date=BEFORE_CHANGE)  # the champion passes: nothing starts
    assert run.state == "success" and _states(run)[("retrain_after_breach", None)] == "skipped"
    assert _breach_runs() == {}

    run = nowtest.test(logical_date=AFTER_CHANGE)  # the champion breaches: its model's retrain starts
    assert run.state == "success" and len(smtp_server.messages) == 1
    assert [state for (task, _), state in _states(run).items() if task == "retrain_after_breach"] == ["success"]
    [(conf, run_after, logical_date)] = _breach_runs().values()
    assert list(_breach_runs()) == [BREACH_RUN]
    assert conf == {"model": MODEL} and run_after == AFTER_CHANGE and logical_date is None

    run = nowtest.test(logical_date=AFTER_CHANGE)  # a re-run of the date starts nothing twice
    assert run.state == "success" and list(_breach_runs()) == [BREACH_RUN]

    # The run it started, run as Airflow would run it: only the breaching model retrains, on data to the breach.
    champion, trial = registry.trial_versions(MODEL)
    assert (champion.version, [v.version for v in trial]) == (1, [2])
    retrain = load_dag("ratchet_retrain").test(run_after=run_after, logical_date=None, run_conf=conf)
    assert retrain.state == "success"
    assert _states(retrain) == {("retrain", MODEL): "success", ("retrain", OTHER): "skipped"}
    assert registry.versions(OTHER) == []
    champion, trial = registry.trial_versions(MODEL)
    assert champion.version == 1 and [v.version for v in trial] == [4, 3, 2]  # the new versions are in trial
    assert {v.train_end for v in trial[:2]} == {dt.datetime(2025, 8, 1, tzinfo=dt.UTC)}  # data to the breach

    backtest = load_dag("ratchet_backtest").test(run_after=run_after, logical_date=None, run_conf=conf)
    assert backtest.state == "success"
    states = _states(backtest)
    assert {s for (task, label), s in states.items() if OTHER in label} == {"skipped"}
    assert {s for (task, label), s in states.items() if MODEL in label and OTHER not in label} == {"success"}
    assert {"v3", "v4"} <= {r.contender for r in registry.evaluations(MODEL, "backtest")}


def test_only_the_runs_models_are_run():
    """The `model` Param wins; a run started by asset events runs the models the events announce; else all."""
    from airflow.sdk.exceptions import AirflowSkipException

    from ratchet import pipeline

    pipeline.run_only(MODEL, requested=None)
    pipeline.run_only(MODEL, requested=MODEL, announced=[OTHER])
    pipeline.run_only(MODEL, requested=None, announced=[MODEL, OTHER])
    for requested, announced in ((OTHER, None), (None, [OTHER]), (None, [])):
        with pytest.raises(AirflowSkipException, match=OTHER if requested or announced else "not"):
            pipeline.run_only(MODEL, requested=requested, announced=announced)


@pytest.fixture
def demand(tmp_path, monkeypatch, registry, airflow_db):
    """promote_helpers' demand: v1 champion, its rmse bound ratcheted to 9 by the first promotion."""
    from promote_helpers import first_champion

    spec, _ = first_champion(registry, tmp_path)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    return spec


def test_ratchet_requirements_sets_a_bound_again_records_who_and_why_and_mails_the_owners(demand, registry,
                                                                                          smtp_server, capfd):
    from promote_helpers import snapshot

    dag = load_dag("ratchet_requirements")
    conf = {"model": "demand", "metric": "rmse", "scope": "backtest", "bound": 11.0, "reason": "the data changed"}
    before = snapshot(registry)
    for bad, message in (({"bound": None}, "exactly one of bound"), ({"reason": ""}, "reason is required"),
                         ({"metric": "mape"}, "has no requirement mape (backtest)")):
        run = dag.test(run_conf={**conf, **bad})
        assert run.state == "failed" and _states(run) == {("rebaseline", None): "failed",
                                                         ("deliver_alerts", None): "failed"}, bad
        out, err = capfd.readouterr()
        assert message in out + err
        assert snapshot(registry) == before and smtp_server.messages == []

    run = dag.test(run_conf=conf)
    assert run.state == "success"
    rmse = next(r for r in registry.requirements("demand") if (r.metric, r.scope, r.relative_to) == (
        "rmse", "backtest", None))
    last = rmse.history[-1]
    assert rmse.bound == 11.0 and (last.change, last.changed_by, last.reason, last.old_bound) == (
        "rebaseline", "dag_test", "the data changed", pytest.approx(9.0))  # the triggering user (dag.test's)
    assert last.derivation["run_id"] == run.run_id and last.derivation["old_change"] == "ratchet"
    [mail] = smtp_server.messages
    assert mail["message"]["Subject"] == "[Ratchet] demand requirement re-baselined by dag_test: rmse (backtest)"
    assert mail["to"] == ["owner@example.com"]



def test_promote_and_rebaseline_on_the_proposal_sets_the_ratcheted_bounds_again_and_promotes(
        tmp_path, monkeypatch, registry, airflow_db, api_server, smtp_server):
    from dag_helpers import run_answered
    from promote_helpers import after_regime_change

    after_regime_change(registry, tmp_path)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    _delete_runs("ratchet_promote")
    old = next(r for r in registry.requirements("demand") if (r.metric, r.scope, r.relative_to) == (
        "rmse", "backtest", None))
    conf = {"model": "demand", "version": 2, "reason": "proposed by ratchet", "proposal": True}  # as open_proposal
    when = dt.datetime(2024, 5, 4, 11, tzinfo=dt.UTC)
    answer = {"answer": "Promote and re-baseline", "params_input": {"comment": "the new regime is here to stay"},
              "timeout": 600}
    run, person = run_answered(load_dag("ratchet_promote"), answer, api_server, when, run_conf=conf)

    assert person.detail["options"] == ["Approve", "Promote and re-baseline", "Reject"]
    body = person.detail["body"]
    assert "| 1 requirements | **FAIL** |" in body and "the data changed" in body
    assert "Gate 1 fails only on 1 bound(s) the ratchet derived" in body and "**Approve** runs the gates again" in body
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success" and states["promote"] == "success" and states["reject"] == "skipped"
    assert states["deliver_alerts"] == "success"
    assert registry.champion("demand").version == 2
    decision = registry.promotions("demand")[-1]
    assert (decision.outcome, decision.triggered_by, decision.comment) == (
        "promoted", "admin", "the new regime is here to stay")
    rmse = next(r for r in registry.requirements("demand") if r.id == old.id)
    last = [c for c in rmse.history if c.change == "rebaseline"][-1]
    assert (last.changed_by, last.promotion_id, last.old_bound) == ("admin", decision.id, old.bound)
    assert rmse.bound == pytest.approx(11.0) and old.bound < 11  # set again from v2's back-test (11 each month)
    assert last.derivation["run_id"] == run.run_id and last.derivation["version"] == 2
    [mail] = smtp_server.messages
    assert mail["message"]["Subject"] == "[Ratchet] demand requirement re-baselined by admin: rmse (backtest)"
