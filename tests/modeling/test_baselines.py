"""Baselines (`ratchet.modeling.baselines`): their classes and probabilities line up with what they learned."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ratchet.modeling.baselines import LAG_1, LastValueClassifier, MajorityClassifier


def test_last_value_never_predicts_a_class_it_did_not_learn_and_its_probabilities_match_its_prediction():
    X = pd.DataFrame({LAG_1: ["a", "a", "b", None, "a"]})
    model = LastValueClassifier().fit(X, ["a", "b", "b", "a", "a"])
    later = pd.DataFrame({LAG_1: ["b", "z", None]})  # "z" appeared after training
    predicted = model.predict(later)
    assert list(predicted) == ["b", "a", "a"]  # unknown or unseen yesterday: the majority class
    proba = model.predict_proba(later)
    assert proba.shape == (3, 2) and np.allclose(proba.sum(axis=1), 1)
    assert list(model.classes_[proba.argmax(axis=1)]) == list(predicted)


def test_majority_gives_the_training_frequencies_in_the_order_of_its_classes():
    model = MajorityClassifier().fit(pd.DataFrame({"x": range(5)}), ["b", "a", "b", "c", "b"])
    assert list(model.classes_) == ["a", "b", "c"] and list(model.predict_proba(pd.DataFrame({"x": [0]}))[0]) == [
        0.2, 0.6, 0.2]
