"""Features (`ratchet.modeling.features`): target lags by calendar day."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from source_helpers import sample_frame
from spec_factory import build_spec

from ratchet.modeling import features, sources


def test_lags_are_looked_up_by_calendar_day_so_gaps_never_shift_them():
    frame = sample_frame(20).drop(index=[10]).reset_index(drop=True)  # 2024-01-11 is missing
    spec = build_spec(name="m", table="s.t", source={"target_lags": [1], "features": ["x"]})
    X, y, times = features.make_xy(spec, sources.validate_frame(spec, frame))
    by_day = dict(zip(frame["day"], frame["y"], strict=True))
    assert pd.Timestamp("2024-01-12") not in set(times)  # its lag (the missing day) is unknown: dropped
    for lag, day in zip(X["target_lag_1"], times, strict=True):
        assert lag == by_day[day - pd.Timedelta(days=1)]


def test_lags_by_rows_take_the_previous_row_so_business_days_keep_every_row():
    frame = sample_frame(21)
    frame = frame[frame["day"].dt.dayofweek < 5].reset_index(drop=True)  # business days only
    spec = build_spec(name="m", table="s.t", source={"target_lags": [1], "features": ["x"], "lags_by": "rows"})
    valid = sources.validate_frame(spec, frame)
    X, _, times = features.make_xy(spec, valid)
    assert len(X) == len(frame) - 1  # only the first row lacks its lag
    monday = times[times.dt.dayofweek == 0].index[0]
    assert X["target_lag_1"][monday] == frame["y"][frame["day"] == times[monday] - pd.Timedelta(days=3)].item()
    by_days = build_spec(name="m", table="s.t", source={"target_lags": [1], "features": ["x"]})
    assert features.data_summary(by_days, valid)["rows_without_lags"] == 1 + (times.dt.dayofweek == 0).sum()


def test_missing_targets_are_dropped_and_counted_in_the_data_summary():
    frame = sample_frame(30)
    frame.loc[[4, 5, 17], "y"] = float("nan")
    spec = build_spec(name="m", table="s.t", source={"target_lags": [1], "features": ["x"]})
    valid = sources.validate_frame(spec, frame)
    assert len(valid) == 27 and valid["y"].notna().all()
    summary = features.data_summary(spec, valid)
    # rows 6 and 18 lose their lag 1 (the day before has no target), and the first row has none
    assert summary == {"rows": 24, "dropped_missing_target": 3, "rows_without_lags": 3, "lags_by": "periods",
                       "frequency": "day", "series": 1}


def test_categorical_features_are_dense_for_every_estimator_and_unseen_categories_are_tolerated():
    frame = sample_frame(60)
    spec = build_spec(name="m", table="s.t", source={"features": ["x", "kind"], "categorical": ["kind"]},
                      estimators=[{"class": "sklearn.ensemble.HistGradientBoostingRegressor"}])
    X, y, _ = features.make_xy(spec, sources.validate_frame(spec, frame))
    model = features.make_estimator(spec, spec.estimators[0], {"max_iter": 10}).fit(X, y)  # sparse would raise
    unseen = X.head(3).assign(kind="never seen")
    assert len(model.predict(unseen)) == 3
    prepared = model[:-1].transform(unseen)
    assert not hasattr(prepared, "toarray")  # the one-hot output is a dense array
    assert prepared.dtype == np.float64  # float32 ones and zeros, joined to the numeric columns at full precision


def test_a_classifiers_target_lags_are_one_hot_class_labels():
    frame = sample_frame(60).assign(label=lambda f: f["kind"])
    spec = build_spec(name="c", table="s.t", task="classification",
                      source={"target": "label", "features": ["x"], "target_lags": [1]},
                      estimators=[{"class": "sklearn.linear_model.LogisticRegression"}],
                      baselines=["majority"])
    X, y, _ = features.make_xy(spec, sources.validate_frame(spec, frame))
    assert features.categorical_columns(spec) == ["target_lag_1"] and X["target_lag_1"].dtype == object
    model = features.make_estimator(spec, spec.estimators[0], {}).fit(X, y)
    assert set(model.predict(X)) <= {"a", "b"}


def test_contract_inputs_settled_on_versions_keep_their_inputs_and_let_go_of_the_rows_read():
    frame = sample_frame(30)
    spec = build_spec(name="m", table="s.t", source={"features": ["x", "kind"], "categorical": ["kind"]})
    inputs = features.ContractInputs(spec, frame)
    narrower = {**spec.source.contract(["x"], "day")}
    inputs.settle([(3, narrower)])
    inputs_of = [c for c in inputs.of(3, narrower)[1].columns if features.is_model_input(c)]
    assert inputs.raw is None and inputs_of == ["x"]
    today = [c for c in inputs.today()[0].columns if features.is_model_input(c)]
    assert today == ["x", "kind"]  # today's YAML is built before any settling
    with pytest.raises(RuntimeError, match=r"v4's inputs were not built before the rows read were let go"):
        inputs.of(4, {**narrower, "features": ["kind"], "categorical": ["kind"]})


def test_make_xy_shares_the_validated_rows_columns_and_validation_leaves_the_rows_read_as_they_were():
    frame = sample_frame(30).assign(flag=lambda f: f["x"] > 0)
    spec = build_spec(name="m", table="s.t", source={"features": ["x", "kind", "flag"], "categorical": ["kind"]})
    before = frame.copy()
    valid = sources.validate_frame(spec, frame)
    X, _, _ = features.make_xy(spec, valid)
    pd.testing.assert_frame_equal(frame, before)  # the flag became a number and kind text only in `valid`
    assert valid["flag"].dtype == float and isinstance(valid.index, pd.RangeIndex)
    assert np.shares_memory(X["x"].to_numpy(), valid["x"].to_numpy())  # no copy of millions of events
