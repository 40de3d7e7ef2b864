"""Frequencies and panels in the rows (`ratchet.modeling.frequency`, `sources.validate_frame`, `features.make_xy`):
the frequency inferred or checked, lags counted in periods within each series, per-series baselines."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from spec_factory import build_spec

from ratchet.exceptions import DataError
from ratchet.modeling import baselines, features, frequency, sources


def _series(start: str, periods: int, freq: str, **columns) -> pd.DataFrame:
    rng = np.random.default_rng(periods)
    return pd.DataFrame({"day": pd.date_range(start, periods=periods, freq=freq), "x": rng.normal(size=periods),
                         "y": rng.normal(size=periods), **columns})


def _spec(**source):
    return build_spec(name="m", table="s.t", source={"target_lags": [1], "features": ["x"], **source})


@pytest.mark.parametrize(("freq", "expected"), [("30min", "30min"), ("h", "hour"), ("D", "day"),
                                                ("W-FRI", "week"), ("MS", "month"), ("ME", "month")])
def test_the_frequency_is_inferred_from_the_most_common_step(freq, expected):
    frame = _series("2024-01-05", 60, freq).drop(index=[7, 8, 30]).reset_index(drop=True)  # gaps are allowed
    valid = sources.validate_frame(_spec(), frame)
    assert valid.attrs[frequency.FREQUENCY] == expected


def test_business_days_are_daily_rows_with_gaps():
    frame = _series("2024-01-01", 60, "B")
    assert sources.validate_frame(_spec(lags_by="rows"), frame).attrs[frequency.FREQUENCY] == "day"


def test_a_declared_frequency_the_rows_do_not_have_is_refused_naming_rows():
    frame = _series("2024-01-01", 100, "30min")
    with pytest.raises(DataError, match=r"source.frequency is 'hour' but 99 row\(s\) are not a whole number of "
                                        r"periods .* e\.g\. day = 2024-01-01 00:30:00 \(0 days 00:30:00 after"):
        sources.validate_frame(_spec(frequency="hour"), frame)


def test_rows_at_mixed_frequencies_are_refused_even_when_nothing_is_declared():
    frame = _series("2024-01-01", 40, "D")
    frame.loc[20, "day"] = frame.loc[19, "day"] + pd.Timedelta(hours=12)
    with pytest.raises(DataError, match=r"the frequency inferred from the rows is 'day' but 2 row\(s\)"):
        sources.validate_frame(_spec(), frame)


def test_a_step_that_is_no_frequency_is_refused_asking_to_declare_one():
    frame = _series("2024-01-01", 40, "2D")
    with pytest.raises(DataError, match="cannot infer source.frequency: the most common step .* is 2 days 00:00"):
        sources.validate_frame(_spec(), frame)


def test_hourly_lags_count_hours_and_a_seasonal_naive_names_its_season_in_periods():
    frame = _series("2024-01-01", 24 * 10, "h").drop(index=[100]).reset_index(drop=True)
    spec = build_spec(name="m", table="s.t", source={"target_lags": [1, 24], "features": ["x"], "frequency": "hour"},
                      baselines=["last_value", "seasonal_naive_24", "mean"])
    X, _, times = features.make_xy(spec, sources.validate_frame(spec, frame))
    by_time = dict(zip(frame["day"], frame["y"], strict=True))
    for row in range(len(X)):
        assert X["target_lag_24"][row] == by_time[times[row] - pd.Timedelta(hours=24)]
        assert X["_baseline_lag_24"][row] == X["target_lag_24"][row]
    assert pd.Timestamp("2024-01-05 05:00") not in set(times)  # its hour before is the missing row
    seasonal = baselines.make_baseline("seasonal_naive_24", "regression").fit(X, frame["y"][:len(X)])
    assert np.array_equal(seasonal.predict(X), X["target_lag_24"].to_numpy())


def _panel() -> pd.DataFrame:
    """Two stores on different days (b starts later and skips a day), rows sorted by day, stores interleaved."""
    a = _series("2024-01-01", 40, "D", store="a")
    b = _series("2024-01-10", 30, "D", store="b").drop(index=[5]).assign(y=lambda f: f["y"] + 100)
    return pd.concat([a, b]).sort_values(["day", "store"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("lags_by", ["periods", "rows"])
def test_a_panels_lags_never_cross_from_one_series_to_another(lags_by):
    frame = _panel()
    spec = _spec(series=["store"], target_lags=[1, 2], lags_by=lags_by)
    X, y, times = features.make_xy(spec, sources.validate_frame(spec, frame))
    stores = X["_baseline_series"].str.removeprefix("store=")
    for store, part in frame.groupby("store"):
        values = part.set_index("day")["y"]
        mine = (stores == store).to_numpy()
        for lag in (1, 2):
            if lags_by == "rows":
                expected = values.shift(lag).reindex(times[mine]).to_numpy()
            else:
                expected = values.reindex(times[mine] - pd.Timedelta(days=lag)).to_numpy()
            assert np.array_equal(X[f"target_lag_{lag}"][mine].to_numpy(), expected)
    assert (y[(stores == "b").to_numpy()] > 50).all() and (X["target_lag_1"][(stores == "b").to_numpy()] > 50).all()
    skipped = 0 if lags_by == "rows" else 2  # the day after b's gap and the day after that lack a lag by period
    assert len(X) == len(frame) - 2 * 2 - skipped


def test_duplicate_rows_of_a_series_name_its_key_and_time():
    frame = pd.concat([_panel(), _panel().iloc[[7]]]).sort_values("day", kind="stable").reset_index(drop=True)
    with pytest.raises(DataError, match=r"duplicate rows for series \['store'\] and time 'day', first store = \w, "
                                        r"day = 2024-01-0\d 00:00:00 \(1 duplicates\)"):
        sources.validate_frame(_spec(series=["store"]), frame)


def test_per_series_baselines_fall_back_to_their_own_series_mean():
    frame = _panel()
    spec = _spec(series=["store"], target_lags=[1])
    X, y, _ = features.make_xy(spec, sources.validate_frame(spec, frame))
    b_rows = (X["_baseline_series"] == "store=b").to_numpy()
    mean = baselines.make_baseline("mean", "regression").fit(X, y)
    assert np.allclose(mean.predict(X)[b_rows], y[b_rows].mean())
    assert abs(mean.predict(X)[~b_rows].mean() - y[~b_rows].mean()) < 1e-9
    unknown = X.copy()
    unknown["_baseline_lag_1"] = np.nan
    last = baselines.make_baseline("last_value", "regression").fit(X, y)
    assert np.allclose(last.predict(unknown)[b_rows], y[b_rows].mean())  # never the other store's level


def test_a_weekly_series_last_value_is_the_week_before():
    frame = _series("2011-02-04", 80, "W-FRI")
    spec = _spec(target_lags=[1, 52], lags_by="days")  # lags in calendar days: 1 and 52 days never exist weekly
    with pytest.raises(DataError, match="too little history|no rows"):
        sources.require_rows(spec, features.make_xy(spec, sources.validate_frame(spec, frame))[0], 1, "a fit")
    spec = _spec(target_lags=[1])
    X, _, times = features.make_xy(spec, sources.validate_frame(spec, frame))
    assert (X["_baseline_lag_1"].to_numpy() == frame["y"].to_numpy()[:-1][-len(X):]).all()
    assert (times.diff().dropna() == pd.Timedelta(days=7)).all()
