"""Event sources (`source.frequency: event`): rows keyed by id, labels that arrive late, slices.

What is checked: `sources.validate_frame` keys events by `source.id` (ties in time are fine, a repeated id is not)
and leaves unlabelled events out without calling them missing targets; `labelled_end` and `unlabelled` place the
matured labels; `features.make_xy` builds no lags for events and keeps each event's id label and its slice values
for the results; `slices.per_slice` and `requirements.check_per_slice` give each slice's metrics and name a
breaching slice.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from spec_factory import build_spec

from ratchet.evaluation.requirements import check_per_slice
from ratchet.exceptions import DataError
from ratchet.modeling import metrics, sources
from ratchet.modeling.baselines import HELPER_PREFIX, ROW, SERIES
from ratchet.modeling.features import id_labels, make_xy
from ratchet.modeling.frequency import frequency_of
from ratchet.modeling.slices import per_slice, slice_column

EVENTS = {"task": "classification", "estimators": [{"class": "sklearn.linear_model.LogisticRegression"}],
          "source": {"time_column": "at", "target": "repaid", "frequency": "event", "id": "application_id",
                     "label_delay_days": 7, "categorical": ["band"]},
          "evaluation": {"slices": ["band"]}}


def _events(n: int = 40, *, seed: int = 0) -> pd.DataFrame:
    """`n` applications, four to a second, two salary bands, a binary label."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"application_id": np.arange(100, 100 + n),
                         "at": pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(n) // 4, unit="s"),
                         "band": np.where(np.arange(n) % 2, "high", "low"), "amount": rng.normal(10, 2, n),
                         "repaid": rng.integers(0, 2, n)})


def test_events_sharing_a_time_are_rows_of_their_own_and_are_read_at_event_frequency():
    spec = build_spec(name="loans", **EVENTS)
    frame = sources.validate_frame(spec, _events())
    assert len(frame) == 40 and frame["at"].duplicated().sum() == 30 and frequency_of(spec, frame) == "event"
    assert sources.feature_columns(spec, frame.columns) == ["band", "amount"]  # not the id, not the time


def test_a_repeated_id_is_an_error_naming_it():
    spec = build_spec(name="loans", **EVENTS)
    rows = _events()
    rows.loc[7, "application_id"] = 103
    with pytest.raises(DataError, match=r"duplicate ids in 'application_id' \(source.id\), first 103 \(1 "
                                        r"duplicates\); each event needs its own id"):
        sources.validate_frame(spec, rows)


def test_unlabelled_events_wait_instead_of_being_missing_targets_even_under_missing_target_error():
    spec = build_spec(name="loans", **{**EVENTS, "source": {**EVENTS["source"], "missing_target": "error"}})
    rows = _events().astype({"repaid": float})
    rows.loc[[3, 30, 31], "repaid"] = np.nan
    frame = sources.validate_frame(spec, rows)
    assert len(frame) == 37 and frame["repaid"].dtype == np.int64  # the labels stay the classes 0 and 1
    assert sources.unlabelled(spec, rows, rows["at"].iloc[28], rows["at"].iloc[39] + pd.Timedelta(seconds=1)) == 2
    rows["repaid"] = np.nan
    with pytest.raises(DataError, match="no event is labelled yet"):
        sources.validate_frame(spec, rows)


def test_labels_mature_label_delay_days_after_the_end():
    spec = build_spec(name="loans", **EVENTS)
    assert sources.labelled_end(spec, pd.Timestamp("2026-03-10 06:00", tz="UTC")) == pd.Timestamp("2026-03-03 06:00")


def test_make_xy_builds_no_lags_for_events_and_keeps_each_events_id_and_slice():
    spec = build_spec(name="loans", **EVENTS)
    X, y, times = make_xy(spec, sources.validate_frame(spec, _events()))
    helpers = sorted(c for c in X.columns if c.startswith(HELPER_PREFIX))
    assert helpers == sorted([ROW, slice_column("band")]) and SERIES not in X
    assert X[ROW].iloc[0] == 100 and X[slice_column("band")].iloc[:2].tolist() == ["low", "high"]
    assert id_labels(spec, X[ROW])[:2].tolist() == ["application_id=100", "application_id=101"]  # as served
    assert len(X) == len(y) == len(times) == 40


def test_each_slice_gets_the_metrics_of_its_own_rows_and_a_breaching_slice_is_named():
    spec = build_spec(name="loans", **{**EVENTS, "requirements": [
        {"metric": "accuracy", "min": 0.7, "scope": "nowtest", "per_slice": True, "min_rows": 10}]})
    X, y, _ = make_xy(spec, sources.validate_frame(spec, _events()))
    predictions = np.where(X["band"] == "high", y, 1 - y)  # right on every high band, wrong on every low one
    scores = metrics.Scores({}, predictions, {}, np.where(predictions == y, 0.1, 2.0))
    slices = per_slice(spec, X, y, scores)
    assert slices == {"band=high": {"rows": 20, "accuracy": 1.0, "log_loss": pytest.approx(0.1)},
                      "band=low": {"rows": 20, "accuracy": 0.0, "log_loss": pytest.approx(2.0)}}
    (breach,) = check_per_slice(spec.requirements, spec.requirements, slices, {}, 5)
    assert breach.slice == "band=low" and breach.describe() == "slice band=low: accuracy 0 < min 0.7 (now-test)"
    assert check_per_slice(spec.requirements, spec.requirements, {"band=low": {**slices["band=low"], "rows": 9}},
                           {}, 5) == []  # below its min_rows: no verdict
