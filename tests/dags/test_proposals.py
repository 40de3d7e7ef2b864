"""Proposals: the daily now-test proposes a candidate that passes every gate, and a person approves or rejects it.

Real runs throughout: ratchet_nowtest and ratchet_promote run with `dag.test()` against the test run's Airflow
metadata database, and the person answers the approval through the REST API of a real `airflow api-server`
sharing that database, while `dag.test()` keeps the run waiting in `awaiting_input`.

The model: v1 is the champion (back-test rmse 9 per month); v2 is better (about 8) and in trial since before
the first night; v3 is weaker (9.5) and in trial too. The source table follows the fitted Ridge, so every
now-test passes. v2 has one trial day stored before the first night; each night's now-test adds one.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import yaml
from dag_helpers import load_dag, run_answered
from promote_helpers import BASELINES, GOLDEN, SPEC, register_fitted, snapshot, store_backtest, store_nowtest_days
from spec_factory import spec_data, write_spec
from sqlalchemy import text

from ratchet import pipeline

BROKEN_GOLDEN = yaml.safe_dump([{"name": "no inputs", "expected": 1.0, "tolerance": 0.1}])

MODEL = "demand"
TABLE = "proposal_source"
NIGHT_1 = dt.datetime(2024, 5, 3, 6, tzinfo=dt.UTC)  # now-test of 2024-05-02: v2's second trial day
NIGHT_2 = dt.datetime(2024, 5, 4, 6, tzinfo=dt.UTC)  # now-test of 2024-05-03: its third, the trial gate passes
NIGHT_3 = dt.datetime(2024, 5, 5, 6, tzinfo=dt.UTC)
PROPOSAL_RUN = "proposal__demand__v2"
REASON = "proposed by ratchet: passed every gate on 2024-05-04"


def _add_model(registry, folder, name: str, golden: str) -> None:
    """`name` reading TABLE, with `golden` as its golden file: v1 champion, v2 (better) and v3 (weaker) in trial,
    v2 with one trial day."""
    (folder / f"{name}.golden.yaml").write_text(golden)
    spec = write_spec(folder, spec_data(name, table=TABLE, **SPEC), promotion={"ratchet": {"enabled": False}})
    registry.sync_model(spec)
    for run in ("r1", "r2", "r3"):
        register_fitted(registry, name, run)
    store_backtest(registry, name, {"v1": [9.0] * 4, "v2": [8.0, 8.2, 7.9, 8.1], "v3": [9.5] * 4, **BASELINES},
                   extra_metrics={"mae": 0.8})
    registry.record_promotion(name, 1, kind="initial", outcome="promoted", triggered_by="alice",
                              reason="first champion", gates=[], run_id="manual-1", expected_previous_version=None)
    store_nowtest_days(registry, name, 2, ["2024-05-01"])


@pytest.fixture
def models_dir(tmp_path, monkeypatch, registry, airflow_db):
    """The models folder, with TABLE (y follows the fitted Ridge, so every now-test passes); no proposal run yet."""
    rng = np.random.default_rng(0)
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-06-01"))
    x1, x2 = rng.normal(size=len(days)), rng.normal(size=len(days))
    y = 3.0 * x1 - 2.0 * x2 + rng.normal(scale=0.1, size=len(days))
    with registry.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        conn.execute(text(f"CREATE TABLE {TABLE} (ts timestamp PRIMARY KEY, x1 float, x2 float, y float)"))
        conn.execute(text(f"INSERT INTO {TABLE} VALUES (:ts, :x1, :x2, :y)"),
                     [{"ts": str(d), "x1": float(a), "x2": float(b), "y": float(c)}
                      for d, a, b, c in zip(days, x1, x2, y, strict=True)])
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    _delete_proposal_runs()
    return tmp_path


@pytest.fixture
def model(models_dir, registry):
    """demand: v1 champion, v2 (better) and v3 (weaker) in trial."""
    _add_model(registry, models_dir, MODEL, yaml.safe_dump(GOLDEN, sort_keys=False))


def _delete_proposal_runs() -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).filter(DagRun.dag_id == "ratchet_promote"):
            session.delete(run)


def _proposal_runs() -> dict[str, dict]:
    """ratchet_promote runs that propose a version: run id -> conf."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id: r.conf for r in session.query(DagRun).filter(DagRun.dag_id == "ratchet_promote",
                                                                     DagRun.run_id.like("proposal__%"))}


def _night(when: dt.datetime):
    """One daily now-test run; returns its state and each task's states (mapped ones as a list)."""
    run = load_dag("ratchet_nowtest").test(logical_date=when)
    states: dict[str, list[str]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, []).append(ti.state)
    return run.state, states


def _proposals(registry):
    return [p for p in registry.promotions(MODEL) if p.outcome == "proposed"]


def test_a_candidate_is_proposed_once_it_passes_every_gate_and_only_once(model, registry):
    # Night 1: v2 has two trial days of three; v3 does not beat the champion. Nothing is proposed.
    state, tasks = _night(NIGHT_1)
    assert state == "success" and tasks["propose"] == ["success"] and tasks["open_proposal"] == ["skipped"]
    assert _proposals(registry) == [] and _proposal_runs() == {}

    # Night 2: v2 passes every gate; it is recorded as proposed and its ratchet_promote run is opened.
    state, tasks = _night(NIGHT_2)
    assert state == "success" and tasks["open_proposal"] == ["success"]
    [proposal] = _proposals(registry)
    assert (proposal.version, proposal.triggered_by, proposal.reason, proposal.kind) == (
        2, "ratchet", REASON, "promotion")
    assert all(g["passed"] for g in proposal.gates) and len(proposal.gates) == 5
    assert _proposal_runs() == {PROPOSAL_RUN: {"model": MODEL, "version": 2, "reason": REASON, "proposal": True}}
    assert registry.champion(MODEL).version == 1  # proposing moves nothing

    # Re-running night 2 finds its run open: no second run, no second proposal.
    before = snapshot(registry)["promotions"]
    state, tasks = _night(NIGHT_2)
    assert state == "success" and tasks["open_proposal"] == ["skipped"]
    assert snapshot(registry)["promotions"] == before and list(_proposal_runs()) == [PROPOSAL_RUN]

    # Night 3: the proposal is still open, so the model gets no other one.
    assert _night(NIGHT_3)[0] == "success"
    assert len(_proposals(registry)) == 1 and list(_proposal_runs()) == [PROPOSAL_RUN]


def _open_proposal(registry) -> dict:
    """v2's second trial day stored, night 2 run: v2 is proposed; returns the conf of its ratchet_promote run."""
    store_nowtest_days(registry, MODEL, 2, ["2024-05-02"])
    assert _night(NIGHT_2)[0] == "success"
    return _proposal_runs()[PROPOSAL_RUN]


def test_approving_the_proposal_promotes_it_as_the_approver(model, registry, api_server):
    conf = _open_proposal(registry)
    when = dt.datetime(2024, 5, 4, 9, tzinfo=dt.UTC)
    run, person = run_answered(load_dag("ratchet_promote"), {"answer": "Approve", "params_input": {
        "comment": "clearly better in May"}}, api_server, when, run_conf=conf)

    assert person.detail["subject"] == "Promote demand v2?"
    body = person.detail["body"]
    assert REASON in body and "| 2 beats_champion | pass |" in body and "| 4 trial | pass | 3 day(s)" in body
    assert "/ratchet/models/demand" in body
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success"
    assert states == {"proposal": "success", "gates": "success", "approve": "success", "promote": "success",
                      "reject": "skipped", "deliver_alerts": "success"}
    assert registry.champion(MODEL).version == 2
    decision = registry.promotions(MODEL)[-1]
    assert (decision.outcome, decision.version, decision.triggered_by, decision.comment, decision.reason) == (
        "promoted", 2, "admin", "clearly better in May", REASON)
    assert decision.run_id == run.run_id and decision.previous_version == 1


def test_rejecting_the_proposal_records_the_comment_and_keeps_the_champion(model, registry, api_server):
    conf = _open_proposal(registry)
    when = dt.datetime(2024, 5, 4, 10, tzinfo=dt.UTC)
    run, _ = run_answered(load_dag("ratchet_promote"), {"answer": "Reject", "params_input": {
        "comment": "wait for the holiday data"}}, api_server, when, run_conf=conf)

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success"  # a person's decision, recorded: not a failure of Ratchet
    assert states["reject"] == "success" and states["promote"] == "skipped"
    assert registry.champion(MODEL).version == 1
    decision = registry.promotions(MODEL)[-1]
    assert (decision.outcome, decision.version, decision.triggered_by, decision.comment) == (
        "rejected", 2, "admin", "wait for the holiday data")
    assert all(g["passed"] for g in decision.gates)  # the gates passed: a person said no

    # The rejected version is not proposed again, the next night or later.
    assert _night(NIGHT_3)[0] == "success"
    assert [p.version for p in _proposals(registry)] == [2] and list(_proposal_runs()) == [PROPOSAL_RUN]


def test_a_backfill_proposes_nothing(model, registry):
    from airflow.models.dagrun import DagRun

    store_nowtest_days(registry, MODEL, 2, ["2024-05-02", "2024-05-03"])  # v2 passes every gate now
    before = snapshot(registry)
    nowtests = [{"model": MODEL}]
    backfill = DagRun(dag_id="ratchet_nowtest", run_id="backfill__2024-05-04", run_type="backfill")
    assert pipeline.propose(MODEL, end=NIGHT_2, dag_run=backfill, nowtests=nowtests) == {
        "model": MODEL, "proposals": []}
    scheduled = DagRun(dag_id="ratchet_nowtest", run_id="scheduled__2024-05-04", run_type="scheduled")
    assert pipeline.propose(MODEL, end=NIGHT_2, dag_run=scheduled, nowtests=[None])["proposals"] == []
    assert snapshot(registry) == before  # neither the backfill nor a run whose now-test failed proposed

    assert pipeline.propose(MODEL, end=NIGHT_2, dag_run=scheduled, nowtests=nowtests)["proposals"] == [
        {"trigger_run_id": PROPOSAL_RUN, "conf": {"model": MODEL, "version": 2, "reason": REASON, "proposal": True}}]


def test_a_model_whose_propose_step_fails_stops_no_other_and_turns_the_run_red(models_dir, registry):
    _add_model(registry, models_dir, MODEL, yaml.safe_dump(GOLDEN, sort_keys=False))
    _add_model(registry, models_dir, "traffic", BROKEN_GOLDEN)  # its gate 3 cannot read the golden file
    for name in (MODEL, "traffic"):
        store_nowtest_days(registry, name, 2, ["2024-05-02"])
    state, tasks = _night(NIGHT_2)
    assert sorted(tasks["nowtest"]) == ["success", "success"] and sorted(tasks["propose"]) == ["failed", "success"]
    assert tasks["open_proposal"] == ["success"] and tasks["check_proposals"] == ["failed"] and state == "failed"
    assert list(_proposal_runs()) == [PROPOSAL_RUN] and [p.version for p in _proposals(registry)] == [2]
    assert [p.outcome for p in registry.promotions("traffic")] == ["promoted"]  # nothing recorded for traffic
