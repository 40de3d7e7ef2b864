"""Students (`modeling.distill`): what each kind of student fits from its teacher, and that a stored student keeps
only itself. A random forest is the teacher throughout (its probabilities are smooth, unlike the labels)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from spec_factory import build_spec

from ratchet.exceptions import DataError
from ratchet.modeling import artifacts
from ratchet.modeling.distill import (
    STUDENT,
    TEACHERS,
    StudentClassifier,
    StudentRegressor,
    soft_rows,
    student_plans,
)

FOREST = "sklearn.ensemble.RandomForestClassifier"
FOREST_PARAMS = {"n_estimators": 40, "min_samples_leaf": 5, "random_state": 0}
TREE = {"max_depth": 3, "random_state": 0}


def _rows(classes=("no", "yes"), n=600, seed=0):
    """Features and a noisy label whose probability rises with the first two features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    score = 2 * X[:, 0] + X[:, 1] + rng.logistic(size=n)
    cuts = np.quantile(score, np.linspace(0, 1, len(classes) + 1)[1:-1])
    return X, np.asarray(classes)[np.searchsorted(cuts, score)]


def _teacher(X, y):
    return RandomForestClassifier(**FOREST_PARAMS).fit(X, y)


def test_soft_rows_give_each_row_once_per_class_weighted_by_its_probability_without_zero_weights():
    proba = np.array([[0.25, 0.75, 0.0], [1.0, 0.0, 0.0]])
    rows, weights, labels = soft_rows(proba, np.array(["a", "b", "c"]))
    assert rows.tolist() == [0, 1, 0] and labels.tolist() == ["a", "a", "b"] and weights.tolist() == [0.25, 1.0, 0.75]


def test_a_tree_classifier_with_sample_weight_learns_the_teachers_probabilities_as_soft_targets():
    X, y = _rows()
    soft = StudentClassifier(FOREST, FOREST_PARAMS, "sklearn.tree.DecisionTreeClassifier", TREE).fit(X, y)
    assert soft.targets_ == "soft" and soft.classes_.tolist() == ["no", "yes"]
    teacher = _teacher(X, y).predict_proba(X)[:, 1]
    # a tree's weighted Gini gain on the expanded rows equals the squared-error gain on P(positive): the same tree
    # as a regression on the teacher's probability, leaf for leaf
    on_p = DecisionTreeRegressor(**TREE).fit(X, teacher).predict(X)
    assert soft.predict_proba(X)[:, 1] == pytest.approx(on_p)
    hard = DecisionTreeClassifier(**TREE).fit(X, y).predict_proba(X)[:, 1]
    assert np.abs(on_p - teacher).mean() < np.abs(hard - teacher).mean()  # nearer the teacher than the labels' tree


def test_a_classifier_without_sample_weight_fits_the_teachers_predicted_classes():
    X, y = _rows(("low", "mid", "high"), n=600)
    y = y.astype("<U4")
    y[:4] = "rare"  # four rows: the forest's leaves of five never predict the class
    teacher = _teacher(X, y)
    assert "rare" not in set(teacher.predict(X))
    student = StudentClassifier(FOREST, FOREST_PARAMS, "sklearn.neighbors.KNeighborsClassifier", {}).fit(X, y)
    assert student.targets_ == "hard" and student.classes_.tolist() == ["high", "low", "mid", "rare"]
    expected = KNeighborsClassifier().fit(X, teacher.predict(X))
    assert (student.predict(X) == expected.predict(X)).all()
    proba = student.predict_proba(X)
    assert proba.shape == (600, 4) and (proba[:, 3] == 0).all()  # the class it never saw, in the teacher's order
    assert proba.sum(axis=1) == pytest.approx(np.ones(600))


def test_a_regressor_student_of_a_binary_classifier_fits_the_positive_class_probability():
    X, y = _rows()
    student = StudentClassifier(FOREST, FOREST_PARAMS, "sklearn.tree.DecisionTreeRegressor", TREE).fit(X, y)
    assert student.targets_ == "positive"
    positive = DecisionTreeRegressor(**TREE).fit(X, _teacher(X, y).predict_proba(X)[:, 1]).predict(X)
    proba = student.predict_proba(X)
    assert proba[:, 1] == pytest.approx(np.clip(positive, 0, 1)) and proba.sum(axis=1) == pytest.approx(1.0)
    assert student.predict(X).tolist() == np.where(proba[:, 1] > 0.5, "yes", "no").tolist()
    X3, y3 = _rows(("a", "b", "c"))
    with pytest.raises(DataError, match=r"a regressor student \(DecisionTreeRegressor\) fits the teacher's "
                                        r"probability of the positive class of a binary label, but the training "
                                        r"rows hold 3 classes: use a classifier student"):
        clone(student).fit(X3, y3)


def test_a_regression_student_fits_the_teachers_predictions():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 3))
    y = X[:, 0] ** 2 + rng.normal(scale=0.5, size=400)
    params = {"n_estimators": 30, "random_state": 0}
    student = StudentRegressor("sklearn.ensemble.RandomForestRegressor", params,
                               "sklearn.tree.DecisionTreeRegressor", TREE).fit(X, y)
    teacher = RandomForestRegressor(**params).fit(X, y).predict(X)
    assert student.predict(X) == pytest.approx(DecisionTreeRegressor(**TREE).fit(X, teacher).predict(X))


def test_a_stored_student_loads_back_and_holds_no_teacher():
    X, y = _rows()
    student = StudentClassifier(FOREST, {**FOREST_PARAMS, "n_estimators": 200}, "sklearn.tree.DecisionTreeClassifier",
                                TREE).fit(X, y)
    stored = artifacts.dump(student)
    loaded = artifacts.load(stored.data, stored.sha256)
    assert loaded.predict_proba(X) == pytest.approx(student.predict_proba(X))
    teacher = artifacts.dump(RandomForestClassifier(**{**FOREST_PARAMS, "n_estimators": 200}).fit(X, y))
    assert stored.size_bytes * 50 < teacher.size_bytes


def test_a_teacher_is_fitted_once_per_training_rows_and_never_serves_other_rows():
    X, y = _rows()
    first = TEACHERS.outputs(FOREST, FOREST_PARAMS, X, y)
    assert TEACHERS.outputs(FOREST, FOREST_PARAMS, X.copy(), y.copy()) is first  # the same rows: reused
    other = TEACHERS.outputs(FOREST, FOREST_PARAMS, X[:500], y[:500])
    assert other is not first and len(other.predictions) == 500
    assert TEACHERS.outputs(FOREST, {**FOREST_PARAMS, "random_state": 1}, X, y) is not first


def test_a_student_refuses_a_class_outside_scikit_learn():
    with pytest.raises(ValueError, match=r"come from \['sklearn.'\], not 'os.system'"):
        StudentRegressor("os.system", {}, "sklearn.tree.DecisionTreeRegressor", {}).fit(np.ones((3, 1)), [1, 2, 3])


def test_student_plans_draw_each_students_space_around_the_teachers_full_parameters():
    spec = build_spec(name="m", requirements=[{"metric": "model_size_bytes", "max": 1000}], distill={
        "n_trials": 3, "students": [
            {"class": "sklearn.tree.DecisionTreeRegressor", "params": {"random_state": 0},
             "search_space": {"max_depth": {"randint": [2, 6]}}},
            {"class": "sklearn.linear_model.LinearRegression"}]})
    plans = student_plans(spec, "sklearn.ensemble.RandomForestRegressor", {"n_estimators": 300},
                          np.random.default_rng(0))
    assert len(plans) == 4  # three draws of the tree's space, one of the linear model without a space
    assert {p[0].class_path for p in plans} == {"ratchet.modeling.distill.StudentRegressor"}
    assert {p[2] for p in plans} == {STUDENT}
    trees = [p[1] for p in plans[:3]]
    assert all(t["teacher"] == "sklearn.ensemble.RandomForestRegressor" and t["teacher_params"] == {"n_estimators": 300}
               and t["student_params"]["random_state"] == 0 and 2 <= t["student_params"]["max_depth"] <= 6
               for t in trees)
    assert plans[3][1]["student"] == "sklearn.linear_model.LinearRegression" and plans[3][1]["student_params"] == {}
