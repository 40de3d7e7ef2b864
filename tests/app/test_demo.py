"""The demo (`ratchet.demo`, `ratchet.replay`): deterministic data, and `make run`'s story from the alert to the
recovery through the real DAGs."""
from __future__ import annotations

import datetime as dt

import pandas as pd
from dag_helpers import load_dag, run_answered

from ratchet import demo, replay, specs
from ratchet.lifecycle import promotion


def test_demo_data_is_deterministic_and_changes_regime():
    start, end, change = dt.date(2024, 1, 1), dt.date(2024, 12, 31), dt.date(2024, 11, 1)
    one = demo.generate_demand(start, end, seed=7, regime_change=change)
    assert one.equals(demo.generate_demand(start, end, seed=7, regime_change=change))
    assert not one.equals(demo.generate_demand(start, end, seed=8, regime_change=change))
    calm = demo.generate_demand(start, end, seed=7)
    after = pd.to_datetime(one["day"]) >= pd.Timestamp("2024-11-15")
    assert (one.loc[after, "demand"] - calm.loc[after, "demand"]).mean() > 50
    assert (one.loc[~after & (pd.to_datetime(one["day"]) < pd.Timestamp(change)), "demand"]
            == calm.loc[pd.to_datetime(calm["day"]) < pd.Timestamp(change), "demand"]).all()


END = dt.date(2025, 6, 30)  # the demo data's last day: 'yesterday' of the `make run` this test replays
TODAY = END + dt.timedelta(days=1)
ALERT_NIGHT = demo.alert_night(END)


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def _run(dag_id: str, when: dt.datetime, conf: dict | None = None) -> str:
    return load_dag(dag_id).test(logical_date=when, run_conf=conf).state


def _demo_rows(registry) -> pd.DataFrame:
    return pd.read_sql(f"SELECT * FROM {demo.DEMO_SCHEMA}.{demo.DEMO_TABLE} ORDER BY day", registry.engine)


def _queued(dag_id: str) -> list:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.state == "queued").all()
        session.expunge_all()
        return runs


class DagTests:
    """The replay's Airflow in a test: `dag.test()` runs; with no scheduler here, the runs a night starts (the
    breach's retrain, the back-test its asset event starts, the proposal's ratchet_promote) run the same way, and
    a person answers the approval through the real api-server's REST API (`run_answered`)."""

    def __init__(self, api: str):
        self.api, self.started = api, []

    def run(self, dag_id, when, conf=None):
        return load_dag(dag_id).test(logical_date=when, run_conf=conf).state

    def settle(self):
        for queued in _queued("ratchet_retrain"):
            if queued.run_id in self.started:
                continue
            self.started.append(queued.run_id)
            for dag_id in ("ratchet_retrain", "ratchet_backtest"):
                ran = load_dag(dag_id).test(run_after=queued.run_after, logical_date=None, run_conf=queued.conf)
                assert ran.state == "success", dag_id

    def answer(self, run_id, option, comment):
        (proposal,) = [r for r in _queued("ratchet_promote") if r.run_id == run_id]
        when = dt.datetime.now(dt.UTC).replace(microsecond=0)
        run, self.person = run_answered(load_dag("ratchet_promote"), {"answer": option, "params_input": {
            "comment": comment}}, self.api, when, run_conf=proposal.conf)
        return run.state


def test_make_run_tells_the_story_from_alert_to_recovery(airflow_db, database_url, registry, smtp_server, tmp_path,
                                                         monkeypatch, api_server):
    """`make run`'s story through the real DAGs and the demo model: the champion learns the history before the
    price cut, the changed days arrive and the alert night's now-test breaches far beyond its calibrated bound; the
    breach retrains at once; the replayed nights judge the new candidates on the days after their training only,
    one of them beats the champion there, is proposed, approved, promoted, and the next now-test passes: recovery."""
    monkeypatch.setenv("RATCHET_REPORTS_DIR", str(tmp_path / "reports"))
    history = demo.load_demo(database_url, end=END, before_change=True)
    change = demo.regime_change_day(END)
    assert history["regime_change"] == str(change) and history["end"] == str(change - dt.timedelta(days=1))
    assert (ALERT_NIGHT - change).days == demo.REGIME_CHANGE_DAYS < 14  # inside the alert night's 14-day window
    before_rows = _demo_rows(registry)
    assert before_rows["day"].max() < change and set(before_rows["price"]) == {demo.PRICE}

    # The first cycle: retrain, back-test and the first champion on the history before the change.
    assert _run("ratchet_retrain", _at(TODAY, 1)) == "success"
    assert _run("ratchet_backtest", _at(TODAY, 3)) == "success"
    spec = specs.load_specs()[demo.DEMO_MODEL]
    first = demo.first_champion(registry, spec)
    assert _run("ratchet_promote", _at(TODAY, 9), {"model": demo.DEMO_MODEL, "version": first,
                                                   "reason": "demo: first champion, best back-test",
                                                   "dry_run": False}) == "success"
    champion = registry.champion(demo.DEMO_MODEL)
    assert champion.version == first and champion.train_end.date() < change
    (mape_requirement,) = [r for r in registry.requirements(demo.DEMO_MODEL, "nowtest") if r.metric == "mape"]
    bound = mape_requirement.bound
    assert bound < 0.08  # the YAML's 0.08, tightened by the ratchet to the champion's calibrated bound

    # The changed days arrive: the same history, then the days from the price cut to yesterday.
    loaded = demo.load_demo(database_url, end=END)
    rows = _demo_rows(registry)
    assert loaded["end"] == str(END) and rows["day"].max() == END
    assert rows[rows["day"] < change].reset_index(drop=True).equals(before_rows)

    # The alert night's now-test alerts, on mape, far beyond the bound, on a window with the change ...
    assert _run("ratchet_nowtest", _at(ALERT_NIGHT, 6)) == "success"
    (alerted,) = registry.evaluations(demo.DEMO_MODEL, "nowtest", contender=f"v{first}", metric="mape")
    assert alerted.partition == str(ALERT_NIGHT - dt.timedelta(days=1)) and alerted.passed is False
    assert alerted.n_rows == 14 and alerted.window_start.date() < change <= alerted.window_end.date()
    breached = [r for r in alerted.details["requirements"] if not r["passed"]]
    assert [(r["metric"], r["bound"]) for r in breached] == [("mape", bound)]
    assert alerted.value > 1.5 * bound
    assert [m["message"]["Subject"] for m in smtp_server.messages] == [
        f"[Ratchet] {demo.DEMO_MODEL} now-test failed: mape {alerted.value:.4g} > max {bound:.4g}"]
    # ... and starts the way back at once: a retrain of the model on the data to that night.
    (breach_run,) = _queued("ratchet_retrain")
    assert breach_run.run_id.startswith(f"breach__{demo.DEMO_MODEL}__") and breach_run.conf == {
        "model": demo.DEMO_MODEL}

    # The replayed nights: the breach's candidates are judged only on days after their training, win there,
    # are proposed; the demo approves; the champion changes; the next now-test passes and the recovery is mailed.
    airflow = DagTests(api_server)
    first_cycle = {v.version for v in registry.versions(demo.DEMO_MODEL)}
    timeline = replay.replay(airflow, registry, spec, start=ALERT_NIGHT + dt.timedelta(days=1),
                             nights=demo.REPLAY_NIGHTS, last=END, say=print)
    assert [n.night for n in timeline] == [ALERT_NIGHT + dt.timedelta(days=k) for k in range(1, demo.REPLAY_NIGHTS + 1)]
    assert airflow.started == [breach_run.run_id]  # one retrain for the breach, not one per night it lasted
    candidates = [v for v in registry.versions(demo.DEMO_MODEL) if v.version not in first_cycle]
    assert candidates and {v.train_end.date() for v in candidates} == {ALERT_NIGHT}  # its day is over at 06:00
    fresh = [v.contender for v in candidates]  # on the first night after their training, no day to judge them on
    assert all(timeline[1].trial[c].startswith("no verdict (1 of the window's 14 rows") for c in fresh), timeline[1]
    proposed = [n for n in timeline if n.proposal]
    assert proposed, "\n".join(promotion.review(registry, spec, v.version).describe() for v in candidates)
    night = proposed[0]
    assert night.answer in (replay.APPROVE, replay.REBASELINE) and night.promoted == night.proposal
    decision = registry.promotions(demo.DEMO_MODEL)[-1]
    assert (decision.outcome, decision.version, decision.triggered_by) == ("promoted", night.proposal, "admin")
    gate = next(g for g in decision.gates if g["name"] == "beats_champion")
    assert gate["passed"] and gate["details"]["route"] == "now-test after a champion breach"
    assert gate["details"]["now_test"]["p_value"] < spec.promotion.significance
    after = timeline[timeline.index(night) + 1:]
    assert after and after[0].champion == night.proposal and after[0].verdict == "passed"
    since = str(ALERT_NIGHT - dt.timedelta(days=1))
    assert smtp_server.messages[-1]["message"]["Subject"] == (
        f"[Ratchet] {demo.DEMO_MODEL} now-test passes again (failing since {since})")  # the recovery mail
    assert after[0].mailed == [smtp_server.messages[-1]["message"]["Subject"]]
    assert all(n.verdict.startswith("FAILED") for n in timeline[:timeline.index(night)]), [n.line() for n in timeline]
