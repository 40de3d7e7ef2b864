"""Conformance on real panels and other frequencies: many series, weekly and half-hourly tables through real DAG runs.

Each table is loaded as a live table (dates moved forward so its last rows are recent), described by a model YAML
with `source.series` and/or `source.frequency`, and one night runs through the real DAGs for the three models at
once: `ratchet_retrain` (on the rows before the now-test's window), `ratchet_backtest`, a first `ratchet_promote`
per model and `ratchet_nowtest`.

What each table exercises, and what is asserted about its verdicts (and why it is plausible):
- M4 daily panel (`series_id`): four series of 674 to 4,197 days from different decades, moved so they end on
  four different days. Lags 1, 7 and 28 are taken within each series (never across), and the baselines are per
  series. M4 daily series are close to random walks: a global Ridge on the lags is within 5% of per-series
  `last_value` and far below the per-series mean (a lag read across series, at another level, would not be).
- Walmart weekly (`Store` x `Dept`, 7 series): lags of 1 and 52 weeks counted in periods, holidays, markdowns
  missing before late 2011 (imputed). Last year's week (`seasonal_naive_52`) is the baseline to beat, and the
  champion beats it and `last_value`.
- Taylor half-hourly electricity (one series, `frequency: 30min`): lags of 1, 2, 48 and 336 half-hours, a daily
  (`seasonal_naive_48`) and a weekly (`seasonal_naive_336`) season. The champion beats both, and the paired test
  runs on every half-hour (1,488 periods in a 31-day month), not on one row per day.
"""
from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pytest
from conftest import emptied_registry
from dag_helpers import first_night, task_states
from real_data import real_data_dir
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.evaluation.backtest import metric_table
from ratchet.lifecycle.promotion import paired_test
from ratchet.reporting.status import model_status
from ratchet.specs.model import SERIES_METRICS

REAL = real_data_dir()
TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
TRAINED_UNTIL = TODAY - dt.timedelta(days=14)  # the first day of the now-test's 14-day window
RIDGE = {"class": "sklearn.linear_model.Ridge", "search_space": {"alpha": {"loguniform": [0.01, 100.0]}}}
BOOSTING = {"class": "sklearn.ensemble.HistGradientBoostingRegressor", "params": {"random_state": 0},
            "search_space": {"max_iter": {"randint": [50, 150]}, "learning_rate": {"uniform": [0.05, 0.2]}}}
COMMON = {"task": "regression", "search": {"n_trials": 4, "cv_folds": 3, "seed": 1, "candidates": 2},
          "estimators": [RIDGE, BOOSTING], "backtest": {"months": 12}, "nowtest": {"window_days": 14, "min_rows": 5},
          "requirements": [{"metric": "rmse", "max": 1.2, "relative_to": "baseline", "scope": "backtest"},
                           {"metric": "predict_latency_p95_ms", "max": 1000}]}
SERIES = {"m4": ["series_id=D10", "series_id=D160", "series_id=D410", "series_id=D500"],
          "walmart": [f"Store=1, Dept={d}" for d in (1, 3, 8, 13, 38, 93, 95)], "taylor": []}


def _m4() -> pd.DataFrame:
    """Each series moved to end on its own day (2 to 5 days ago): series that end, as they start, apart."""
    frame = pd.read_csv(REAL / "m4_daily_panel.csv", parse_dates=["day"])
    ends = {sid: pd.Timestamp(TODAY.date()) - pd.Timedelta(days=2 + i)
            for i, sid in enumerate(sorted(frame["series_id"].unique()))}
    frame["day"] += frame["series_id"].map(ends) - frame.groupby("series_id")["day"].transform("max")
    return frame.sort_values(["day", "series_id"], kind="stable").reset_index(drop=True)


def _by_weeks(frame: pd.DataFrame, time: str) -> pd.DataFrame:
    """Dates moved forward by whole weeks (weekdays and times of day kept) so the last row is 2 to 8 days ago."""
    last = frame[time].max().tz_localize(None) if frame[time].dt.tz is not None else frame[time].max()
    frame[time] += pd.Timedelta(weeks=(pd.Timestamp(TODAY.date()) - pd.Timedelta(days=2) - last).days // 7)
    return frame


MODELS = {  # model -> (table loader, spec overrides)
    "m4": (_m4, {"source": {"time_column": "day", "target": "value", "series": ["series_id"], "features": [],
                            "target_lags": [1, 7, 28]},
                 "estimators": [RIDGE],  # a random walk's forecaster is linear in its lags, at any level
                 "baselines": ["last_value", "seasonal_naive_7", "mean"]}),
    "walmart": (lambda: _by_weeks(pd.read_csv(REAL / "walmart_sales_weekly.csv", parse_dates=["week"]), "week"),
                {"source": {"time_column": "week", "target": "Weekly_Sales", "series": ["Store", "Dept"],
                            "features": ["Dept", "IsHoliday", "Temperature", "Fuel_Price", "MarkDown1", "CPI",
                                         "Unemployment"],
                            "categorical": ["Dept"], "target_lags": [1, 52]},
                 "baselines": ["last_value", "seasonal_naive_52", "mean"]}),
    "taylor": (lambda: _by_weeks(pd.read_csv(REAL / "taylor_electricity_30min.csv", parse_dates=["at"]), "at"),
               {"source": {"time_column": "at", "target": "demand_mw", "features": [], "frequency": "30min",
                           "target_lags": [1, 2, 48, 336]},
                "baselines": ["last_value", "seasonal_naive_48", "seasonal_naive_336", "mean"],
                "nowtest": {"window_days": 14, "min_rows": 48}}),
}


@pytest.fixture(scope="module")
def night(airflow_db, database_url, tmp_path_factory):
    """One night of the cycle for the three models; returns what the tests inspect."""
    folder = tmp_path_factory.mktemp("panel_models")
    registry = emptied_registry(database_url)
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS real_panels"))
        for name, (load, overrides) in MODELS.items():
            load().to_sql(name, conn, schema="real_panels", index=False, if_exists="replace")
            write_spec(folder, **{"name": name, "table": f"real_panels.{name}", "owner": "conformance",
                                  "alert_emails": ["owner@example.com"], **COMMON, **overrides})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RATCHET_MODELS_DIR", str(folder))
        patch.setenv("RATCHET_REPORTS_DIR", str(folder / "reports"))
        ran = first_night(registry, TODAY, TRAINED_UNTIL)
        specs, runs, promoted = ran["specs"], ran["runs"], ran["promoted"]
        statuses = {name: model_status(registry, spec) for name, spec in specs.items()}
        means = {name: _means(registry, spec) for name, spec in specs.items()}
        print(f"{'model':8} {'champion rmse':>14}  baselines (mean rmse over the back-test)")
        for name in specs:
            print(f"{name:8} {means[name][f'v{promoted[name][0]}']:>14.4g}  "
                  + ", ".join(f"{b} {means[name][b]:.4g}" for b in specs[name].baselines))
        yield {"registry": registry, "specs": specs, "runs": runs, "promoted": promoted, "statuses": statuses,
               "means": means}
    registry.dispose()


def _means(registry, spec) -> dict[str, float]:
    return {c: sum(v.values()) / len(v) for c, v in metric_table(registry, spec).items()}


def test_every_run_of_the_night_is_green_with_every_model_task(night):
    for dag_id, run in night["runs"].items():
        states = task_states(run)
        assert run.state == "success", (dag_id, states)
        optional = {"open_proposal", "retrain_after_breach"}  # skipped without a proposal or a champion breach
        assert {s for (task, _), s in states.items() if task not in optional} == {"success"}, (dag_id, states)
    assert {index for (_, index) in task_states(night["runs"]["retrain"])} == set(MODELS)
    for name, (best, state) in night["promoted"].items():
        assert state == "success" and night["registry"].champion(name).version == best


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_table_is_read_at_its_frequency_with_its_series(night, name):
    data = night["statuses"][name]["last_backtest"]["data"]
    assert (data["frequency"], data["series"]) == {"m4": ("day", 4), "walmart": ("week", 7),
                                                   "taylor": ("30min", 1)}[name]
    assert data["lags_by"] == "periods" and data["rows"] > 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_month_has_every_metric_for_the_panel_and_for_each_series(night, name):
    registry = night["registry"]
    rows = registry.evaluations(name, "backtest")
    months = sorted({r.partition for r in rows})
    assert months and all(r.value is not None for r in rows)
    for row in rows:  # every series has rows in every back-test month of these tables
        if row.metric not in SERIES_METRICS["regression"]:  # pinball is a whole-panel figure
            assert "series" not in row.details
            continue
        per_series = (row.details or {}).get("series")
        if SERIES[name]:
            assert sorted(per_series) == sorted(row.details["series_rows"]) == sorted(SERIES[name])
            assert sum(row.details["series_rows"].values()) == row.n_rows
            assert all(value is not None for value in per_series.values()), (row.partition, row.metric)
        else:
            assert per_series is None


def test_m4_lags_stay_within_each_series_so_the_champion_is_a_random_walk_forecaster(night):
    means, champion = night["means"]["m4"], f"v{night['promoted']['m4'][0]}"
    assert means[champion] <= 1.05 * means["last_value"] and means[champion] < 0.2 * means["mean"]
    months = sorted({r.partition for r in night["registry"].evaluations("m4", "backtest")})
    assert len(months) == 12


def test_walmart_beats_last_years_week_and_last_week(night):
    means, champion = night["means"]["walmart"], f"v{night['promoted']['walmart'][0]}"
    assert means[champion] < means["seasonal_naive_52"] and means[champion] < means["last_value"]


def test_taylor_beats_both_seasons_and_is_tested_on_every_half_hour(night):
    registry, spec = night["registry"], night["specs"]["taylor"]
    means, champion = night["means"]["taylor"], f"v{night['promoted']['taylor'][0]}"
    assert means[champion] < means["seasonal_naive_336"] and means[champion] < means["seasonal_naive_48"]
    months = sorted(metric_table(registry, spec)[champion])
    evidence = paired_test(registry, spec, champion, "seasonal_naive_336", months)
    assert evidence["n_days"] == evidence["rows"] >= 48 * 28 and evidence["rows"] == sum(
        r.n_rows for r in registry.evaluations("taylor", "backtest", contender=champion, metric="rmse"))
    assert evidence["p_value"] < 0.05 and f"over {evidence['rows']} periods" in evidence["text"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_now_test_judges_the_champion_on_rows_after_its_training_per_series_too(night, name):
    registry = night["registry"]
    champion = registry.champion(name)
    verdicts = registry.evaluations(name, "nowtest", contender=champion.contender)
    assert verdicts and all(v.value is not None for v in verdicts if v.metric != "rows")
    details = verdicts[-1].details
    assert details["rows_after_training"] >= (48 * 7 if name == "taylor" else 5)
    assert sorted(details.get("series", {})) == sorted(SERIES[name])  # every series has rows in the 14-day window


def test_the_model_page_lists_a_panels_series_worst_first_and_opens_one_series_charts(night):
    from fastapi.testclient import TestClient

    from ratchet.ui.app import create_app

    registry = night["registry"]
    champion = registry.champion("walmart").contender
    rows = registry.evaluations("walmart", "backtest", contender=champion, metric="rmse")
    means = {s: sum(r.details["series"][s] for r in rows) / len(rows) for s in SERIES["walmart"]}
    client = TestClient(create_app())
    page = client.get("/models/walmart").text
    listed = re.findall(r"<tr(?: class=\"chosen\")?><td>(Store=1, Dept=\d+)</td>\s*<td>([\d.e+]+)</td>", page)
    assert [name for name, _ in listed] == sorted(means, key=means.get, reverse=True)
    assert [float(value) for _, value in listed] == pytest.approx([means[n] for n, _ in listed], rel=1e-3)
    worst = listed[0][0]
    chart = client.get("/models/walmart", params={"series": worst}).text
    assert f"Back-test rmse per month of series {worst}" in chart and 'class="chosen"' in chart
    assert 'id="series-chart"' not in client.get("/models/walmart", params={"series": "Store=9, Dept=9"}).text
    assert 'id="series"' not in client.get("/models/taylor").text  # one series: no series table
