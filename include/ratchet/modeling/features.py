"""Target lags and the estimator pipeline: how rows become the features every stored model sees.

Search, back-test, now-test, golden cases and predictions all build their inputs here, so a stored
estimator always sees columns built the same way.
"""
from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.modeling.baselines import HELPER_PREFIX, ROW, SERIES, helper_lag
from ratchet.modeling.frequency import frequency_of, series_codes, shifted
from ratchet.modeling.slices import slice_column
from ratchet.modeling.sources import (
    DROPPED_MISSING_TARGET,
    category_text,
    category_texts,
    checked_rows,
    feature_columns,
)
from ratchet.specs.model import seasonal_period

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from ratchet.specs.model import EstimatorSpec, ModelSpec

log = logging.getLogger(__name__)


def is_model_input(column: str) -> bool:
    """False for the baselines' helper lag columns, which no learned model and no golden case uses."""
    return not column.startswith(HELPER_PREFIX)


def lag_name(lag: int) -> str:
    """The feature column of a target lag: 'target_lag_<k>'."""
    return f"target_lag_{lag}"


def make_xy(spec: ModelSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Features (with target lags), target and times, aligned.

    Lags are taken within each series (`source.series`), in one vectorised pass. `source.lags_by: periods` (the
    default): a lag of k is the target of the same series exactly k periods of the rows' frequency earlier, looked
    up by time, so a gap in the data never turns into a wrong lag; a row whose period k back is absent has no lag.
    `days`: k calendar days earlier. `rows`: the target k rows earlier in its series (business-day data: Friday is
    Monday's lag 1). Rows lacking one of the model's own lags are dropped and counted (`rows_without_lags`); the
    baselines' helper columns (lags in periods, or rows under `lags_by: rows`, and the series) may be empty (the
    baselines fall back to the series' training mean or the majority). Each `evaluation.slices` column is copied
    into a helper column as text (`modeling.slices`).
    """
    src = spec.source
    X = pd.DataFrame({c: frame[c].to_numpy() for c in feature_columns(spec, frame)}, copy=False)  # no copy made
    lagged = _lagger(spec, frame, src.lags_by)
    for lag in src.target_lags:
        X[lag_name(lag)] = lagged(lag)
    helper = lagged if src.lags_by != "days" else _lagger(spec, frame, "periods")
    for lag, column in baseline_lags(spec).items():
        X[column] = helper(lag)
    if src.series:
        X[SERIES] = series_labels(frame, src.series)
    if src.events:
        X[ROW] = frame[src.id].to_numpy()  # as read: a label per event ("id=17") is made where one is needed
    for column in spec.evaluation.slices:  # rows a client sends may lack a slice column that is no feature
        if column in frame:
            X[slice_column(column)] = _as_text(frame[column]).to_numpy(dtype=object)
    keep = X[[lag_name(lag) for lag in src.target_lags]].notna().all(axis=1).to_numpy()
    if not keep.all():
        log.info("model %r: %d of %d rows have no target lag %s (%s) and are left out",
                 spec.name, int((~keep).sum()), len(keep), list(src.target_lags), src.lags_by)
    times = frame[src.key.time]
    if keep.all():  # no copy of millions of events that all have their inputs
        return X, frame[src.target].reset_index(drop=True), times.reset_index(drop=True)
    return (X[keep].reset_index(drop=True), frame[src.target][keep].reset_index(drop=True),
            times[keep].reset_index(drop=True))


def baseline_lags(spec: ModelSpec) -> dict[int, str]:
    """lag -> helper column the baselines read: 1 (last value, always: a classifier's too) and each
    `seasonal_naive_<N>` baseline's N; none for events, which have no earlier row of their own."""
    if spec.source.events:
        return {}
    lags = {1, *(seasonal_period(b) for b in spec.baselines if seasonal_period(b))}
    return {lag: helper_lag(lag) for lag in sorted(lags)}


def series_labels(frame: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """Each row's series as one text ("store=1, dept=3"), its values written as `series_label` writes them: what
    per-series baselines, results, the service's cache and its log name a series by."""
    joined = columns[0] + "=" + _as_text(frame[columns[0]])
    for column in columns[1:]:
        joined = joined + f", {column}=" + _as_text(frame[column])
    return joined.to_numpy(dtype=object)


def id_labels(spec: ModelSpec, ids: pd.Series) -> np.ndarray:
    """Events' ids (`make_xy`'s helper column) as their served answers are keyed and logged ("application_id=17",
    `series_label`)."""
    return series_labels(pd.DataFrame({spec.source.id: ids.to_numpy()}), (spec.source.id,))


def _as_text(column: pd.Series) -> pd.Series:
    """Key values as `sources.category_text` writes them, by column where it can (a whole float is '3', not '3.0')."""
    if pd.api.types.is_integer_dtype(column) or (pd.api.types.is_string_dtype(column) and column.notna().all()):
        return column.astype(str)
    return pd.Series(category_texts(column), index=column.index)


def series_label(columns: tuple[str, ...], values: Mapping[str, Any]) -> str:
    """One series' label from its key values (a request's query parameters or a row's columns)."""
    return ", ".join(f"{c}={category_text(values[c])}" for c in columns)


def contract_of(spec: ModelSpec, frame: pd.DataFrame) -> dict[str, Any]:
    """The feature contract of a version trained on `frame` (validated under `spec`): its resolved features and
    the frequency its rows were validated at."""
    return spec.source.contract(feature_columns(spec, frame), frequency_of(spec, frame))


class ContractInputs:
    """`make_xy` of one read of the source under each version's feature contract, computed once per distinct
    contract: versions trained under different YAMLs are scored on the same rows read, each with its own inputs.
    Today's YAML is built first (`today`), so a version whose contract is today's reuses it."""

    def __init__(self, spec: ModelSpec, raw: pd.DataFrame, *, end: Any = None):
        self.spec, self.raw, self.end = spec, raw, end
        self.frame = checked_rows(spec, raw, end=end)  # the rows validated under today's YAML
        self._built: dict[str, tuple[pd.DataFrame, pd.Series, pd.Series]] = {
            _contract_key(contract_of(spec, self.frame)): make_xy(spec, self.frame)}

    def today(self) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
        """(X, y, times) under today's YAML: what the baselines and the month fingerprints see."""
        return self._built[_contract_key(contract_of(self.spec, self.frame))]

    def of(self, version: int, contract: Mapping[str, Any]) -> tuple[ModelSpec, pd.DataFrame, pd.Series, pd.Series]:
        """The version's spec (`ModelSpec.for_version`) and its (X, y, times).

        Raises:
            DataError: the source no longer satisfies the contract (a column dropped), naming column and version.
        """
        spec = self.spec.for_version(version, contract)
        key = _contract_key(contract)
        if key not in self._built:
            if self.raw is None:
                raise RuntimeError(f"v{version}'s inputs were not built before the rows read were let go (settle)")
            self._built[key] = make_xy(spec, checked_rows(spec, self.raw, end=self.end))
        return (spec, *self._built[key])

    def settle(self, versions: Iterable[tuple[int, Mapping[str, Any]]]) -> None:
        """Build these versions' inputs now and let go of the rows read: a back-test knows its contenders before its
        first month, and millions of events need not be held twice."""
        for version, contract in versions:
            self.of(version, contract)
        self.raw = None


def _contract_key(contract: Mapping[str, Any]) -> str:
    return json.dumps(contract, sort_keys=True)


def _lagger(spec: ModelSpec, frame: pd.DataFrame, by: str) -> Callable[[int], np.ndarray]:
    """lag(k): each row's target k periods, days or rows (`by`) earlier in its series, NaN where unknown."""
    src = spec.source
    target = frame[src.target].reset_index(drop=True)
    if by == "rows":
        if not src.series:
            return lambda lag: target.shift(lag).to_numpy()
        grouped = target.groupby(series_codes(frame, src.series))
        return lambda lag: grouped.shift(lag).to_numpy()
    times = frame[src.key.time].reset_index(drop=True)
    step = frequency_of(spec, frame) if by == "periods" else None
    keys = [frame[c].reset_index(drop=True) for c in src.series]
    by_key = pd.Series(target.to_numpy(), index=pd.MultiIndex.from_arrays([*keys, times]) if keys else times)

    def lag_of(lag: int) -> np.ndarray:
        back = times - pd.Timedelta(days=lag) if by == "days" else shifted(times, lag, step)
        return by_key.reindex(pd.MultiIndex.from_arrays([*keys, back]) if keys else back).to_numpy()
    return lag_of


def data_summary(spec: ModelSpec, frame: pd.DataFrame) -> dict[str, Any]:
    """What became of a source's rows (for logs, reports and status): none is lost without being counted.

    `rows` usable rows, `dropped_missing_target` left out for want of a target (`source.missing_target:
    drop`), `rows_without_lags` left out because a target lag is unknown (`source.lags_by`), the `frequency` the
    rows were validated at and how many `series` they hold.
    """
    usable = len(make_xy(spec, frame)[0])
    return {"rows": usable, "dropped_missing_target": int(frame.attrs.get(DROPPED_MISSING_TARGET, 0)),
            "rows_without_lags": len(frame) - usable, "lags_by": spec.source.lags_by,
            "frequency": frequency_of(spec, frame),
            "series": int(series_codes(frame, spec.source.series).max(initial=-1)) + 1}


def categorical_columns(spec: ModelSpec) -> list[str]:
    """Columns one-hot encoded: `source.categorical`, and a classifier's target lags (they are class labels)."""
    lags = [lag_name(lag) for lag in spec.source.target_lags] if spec.task == "classification" else []
    return [*spec.source.categorical, *lags]


def make_estimator(spec: ModelSpec, estimator_spec: EstimatorSpec, params: dict[str, Any]) -> Pipeline:
    """The estimator of a trial or version: one-hot categorical features, median-imputed numeric ones.

    The baselines' helper lag columns are dropped here, so a learned model only sees the lags
    its spec asks for. The one-hot output is dense, which every scikit-learn estimator accepts;
    a category not seen in training encodes as all zeros. Its zeros and ones are float32 (exact, and joined to
    the numeric columns as float64 all the same): a fit on millions of events holds half the memory for them.
    """
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    categorical = categorical_columns(spec)
    skipped = "|".join(re.escape(c) + "$" for c in categorical)
    numeric = make_column_selector(pattern=f"^(?!{HELPER_PREFIX}{'|' + skipped if skipped else ''})",
                                   dtype_include=np.number)
    prepare = ColumnTransformer(
        [("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32), categorical),
         ("numeric", SimpleImputer(strategy="median", keep_empty_features=True), numeric)],
        remainder="drop",
    )
    from ratchet.modeling.threshold import decided  # imports scikit-learn, as this function does

    estimator = estimator_spec.load_class()(**{**estimator_spec.params, **params})
    return decided(spec, Pipeline([("prepare", prepare), ("estimator", estimator)]))  # classification.threshold

