"""User metrics as a model YAML names them (`metrics: {cost: user_metrics:expected_loss}`): real functions the
tests import by path, the way Ratchet imports a user's own package."""
from __future__ import annotations

import numpy as np

MISSED_POSITIVE, FALSE_ALARM = 5.0, 1.0  # what a missed "yes" and a needless one cost


def expected_loss(y_true, y_pred):
    """Mean cost per row of decided classes: a missed positive costs 5, a false alarm 1."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    missed = (y_true == "yes") & (y_pred != "yes")
    alarm = (y_true != "yes") & (y_pred == "yes")
    return float(np.mean(MISSED_POSITIVE * missed + FALSE_ALARM * alarm))


def expected_loss_proba(y_true, y_pred, proba):
    """The same costs weighed by probability: each row's expected cost had it been decided by its probability."""
    positive = np.asarray(proba)[:, -1]
    actual = np.asarray(y_true) == "yes"
    return float(np.mean(np.where(actual, MISSED_POSITIVE * (1 - positive), FALSE_ALARM * positive)))


def absolute_excess(y_true, y_pred):
    """A regression cost: the mean of the amounts predicted above the actual (over-forecasting only)."""
    return float(np.mean(np.maximum(np.asarray(y_pred, float) - np.asarray(y_true, float), 0.0)))


def broken(y_true, y_pred):
    """A metric whose code fails on every call."""
    raise ZeroDivisionError("no budget left")


def not_a_number(y_true, y_pred):
    """A metric that returns no finite number."""
    return float("nan")


NOT_CALLABLE = 3


def one_argument(y_true):
    """A function that cannot be called as f(y_true, y_pred)."""
    return 0.0
