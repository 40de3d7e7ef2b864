"""Estimators whose fit takes as long as a test says: the trials that `search.trial_timeout_seconds` and
`search.time_budget_minutes` stop. Built into specs directly (`EstimatorSpec`): the YAML accepts only scikit-learn's."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin


class SleepyRegressor(RegressorMixin, BaseEstimator):
    """Sleeps `seconds` in each fit (after writing its process id to `pid_file`, if given), then predicts the mean."""

    def __init__(self, seconds: float = 0.0, pid_file: str | None = None):
        self.seconds = seconds
        self.pid_file = pid_file

    def fit(self, X, y):
        if self.pid_file:
            Path(self.pid_file).write_text(str(os.getpid()))
        time.sleep(self.seconds)
        self.mean_ = float(np.mean(y))
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)
