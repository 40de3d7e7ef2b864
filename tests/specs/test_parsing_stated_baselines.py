"""A stated baseline (`baselines: [{name, metrics, source}]`): a constant to beat, parsed with every mistake named."""
from __future__ import annotations

import pytest
from spec_factory import build_spec

from ratchet.evaluation.backtest import baseline_means
from ratchet.evaluation.requirements import check_requirements
from ratchet.exceptions import SpecError

HUMAN = {"name": "human_review", "metrics": {"accuracy": 0.7},
         "source": "1,000 cases labelled by two reviewers, 2026-05"}
CLASSIFIER = {"task": "classification", "estimators": [{"class": "sklearn.linear_model.LogisticRegression"}]}


def test_a_stated_baseline_is_a_constant_beside_the_computed_ones_and_relative_requirements_use_it():
    spec = build_spec(name="m", **CLASSIFIER, baselines=["majority", HUMAN],
                      requirements=[{"metric": "accuracy", "min": 1.05, "relative_to": "human_review",
                                     "scope": "gate"}])
    assert spec.baselines == ("majority",) and [b.name for b in spec.stated_baselines] == ["human_review"]
    assert spec.stated_baselines[0].metrics == {"accuracy": 0.7} and "two reviewers" in spec.stated_baselines[0].source
    table = {"majority": {"accuracy": {"2026-01": 0.5, "2026-02": 0.52}}}
    means = baseline_means(spec, table, ["2026-01", "2026-02"])
    assert means == {"majority": {"accuracy": pytest.approx(0.51)}, "human_review": {"accuracy": 0.7}}
    (ours,) = check_requirements(spec.requirements, {"accuracy": 0.72}, means)
    assert not ours.passed and ours.effective_bound == pytest.approx(0.735) and "human_review 0.7" in ours.describe()
    (best,) = check_requirements([spec.requirements[0].__class__(metric="accuracy", direction="min", bound=1.0,
                                                                 scope="gate", relative_to="baseline")],
                                 {"accuracy": 0.69}, means)
    assert best.baseline_name == "human_review" and not best.passed  # the best baseline may be a stated one


@pytest.mark.parametrize(("entry", "field", "expected"), [
    ({**HUMAN, "name": "majority"}, "baselines[1].name", "letters, digits, '_' or '-' that is not a computed"),
    ({**HUMAN, "metrics": {"rmse": 3.0}}, "baselines[1].metrics.rmse", "one of ['accuracy'"),
    ({**HUMAN, "metrics": {"accuracy": "high"}}, "baselines[1].metrics.accuracy", "a finite number"),
    ({**HUMAN, "metrics": {}}, "baselines[1].metrics", "a mapping of metrics to numbers"),
    ({k: v for k, v in HUMAN.items() if k != "source"}, "baselines[1].source", "where the numbers come from"),
    ({**HUMAN, "team": "ops"}, "baselines[1].team", "one of the known fields"),
])
def test_each_mistake_in_a_stated_baseline_names_the_field(entry, field, expected):
    with pytest.raises(SpecError) as error:
        build_spec(name="m", **CLASSIFIER, baselines=["majority", entry])
    assert f"'{field}'" in str(error.value) and expected in str(error.value), str(error.value)


def test_a_stated_baseline_named_twice_is_refused():
    with pytest.raises(SpecError, match="a stated baseline name used once"):
        build_spec(name="m", **CLASSIFIER, baselines=[HUMAN, HUMAN])
