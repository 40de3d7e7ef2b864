"""`review:` read from the YAML: a classifier's bound on its top probability, a regressor's on its interval's width,
each mistake named by its field."""
from __future__ import annotations

import pytest
from spec_factory import build_spec

from ratchet.exceptions import SpecError
from ratchet.specs.model import ReviewSpec

CLASSIFIER = {"task": "classification", "estimators": [{"class": "sklearn.linear_model.LogisticRegression"}],
              "baselines": ["majority"]}


def test_a_classifier_queues_by_its_top_probability_with_the_defaults_kept():
    spec = build_spec(**CLASSIFIER, review={"max_confidence": 0.6})
    assert spec.review == ReviewSpec(max_confidence=0.6, per_day=50, weight=2.0)
    assert build_spec(**CLASSIFIER).review is None  # no section: no queue


def test_a_regressor_queues_by_its_interval_width_at_a_coverage():
    spec = build_spec(review={"max_interval_width": 12, "coverage": 0.8, "per_day": 5, "weight": 3})
    assert spec.review == ReviewSpec(max_interval_width=12.0, coverage=0.8, per_day=5, weight=3.0)
    assert build_spec(review={"max_interval_width": 1.5}).review.coverage == 0.9


@pytest.mark.parametrize(("change", "message"), [
    ({"review": {"max_confidence": 0.6}}, r"field 'review.max_confidence': expected no max_confidence for a "
                                          r"regression model \(its answers are judged by its prediction interval"),
    ({**CLASSIFIER, "review": {"max_confidence": 0.6, "max_interval_width": 3}},
     r"field 'review.max_interval_width': expected no max_interval_width for a classification model"),
    ({**CLASSIFIER, "review": {"per_day": 10}}, r"field 'review.max_confidence': expected a value \(the top "
                                                r"probability below which an answer is queued"),
    ({**CLASSIFIER, "review": {"max_confidence": 1.2}},
     r"field 'review.max_confidence': expected the top probability below which an answer is queued, in \(0, 1\] "
     r"\(0.6\), got 1.2"),
    ({"review": {"max_interval_width": -1}}, r"field 'review.max_interval_width': expected the prediction interval's "
                                             r"width .* a positive number, got -1.0"),
    ({"review": {"max_interval_width": 2, "coverage": 1}}, r"field 'review.coverage': expected the share of actuals "
                                                           r"the interval is to hold, between 0 and 1"),
    ({"review": {"max_interval_width": 2, "per_day": 0}}, r"field 'review.per_day': expected a positive number of "
                                                          r"rows queued per model and day, got 0"),
    ({"review": {"max_interval_width": 2, "weight": "double"}}, r"field 'review.weight': expected a positive number"),
    ({"review": {"max_interval_width": 2, "per_dya": 3}}, r"field 'review.per_dya': expected one of the known fields"),
    ({"review": 0.6}, r"field 'review': expected a mapping of fields, got 0.6"),
    ({**CLASSIFIER, "estimators": [{"class": "sklearn.linear_model.SGDClassifier", "params": {"loss": "hinge"}}],
      "search": {"metric": "f1"}, "review": {"max_confidence": 0.6}},
     r"field 'review.max_confidence': expected an estimator with probabilities: sklearn.linear_model.SGDClassifier "
     r"with params \{'loss': 'hinge'\} gives none"),
])
def test_each_mistake_names_its_field(change, message):
    with pytest.raises(SpecError, match=message):
        build_spec(**change)
