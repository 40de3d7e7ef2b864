"""`retrain.schedule`: which schedules a spec accepts, and which nightly runs a schedule makes due."""
from __future__ import annotations

import datetime as dt

import pytest
from spec_factory import build_spec

from ratchet.exceptions import SpecError
from ratchet.lifecycle.schedule import retrain_due
from ratchet.specs.schedule import SCHEDULE_PRESETS, longest_gap, schedule_problem

SATURDAY = dt.datetime(2026, 3, 7, 1, tzinfo=dt.UTC)  # the nightly run's data end: 01:00 UTC
SUNDAY, MONDAY = SATURDAY + dt.timedelta(days=1), SATURDAY + dt.timedelta(days=2)


def test_the_presets_are_airflows_own():
    from airflow.utils.dates import cron_presets

    assert cron_presets == SCHEDULE_PRESETS


def test_the_default_is_nightly_and_a_preset_or_cron_expression_is_kept():
    assert build_spec(name="m").retrain.schedule == "@daily"
    assert build_spec(name="m", retrain={"schedule": "@weekly"}).retrain.schedule == "@weekly"
    assert build_spec(name="m", retrain={"schedule": "30 2 * * 1-5"}).retrain.schedule == "30 2 * * 1-5"


@pytest.mark.parametrize(("schedule", "why"), [
    ("0 0 * * * *", r"a cron expression of five fields .* this one has 6"),
    ("weekly", r"a cron expression of five fields .* this one has 1"),
    ("61 0 * * *", r"a valid cron expression: .*out of range"),
    ("0 0 31 2 *", r"a schedule that fires: this one never does"),
    ("@hourly", r"a schedule that fires at most once a day"),
    ("0 6,18 * * *", r"a schedule that fires at most once a day"),
])
def test_a_schedule_that_cannot_be_a_nightly_retrain_is_refused_naming_the_field(schedule, why):
    with pytest.raises(SpecError, match=r"m.yaml: field 'retrain.schedule': expected " + why):
        build_spec(name="m", retrain={"schedule": schedule})


def test_an_unknown_field_under_retrain_is_refused():
    with pytest.raises(SpecError, match=r"field 'retrain.cron': expected one of the known fields \['schedule'\]"):
        build_spec(name="m", retrain={"cron": "@weekly"})


@pytest.mark.parametrize(("schedule", "days"), [("@daily", 1), ("@weekly", 7), ("0 0 * * 1-5", 3), ("@monthly", 31),
                                               ("0 0 1,15 * *", 17), ("@quarterly", 92), ("@yearly", 365)])
def test_the_longest_gap_is_how_old_a_model_on_that_schedule_gets(schedule, days):
    assert schedule_problem(schedule) is None
    assert longest_gap(schedule) == dt.timedelta(days=days)


def test_a_weekly_model_is_due_in_sundays_run_only():
    """@weekly fires Sunday 00:00 UTC: inside the day Sunday's 01:00 run covers, in no other night's."""
    saturday, sunday = retrain_due("@weekly", SATURDAY), retrain_due("@weekly", SUNDAY)
    assert not saturday.due and saturday.fired is None
    assert saturday.next_time == dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
    assert sunday.due and sunday.fired == dt.datetime(2026, 3, 8, tzinfo=dt.UTC)
    assert not retrain_due("@weekly", MONDAY).due
    assert [SATURDAY + dt.timedelta(days=d) for d in range(14)
            if retrain_due("@weekly", SATURDAY + dt.timedelta(days=d)).due] == [SUNDAY, SUNDAY + dt.timedelta(days=7)]


def test_the_skip_line_says_when_the_model_is_next_due_and_how_to_retrain_it_now():
    line = retrain_due("@weekly", SATURDAY).describe("pm25", SATURDAY)
    assert line == ("model 'pm25' is not due: its retrain schedule @weekly (0 0 * * 0) has no time within "
                    "2026-03-06 01:00 UTC .. 2026-03-07 01:00 UTC; next due 2026-03-08 00:00 UTC (retrained by the "
                    "first nightly run after it, or now by a run with the Param model=pm25)")
    assert retrain_due("@weekly", SUNDAY).describe("pm25", SUNDAY) == (
        "model 'pm25' retrains on schedule @weekly (0 0 * * 0): due at 2026-03-08 00:00 UTC, within "
        "2026-03-07 01:00 UTC .. 2026-03-08 01:00 UTC")


def test_a_model_without_a_version_is_due_whatever_its_schedule():
    first = retrain_due("@monthly", SATURDAY, first=True)
    assert first.due and first.fired is None
    assert first.describe("new", SATURDAY) == ("model 'new' has no version yet: its first retrain runs now, whatever "
                                               "its schedule @monthly (0 0 1 * *) (next due 2026-04-01 00:00 UTC)")
    assert retrain_due("@weekly", SUNDAY, first=True).describe("new", SUNDAY).startswith(
        "model 'new' retrains on schedule @weekly")


def test_daily_is_due_every_night_and_at_any_hour_a_run_is_triggered():
    for hours in range(0, 24 * 9, 5):  # nightly slots and odd hours alike: any day holds a midnight
        assert retrain_due("@daily", SATURDAY + dt.timedelta(hours=hours)).due


def test_a_time_at_the_runs_own_data_end_is_due_in_that_run_not_the_next():
    """The day a run covers is (end - 1 day, end]: '0 1 * * 1' (Monday 01:00) is due in Monday's 01:00 run."""
    assert retrain_due("0 1 * * 1", MONDAY).due
    assert not retrain_due("0 1 * * 1", MONDAY + dt.timedelta(days=1)).due
    assert not retrain_due("0 1 * * 1", SUNDAY).due


def test_monthly_is_due_in_the_run_of_the_first_of_the_month():
    due = [SATURDAY + dt.timedelta(days=d) for d in range(70)
           if retrain_due("@monthly", SATURDAY + dt.timedelta(days=d)).due]
    assert due == [dt.datetime(2026, 4, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 5, 1, 1, tzinfo=dt.UTC)]
