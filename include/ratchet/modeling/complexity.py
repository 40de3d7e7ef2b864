"""How complex a fitted model is, counted one way per estimator family (`FAMILIES`, the one place that says how), so
that a search can prefer the simpler of two trials that predict about as well (`modeling.simplicity`).

The count is of fitted parameters, the numbers a fit learnt and a prediction reads: a linear model's nonzero
coefficients and intercepts, a tree's nodes (summed over every tree of an ensemble), a support vector machine's
support vectors' values and dual coefficients, a neural network's weights and biases, the training values a
nearest-neighbours or kernel model keeps. A family the table does not know is counted by its artifact's size in
8-byte words (the size of the numbers it stores, had they all been floats), so every model gets a count in one
unit. Only the estimator is counted: the preprocessing a model's pipeline adds (one-hot encoding, imputation) is
the same for every trial of a model.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ARTIFACT_WORD_BYTES = 8  # a family without a count: its artifact's bytes / 8
PREDICT_REPEATS = 3


@dataclass(frozen=True)
class Complexity:
    """A fitted model's size in fitted parameters, what was counted, and how fast it predicts."""

    parameters: int
    counted: str  # what the parameters are ("tree nodes", "nonzero coefficients", ...)
    predict_us: float  # microseconds per row, predicting a batch of rows

    def as_dict(self) -> dict[str, Any]:
        """As JSON: what a trial keeps."""
        return asdict(self)


def _sizes(*arrays: Any) -> int:
    return int(sum(np.size(a) for a in arrays))


# family -> (the fitted attribute that marks it, what is counted, the count); the first that matches counts
FAMILIES: tuple[tuple[str, str, Callable[[Any], int]], ...] = (
    ("_predictors", "tree nodes", lambda e: sum(len(tree.nodes) for trees in e._predictors for tree in trees)),
    ("tree_", "tree nodes", lambda e: int(e.tree_.node_count)),
    ("support_vectors_", "support vectors' values and dual coefficients",
     lambda e: _sizes(e.support_vectors_, e.dual_coef_, e.intercept_)),
    ("coefs_", "weights and biases", lambda e: _sizes(*e.coefs_, *e.intercepts_)),
    ("coef_", "nonzero coefficients", lambda e: int(np.count_nonzero(e.coef_) + np.count_nonzero(e.intercept_))),
    ("X_fit_", "dual coefficients and kept training values", lambda e: _sizes(e.dual_coef_, e.X_fit_)),
    ("n_samples_fit_", "kept training values", lambda e: int(e.n_samples_fit_ * (e.n_features_in_ + 1))),
    ("constant_", "constants", lambda e: _sizes(e.constant_)),
    ("class_prior_", "class priors", lambda e: _sizes(e.class_prior_)),
)


def estimator_of(model: Any) -> Any:
    """The fitted estimator inside Ratchet's wrappers: a decision threshold (`modeling.threshold`) around a
    pipeline whose last step it is (`features.make_estimator`)."""
    from sklearn.pipeline import Pipeline

    from ratchet.modeling.threshold import ThresholdClassifier

    while True:
        if isinstance(model, ThresholdClassifier):
            model = model.estimator_
        elif isinstance(model, Pipeline):
            model = model.steps[-1][1]
        else:
            return model


def parameter_count(model: Any) -> tuple[int, str]:
    """(fitted parameters, what was counted) of a fitted model (see the module); an ensemble (`estimators_`: a
    forest, gradient boosting, bagging, voting, stacking) is the sum of its members and of a stacking's final
    estimator."""
    estimator = estimator_of(model)
    members = getattr(estimator, "estimators_", None)
    if members is not None:
        members = [*(members.ravel() if isinstance(members, np.ndarray) else members),
                   getattr(estimator, "final_estimator_", None)]
        counts = [parameter_count(m) for m in members if m is not None]
        kinds = sorted({kind for _, kind in counts})
        return sum(n for n, _ in counts), f"{' + '.join(kinds)} over {len(counts)} members"
    for marker, counted, count in FAMILIES:
        if hasattr(estimator, marker):
            return count(estimator), counted
    from ratchet.modeling import artifacts

    return artifacts.dump(estimator).size_bytes // ARTIFACT_WORD_BYTES, "artifact bytes / 8"


def measure(model: Any, X: Any) -> Complexity:
    """The model's `parameter_count` and its prediction time per row on the rows of `X` (one batch; the fastest of
    PREDICT_REPEATS, since a busy machine only ever adds time)."""
    parameters, counted = parameter_count(model)
    seconds = []
    for _ in range(PREDICT_REPEATS):
        started = time.perf_counter()
        model.predict(X)
        seconds.append(time.perf_counter() - started)
    return Complexity(parameters, counted, min(seconds) * 1e6 / max(len(X), 1))
