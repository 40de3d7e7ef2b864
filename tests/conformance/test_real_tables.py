"""Conformance on real tables: each file of ../shared/data/real runs the whole cycle through real DAG runs.

Every table is loaded as a user's live table would be: its dates moved forward by whole weeks (weekdays kept)
so that its last row is between two and eight days before today, written to PostgreSQL, and described by a
model YAML. Then one night runs through the real DAGs for all five models at once: `ratchet_retrain`,
`ratchet_backtest`, a first `ratchet_promote` per model, `ratchet_nowtest` and `ratchet_regression`.

What each table exercises, and what is asserted about its verdicts (and why it is plausible):
- Peyton Manning page views: 59 missing calendar days. Lags are by calendar day, so the rows after a gap
  have no lag and are left out, and counted. A Ridge on yesterday's and last week's value beats the mean
  (the series has a level) and matches or beats `last_value`.
- Beijing PM2.5 (`pm25`): 37 days without a target (dropped and counted), the categorical `wind_direction`
  one-hot encoded for a gradient-boosting model. Weather explains pollution, so the champion beats every
  naive baseline clearly.
- Beijing AQI band (`aqi_band`): six classes, some rare ("good": 29 days). Every month gets accuracy, macro
  f1, one-vs-rest roc_auc and log_loss against the training label set. The champion's probabilities beat
  the majority baseline's class frequencies (log_loss) and it is right more often.
- Microsoft close: business days only (lags by rows: Friday is Monday's lag 1) and a random walk, so no
  model can beat `last_value` by much: the champion is within 5% of it either way.
- Melbourne minimum temperature: ten years, so 119 back-test months (the first month has no history
  before it). Yesterday's temperature and last week's beat `last_value` and the mean.
Every back-test metric of every month of every contender is defined, each run is green, the first
promotion passes its gates, and the now-test and regression verdicts are recorded.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import emptied_registry
from dag_helpers import first_night, task_states
from real_data import real_data_dir
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.evaluation.backtest import metric_table
from ratchet.registry import Registry
from ratchet.reporting.status import model_status
from ratchet.specs.model import LOWER_IS_BETTER

REAL = real_data_dir()
TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
WEATHER = ["dew_point", "temperature", "pressure", "wind_speed_max", "snow_hours", "rain_hours", "wind_direction"]
RIDGE = {"class": "sklearn.linear_model.Ridge", "search_space": {"alpha": {"loguniform": [0.01, 100.0]}}}
TRAINED_UNTIL = TODAY - dt.timedelta(days=14)  # the first day of the now-test's 14-day window
COMMON = {
    "search": {"n_trials": 4, "cv_folds": 3, "seed": 1, "candidates": 2},
    "nowtest": {"window_days": 14, "min_rows": 5},
    "requirements": [{"metric": "predict_latency_p95_ms", "max": 1000},
                     {"metric": "model_size_bytes", "max": 50_000_000}],
}
REGRESSION_BOUND = {"metric": "rmse", "max": 1.2, "relative_to": "baseline", "scope": "backtest"}
MODELS = {  # model -> (file, spec overrides)
    "peyton": ("peyton_manning_daily", {
        "source": {"time_column": "day", "target": "log_views", "target_lags": [1, 7]},
        "estimators": [RIDGE], "backtest": {"months": 24}}),
    "pm25": ("beijing_pm25_daily", {
        "source": {"time_column": "day", "target": "pm25", "features": WEATHER, "categorical": ["wind_direction"],
                   "target_lags": [1]},
        "estimators": [{"class": "sklearn.ensemble.HistGradientBoostingRegressor",
                        "params": {"random_state": 0, "max_leaf_nodes": 15},
                        "search_space": {"max_iter": {"randint": [20, 50]}, "learning_rate": {"uniform": [0.05, 0.2]}}},
                       RIDGE],
        "backtest": {"months": 24}}),
    "aqi": ("beijing_pm25_daily", {
        "task": "classification",
        "source": {"time_column": "day", "target": "aqi_band", "features": WEATHER, "categorical": ["wind_direction"],
                   "target_lags": [1]},
        "estimators": [{"class": "sklearn.ensemble.HistGradientBoostingClassifier",
                        "params": {"random_state": 0, "max_leaf_nodes": 15},
                        "search_space": {"max_iter": {"randint": [15, 30]},
                                         "learning_rate": {"uniform": [0.05, 0.2]}}}],
        "baselines": ["majority", "last_value"], "backtest": {"months": 24}}),
    "msft": ("msft_daily", {
        "source": {"time_column": "day", "target": "close", "features": [], "target_lags": [1, 2, 5],
                   "lags_by": "rows"},
        "estimators": [RIDGE], "backtest": {"months": 24}}),
    "melbourne": ("melbourne_temperature_daily", {
        "source": {"time_column": "day", "target": "min_temp", "features": [], "target_lags": [1, 7]},
        "estimators": [RIDGE], "backtest": {"months": 120}}),
}


def load_live_table(registry: Registry, file: str) -> tuple[str, pd.Timestamp]:
    """The CSV as a live table `real.<file>`: dates moved forward by whole weeks, last row 2..8 days ago."""
    frame = pd.read_csv(REAL / f"{file}.csv", parse_dates=["day"])
    weeks = (pd.Timestamp(TODAY.date()) - pd.Timedelta(days=2) - frame["day"].max()).days // 7
    frame["day"] += pd.Timedelta(weeks=weeks)
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS real"))
        frame.to_sql(file, conn, schema="real", index=False, if_exists="replace")
    return f"real.{file}", frame["day"].max()


def _spec_overrides(name: str, table: str) -> dict:
    overrides = {**COMMON, **MODELS[name][1]}
    bound = ({"metric": "log_loss", "max": 1.0, "relative_to": "baseline", "scope": "backtest"}
             if overrides.get("task") == "classification" else REGRESSION_BOUND)
    overrides["requirements"] = [*COMMON["requirements"], bound]
    return {"name": name, "table": table, "owner": "conformance", "alert_emails": ["owner@example.com"], **overrides}


@pytest.fixture(scope="module")
def cycle(airflow_db, database_url, tmp_path_factory):
    """One night of the whole cycle for the five models; returns what the tests inspect."""
    folder = tmp_path_factory.mktemp("real_models")
    registry = emptied_registry(database_url)
    last_rows = {}
    for name, (file, _) in MODELS.items():
        table, last_rows[name] = load_live_table(registry, file)
        write_spec(folder, **_spec_overrides(name, table))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RATCHET_MODELS_DIR", str(folder))
        patch.setenv("RATCHET_REPORTS_DIR", str(folder / "reports"))
        ran = first_night(registry, TODAY, TRAINED_UNTIL, regression=True)
        specs, runs, promoted = ran["specs"], ran["runs"], ran["promoted"]
        statuses = {name: model_status(registry, spec) for name, spec in specs.items()}
        _print_table(registry, specs, runs, promoted)
        yield {"registry": registry, "specs": specs, "runs": runs, "promoted": promoted, "statuses": statuses,
               "last_rows": last_rows}
    registry.dispose()


def _print_table(registry: Registry, specs: dict, runs: dict, promoted: dict) -> None:
    """Per model: the champion's back-test metric against the best baseline, and its tasks' seconds."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id.in_([r.run_id for r in runs.values()])).all()
        seconds = {name: sum(ti.duration or 0 for ti in tis if (ti.rendered_map_index or "").startswith(name))
                   for name in specs}
    print(f"{'model':10} {'metric':8} {'champion':>10} {'best baseline':>22} {'task seconds':>12}")
    for name, spec in specs.items():
        table = metric_table(registry, spec)
        mean = {c: sum(v.values()) / len(v) for c, v in table.items()}
        pick = min if LOWER_IS_BETTER[spec.metric] else max
        baseline = pick(spec.baselines, key=lambda b: mean[b])
        print(f"{name:10} {spec.metric:8} {mean[f'v{promoted[name][0]}']:>10.4g} "
              f"{baseline + ' ' + format(mean[baseline], '.4g'):>22} {seconds[name]:>12.1f}")


def test_every_run_of_the_night_is_green_with_every_model_task(cycle):
    proposed = [p for name in MODELS for p in cycle["registry"].promotions(name) if p.outcome == "proposed"]
    for dag_id, run in cycle["runs"].items():
        states = task_states(run)
        assert run.state == "success", (dag_id, states)
        opened = [states.pop(key) for key in sorted(states) if key[0] == "open_proposal"]
        retrained_after = [states.pop(key) for key in sorted(states) if key[0] == "retrain_after_breach"]
        assert set(states.values()) == {"success"}, (dag_id, states)
        if dag_id == "nowtest":  # one run opened per proposal (per champion breach); with none, the task is skipped
            assert opened == (["success"] * len(proposed) if proposed else ["skipped"]), (opened, proposed)
            breached = _champions_that_breached(cycle["registry"])
            assert retrained_after == (["success"] * len(breached) if breached else ["skipped"]), (
                retrained_after, breached)
    retrained = {map_index for (task, map_index) in task_states(cycle["runs"]["retrain"])}
    assert retrained == set(MODELS)


def _champions_that_breached(registry) -> list[str]:
    """The models whose champion failed a now-test requirement on the re-predicted window (the way back starts)."""
    return [name for name in sorted(MODELS) if registry.champion(name) and any(
        r.passed is False for r in registry.evaluations(name, "nowtest", contender=registry.champion(name).contender))]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_metric_of_every_month_is_defined(cycle, name):
    registry, spec = cycle["registry"], cycle["specs"][name]
    rows = registry.evaluations(name, "backtest")
    months = sorted({r.partition for r in rows})
    contenders = {r.contender for r in rows}
    assert contenders == {"v1", "v2", *spec.baselines}
    undefined = [(r.contender, r.partition, r.metric, (r.details or {}).get("undefined")) for r in rows
                 if r.value is None]
    assert undefined == []
    assert len(rows) == len(months) * len(contenders) * len(spec.metrics)
    expected_months = 119 if name == "melbourne" else 24
    assert len(months) == expected_months
    assert months[-1] < cycle["last_rows"][name].strftime("%Y-%m") or (
        cycle["last_rows"][name] + pd.Timedelta(days=1)).day == 1  # only complete months


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_first_promotion_passes_its_gates_and_the_daily_verdicts_are_recorded(cycle, name):
    registry = cycle["registry"]
    best, state = cycle["promoted"][name]
    assert state == "success" and registry.champion(name).version == best
    (promotion,) = registry.promotions(name)
    assert promotion.kind == "initial" and [g["name"] for g in promotion.gates] == [
        "requirements", "regression_tests", "computational"] and all(g["passed"] for g in promotion.gates)
    nowtest = registry.evaluations(name, "nowtest", contender=f"v{best}")
    last_day = (TODAY - dt.timedelta(days=1)).strftime("%Y-%m-%d")  # windows are whole days before the run's day
    assert nowtest and {r.partition for r in nowtest} == {last_day}  # the window's last day
    assert all(r.n_rows >= 5 for r in nowtest)  # the window held enough rows: a verdict, not stale data
    assert {r.metric for r in nowtest} == set(cycle["specs"][name].metrics)
    assert all(r.value is not None or (r.details or {}).get("undefined") for r in nowtest)
    (regression,) = registry.evaluations(name, "regression")
    assert regression.contender == f"v{best}" and regression.passed is not False


def _champion_and_baselines(cycle, name: str, metric: str) -> tuple[float, dict[str, float]]:
    spec = cycle["specs"][name]
    table = metric_table(cycle["registry"], spec, metric)
    mean = {c: sum(v.values()) / len(v) for c, v in table.items()}
    return mean[f"v{cycle['promoted'][name][0]}"], {b: mean[b] for b in spec.baselines}


def test_peyton_manning_counts_the_rows_its_missing_days_cost_and_beats_the_mean(cycle):
    data = cycle["statuses"]["peyton"]["last_backtest"]["data"]
    assert data["rows_without_lags"] > 0 and data["dropped_missing_target"] == 0 and data["lags_by"] == "periods"
    champion, baselines = _champion_and_baselines(cycle, "peyton", "rmse")
    assert champion < 0.8 * baselines["mean"] and champion <= baselines["last_value"]


def test_beijing_pm25_drops_and_counts_its_missing_targets_and_weather_beats_the_baselines(cycle):
    data = cycle["statuses"]["pm25"]["last_backtest"]["data"]
    assert data["dropped_missing_target"] == 37
    champion, baselines = _champion_and_baselines(cycle, "pm25", "rmse")
    assert champion < 0.9 * min(baselines.values())
    assert "HistGradientBoosting" in cycle["registry"].champion("pm25").estimator_class or champion < min(
        baselines.values())


def test_beijing_aqi_band_is_scored_against_its_six_training_classes_and_beats_the_class_frequencies(cycle):
    champion, baselines = _champion_and_baselines(cycle, "aqi", "log_loss")
    assert champion < baselines["majority"]
    accuracy, accuracy_baselines = _champion_and_baselines(cycle, "aqi", "accuracy")
    assert accuracy > accuracy_baselines["majority"]
    estimator = cycle["registry"].load_estimator("aqi", cycle["promoted"]["aqi"][0])
    assert sorted(estimator.classes_) == ["good", "hazardous", "moderate", "unhealthy", "unhealthy_sensitive",
                                          "very_unhealthy"]


def test_microsoft_is_a_random_walk_that_no_model_beats_by_much(cycle):
    data = cycle["statuses"]["msft"]["last_backtest"]["data"]
    assert data["lags_by"] == "rows" and data["rows_without_lags"] == 5  # only the first five rows lack lag 5
    champion, baselines = _champion_and_baselines(cycle, "msft", "rmse")
    assert 0.95 * baselines["last_value"] <= champion <= 1.05 * baselines["last_value"]


def test_melbourne_back_tests_ten_years_and_yesterday_beats_the_naive_forecasts(cycle):
    champion, baselines = _champion_and_baselines(cycle, "melbourne", "rmse")
    assert champion < baselines["last_value"] and champion < 0.8 * baselines["mean"]
