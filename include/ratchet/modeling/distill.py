"""Students: a lighter estimator trained on a teacher's outputs instead of the labels (distillation).

A student version's estimator is a `StudentRegressor` or a `StudentClassifier`. Its hyperparameters name the
teacher (class and every parameter) and the student (class and parameters); `fit(X, y)` fits the teacher on the
rows, then the student on the teacher's outputs on those same rows, and keeps only the fitted student (its
artifact, size and latency are the student's). So wherever a version is fitted (each search fold, each back-test
month, the version registered) the student learns from a teacher that saw only those training rows, and it is
scored against the true labels like any version: nothing downstream needs to know it is a student.

What the student fits (`targets_of`, recorded in the version's details):
- `predictions` (regression): the teacher's predictions are its target.
- `soft` (a classifier whose `fit` takes `sample_weight`): the teacher's class probabilities as soft targets.
  scikit-learn classifiers take one label per row, so each row is given once per class, labelled with that class
  and weighted by the teacher's probability of it (rows of zero weight left out): a tree's leaf then holds the
  teacher's mean probabilities, a logistic regression minimises the cross-entropy to them.
- `hard` (a classifier without `sample_weight`, or a teacher without probabilities): the teacher's predicted
  classes; a class the teacher never predicts gets probability 0.
- `positive` (a regressor student of a binary classifier): the teacher's probability of the positive class (the
  last of the two); the student's prediction, clipped to [0, 1], is that probability, and it decides like any
  classifier (at 0.5, or at `classification.threshold`, which wraps the student as it wraps any version).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_regressor

from ratchet.exceptions import DataError
from ratchet.modeling.search import sample
from ratchet.specs.model import TRUSTED_ESTIMATOR_MODULES, EstimatorSpec, load_class

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec

STUDENT = "student"  # the `sampling` a student's trials are recorded with, apart from the night's teacher trials
WRAPPERS = {"regression": "ratchet.modeling.distill.StudentRegressor",
            "classification": "ratchet.modeling.distill.StudentClassifier"}
TARGETS = {
    "predictions": "the teacher's predictions",
    "soft": "the teacher's class probabilities as soft targets (each row once per class, weighted by the teacher's "
            "probability of it)",
    "hard": "the teacher's predicted classes (hard targets: {reason})",
    "positive": "the teacher's probability of the positive class (a regression on P(positive))",
}
CACHED_TEACHERS = 8  # teachers' outputs kept per process: a student search's folds, and a few more


def targets_of(task: str, teacher: str, teacher_params: dict[str, Any], student: str) -> tuple[str, str]:
    """(kind, words) of what `student` fits from `teacher`: 'predictions', 'soft', 'hard' or 'positive' (module
    docstring), and the sentence the retrain log and the version's details say it in."""
    if task == "regression":
        return "predictions", TARGETS["predictions"]
    from sklearn.utils.validation import has_fit_parameter

    student_model = load_class(student)()
    if is_regressor(student_model):
        return "positive", TARGETS["positive"]
    if not hasattr(_build(teacher, teacher_params), "predict_proba"):
        return "hard", TARGETS["hard"].format(reason=f"the teacher {_name(teacher)} gives no probabilities")
    if has_fit_parameter(student_model, "sample_weight"):
        return "soft", TARGETS["soft"]
    return "hard", TARGETS["hard"].format(reason=f"{_name(student)}.fit takes no sample_weight")


@dataclass(frozen=True)
class TeacherOutputs:
    """A fitted teacher's outputs on its own training rows: predictions, and a classifier's classes and
    probabilities (None when it gives none)."""

    predictions: np.ndarray
    classes: np.ndarray | None = None
    proba: np.ndarray | None = None


class _TeacherCache:
    """The last CACHED_TEACHERS teachers' outputs, by teacher and training rows: a student search fits every trial
    on the same folds, whose teacher is the same whatever the student, so each fold's teacher is fitted once per
    process, not once per trial. (Keyed by the rows' content: a cache can never answer for other rows.)"""

    def __init__(self) -> None:
        self._outputs: OrderedDict[str, TeacherOutputs] = OrderedDict()
        self._lock = threading.Lock()

    def outputs(self, teacher: str, params: dict[str, Any], X: Any, y: Any) -> TeacherOutputs:
        import joblib

        key = joblib.hash((teacher, params, np.asarray(X), np.asarray(y)))
        with self._lock:
            if key in self._outputs:
                self._outputs.move_to_end(key)
                return self._outputs[key]
        model = _build(teacher, params).fit(X, y)
        proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
        outputs = TeacherOutputs(np.asarray(model.predict(X)), getattr(model, "classes_", None), proba)
        with self._lock:
            self._outputs[key] = outputs
            while len(self._outputs) > CACHED_TEACHERS:
                self._outputs.popitem(last=False)
        return outputs


TEACHERS = _TeacherCache()


class _Student(BaseEstimator):
    """What both students share: their hyperparameters (JSON, as a version stores them) and the student built from
    them. `teacher`, `student`: scikit-learn import paths; `*_params`: every keyword argument of each."""

    def __init__(self, teacher: str = "", teacher_params: dict[str, Any] | None = None, student: str = "",
                 student_params: dict[str, Any] | None = None):
        self.teacher = teacher
        self.teacher_params = teacher_params
        self.student = student
        self.student_params = student_params

    def _outputs(self, X: Any, y: Any) -> TeacherOutputs:
        return TEACHERS.outputs(self.teacher, self.teacher_params or {}, X, y)

    def _new_student(self) -> Any:
        return _build(self.student, self.student_params or {})


class StudentRegressor(RegressorMixin, _Student):
    """A regressor fitted on its teacher's predictions of the training rows (module docstring)."""

    def fit(self, X: Any, y: Any) -> StudentRegressor:
        """Fit the teacher on (X, y), then the student on X and the teacher's predictions; keep the student."""
        self.targets_ = "predictions"
        self.student_ = self._new_student().fit(X, self._outputs(X, y).predictions)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The student's predictions."""
        return self.student_.predict(X)


class StudentClassifier(ClassifierMixin, _Student):
    """A classifier (or a regressor of P(positive)) fitted on its teacher's outputs of the training rows: soft
    targets, hard ones, or the positive class's probability (`targets_of`); its `classes_` are the teacher's."""

    def fit(self, X: Any, y: Any) -> StudentClassifier:
        """Fit the teacher on (X, y), then the student on its outputs (`targets_`); keep the student.

        Raises:
            DataError: a regressor student of a label that is not binary, or of a teacher without probabilities.
        """
        outputs = self._outputs(X, y)
        self.classes_ = outputs.classes
        self.targets_, _ = targets_of("classification", self.teacher, self.teacher_params or {}, self.student)
        student = self._new_student()
        if self.targets_ == "positive":
            if outputs.proba is None or self.classes_.size != 2:
                why = ("the teacher gives no probabilities" if outputs.proba is None
                       else f"the training rows hold {self.classes_.size} classes")
                raise DataError(f"a regressor student ({_name(self.student)}) fits the teacher's probability of the "
                                f"positive class of a binary label, but {why}: use a classifier student")
            self.student_ = student.fit(X, outputs.proba[:, 1])
        elif self.targets_ == "soft":
            rows, weights, labels = soft_rows(outputs.proba, self.classes_)
            self.student_ = student.fit(_take(X, rows), labels, sample_weight=weights)
        else:
            self.student_ = student.fit(X, outputs.predictions)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """A column per class of `classes_`: the student's probabilities (0 for a class it never saw), or for a
        regressor student 1 - p and p, its prediction p clipped to [0, 1]."""
        if self.targets_ == "positive":
            positive = np.clip(np.asarray(self.student_.predict(X), dtype=float), 0.0, 1.0)
            return np.column_stack([1.0 - positive, positive])
        proba = self.student_.predict_proba(X)
        full = np.zeros((proba.shape[0], self.classes_.size))
        full[:, np.searchsorted(self.classes_, self.student_.classes_)] = proba
        return full

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def soft_rows(proba: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The soft-target expansion of n rows with probabilities `proba` (n × k): (row of each expanded row, its
    weight, its label): every row once per class, weighted by the probability of that class, zero weights left
    out (they would still count as samples in a tree's `min_samples_leaf`)."""
    n, k = proba.shape
    rows, labels = np.tile(np.arange(n), k), np.repeat(classes, n)
    weights = proba.T.reshape(-1)
    keep = weights > 0
    return rows[keep], weights[keep], labels[keep]


def check_students(spec: ModelSpec, y: Any) -> None:
    """Refuse, before anything is searched or stored, a regressor student of a classification label that is not
    binary (it could only fit the probability of one positive class).

    Raises:
        DataError: naming the student and the classes the training rows hold.
    """
    if spec.distill is None or spec.task != "classification":
        return
    classes = np.unique(np.asarray(y)).size
    for i, student in enumerate(spec.distill.students):
        if classes != 2 and is_regressor(student.load_class()()):
            raise DataError(f"{spec.label}: distill.students[{i}] {student.class_path} is a regressor: it fits the "
                            f"teacher's probability of the positive class of a binary label, and the training rows "
                            f"hold {classes} classes: use a classifier student")


def student_plans(spec: ModelSpec, teacher_class: str, teacher_params: dict[str, Any],
                  rng: np.random.Generator) -> list[tuple[EstimatorSpec, dict[str, Any], str]]:
    """The (estimator spec, params, sampling) of every student trial (`search.run_trials` runs them): per student
    of `distill.students`, `distill.n_trials` draws of its search space (one trial when it has none), each the
    student wrapper's full hyperparameters around the teacher's (its fixed and searched parameters)."""
    wrapper = EstimatorSpec(WRAPPERS[spec.task])
    plans = []
    for student in spec.distill.students:
        for _ in range(spec.distill.n_trials if student.search_space else 1):
            params = {"teacher": teacher_class, "teacher_params": teacher_params, "student": student.class_path,
                      "student_params": {**student.params, **sample(student.search_space, rng)}}
            plans.append((wrapper, params, STUDENT))
    return plans


def _build(class_path: str, params: dict[str, Any]) -> Any:
    """The estimator a student's hyperparameters name; only scikit-learn's (the artifact format's trusted types),
    whatever the stored hyperparameters say."""
    if not class_path.startswith(TRUSTED_ESTIMATOR_MODULES):
        raise ValueError(f"a student's teacher and student come from {list(TRUSTED_ESTIMATOR_MODULES)}, not "
                         f"{class_path!r}")
    return load_class(class_path)(**params)


def _take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if hasattr(X, "iloc") else X[rows]


def _name(class_path: str) -> str:
    return class_path.rpartition(".")[2]


def shown(estimator_class: str, hyperparameters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The estimator and parameters a page or card names for a version: a student's own (its teacher is in its
    details), else the version's."""
    if estimator_class in WRAPPERS.values():
        return hyperparameters["student"], hyperparameters.get("student_params") or {}
    return estimator_class, hyperparameters
