"""Months (`ratchet.modeling.months`): fingerprints per month and the complete months of a source."""
from __future__ import annotations

import datetime as dt

import pandas as pd
from source_helpers import sample_frame
from spec_factory import build_spec

from ratchet.modeling import months, sources


def test_month_fingerprints_change_from_an_edited_month_onwards_only():
    spec = build_spec(name="m", table="s.t", source={"categorical": ["kind"]})
    frame = sources.validate_frame(spec, sample_frame(90))
    before = months.month_fingerprints(spec, frame)
    assert months.month_fingerprints(spec, frame.copy()) == before
    frame.loc[frame["day"] == pd.Timestamp("2024-02-10"), "y"] += 1
    after = months.month_fingerprints(spec, frame)
    assert after["2024-01"] == before["2024-01"]
    assert after["2024-02"] != before["2024-02"] and after["2024-03"] != before["2024-03"]


def test_fingerprints_depend_on_the_rows_alone_and_match_those_already_stored():
    """Pinned values, as the previous implementation (each timestamp formatted as text) computed them for these
    rows: the same in every process, and a database upgraded to this code recomputes no back-test month."""
    spec = build_spec(name="m", table="s.t", source={"categorical": ["kind"]})
    frame = sources.validate_frame(spec, sample_frame(90))
    assert months.month_fingerprints(spec, frame) == {
        "2024-01": "5cf6f0e975d780265f69fab6f847e7a6a033f48ec470af20e3544bcb1cd9c925",
        "2024-02": "72aa5d5fe4fd0e95bea474f29a4860c272b60a45d60e142b830ea87b874271d9",
        "2024-03": "4ed78a675fc12cceb0eb5cdcfea63cb9a5ef9a2eb185d06af157f05311006f3d"}
    assert months.dataset_fingerprint(frame) == "be0f76ade7038e0c2ce6430151f34dbdae12366a82b02a5ae86d20363e412232"
    assert months.month_fingerprints(spec, frame.iloc[:0]) == {}


def test_complete_months_leave_out_the_running_month_and_a_month_without_history_before_it():
    times = pd.Series(pd.date_range("2024-01-01", "2024-04-15"))
    assert months.complete_months(times, 12) == ["2024-02", "2024-03"]  # 2024-01 has nothing before it
    assert months.complete_months(times, 2, before=dt.datetime(2024, 3, 1)) == ["2024-02"]
    later_start = pd.Series(pd.date_range("2023-12-20", "2024-04-15"))
    assert months.complete_months(later_start, 12) == ["2024-01", "2024-02", "2024-03"]


def test_a_month_the_data_lacks_stays_among_the_complete_months():
    times = pd.Series(pd.date_range("2024-01-01", "2024-04-15"))
    times = times[times.dt.month != 2]
    assert months.complete_months(times, 2) == ["2024-02", "2024-03"]  # not silently ["2024-01", "2024-03"]


def test_a_now_test_window_is_whole_days_whatever_the_runs_clock_time():
    for end in (dt.datetime(2025, 8, 1, tzinfo=dt.UTC), dt.datetime(2025, 8, 1, 6, tzinfo=dt.UTC),
                dt.datetime(2025, 8, 1, 23, 59, tzinfo=dt.UTC)):
        start, stop, partition = months.window_bounds(end, 14)
        assert (start, stop, partition) == (pd.Timestamp("2025-07-18"), pd.Timestamp("2025-08-01"), "2025-07-31")
    days = pd.Series(pd.date_range("2025-06-01", "2025-07-31"))  # daily data up to the day before the run
    start, stop, _ = months.window_bounds(dt.datetime(2025, 8, 1, 6, tzinfo=dt.UTC), 14)
    assert ((days >= start) & (days < stop)).sum() == 14
