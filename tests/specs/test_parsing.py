"""Parsing a model YAML (specs.parsing): defaults, and every mistake naming the file, the field and what is expected."""
from __future__ import annotations

import textwrap

import pytest
from spec_factory import RIDGE, write_spec

from ratchet import settings
from ratchet.exceptions import SpecError
from ratchet.specs import load_spec

NOTIFIERS = "ratchet.alerting.notifiers"
SLACK = "airflow.providers.slack.notifications.slack_webhook.SlackWebhookNotifier"
VALID = """
name: m
task: regression
source: {table: s.t, time_column: day, target: y}
estimators:
  - class: sklearn.linear_model.Ridge
    search_space: {alpha: {loguniform: [0.1, 10]}}
"""


def _write(tmp_path, text, name="m.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_the_demo_spec_is_valid():
    spec = load_spec(settings.DEFAULT_MODELS_DIR / "demand.yaml")
    assert spec.name == "daily_demand" and spec.metric == "rmse" and spec.source.target_lags == (1, 7)
    assert {r.scope for r in spec.requirements} == {"backtest", "nowtest", "gate"}


def test_defaults_fill_what_the_yaml_leaves_out(tmp_path):
    spec = write_spec(tmp_path, name="m", table="s.t", estimators=[
        {"class": RIDGE, "search_space": {"alpha": {"loguniform": [0.1, 10]}}}])
    assert spec.baselines == ("last_value", "seasonal_naive_7", "mean")
    assert spec.backtest.window == "expanding" and spec.search.n_trials == 20
    (mail,) = spec.alerts.notifiers  # alerts are mailed to alert_emails
    assert (mail.name, mail.class_path, mail.kwargs) == ("smtp", f"{NOTIFIERS}.SmtpNotifier", {})


def test_search_budgets_parse_default_to_no_limit_and_stay_under_the_task_timeout(tmp_path, monkeypatch):
    spec = write_spec(tmp_path, name="m", table="s.t")
    assert (spec.search.time_budget_minutes, spec.search.trial_timeout_seconds) == (None, None)
    spec = write_spec(tmp_path, name="m", table="s.t", search={"time_budget_minutes": 30, "trial_timeout_seconds": 2.5},
                      requirements=[{"metric": "fit_seconds", "max": 60, "scope": "gate"}])
    assert (spec.search.time_budget_minutes, spec.search.trial_timeout_seconds) == (30.0, 2.5)
    (fit,) = spec.requirements
    assert (fit.metric, fit.direction, fit.bound, fit.scope) == ("fit_seconds", "max", 60.0, "gate")
    monkeypatch.setenv(settings.TASK_TIMEOUT_ENV, "20")  # the task would be killed before the search's budget
    with pytest.raises(SpecError, match=r"'search.time_budget_minutes': expected fewer minutes than the task "
                                        r"timeout RATCHET_TASK_TIMEOUT_MINUTES=20 .*got 30.0"):
        write_spec(tmp_path, name="m", table="s.t", search={"time_budget_minutes": 30})


def test_notifiers_are_named_by_their_class_unless_named(tmp_path):
    path = _write(tmp_path, VALID + textwrap.dedent(f"""
        alerts:
          notifiers:
            - {{class: {NOTIFIERS}.SmtpNotifier, to: [ops@example.com]}}
            - {{class: {NOTIFIERS}.WebhookNotifier, conn_id: ops_webhook, endpoint: /alerts, timeout: 3}}
            - {{class: {NOTIFIERS}.WebhookNotifier, name: pager, url: 'https://pager.example.com/hook'}}
            - {{class: {SLACK}, slack_webhook_conn_id: slack_ops, text: '{{{{ notification.subject }}}}'}}
        """))
    notifiers = load_spec(path).alerts.notifiers
    assert [n.name for n in notifiers] == ["smtp", "webhook", "pager", "slackwebhook"]
    assert notifiers[1].kwargs == {"conn_id": "ops_webhook", "endpoint": "/alerts", "timeout": 3}
    assert notifiers[3].kwargs["text"] == "{{ notification.subject }}"


def test_serving_fields_and_serving_requirements_parse(tmp_path):
    path = _write(tmp_path, VALID + textwrap.dedent("""
        serving: {cache_ttl_seconds: 30, split: {candidate: trial, fraction: 0.1}}
        requirements:
          - {metric: serving_latency_p95_ms, max: 50}
          - {metric: serving_error_rate, max: 0.01}
          - {metric: availability, min: 0.99}
        """))
    spec = load_spec(path)
    assert spec.serving.cache_ttl_seconds == 30.0
    assert (spec.serving.split.candidate, spec.serving.split.fraction) == ("trial", 0.1)
    assert {(r.metric, r.direction, r.bound, r.scope) for r in spec.requirements} == {
        ("serving_latency_p95_ms", "max", 50.0, "serving"), ("serving_error_rate", "max", 0.01, "serving"),
        ("availability", "min", 0.99, "serving")}
    assert load_spec(_write(tmp_path, VALID, "plain.yaml")).serving.split is None
    assert spec.promotion.trial_days_from == "nowtest"  # the default
    served = load_spec(_write(tmp_path, VALID + "serving: {split: {candidate: 2, fraction: 0.2}}\n"
                              "promotion: {trial_days_from: served, min_trial_days: 5}\n", "served.yaml"))
    assert served.promotion.trial_days_from == "served" and served.promotion.min_trial_days == 5


@pytest.mark.parametrize("change, field, expected", [
    ("name: [oops", "(document)", "valid YAML"),
    ("colour: blue", "colour", "known fields"),
    ("task: forecasting", "task", "one of ['regression', 'classification']"),
    ("source: {table: s.t, time_column: day}", "source.target", "required"),
    ("source: {table: s.t, query: 'SELECT 1', time_column: d, target: y}", "source.table", "exactly one"),
    ("source: {query: 'DROP TABLE x', time_column: d, target: y}", "source.query", "a SELECT statement"),
    ("source: {table: s.t, time_column: d, target: y, target_lags: [0]}", "source.target_lags", "positive"),
    ("search: {n_trials: ten}", "search.n_trials", "a positive integer"),
    ("search: {cv_folds: 1}", "search.cv_folds", ">= 2"),
    ("baselines: [majority]", "baselines", "for a regression model"),
    ("requirements: [{metric: accuracy, max: 1}]", "requirements[0].metric", "one of"),
    ("requirements: [{metric: rmse, max: 1, min: 0}]", "requirements[0].max", "exactly one of"),
    ("requirements: [{metric: rmse, max: 1, scope: weekly}]", "requirements[0].scope", "one of"),
    ("requirements: [{metric: rmse, max: 1, relative_to: oracle}]", "requirements[0].relative_to", "baseline"),
    ("requirements: [{metric: availability, max: 0.9}]", "requirements[0].max", "'min' for availability"),
    ("requirements: [{metric: serving_error_rate, max: 2}]", "requirements[0].max", "a fraction in [0, 1]"),
    ("requirements: [{metric: serving_latency_p95_ms, max: 50, scope: nowtest}]", "requirements[0].scope",
     "'serving'"),
    ("requirements: [{metric: rmse, max: 1, scope: serving}]", "requirements[0].scope", "scope 'serving' takes"),
    ("requirements: [{metric: availability, calibrate: 0.05}]", "requirements[0].calibrate", "no back-test"),
    ("serving: {cache_ttl_seconds: -1}", "serving.cache_ttl_seconds", "seconds >= 0"),
    ("serving: {split: {candidate: newest, fraction: 0.1}}", "serving.split.candidate", "'trial'"),
    ("serving: {split: {candidate: trial, fraction: 1.5}}", "serving.split.fraction", "between 0 and 1"),
    ("serving: {split: {candidate: 3}}", "serving.split.fraction", "required"),
    ("serving: {cache: 10}", "serving.cache", "known fields"),
    ("promotion: {trial_days_from: served_days}", "promotion.trial_days_from", "one of ['nowtest', 'served']"),
    ("promotion: {trial_days_from: served}", "promotion.trial_days_from", "'nowtest' unless serving.split is set"),
    ("backtest: {window: weekly}", "backtest.window", "'expanding' or a positive number"),
    ("search: {trial_timeout_seconds: 0}", "search.trial_timeout_seconds", "a positive number of seconds"),
    ("search: {trial_timeout_seconds: .inf}", "search.trial_timeout_seconds", "a positive number of seconds"),
    ("search: {time_budget_minutes: -5}", "search.time_budget_minutes", "a positive number of minutes"),
    ("search: {time_budget_minutes: 10m}", "search.time_budget_minutes", "a positive number of minutes"),
    ("search: {time_budget_minutes: 120}", "search.time_budget_minutes",
     "fewer minutes than the task timeout RATCHET_TASK_TIMEOUT_MINUTES=120"),
    ("estimators: [{class: sklearn.linear_model.Nope}]", "estimators[0].class", "an importable estimator"),
    ("estimators: [{class: sklearn.linear_model.Ridge, search_space: {alpah: {uniform: [0, 1]}}}]",
     "estimators[0].search_space.alpah", "a parameter of"),
    ("estimators: [{class: sklearn.linear_model.Ridge, search_space: {alpha: {uniform: [2, 1]}}}]",
     "estimators[0].search_space.alpha.uniform", "low < high"),
    ("estimators: [{class: sklearn.linear_model.Ridge, search_space: {alpha: {normal: [0, 1]}}}]",
     "estimators[0].search_space.alpha", "one of uniform"),
    ("alerts: {notifiers: []}", "alerts.notifiers", "a non-empty list of notifiers"),
    ("alerts: {notifiers: [smtp]}", "alerts.notifiers[0]", "a mapping of fields"),
    ("alerts: {notifiers: [{conn_id: hook}]}", "alerts.notifiers[0].class", "required"),
    (f"alerts: {{notifiers: [{{class: {NOTIFIERS}.PagerNotifier}}]}}", "alerts.notifiers[0].class",
     "an importable notifier class"),
    ("alerts: {notifiers: [{class: sklearn.linear_model.Ridge}]}", "alerts.notifiers[0].class",
     "a subclass of Airflow's BaseNotifier"),
    (f"alerts: {{notifiers: [{{class: {NOTIFIERS}.WebhookNotifier, conn_id: hook, timeout_s: 5}}]}}",
     "alerts.notifiers[0].timeout_s", f"keyword arguments {NOTIFIERS}.WebhookNotifier accepts"),
    (f"alerts: {{notifiers: [{{class: {NOTIFIERS}.WebhookNotifier}}]}}", "alerts.notifiers[0]",
     "give exactly one of conn_id (an Airflow HTTP connection) or url"),
    (f"alerts: {{notifiers: [{{class: {NOTIFIERS}.WebhookNotifier, url: hooks.example.com}}]}}",
     "alerts.notifiers[0]", "url must start with http:// or https://"),
    (f"alerts: {{notifiers: [{{class: {SLACK}, slack_webhook_conn_id: slack}}]}}", "alerts.notifiers[0].text",
     "missing 1 required keyword-only argument"),
    (f"alerts: {{notifiers: [{{class: {SLACK}, text: '{{{{ notification.subject'}}]}}", "alerts.notifiers[0].text",
     "a valid Jinja template"),
    (f"alerts: {{notifiers: [{{class: {NOTIFIERS}.SmtpNotifier, name: mail box}}]}}", "alerts.notifiers[0].name",
     "a channel name of letters"),
    (f"alerts: {{notifiers: [{{class: {NOTIFIERS}.WebhookNotifier, url: 'http://a'}}, "
     f"{{class: {NOTIFIERS}.WebhookNotifier, url: 'http://b'}}]}}", "alerts.notifiers[1].name",
     "a channel name not used by notifiers[0]"),
])
def test_each_mistake_names_file_field_and_expectation(tmp_path, change, field, expected):
    key = change.split(":")[0]
    text = "\n".join(line for line in textwrap.dedent(VALID).splitlines() if not line.startswith(key)
                     and not (key == "estimators" and line.startswith("  ")))
    path = _write(tmp_path, text + "\n" + change + "\n")
    with pytest.raises(SpecError) as error:
        load_spec(path)
    message = str(error.value)
    assert str(path) in message and f"'{field}'" in message and expected in message, message


def test_the_docs_model_examples_are_valid_specs():
    """The README's minimal model, docs/configuration.md's full one, and docs/serving.md's serving fields in it."""
    from pathlib import Path

    import yaml

    from ratchet.specs import parse_spec

    def first_yaml_block(document: str) -> dict:
        text = (Path(__file__).resolve().parents[2] / document).read_text()
        start = text.index("```yaml\n") + len("```yaml\n")
        return yaml.safe_load(text[start:text.index("```", start)])

    minimal = parse_spec(Path("README.md"), first_yaml_block("README.md"))
    assert minimal.name == "daily_demand" and minimal.promotion.ratchet.enabled
    example = first_yaml_block("docs/configuration.md")
    spec = parse_spec(Path("docs/configuration.md"), example)
    assert spec.name == "daily_demand" and spec.alerts.repeat_after_days == 7
    assert spec.promotion.ratchet.false_alarm_rate == 0.05 and spec.source.missing_target == "drop"
    serving = first_yaml_block("docs/serving.md")
    spec = parse_spec(Path("docs/serving.md"), {**example, **serving})  # the serving page's fields, in that model
    assert spec.promotion.trial_days_from == "served" and spec.serving.split.fraction == 0.1
    assert {r.metric for r in spec.requirements if r.scope == "serving"} == {
        "serving_latency_p95_ms", "serving_error_rate", "availability"}
