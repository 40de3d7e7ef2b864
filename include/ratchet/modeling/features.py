"""Target lags and the estimator pipeline: how rows become the features every stored model sees.

Search, back-test, now-test, golden cases and predictions all build their inputs here, so a stored
estimator always sees columns built the same way.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.modeling.baselines import HELPER_PREFIX, LAG_1, LAG_7
from ratchet.modeling.sources import feature_columns

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from ratchet.specs.model import EstimatorSpec, ModelSpec

BASELINE_LAGS = {1: LAG_1, 7: LAG_7}


def is_model_input(column: str) -> bool:
    """False for the baselines' helper lag columns, which no learned model and no golden case uses."""
    return not column.startswith(HELPER_PREFIX)


def lag_name(lag: int) -> str:
    """The feature column of a target lag: 'target_lag_<k>'."""
    return f"target_lag_{lag}"


def make_xy(spec: ModelSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features (with target lags by calendar day), target and times, aligned.

    A lag is the target exactly `k` days earlier, looked up by date, so gaps in the data never
    turn into wrong lags. Rows lacking one of the model's own lags are dropped; the baselines'
    lag columns may be empty (the baselines fall back to the training mean).
    """
    src = spec.source
    times = frame[src.time_column]
    by_time = pd.Series(frame[src.target].to_numpy(), index=times)
    X = frame[feature_columns(spec, frame)].copy()
    for lag in src.target_lags:
        X[lag_name(lag)] = by_time.reindex(times - pd.Timedelta(days=lag)).to_numpy()
    for lag, column in BASELINE_LAGS.items():
        X[column] = by_time.reindex(times - pd.Timedelta(days=lag)).to_numpy()
    keep = X[[lag_name(lag) for lag in src.target_lags]].notna().all(axis=1).to_numpy()
    return (X[keep].reset_index(drop=True), frame[src.target][keep].reset_index(drop=True),
            times[keep].reset_index(drop=True))


def make_estimator(spec: ModelSpec, estimator_spec: EstimatorSpec, params: dict[str, Any]) -> Pipeline:
    """The estimator of a trial or version: one-hot categorical features, median-imputed numeric ones.

    The baselines' helper lag columns are dropped here, so a learned model only sees the lags
    its spec asks for.
    """
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    numeric = make_column_selector(pattern=f"^(?!{HELPER_PREFIX})", dtype_include=np.number)
    prepare = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore"), list(spec.source.categorical)),
         ("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric)],
        remainder="drop",
    )
    estimator = estimator_spec.load_class()(**{**estimator_spec.params, **params})
    return Pipeline([("prepare", prepare), ("estimator", estimator)])

