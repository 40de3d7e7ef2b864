"""The retrain plan through real DAG runs on a real table: Beijing PM2.5 (../shared/data/real, SOURCES.md).

Two models of the daily pollution: `pm25_weekly` predicts it from the day's weather alone (a Ridge, no lag of the
target), retrains `@weekly` and back-tests 36 months; `pm25_nightly` adds yesterday's value and keeps the default
nightly schedule. The table keeps its own dates (2010..2014), so the nights are fixed: Saturday 2015-01-03 and
Sunday 2015-01-04, 01:00 UTC.

- ratchet_retrain trains the weekly model's first version on Saturday (a model without a version is always due),
  retrains it on Sunday's run and skips it on Monday's, logging when it is next due; the nightly model retrains
  every night; a run naming the weekly model retrains it on a Tuesday.
- ratchet_backtest measures how the weekly model's champion ages: what weather says of pollution shifts with the
  seasons and years, so a model fitted once falls behind the baselines (refitted every month) as it ages, and
  breaks its `rmse <= 0.85 x best baseline` requirement some months after training. The figures are printed.
"""
from __future__ import annotations

import datetime as dt
from statistics import fmean

import pandas as pd
import pytest
from dag_helpers import task_states, timed_run
from real_data import real_data_dir
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.evaluation.backtest import metric_tables

SATURDAY = dt.datetime(2015, 1, 3, 1, tzinfo=dt.UTC)
SUNDAY, MONDAY, TUESDAY = (SATURDAY + dt.timedelta(days=d) for d in (1, 2, 3))
WEATHER = ["dew_point", "temperature", "pressure", "wind_speed_max", "snow_hours", "rain_hours", "wind_direction"]
COMMON = {"owner": "tests", "table": "plan_real.beijing_pm25_daily",
          "estimators": [{"class": "sklearn.linear_model.Ridge", "search_space": {"alpha": {"loguniform": [0.1, 10]}}}],
          "search": {"n_trials": 3, "cv_folds": 2, "seed": 1, "candidates": 1}}
BOUND = {"metric": "rmse", "max": 0.85, "relative_to": "baseline", "scope": "backtest"}


@pytest.fixture
def models(tmp_path, monkeypatch, registry):
    frame = pd.read_csv(real_data_dir() / "beijing_pm25_daily.csv", parse_dates=["day"])
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS plan_real CASCADE; CREATE SCHEMA plan_real"))
        frame.to_sql("beijing_pm25_daily", conn, schema="plan_real", index=False)
    source = {"time_column": "day", "target": "pm25", "features": WEATHER, "categorical": ["wind_direction"]}
    write_spec(tmp_path, name="pm25_weekly", **COMMON, source=source, retrain={"schedule": "@weekly"},
               backtest={"months": 36}, requirements=[BOUND])
    write_spec(tmp_path, name="pm25_nightly", **COMMON, source={**source, "target_lags": [1]},
               backtest={"months": 4}, requirements=[BOUND])
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("RATCHET_REPORTS_DIR", str(tmp_path / "reports"))
    return tmp_path


def _announced(run) -> list[dict]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        return [e.extra for e in session.query(AssetEvent).filter(AssetEvent.source_run_id == run.run_id)]


def test_a_weekly_model_is_skipped_on_other_nights_and_retrained_on_its_own_or_when_named(
        airflow_db, models, registry, capfd):
    saturday, _ = timed_run("ratchet_retrain", SATURDAY)
    assert task_states(saturday) == {("retrain", "pm25_weekly"): "success", ("retrain", "pm25_nightly"): "success"}
    assert ("model 'pm25_weekly' has no version yet: its first retrain runs now, whatever its schedule @weekly "
            "(0 0 * * 0) (next due 2015-01-04 00:00 UTC)") in "".join(capfd.readouterr())

    sunday, _ = timed_run("ratchet_retrain", SUNDAY)
    assert task_states(sunday) == {("retrain", "pm25_weekly"): "success", ("retrain", "pm25_nightly"): "success"}
    assert "model 'pm25_weekly' retrains on schedule @weekly (0 0 * * 0): due at 2015-01-04 00:00 UTC" in \
        "".join(capfd.readouterr())

    monday, _ = timed_run("ratchet_retrain", MONDAY)
    assert monday.state == "success"
    assert task_states(monday) == {("retrain", "pm25_weekly"): "skipped", ("retrain", "pm25_nightly"): "success"}
    skipped = ("model 'pm25_weekly' is not due: its retrain schedule @weekly (0 0 * * 0) has no time within "
               "2015-01-04 01:00 UTC .. 2015-01-05 01:00 UTC; next due 2015-01-11 00:00 UTC")
    assert skipped in "".join(capfd.readouterr())
    assert [e["model"] for e in _announced(monday)] == ["pm25_nightly"]  # the back-test it starts: nightly only
    assert [v.version for v in registry.versions("pm25_weekly")] == [1, 2]

    tuesday, _ = timed_run("ratchet_retrain", TUESDAY, {"model": "pm25_weekly"})  # a person asks: no schedule
    assert task_states(tuesday) == {("retrain", "pm25_weekly"): "success", ("retrain", "pm25_nightly"): "skipped"}
    assert [v.version for v in registry.versions("pm25_weekly")] == [1, 2, 3]
    assert [v.version for v in registry.versions("pm25_nightly")] == [1, 2, 3]  # Saturday's, Sunday's, Monday's


def test_the_backtest_measures_how_the_champion_ages_and_the_page_status_and_card_show_the_plan(
        airflow_db, models, registry):
    from fastapi.testclient import TestClient

    from ratchet.reporting.card import build_card
    from ratchet.reporting.status import model_status
    from ratchet.specs import get_spec
    from ratchet.ui.app import create_app

    assert timed_run("ratchet_retrain", SUNDAY)[0].state == "success"
    first, _ = timed_run("ratchet_backtest", SUNDAY + dt.timedelta(hours=2))
    assert first.state == "success"
    assert task_states(first)[("aging", "pm25_weekly")] == "success"
    assert registry.aging("pm25_weekly", 1) is None  # no champion yet: nothing to age
    for model in ("pm25_weekly", "pm25_nightly"):
        promoted, _ = timed_run("ratchet_promote", SUNDAY + dt.timedelta(hours=4),
                                {"model": model, "version": 1, "reason": "tests: first champion", "dry_run": False})
        assert promoted.state == "success"

    night, seconds = timed_run("ratchet_backtest", MONDAY + dt.timedelta(hours=2))
    assert night.state == "success"
    spec = get_spec("pm25_weekly")
    aged = registry.aging("pm25_weekly", 1)
    table = metric_tables(registry, spec)
    months = sorted(table["v1"]["rmse"])
    assert (aged.months, aged.max_age, len(aged.origins)) == (tuple(months), 12, 25)  # 36 months: 25 origins
    rmse = aged.curves["rmse"]
    assert [p.age for p in rmse] == list(range(1, 13)) and all(p.n == 25 for p in rmse)
    # age 1 is the back-test itself: the same fit (rows before the origin) scored on the same month
    assert rmse[0].by_origin == pytest.approx({m: table["v1"]["rmse"][m] for m in aged.origins})

    (crossing,) = aged.crossings
    for point in rmse:  # the bound at each age: 0.85 x the best baseline's back-test mean over the months it scores
        scored = months[point.age - 1:point.age - 1 + 25]
        best = min(fmean(table[b]["rmse"][m] for m in scored) for b in spec.baselines)
        assert crossing.bounds[point.age - 1] == pytest.approx(0.85 * best)
    broken = [p.age for p in rmse if p.mean > crossing.bounds[p.age - 1]]
    assert crossing.age == broken[0] == aged.crossing_age and crossing.age >= 2  # fresh it holds, aged it breaks
    assert rmse[crossing.age - 1].mean > rmse[0].mean
    status = model_status(registry, spec)
    print(f"\npm25_weekly ages (back-test {seconds:.0f} s): rmse / bound by months since training "
          + ", ".join(f"{p.age}: {p.mean:.2f}/{crossing.bounds[p.age - 1]:.2f}" for p in rmse)
          + f"; crossing age {crossing.age}; {status['aging']['reason']}; recommended "
          f"{status['aging']['recommended']}")

    assert status["retrain"]["schedule"] == "@weekly" and status["aging"]["crossing_age"] == crossing.age
    assert status["aging"]["curve"][0]["origins"] == 25
    card = build_card(registry, spec).markdown()
    assert "## Aging and retrain plan" in card and f"broken at age {crossing.age} months" in card
    page = TestClient(create_app()).get("/models/pm25_weekly").text
    assert f"broken at age {crossing.age} month" in page and status["aging"]["recommended"] in page
    assert page.count("<tr") > 12 and 'id="aging-chart"' in page

    nightly = registry.aging("pm25_nightly", 1)  # four back-test months: two ages over three origins
    assert (nightly.max_age, len(nightly.origins)) == (2, 3)

    again, _ = timed_run("ratchet_backtest", MONDAY + dt.timedelta(hours=2))  # the same night again
    assert again.state == "success"
    assert registry.aging("pm25_weekly", 1).curves == aged.curves
    with registry.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM version_aging")).scalar() == 2
