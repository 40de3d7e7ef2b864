"""Students on a real table through real DAG runs: a large forest fails its size bound, a shallow tree trained on the
forest's outputs passes it (and the latency bound) and keeps most of its accuracy.

The table is Beijing's daily PM2.5 and weather (../shared/data/real, 2010..2014, as it is: the runs are dated the
night after its last day). Two models read it: `pm25` (regression on the daily mean) and `aqi` (its six-class air
quality band, the rare classes absent from many months). Each has a random forest of 120-160 trees as its only
estimator, a bound of 1 MB on the artifact (and 1000 ms on the p95 one-row prediction latency), and a decision tree as
its student (`distill.when: gate_fails`). One night runs through the real DAGs: `ratchet_retrain` (search, register
the forest, find it over its size bound, tune and register the tree trained on its predictions, or on its class
probabilities as soft targets), `ratchet_backtest` (six months, each month's forest and student refitted on the
months before it), then `ratchet_promote` of the forest (refused at gate 5) and of the student (promoted).
A second `ratchet_retrain` of the same night registers nothing new. The figures are printed (run with -s).
"""
from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from conftest import emptied_registry
from dag_helpers import task_states, timed_run
from real_data import real_data_dir
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.evaluation.backtest import baseline_means, means_on, metric_tables, months_of
from ratchet.modeling.distill import shown
from ratchet.specs.model import lower_is_better

NIGHT = dt.datetime(2015, 1, 1, 1, tzinfo=dt.UTC)  # the night after the table's last day, 2014-12-31
WEATHER = ["dew_point", "temperature", "pressure", "wind_speed_max", "snow_hours", "rain_hours", "wind_direction"]
# the size bound decides: a forest's size is the same on any machine, its latency is not (on two cores shared by
# several test sessions a shallow tree's p95 reached 56 ms, the forest's 120 ms); the latency bound is the other
# conformance models' 1000 ms
BOUNDS = [{"metric": "model_size_bytes", "max": 1_000_000}, {"metric": "predict_latency_p95_ms", "max": 1000}]
FOREST_SPACE = {"n_estimators": {"randint": [120, 160]}, "min_samples_leaf": {"randint": [3, 5]}}
TREE_SPACE = {"max_depth": {"randint": [3, 8]}, "min_samples_leaf": {"randint": [3, 20]}}
COMMON = {"owner": "conformance", "alert_emails": ["owner@example.com"], "table": "real_students.beijing",
          "search": {"n_trials": 2, "cv_folds": 3, "seed": 5, "candidates": 1}, "backtest": {"months": 6}}
MODELS = {
    "pm25": {"source": {"time_column": "day", "target": "pm25", "features": WEATHER, "categorical": ["wind_direction"],
                        "target_lags": [1]},
             "estimators": [{"class": "sklearn.ensemble.RandomForestRegressor",
                             "params": {"random_state": 0, "max_features": 0.5}, "search_space": FOREST_SPACE}],
             "requirements": [*BOUNDS, {"metric": "rmse", "max": 0.9, "relative_to": "baseline", "scope": "backtest"}],
             "distill": {"n_trials": 6, "students": [{"class": "sklearn.tree.DecisionTreeRegressor",
                                                      "params": {"random_state": 0}, "search_space": TREE_SPACE}]}},
    "aqi": {"task": "classification", "baselines": ["majority", "last_value"],
            "source": {"time_column": "day", "target": "aqi_band", "features": WEATHER,
                       "categorical": ["wind_direction"], "target_lags": [1]},
            "estimators": [{"class": "sklearn.ensemble.RandomForestClassifier",
                            "params": {"random_state": 0, "max_features": 0.5}, "search_space": FOREST_SPACE}],
            "requirements": [*BOUNDS, {"metric": "log_loss", "max": 1.0, "relative_to": "baseline",
                                       "scope": "backtest"}],
            "distill": {"n_trials": 6, "students": [{"class": "sklearn.tree.DecisionTreeClassifier",
                                                     "params": {"random_state": 0}, "search_space": TREE_SPACE}]}},
}


@pytest.fixture(scope="module")
def night(airflow_db, database_url, tmp_path_factory):
    """The night's runs, the two models' versions after them, and each model's back-test figures."""
    folder = tmp_path_factory.mktemp("student_models")
    registry = emptied_registry(database_url)
    frame = pd.read_csv(real_data_dir() / "beijing_pm25_daily.csv", parse_dates=["day"])
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS real_students"))
        frame.to_sql("beijing", conn, schema="real_students", index=False, if_exists="replace")
    for name, overrides in MODELS.items():
        write_spec(folder, name=name, **COMMON, **overrides)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RATCHET_MODELS_DIR", str(folder))
        patch.setenv("RATCHET_REPORTS_DIR", str(folder / "reports"))
        from ratchet.specs import load_specs

        runs = {"retrain": timed_run("ratchet_retrain", NIGHT)[0],
                "backtest": timed_run("ratchet_backtest", NIGHT + dt.timedelta(hours=2))[0]}
        versions = {name: registry.versions(name) for name in MODELS}
        trials = {name: registry.trials(name) for name in MODELS}
        promotions = {(name, v.version): timed_run("ratchet_promote", NIGHT + dt.timedelta(hours=3 + i), {
            "model": name, "version": v.version, "reason": "conformance: teacher or student", "dry_run": False})[0]
            for i, (name, v) in enumerate((n, v) for n in MODELS for v in versions[n])}
        runs["rerun"] = timed_run("ratchet_retrain", NIGHT)[0]
        specs = load_specs()
        figures = {name: _figures(registry, specs[name], versions[name]) for name in MODELS}
        _print(figures)
        yield {"registry": registry, "runs": runs, "versions": versions, "trials": trials, "promotions": promotions,
               "figures": figures, "specs": specs}
    registry.dispose()


def _figures(registry, spec, versions) -> dict:
    """Per version and for the best baseline: the back-test means over the months both versions have, and each
    version's size, p95 latency and CV score."""
    tables = metric_tables(registry, spec)
    months = sorted(set.intersection(*(set(months_of(tables, v.contender)) for v in versions)))
    pick = min if lower_is_better(spec.metric) else max
    baselines = baseline_means(spec, tables, months)
    best = pick((b for b in baselines if spec.metric in baselines[b]), key=lambda b: baselines[b][spec.metric])
    figures = {"metric": spec.metric, "months": months, "baseline": (best, baselines[best][spec.metric]),
               "versions": {v.version: {"role": "student" if v.teacher else "teacher",
                                        "estimator": shown(v.estimator_class, v.hyperparameters),
                                        "means": means_on(tables, v.contender, months), "cv": v.cv_score,
                                        "size_bytes": v.size_bytes, "p95_ms": v.predict_latency_p95_ms,
                                        "fit_seconds": v.fit_seconds} for v in versions}}
    for v in figures["versions"].values():
        v["mean"] = v["means"][spec.metric]
    return figures


def _print(figures: dict) -> None:
    for name, f in figures.items():
        print(f"\n{name}: back-test {f['metric']} over {len(f['months'])} months {f['months'][0]}..{f['months'][-1]}"
              f" (best baseline {f['baseline'][0]} {f['baseline'][1]:.4g})")
        for number, v in f["versions"].items():
            estimator, params = v["estimator"]
            print(f"  v{number} {v['role']:8} {estimator.rpartition('.')[2]:24} {f['metric']} {v['mean']:.4g} "
                  f"(CV {v['cv']:.4g})  size {v['size_bytes']:>10,} bytes  p95 latency {v['p95_ms']:.3g} ms  "
                  f"fit {v['fit_seconds']:.2f} s  {params}")


def test_the_nights_runs_are_green_and_the_rerun_registers_nothing(night):
    for dag_id in ("retrain", "backtest", "rerun"):
        run = night["runs"][dag_id]
        assert run.state == "success", (dag_id, task_states(run))
    registry = night["registry"]
    for name in MODELS:
        assert [v.version for v in registry.versions(name)] == [v.version for v in night["versions"][name]] == [1, 2]
        assert len(registry.trials(name)) == len(night["trials"][name]) == 2 + 6  # two forests, six trees


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_forest_fails_its_bounds_and_its_student_meets_them(night, name):
    teacher, student = night["versions"][name]
    assert teacher.teacher is None and student.teacher["version"] == 1
    assert student.teacher["why"].startswith(f"v1 fails a computational requirement: model_size_bytes "
                                             f"{teacher.size_bytes} > max 1000000 (gate)")
    assert teacher.size_bytes > 1_000_000 > 200_000 > student.size_bytes  # a pipeline's own schema is ~110 kB
    assert student.size_bytes * 20 < teacher.size_bytes
    assert student.contract == teacher.contract
    targets = "soft" if name == "aqi" else "predictions"
    assert student.teacher["targets"] == targets


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_student_keeps_most_of_the_teachers_lead_over_the_best_baseline(night, name):
    """Back-tested month by month like any version: the student's lead over the best baseline on the ranking metric
    is at least 70% of the forest's."""
    f = night["figures"][name]
    teacher, student = f["versions"][1]["mean"], f["versions"][2]["mean"]
    baseline = f["baseline"][1]
    assert len(f["months"]) == 6 and set(f["versions"][2]["means"]) == set(night["specs"][name].metrics)
    assert abs(baseline - student) >= 0.7 * abs(baseline - teacher)
    assert (student < baseline) == lower_is_better(f["metric"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gate_five_refuses_the_forest_and_promotes_its_student(night, name):
    registry = night["registry"]
    assert night["promotions"][(name, 1)].state == "failed" and night["promotions"][(name, 2)].state == "success"
    refused, promoted = registry.promotions(name)
    assert (refused.version, refused.outcome, promoted.version, promoted.outcome) == (1, "rejected", 2, "promoted")
    gate = {g["name"]: g for g in refused.gates}["computational"]
    assert not gate["passed"] and gate["summary"].startswith("model_size_bytes")
    assert all(g["passed"] for g in promoted.gates) and registry.champion(name).version == 2


def test_the_model_page_and_the_card_show_the_student_beside_its_teacher(night):
    from fastapi.testclient import TestClient

    from ratchet.ui.app import create_app

    client = TestClient(create_app())
    page = client.get("/models/pm25").text
    table = page[page.index('<table id="students">'):]
    table = table[:table.index("</table>")]
    f = night["figures"]["pm25"]
    for number, role, estimator in ((1, "teacher", "RandomForestRegressor"), (2, "student", "DecisionTreeRegressor")):
        v = f["versions"][number]
        assert (f'<tr class="{role}"><td>v{number}</td><td>{role}</td><td><code>{estimator}</code></td>\n'
                f'<td>{v["mean"]:.4g} <span class="muted">over 6</span></td>') in table
        assert f"<td>{v['size_bytes']:,}</td><td>{v['p95_ms']:.2f} ms</td>" in table
    assert "v2 learnt from the teacher&#39;s predictions; trained because v1 fails a computational requirement" in table
    assert "student of v1" in page  # the versions table names the student's teacher
    card = client.get("/models/pm25/versions/2/card").text
    assert "<h2>Teacher: v1</h2>" in card and "<th>teacher v1</th><th>student v2</th>" in card
    assert f"<td>size (bytes)</td><td>{f['versions'][1]['size_bytes']}</td><td>{f['versions'][2]['size_bytes']}</td>" \
        in card
