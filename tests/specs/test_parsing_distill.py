"""`distill:` (students trained on the best teacher's outputs): parsed like `estimators` entries, mistakes named."""
from __future__ import annotations

import pytest
from spec_factory import build_spec

from ratchet.exceptions import SpecError

TREE = {"class": "sklearn.tree.DecisionTreeRegressor", "search_space": {"max_depth": {"randint": [2, 8]}}}
SIZE = [{"metric": "model_size_bytes", "max": 1_000_000}]
CLASSIFIER = {"task": "classification", "estimators": [{"class": "sklearn.ensemble.RandomForestClassifier"}],
              "baselines": ["majority"]}


def test_students_parse_with_their_spaces_and_the_defaults():
    spec = build_spec(name="m", requirements=SIZE, distill={"students": [TREE]})
    (student,) = spec.distill.students
    assert (student.class_path, student.search_space) == ("sklearn.tree.DecisionTreeRegressor",
                                                          {"max_depth": {"randint": [2, 8]}})
    assert (spec.distill.when, spec.distill.n_trials) == ("gate_fails", 10)
    assert build_spec(name="m").distill is None
    spec = build_spec(name="m", **CLASSIFIER, distill={"when": "always", "n_trials": 4, "students": [
        {"class": "sklearn.tree.DecisionTreeClassifier"}, TREE]})  # a regressor student fits P(positive)
    assert [s.class_path for s in spec.distill.students] == ["sklearn.tree.DecisionTreeClassifier",
                                                             "sklearn.tree.DecisionTreeRegressor"]
    assert (spec.distill.when, spec.distill.n_trials) == ("always", 4)


@pytest.mark.parametrize(("overrides", "field", "expected"), [
    ({"distill": {"students": [TREE], "when": "nightly"}, "requirements": SIZE}, "distill.when",
     "one of ['gate_fails', 'always']"),
    ({"distill": {"students": [TREE]}}, "distill.when",
     "'always', or a requirement on one of ['predict_latency_p95_ms', 'model_size_bytes', 'fit_seconds'] beside "
     "'gate_fails' (without one no teacher ever fails, so no student would be trained), got 'gate_fails'"),
    ({"distill": {"students": []}, "requirements": SIZE}, "distill.students", "a non-empty list of students"),
    ({"distill": {"when": "always"}}, "distill.students", "the field is required"),
    ({"distill": {"students": [TREE], "when": "always", "n_trials": 0}}, "distill.n_trials",
     "a positive integer (random trials per student)"),
    ({"distill": {"students": [TREE], "when": "always", "teacher": "v3"}}, "distill.teacher", "known fields"),
    ({"distill": {"students": [{"class": "sklearn.tree.DecisionTreeClassifier"}], "when": "always"}},
     "distill.students[0].class", "a regressor for a regression model"),
    ({"distill": {"students": [{"class": "sklearn.tree.NoSuchTree"}], "when": "always"}},
     "distill.students[0].class", "an importable estimator class"),
    ({"distill": {"students": [{**TREE, "search_space": {"max_dept": {"randint": [2, 8]}}}], "when": "always"}},
     "distill.students[0].search_space.max_dept", "a parameter of sklearn.tree.DecisionTreeRegressor"),
    ({"distill": {"students": [{**TREE, "search_space": {"max_depth": {"randint": [8, 2]}}}], "when": "always"}},
     "distill.students[0].search_space.max_depth.randint", "[low, high] with low < high"),
    ({"distill": {"students": [{**TREE, "params": {"max_depth": -1}}], "when": "always"}},
     "distill.students[0].params", "values sklearn.tree.DecisionTreeRegressor accepts"),
    ({**CLASSIFIER, "distill": {"students": [{"class": "sklearn.linear_model.SGDClassifier"}], "when": "always"}},
     "distill.students[0].class", "a classifier with predict_proba"),
    ({**CLASSIFIER, "distill": {"students": [{"class": "sklearn.cluster.KMeans"}], "when": "always"}},
     "distill.students[0].class", "a classifier (or a regressor of a binary label's P(positive)) for a "
                                  "classification model"),
])
def test_each_mistake_in_distill_names_the_field(overrides, field, expected):
    with pytest.raises(SpecError) as error:
        build_spec(name="m", **overrides)
    assert f"'{field}'" in str(error.value) and expected in str(error.value), str(error.value)
