"""The bad-input catalogue: every class of bad input a user can hand Ratchet, the message it gets, and proof that
nothing stored changed. Each row is also a row of the table in docs/bad-input.md (checked below).

Every case starts from a working model: a source table, `demand.yaml` with golden cases, and a champion. Then
one bad input goes in through the door a user would use (the DAG task's call, the promote DAG's Params, the
`ratchet` command), and the test checks the message names what is wrong and every registry table is unchanged.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from promote_helpers import GOLDEN, register_fitted, snapshot
from spec_factory import merge, spec_data
from sqlalchemy import text

from ratchet import pipeline

CATALOGUE_PAGE = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"
NOTIFIERS = "ratchet.alerting.notifiers"
SLACK_NOTIFIER = "airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier"
TABLE = "bad_inputs.demand"
END = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
BASE = spec_data("demand", table=TABLE, alert_emails=["owner@example.com"],
                 source={"features": ["x1", "x2"]},
                 estimators=[{"class": "sklearn.linear_model.Ridge",
                              "search_space": {"alpha": {"loguniform": [0.1, 10.0]}}}],
                 search={"n_trials": 2, "cv_folds": 2}, baselines=["last_value", "mean"],
                 requirements=[{"metric": "mape", "max": 0.5, "scope": "nowtest"}],
                 nowtest={"window_days": 14, "min_rows": 7})
# the changes that make BASE an event model (its rows keyed by `event_id`; `mean` is the baseline needing no lag)
EVENTS = {"source": {"frequency": "event", "id": "event_id"}, "baselines": ["mean"]}
# the changes that make BASE a classifier (a label, a classifier, its baseline, a requirement it can have)
CLASSIFIER = {"task": "classification", "estimators": [{"class": "sklearn.linear_model.LogisticRegression"}],
              "baselines": ["majority"], "requirements": [{"metric": "accuracy", "min": 0.5, "scope": "nowtest"}]}


@dataclass(frozen=True)
class Case:
    """One class of bad input: where it enters, what goes in, and the message it must get."""

    id: str
    door: str  # YAML, data, Params, CLI, golden file
    act: Callable[[Path], str]  # puts the bad input in; returns the message the user sees
    message: str  # regex the message must match
    prepare: Callable[[Path], None] = lambda folder: None  # a valid change made (and stored) before the bad input


def _failure(call: Callable[[], object]) -> str:
    """The message a DAG task fails with (Ratchet's calls raise AirflowFailException for a person's mistake)."""
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as error:
        call()
    return str(error.value)


def _retrain(model: str = "demand") -> str:
    return _failure(lambda: pipeline.retrain(model, end=END))


def yaml_case(case_id: str, message: str, *, change: dict | None = None, edit: Callable[[dict], None] | None = None,
              raw: str | None = None, model: str = "bad") -> Case:
    """A spec file `bad.yaml` (the model 'bad', else valid) with one mistake, run through `model`'s retrain task."""
    def act(folder: Path) -> str:
        data = merge(BASE, {"name": "bad", **(change or {})})
        if edit:
            edit(data)
        (folder / "bad.yaml").write_text(raw if raw is not None else yaml.safe_dump(data, sort_keys=False))
        return _retrain(model)
    return Case(case_id, "YAML", act, message)


def data_case(case_id: str, sql: str, message: str, change: dict | None = None) -> Case:
    """The source table changed by `sql`, then the retrain task; `change` is a valid spec edit synced beforehand."""
    def prepare(folder: Path) -> None:
        from ratchet.registry import Registry
        from ratchet.specs import get_spec

        (folder / "demand.yaml").write_text(yaml.safe_dump(merge(BASE, change), sort_keys=False))
        registry = Registry.from_settings()
        registry.sync_model(get_spec("demand"))
        registry.dispose()

    def act(folder: Path) -> str:
        from ratchet.registry import Registry

        registry = Registry.from_settings()
        with registry.engine.begin() as conn:
            conn.execute(text(sql))
        registry.dispose()
        return _retrain()
    return Case(case_id, "data", act, message, prepare if change else Case.prepare)


def params_case(case_id: str, message: str, **params: object) -> Case:
    """The promote task with these Params (defaults: a valid request to promote v1)."""
    def act(folder: Path) -> str:
        request = {"model": "demand", "version": 2, "reason": "better", **params}
        return _failure(lambda: pipeline.promote(request["model"], request["version"], reason=request["reason"],
                                                 triggered_by="tests", dry_run=False, run_id="bad-params"))
    return Case(case_id, "Params", act, message)


def cli_case(case_id: str, args: list[str], message: str, env: dict | None = None,
             input_csv: str | bytes | None = None) -> Case:
    """The `ratchet` command; it must exit 2 with the message on stderr and no traceback."""
    def act(folder: Path) -> str:
        argv = list(args)
        if input_csv is not None:
            path = folder / "rows.csv"
            path.write_bytes(input_csv if isinstance(input_csv, bytes) else input_csv.encode())
            argv += ["--input", str(path)]
        result = subprocess.run([str(Path(sys.executable).parent / "ratchet"), *argv], capture_output=True,
                                text=True, env={**os.environ, **(env or {})}, timeout=120)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        return result.stderr
    return Case(case_id, "CLI", act, message)


def golden_case(case_id: str, cases: object, message: str) -> Case:
    """`demand.golden.yaml` holding `cases`, then the nightly regression task."""
    def act(folder: Path) -> str:
        (folder / "demand.golden.yaml").write_text(yaml.safe_dump(cases, sort_keys=False))
        return _failure(lambda: pipeline.regression("demand", end=END, airflow_run_id="bad-golden"))
    return Case(case_id, "golden file", act, message)


def _second_estimator(data: dict, estimator: dict) -> None:
    data["estimators"] = [estimator]


CATALOGUE = [
    yaml_case("yaml-not-yaml", r"bad.yaml: field '\(document\)': expected valid YAML", raw="name: [bad\n"),
    yaml_case("yaml-wrong-type", r"field 'search.n_trials': expected a positive integer, got 'ten'",
              change={"search": {"n_trials": "ten"}}),
    yaml_case("yaml-unknown-field", r"field 'serach': expected one of the known fields", change={"serach": {}}),
    yaml_case("yaml-limits-not-a-list",
              r"field 'limits': expected a list of non-empty strings, each a limit of the model its owner states, "
              r"got 'not for new stores'", change={"limits": "not for new stores"}),
    yaml_case("yaml-unknown-task", r"field 'task': expected one of \['regression', 'classification'\]",
              change={"task": "forecast"}),
    yaml_case("yaml-table-and-query", r"expected exactly one of 'source.table' or 'source.query'",
              change={"source": {"query": "SELECT 1"}}),
    yaml_case("yaml-query-not-select", r"field 'source.query': expected a SELECT statement",
              edit=lambda d: d["source"].update(table=None, query="DELETE FROM x")),
    yaml_case("yaml-estimator-not-importable", r"field 'estimators\[0\].class': expected an importable estimator",
              edit=lambda d: _second_estimator(d, {"class": "sklearn.linear_model.NoSuchModel"})),
    yaml_case("yaml-estimator-wrong-kind", r"field 'estimators\[0\].class': expected a regressor for a regression",
              edit=lambda d: _second_estimator(d, {"class": "sklearn.linear_model.LogisticRegression"})),
    yaml_case("yaml-estimator-untrusted", r"field 'estimators\[0\].class': expected an estimator from \['sklearn.'\]",
              edit=lambda d: _second_estimator(d, {"class": "ratchet.modeling.baselines.MeanRegressor"})),
    yaml_case("yaml-space-rejected-by-estimator",
              r"field 'estimators\[0\].search_space.alpha.uniform': expected values sklearn.linear_model.Ridge accepts",
              edit=lambda d: _second_estimator(d, {"class": "sklearn.linear_model.Ridge",
                                                   "search_space": {"alpha": {"uniform": [-1.0, 1.0]}}})),
    yaml_case("yaml-space-unknown-parameter", r"field 'estimators\[0\].search_space.alpah': expected a parameter",
              edit=lambda d: _second_estimator(d, {"class": "sklearn.linear_model.Ridge",
                                                   "search_space": {"alpah": {"uniform": [0.1, 1.0]}}})),
    yaml_case("yaml-target-among-features", r"field 'source.features': expected columns other than the target",
              change={"source": {"features": ["x1", "y"]}}),
    yaml_case("yaml-requirement-direction", r"field 'requirements\[0\].max': expected 'min' for r2",
              change={"requirements": [{"metric": "r2", "max": 0.5}]}),
    yaml_case("yaml-mape-not-a-fraction", r"field 'requirements\[0\].max': expected a fraction in \(0, 1\] for mape",
              change={"requirements": [{"metric": "mape", "max": 8, "scope": "nowtest"}]}),
    yaml_case("yaml-duplicate-requirement", r"field 'requirements\[1\]': expected one requirement per metric and scope",
              change={"requirements": [{"metric": "mape", "max": 0.08, "scope": "nowtest"},
                                       {"metric": "mape", "max": 0.0001, "scope": "nowtest"}]}),
    yaml_case("yaml-min-rows-above-window", r"field 'nowtest.min_rows': expected a positive integer no larger than 7",
              change={"source": {"frequency": "day"}, "nowtest": {"window_days": 7, "min_rows": 10}}),
    yaml_case("yaml-bad-frequency", r"field 'source.frequency': expected one of \['30min', 'hour', 'day', 'week', "
                                    r"'month', 'event'\]", change={"source": {"frequency": "fortnight"}}),
    yaml_case("yaml-events-without-id", r"field 'source.id': expected the column holding each event's unique id "
                                        r"\(source.frequency: event keys rows by id",
              change={"source": {"frequency": "event"}}),
    yaml_case("yaml-id-without-events", r"field 'source.id': expected no row id unless source.frequency is 'event'",
              change={"source": {"id": "x1", "features": ["x2"]}}),
    yaml_case("yaml-events-with-target-lags", r"field 'source.target_lags': expected no target lags for "
                                              r"source.frequency: event",
              change={"source": {"frequency": "event", "id": "app_id", "target_lags": [1]}}),
    yaml_case("yaml-negative-label-delay", r"field 'source.label_delay_days': expected a whole number of days >= 0",
              change={"source": {"label_delay_days": -3}}),
    yaml_case("yaml-slice-is-the-target", r"field 'evaluation.slices': expected distinct columns \(categorical\) "
                                          r"other than the target", change={"evaluation": {"slices": ["y"]}}),
    yaml_case("yaml-quantile-out-of-range", r"field 'evaluation.quantile': expected the quantile the pinball loss "
                                            r"scores, between 0 and 1", change={"evaluation": {"quantile": 1.5}}),
    yaml_case("yaml-threshold-on-regression", r"field 'classification.threshold': expected no classification section "
                                              r"for a regression model", change={"classification": {"threshold": 0.3}}),
    yaml_case("yaml-threshold-out-of-range", r"field 'classification.threshold': expected a probability of the "
                                             r"positive class between 0 and 1",
              change={**CLASSIFIER, "classification": {"threshold": 1.5}}),
    yaml_case("yaml-threshold-unknown-objective", r"field 'classification.threshold.optimize': expected one of "
                                                  r"\['f1', 'accuracy'\]",
              change={**CLASSIFIER, "classification": {"threshold": {"optimize": "recall"}}}),
    yaml_case("yaml-metric-not-a-path", r"field 'metrics.cost': expected an import path 'module:function'",
              change={"metrics": {"cost": "user_metrics.absolute_excess"}}),
    yaml_case("yaml-metric-not-importable", r"field 'metrics.cost': expected an importable function 'module:function', "
                                            r"got \"no_such_package.costs:loss \(No module named 'no_such_package'\)\"",
              change={"metrics": {"cost": "no_such_package.costs:loss"}}),
    yaml_case("yaml-metric-not-callable", r"field 'metrics.cost': expected a callable f\(y_true, y_pred\) or "
                                          r"f\(y_true, y_pred, proba\), got 'user_metrics:NOT_CALLABLE'",
              change={"metrics": {"cost": "user_metrics:NOT_CALLABLE"}}),
    yaml_case("yaml-metric-wrong-arity", r"field 'metrics.cost': expected a callable f\(y_true, y_pred\) or "
                                         r"f\(y_true, y_pred, proba\), got 'user_metrics:one_argument\(y_true\)'",
              change={"metrics": {"cost": "user_metrics:one_argument"}}),
    yaml_case("yaml-metric-named-like-a-builtin", r"field 'metrics.rmse': expected a new metric name .*not one of "
                                                  r"Ratchet's own",
              change={"metrics": {"rmse": "user_metrics:absolute_excess"}}),
    yaml_case("yaml-per-slice-without-slices", r"field 'requirements\[0\].per_slice': expected evaluation.slices "
                                               r"naming the columns to slice by",
              change={"requirements": [{"metric": "mae", "max": 2, "scope": "nowtest", "per_slice": True}]}),
    yaml_case("yaml-probability-metric-without-probabilities",
              r"field 'search.metric': expected a metric scored on decided classes \(accuracy, f1, or a user metric\): "
              r"sklearn.linear_model.SGDClassifier with params \{'loss': 'hinge'\} gives no probabilities, "
              r"got 'log_loss'",
              change={**CLASSIFIER, "search": {"metric": "log_loss"},
                      "estimators": [{"class": "sklearn.linear_model.SGDClassifier", "params": {"loss": "hinge"}}]}),
    yaml_case("yaml-series-is-the-target", r"field 'source.series': expected distinct key columns other than the "
                                           r"target 'y'", change={"source": {"series": ["y"]}}),
    yaml_case("yaml-bad-seasonal-naive", r"field 'baselines': expected baselines from .* or seasonal_naive_<N> .*, "
                                         r"got 'seasonal_naive_0'", change={"baselines": ["seasonal_naive_0"]}),
    yaml_case("yaml-per-series-without-series",
              r"field 'requirements\[0\].per_series': expected source.series naming the panel's key columns",
              change={"requirements": [{"metric": "mape", "max": 0.5, "scope": "nowtest", "per_series": True}]}),
    yaml_case("yaml-per-series-off-the-now-test",
              r"field 'requirements\[0\].per_series': expected a now-test requirement on one of",
              change={"requirements": [{"metric": "mape", "max": 0.5, "scope": "backtest", "per_series": True}]}),
    yaml_case("yaml-baseline-of-other-task", r"field 'baselines': expected baselines from .* for a regression model",
              change={"baselines": ["majority"]}),
    yaml_case("yaml-bad-lag-policy", r"field 'source.lags_by': expected one of \['periods', 'days', 'rows'\]",
              change={"source": {"lags_by": "weeks"}}),
    yaml_case("yaml-notifier-not-importable", r"field 'alerts.notifiers\[0\].class': expected an importable notifier",
              change={"alerts": {"notifiers": [{"class": f"{NOTIFIERS}.PagerNotifier"}]}}),
    yaml_case("yaml-notifier-not-a-notifier",
              r"field 'alerts.notifiers\[0\].class': expected a subclass of Airflow's BaseNotifier",
              change={"alerts": {"notifiers": [{"class": "sklearn.linear_model.Ridge"}]}}),
    yaml_case("yaml-notifier-bad-argument",
              r"field 'alerts.notifiers\[0\].timeout_s': expected keyword arguments .*WebhookNotifier accepts",
              change={"alerts": {"notifiers": [{"class": f"{NOTIFIERS}.WebhookNotifier", "conn_id": "ops_webhook",
                                                "timeout_s": 5}]}}),
    yaml_case("yaml-notifier-bad-template", r"field 'alerts.notifiers\[0\].text': expected a valid Jinja template",
              change={"alerts": {"notifiers": [{"class": SLACK_NOTIFIER, "slack_webhook_conn_id": "slack_ops",
                                                "text": "{{ notification.subject"}]}}),
    yaml_case("yaml-notifier-duplicate-channel",
              r"field 'alerts.notifiers\[1\].name': expected a channel name not used by notifiers\[0\]",
              change={"alerts": {"notifiers": [{"class": f"{NOTIFIERS}.WebhookNotifier", "conn_id": "a"},
                                               {"class": f"{NOTIFIERS}.WebhookNotifier", "conn_id": "b"}]}}),
    yaml_case("yaml-bad-trial-days-from", r"field 'promotion.trial_days_from': expected one of \['nowtest', 'served'\]",
              change={"promotion": {"trial_days_from": "days"}}),
    yaml_case("yaml-served-trial-days-without-split",
              r"field 'promotion.trial_days_from': expected 'nowtest' unless serving.split is set",
              change={"promotion": {"trial_days_from": "served"}}),
    yaml_case("yaml-split-by-without-events",
              r"field 'serving.split.by': expected no split.by unless source.frequency is 'event'",
              change={"serving": {"split": {"candidate": "trial", "fraction": 0.5, "by": ["x1"]}}}),
    yaml_case("yaml-stated-baseline-without-source",
              r"field 'baselines\[1\].source': expected a value \(where the numbers come from .*the field is required",
              change={"baselines": ["mean", {"name": "analysts", "metrics": {"mae": 2.0}}]}),
    yaml_case("yaml-trial-timeout-not-positive",
              r"field 'search.trial_timeout_seconds': expected a positive number of seconds \(one trial's "
              r"cross-validation\), got 0.0", change={"search": {"trial_timeout_seconds": 0}}),
    yaml_case("yaml-time-budget-not-a-number",
              r"field 'search.time_budget_minutes': expected a positive number of minutes \(the whole search\), "
              r"got '10m'", change={"search": {"time_budget_minutes": "10m"}}),
    yaml_case("yaml-time-budget-over-task-timeout",
              r"field 'search.time_budget_minutes': expected fewer minutes than the task timeout "
              r"RATCHET_TASK_TIMEOUT_MINUTES=120 \(the retrain task, .*got 500.0",
              change={"search": {"time_budget_minutes": 500}}),
    yaml_case("yaml-distill-student-wrong-kind",
              r"field 'distill.students\[0\].class': expected a regressor for a regression model, "
              r"got 'sklearn.tree.DecisionTreeClassifier'",
              change={"distill": {"when": "always", "students": [{"class": "sklearn.tree.DecisionTreeClassifier"}]}}),
    yaml_case("yaml-distill-student-bad-space",
              r"field 'distill.students\[0\].search_space.max_dept': expected a parameter of "
              r"sklearn.tree.DecisionTreeRegressor, got 'max_dept'",
              change={"distill": {"when": "always", "students": [{
                  "class": "sklearn.tree.DecisionTreeRegressor", "search_space": {"max_dept": {"randint": [2, 6]}}}]}}),
    yaml_case("yaml-distill-gate-fails-without-computational-requirement",
              r"field 'distill.when': expected 'always', or a requirement on one of \['predict_latency_p95_ms', "
              r"'model_size_bytes', 'fit_seconds'\] beside 'gate_fails'",
              change={"distill": {"students": [{"class": "sklearn.tree.DecisionTreeRegressor"}]}}),
    yaml_case("yaml-prefer-simpler-not-a-boolean",
              r"field 'search.prefer_simpler': expected true or false, got 'yes please'",
              change={"search": {"prefer_simpler": "yes please"}}),
    yaml_case("yaml-simpler-significance-out-of-range",
              r"field 'search.simpler_significance': expected a test level between 0 and 0.5 \(0.05; default "
              r"promotion.significance\), got 0.7", change={"search": {"simpler_significance": 0.7}}),
    yaml_case("yaml-retrain-schedule-not-cron",
              r"field 'retrain.schedule': expected a cron expression of five fields \(minute hour day-of-month month "
              r"day-of-week\) or a preset \(@hourly, @daily, @weekly, @monthly, @quarterly, @yearly\): this one has 1, "
              r"got 'weekly'", change={"retrain": {"schedule": "weekly"}}),
    yaml_case("yaml-retrain-schedule-more-than-daily",
              r"field 'retrain.schedule': expected a schedule that fires at most once a day \(one minute and one "
              r"hour\): ratchet_retrain runs once a night, at 01:00 UTC, got '0 \*/6 \* \* \*'",
              change={"retrain": {"schedule": "0 */6 * * *"}}),
    yaml_case("yaml-duplicate-model-name", r"field 'name': expected a name not already used by .*(bad|demand).yaml",
              change={"name": "demand"}, model="demand"),
    data_case("data-missing-column", f"ALTER TABLE {TABLE} DROP COLUMN x2", r"missing columns \['x2'\]"),
    data_case("data-duplicate-timestamps", f"INSERT INTO {TABLE} SELECT * FROM {TABLE} WHERE day = '2024-03-01'",
              r"duplicate timestamps in 'day', first 2024-03-01"),
    data_case("data-duplicate-series-rows",
              f"ALTER TABLE {TABLE} ADD COLUMN store text DEFAULT 'a'; "
              f"INSERT INTO {TABLE} SELECT * FROM {TABLE} WHERE day = '2024-03-01'",
              r"duplicate rows for series \['store'\] and time 'day', first store = a, day = 2024-03-01",
              change={"source": {"series": ["store"]}}),
    data_case("data-mixed-frequency",
              f"INSERT INTO {TABLE} (day, x1, x2, y) SELECT day + interval '12 hours', x1, x2, y FROM {TABLE} "
              "WHERE day = '2024-03-01'",
              r"the frequency inferred from the rows is 'day' but 2 row\(s\) are not a whole number of periods "
              r"after the row before in their series, e.g. day = 2024-03-01 12:00:00"),
    data_case("data-unordered-query", "SELECT 1",
              r"timestamps in 'day' are not in order.*add ORDER BY to the query",
              change={"source": {"table": None, "query": f"SELECT * FROM {TABLE} ORDER BY x1"}}),
    data_case("data-missing-target-refused", f"UPDATE {TABLE} SET y = NULL WHERE day = '2024-03-05'",
              r"target 'y' has 1 missing values \(NaN\), first at 2024-03-05 .*missing_target: error",
              change={"source": {"missing_target": "error"}}),
    data_case("data-regressor-student-of-many-classes", "SELECT 1",
              r"model 'demand': distill.students\[0\] sklearn.tree.DecisionTreeRegressor is a regressor: it fits the "
              r"teacher's probability of the positive class of a binary label, and the training rows hold 182 "
              r"classes: use a classifier student",
              change={**CLASSIFIER, "requirements": [],
                      "distill": {"when": "always", "students": [{"class": "sklearn.tree.DecisionTreeRegressor"}]}}),
    data_case("data-text-feature", f"ALTER TABLE {TABLE} ALTER COLUMN x2 TYPE text",
              r"feature 'x2' is not numeric .*declare it in source.categorical"),
    data_case("data-too-little-history", f"DELETE FROM {TABLE} WHERE day > '2024-01-20'",
              r"too little history for time-ordered cross-validation: \d+ rows, at least 42 needed"),
    data_case("data-no-such-table", f"DROP TABLE {TABLE}", r"cannot read table bad_inputs.demand"),
    data_case("data-duplicate-event-ids", f"ALTER TABLE {TABLE} ADD COLUMN event_id integer DEFAULT 7",
              r"duplicate ids in 'event_id' \(source.id\), first 7 \(\d+ duplicates\); each event needs its own id",
              change=EVENTS),
    data_case("data-no-event-labelled", f"ALTER TABLE {TABLE} ADD COLUMN event_id serial; UPDATE {TABLE} SET y = NULL",
              r"no event is labelled yet \('y' is empty in every row\)", change=EVENTS),
    data_case("data-slice-column-missing", "SELECT 1",
              r"evaluation.slices names columns \['channel'\] the source does not have",
              change={"evaluation": {"slices": ["channel"]}}),
    params_case("params-unknown-model", r"unknown model 'sales'; configured models: \['demand'\]", model="sales"),
    params_case("params-unknown-version", r"model 'demand' has no version 9; its versions: \[1, 2\]", version=9),
    params_case("params-no-reason", r"reason is required", reason="  "),
    params_case("params-version-not-positive", r"version must be a positive integer, got 0", version=0),
    params_case("params-already-champion", r"demand v1 is already the champion", version=1),
    cli_case("cli-unknown-model", ["status", "--model", "nope"], r"unknown model 'nope'; configured models"),
    cli_case("cli-card-unknown-model", ["card", "nope"], r"unknown model 'nope'; configured models: \['demand'\]"),
    cli_case("cli-card-unknown-version", ["card", "demand", "9"],
             r"model 'demand' has no version 9; its versions: \[1, 2\]"),
    cli_case("cli-input-file-missing", ["predict", "demand", "--input", "/nonexistent/rows.csv"],
             r"input file /nonexistent/rows.csv does not exist"),
    cli_case("cli-input-not-csv", ["predict", "demand"], r"is not a readable CSV file", input_csv=b""),
    cli_case("cli-input-missing-column", ["predict", "demand"], r"lacks column\(s\) \['x2'\]",
             input_csv="day,x1\n2024-07-01,0.5\n"),
    cli_case("cli-not-postgresql", ["status"], r"registry must be PostgreSQL",
             env={"RATCHET_DATABASE_URL": "sqlite:///ratchet.db"}),
    golden_case("golden-not-a-list", {"name": "x"}, r"demand.golden.yaml: \(document\): expected a list of cases"),
    golden_case("golden-no-inputs", [{"name": "a", "expected": 1.0, "tolerance": 0.1}],
                r"case \[0\] field 'inputs': expected a value; the field is required"),
    golden_case("golden-negative-tolerance", [{**GOLDEN[0], "tolerance": -1}],
                r"case \[0\] 'typical' field 'tolerance': expected a number >= 0, got -1"),
    golden_case("golden-unknown-input", [{**GOLDEN[0], "inputs": {"x1": 1.0, "x2": 0.0, "x3": 1.0}}],
                r"field 'inputs.x3': expected only the model's inputs"),
    golden_case("golden-duplicate-name", [GOLDEN[0], GOLDEN[0]], r"expected a name not used by an earlier case"),
]


@pytest.fixture
def world(tmp_path, monkeypatch, registry):
    """A working model: its source table, its YAML and golden cases, v1 as champion and v2 in trial."""
    rng = np.random.default_rng(0)
    days = pd.date_range("2024-01-01", "2024-06-30")
    frame = pd.DataFrame({"day": days, "x1": rng.normal(size=len(days)), "x2": rng.normal(size=len(days))})
    frame["y"] = 3 * frame["x1"] - 2 * frame["x2"] + rng.normal(scale=0.1, size=len(days))
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS bad_inputs CASCADE; CREATE SCHEMA bad_inputs"))
        frame.to_sql("demand", conn, schema="bad_inputs", index=False)
    (tmp_path / "demand.golden.yaml").write_text(yaml.safe_dump(GOLDEN, sort_keys=False))
    (tmp_path / "demand.yaml").write_text(yaml.safe_dump(BASE, sort_keys=False))
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    from ratchet.specs import get_spec

    spec = get_spec("demand")
    registry.sync_model(spec)
    for run in ("r1", "r2"):
        register_fitted(registry, "demand", run, spec=spec)
    registry.record_promotion("demand", 1, kind="initial", outcome="promoted", triggered_by="tests", reason="first",
                              gates=[], run_id="p1", expected_previous_version=None)
    return tmp_path


# A CLI row runs `ratchet` in a new process (importing pandas, scikit-learn, SQLAlchemy): the slow lane.
@pytest.mark.parametrize("case", [pytest.param(case, id=case.id, marks=[pytest.mark.slow] if case.door == "CLI" else [])
                                  for case in CATALOGUE])
def test_bad_input_gets_a_clear_message_and_changes_nothing_stored(case, world, registry):
    case.prepare(world)
    before = snapshot(registry)
    message = case.act(world)
    assert re.search(case.message, message), message
    assert snapshot(registry) == before


def test_the_catalogue_is_large_and_every_row_is_in_the_docs():
    assert len(CATALOGUE) >= 25 and len({case.id for case in CATALOGUE}) == len(CATALOGUE)
    assert {case.door for case in CATALOGUE} == {"YAML", "data", "Params", "CLI", "golden file"}
    page = CATALOGUE_PAGE.read_text()
    missing = [case.id for case in CATALOGUE if f"| `{case.id}` | {case.door} |" not in page]
    assert missing == [], f"the bad-input table of docs/bad-input.md lacks {missing}"
