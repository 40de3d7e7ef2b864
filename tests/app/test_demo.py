"""The demo (`ratchet.demo`): deterministic data, and the regime change `make run`'s first now-test alerts on."""
from __future__ import annotations

import datetime as dt

import pandas as pd
from dag_helpers import load_dag

from ratchet import demo, specs


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


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def _run(dag_id: str, when: dt.datetime, conf: dict | None = None) -> str:
    return load_dag(dag_id).test(logical_date=when, run_conf=conf).state


def _demo_rows(registry) -> pd.DataFrame:
    return pd.read_sql(f"SELECT * FROM {demo.DEMO_SCHEMA}.{demo.DEMO_TABLE} ORDER BY day", registry.engine)


def test_make_runs_first_cycle_alerts_on_the_regime_change_its_champion_never_saw(airflow_db, database_url, registry,
                                                                                  smtp_server, tmp_path, monkeypatch):
    """`make run`'s first cycle through the real DAGs and the demo model: the champion learns the history before
    the regime change, the changed days arrive, and the first now-test breaches far beyond its calibrated bound."""
    monkeypatch.setenv("RATCHET_REPORTS_DIR", str(tmp_path / "reports"))
    history = demo.load_demo(database_url, end=END, before_change=True)
    change = demo.regime_change_day(END)
    assert history["regime_change"] == str(change) and history["end"] == str(change - dt.timedelta(days=1))
    assert (END - change).days < 14  # the change falls inside the now-test's 14-day window of 'today'
    before_rows = _demo_rows(registry)
    assert before_rows["day"].max() < change

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

    # The changed days arrive: the same history, then the days from the regime change to yesterday.
    loaded = demo.load_demo(database_url, end=END)
    rows = _demo_rows(registry)
    assert loaded["end"] == str(END) and rows["day"].max() == END
    assert rows[rows["day"] < change].reset_index(drop=True).equals(before_rows)

    # The first now-test after the promotion alerts, on mape, far beyond the bound, on a window with the change.
    assert _run("ratchet_nowtest", _at(TODAY, 10)) == "success"
    (alerted,) = registry.evaluations(demo.DEMO_MODEL, "nowtest", contender=f"v{first}", metric="mape")
    assert alerted.partition == str(END) and alerted.passed is False and alerted.n_rows == 14  # 14 whole days
    assert alerted.window_start.date() < change <= alerted.window_end.date()
    breached = [r for r in alerted.details["requirements"] if not r["passed"]]
    assert [(r["metric"], r["bound"]) for r in breached] == [("mape", bound)]
    assert alerted.value > 1.5 * bound
    assert len(smtp_server.messages) == 1
    subject = smtp_server.messages[0]["message"]["Subject"]
    assert subject == f"[Ratchet] {demo.DEMO_MODEL} now-test failed: mape {alerted.value:.4g} > max {bound:.4g}"

    # The same champion on the days before the change meets the same bound, and nobody is mailed.
    assert _run("ratchet_nowtest", _at(change - dt.timedelta(days=1), 6)) == "success"
    calm = next(e for e in registry.evaluations(demo.DEMO_MODEL, "nowtest", contender=f"v{first}", metric="mape")
                if e.partition != str(END))
    assert calm.window_end.date() < change and calm.passed is True and calm.value <= bound
    assert registry.champion(demo.DEMO_MODEL).version == first
    assert len(smtp_server.messages) == 1
