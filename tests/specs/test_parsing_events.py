"""Parsing the fields of event-level models (specs.parsing): event sources, label delay, slices, the pinball
quantile, the decision threshold, user metrics and the search metric without probabilities; each mistake names
the file, the field and what is expected."""
from __future__ import annotations

import textwrap

import pytest

from ratchet.exceptions import SpecError
from ratchet.specs import load_spec
from ratchet.specs.model import EvaluationSpec, ThresholdSpec, UserMetric

EVENTS = """
name: loans
task: classification
source: {table: s.loans, time_column: applied_at, target: repaid, frequency: event, id: application_id,
         label_delay_days: 30}
estimators:
  - class: sklearn.linear_model.LogisticRegression
"""
HINGE = "{class: sklearn.linear_model.SGDClassifier, params: {loss: hinge}}"


def _load(tmp_path, text):
    path = tmp_path / "loans.yaml"
    path.write_text(textwrap.dedent(text))
    return load_spec(path)


def test_an_event_model_with_every_new_field_parses(tmp_path):
    spec = _load(tmp_path, EVENTS + textwrap.dedent("""
        metrics: {cost: user_metrics:expected_loss, soft_cost: user_metrics:expected_loss_proba}
        classification: {threshold: {optimize: cost}}
        evaluation: {slices: [channel, salary_range]}
        search: {metric: cost}
        requirements:
          - {metric: accuracy, min: 0.8, scope: nowtest, per_slice: true, min_rows: 50}
          - {metric: cost, max: 1.5, scope: backtest}
        """))
    assert spec.source.events and spec.source.id == "application_id" and spec.source.label_delay_days == 30
    assert spec.source.key.columns == ("application_id",) and spec.baselines == ("majority",)
    assert spec.user_metrics == (UserMetric("cost", "user_metrics:expected_loss", False),
                                 UserMetric("soft_cost", "user_metrics:expected_loss_proba", True))
    assert spec.metrics == ("accuracy", "f1", "roc_auc", "log_loss", "pr_auc", "brier", "cost", "soft_cost")
    assert spec.threshold == ThresholdSpec(value=None, optimize="cost") and spec.metric == "cost"
    assert spec.evaluation == EvaluationSpec(slices=("channel", "salary_range"), quantile=0.5)
    assert [(r.metric, r.direction, r.per_slice, r.min_rows) for r in spec.requirements] == [
        ("accuracy", "min", True, 50), ("cost", "max", False, None)]  # a user metric is a cost: a max bound


def test_a_fixed_threshold_and_a_pinball_quantile_parse(tmp_path):
    assert _load(tmp_path, EVENTS + "classification: {threshold: 0.3}\n").threshold == ThresholdSpec(0.3, None)
    regression = _load(tmp_path, """
        name: load
        task: regression
        source: {table: s.t, time_column: day, target: y}
        estimators: [{class: sklearn.linear_model.Ridge}]
        evaluation: {quantile: 0.9}
        search: {metric: pinball}
        requirements: [{metric: pinball, max: 3}]
        """)
    assert regression.evaluation.quantile == 0.9 and regression.metric == "pinball"
    assert regression.threshold == ThresholdSpec()  # no classification section: the most probable class
    with pytest.raises(SpecError, match="field 'classification.threshold': expected no classification section for a "
                                        "regression model"):
        _load(tmp_path, """
            name: load
            task: regression
            source: {table: s.t, time_column: day, target: y}
            estimators: [{class: sklearn.linear_model.Ridge}]
            classification: {threshold: 0.3}
            """)


def test_an_estimator_without_probabilities_is_ranked_by_f1_and_says_why(tmp_path):
    spec = _load(tmp_path, EVENTS.replace("  - class: sklearn.linear_model.LogisticRegression", f"  - {HINGE}"))
    assert spec.metric == "f1" and spec.search.metric_reason == (
        "ranked by f1, not log_loss: sklearn.linear_model.SGDClassifier with params {'loss': 'hinge'} gives no "
        "probabilities")
    assert _load(tmp_path, EVENTS).search.metric_reason is None


LOGISTIC = "  - class: sklearn.linear_model.LogisticRegression"


@pytest.mark.parametrize("old, new, field, expected", [
    ("frequency: event, id: application_id,", "frequency: event,", "source.id",
     "the column holding each event's unique id (source.frequency: event keys rows by id"),
    ("frequency: event, id: application_id,", "id: application_id,", "source.id",
     "no row id unless source.frequency is 'event'"),
    ("frequency: event,", "frequency: event, target_lags: [1],", "source.target_lags",
     "no target lags for source.frequency: event"),
    ("label_delay_days: 30", "label_delay_days: -2", "source.label_delay_days", "a whole number of days >= 0"),
    ("id: application_id,", "id: repaid,", "source.id", "a column that is not the target"),
    (LOGISTIC, LOGISTIC + "\nbaselines: [last_value]", "baselines", "baselines from ['majority'] for events"),
    (LOGISTIC, LOGISTIC + "\nevaluation: {slices: [channel, repaid]}", "evaluation.slices",
     "distinct columns (categorical) other than the target"),
    (LOGISTIC, LOGISTIC + "\nevaluation: {slices: [channel, channel]}", "evaluation.slices", "distinct columns"),
    (LOGISTIC, LOGISTIC + "\nevaluation: {quantile: 1.5}", "evaluation.quantile",
     "the quantile the pinball loss scores, between 0 and 1"),
    (LOGISTIC, LOGISTIC + "\nevaluation: {quantile: 0}", "evaluation.quantile", "between 0 and 1"),
    (LOGISTIC, LOGISTIC + "\nclassification: {threshold: 1.2}", "classification.threshold",
     "a probability of the positive class between 0 and 1 (0.5), or {optimize: one of ['f1', 'accuracy']}"),
    (LOGISTIC, LOGISTIC + "\nclassification: {threshold: {optimize: recall}}", "classification.threshold.optimize",
     "one of ['f1', 'accuracy']"),
    (LOGISTIC, LOGISTIC + "\nclassification: {cutoff: 0.3}", "classification.cutoff", "known fields"),
    (LOGISTIC, LOGISTIC + "\nmetrics: {cost: user_metrics.expected_loss}", "metrics.cost",
     "an import path 'module:function'"),
    (LOGISTIC, LOGISTIC + "\nmetrics: {cost: 'user_metrics:no_such_function'}", "metrics.cost",
     "an importable function 'module:function'"),
    (LOGISTIC, LOGISTIC + "\nmetrics: {cost: 'no_such_package.costs:loss'}", "metrics.cost",
     "an importable function 'module:function'"),
    (LOGISTIC, LOGISTIC + "\nmetrics: {cost: 'user_metrics:NOT_CALLABLE'}", "metrics.cost",
     "a callable f(y_true, y_pred) or f(y_true, y_pred, proba)"),
    (LOGISTIC, LOGISTIC + "\nmetrics: {cost: 'user_metrics:one_argument'}", "metrics.cost",
     "a callable f(y_true, y_pred) or f(y_true, y_pred, proba)"),
    (LOGISTIC, LOGISTIC + "\nmetrics: {f1: 'user_metrics:expected_loss'}", "metrics.f1",
     "a new metric name of letters, digits, '_' or '-' (not one of Ratchet's own"),
    (LOGISTIC, LOGISTIC + "\nrequirements: [{metric: accuracy, min: 0.9, scope: nowtest, per_slice: true}]",
     "requirements[0].per_slice", "evaluation.slices naming the columns to slice by"),
    (LOGISTIC, LOGISTIC + "\nrequirements: [{metric: cost, max: 1}]", "requirements[0].metric", "one of ["),
    (LOGISTIC, LOGISTIC + "\nsearch: {metric: pinball}", "search.metric", "one of ["),
    (LOGISTIC, LOGISTIC + "\nserving: {split: {candidate: trial, fraction: 0.5, by: application_id}}",
     "serving.split.by", "entity columns other than the time column, the target and the event's id"),
    (LOGISTIC, f"  - {HINGE}\nsearch: {{metric: log_loss}}", "search.metric",
     "a metric scored on decided classes (accuracy, f1, or a user metric): sklearn.linear_model.SGDClassifier with "
     "params {'loss': 'hinge'} gives no probabilities"),
])
def test_each_mistake_names_file_field_and_expectation(tmp_path, old, new, field, expected):
    assert old in EVENTS
    with pytest.raises(SpecError) as error:
        _load(tmp_path, EVENTS.replace(old, new))
    message = str(error.value)
    assert str(tmp_path / "loans.yaml") in message and f"'{field}'" in message and expected in message, message


def test_a_split_by_entity_is_for_events_only_and_hashes_the_entity_columns(tmp_path):
    split = "\nserving: {split: {candidate: trial, fraction: 0.5, by: [customer_id]}}"
    spec = _load(tmp_path, EVENTS + split)
    assert spec.serving.split.by == ("customer_id",) and spec.source.split_key(spec.serving.split.by) == (
        "customer_id",)
    assert _load(tmp_path, EVENTS).source.split_key() == ("application_id",)  # no entity: the event's id
    with pytest.raises(SpecError, match=r"'serving.split.by': expected no split.by unless source.frequency is "
                                        r"'event' \(a panel's split keeps each series in one arm"):
        _load(tmp_path, EVENTS.replace(" frequency: event, id: application_id,", "") + split)
