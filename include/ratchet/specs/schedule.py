"""`retrain.schedule`: when a model retrains, as a cron expression or an Airflow preset, read in UTC with croniter
(the cron library Airflow's own timetables use), so a schedule means here what it means in a DAG's `schedule`."""
from __future__ import annotations

import datetime as dt
import functools

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

# Airflow's cron presets (`airflow.utils.dates.cron_presets`, checked equal by tests/specs/test_schedule.py): kept
# here so that reading a spec does not import Airflow
SCHEDULE_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
# two whole years without a leap day, from a Monday: the span a schedule's longest gap is read on
RHYTHM_START, RHYTHM_END = dt.datetime(2001, 1, 1, tzinfo=dt.UTC), dt.datetime(2003, 1, 1, tzinfo=dt.UTC)


def cron_of(schedule: str) -> str:
    """The cron expression of a schedule: a preset's, or the schedule itself."""
    return SCHEDULE_PRESETS.get(schedule, schedule)


def schedule_problem(schedule: str) -> str | None:
    """Why `schedule` cannot be a model's retrain schedule, or None when it can: a cron expression of five fields
    (minute hour day-of-month month day-of-week) or an Airflow preset, that fires, at most once a day (ratchet_retrain
    runs once a night: a schedule that fires more often would silently retrain nightly)."""
    cron = cron_of(schedule)
    if len(cron.split()) != 5:
        return (f"a cron expression of five fields (minute hour day-of-month month day-of-week) or a preset "
                f"({', '.join(SCHEDULE_PRESETS)}): this one has {len(cron.split())}")
    try:
        minutes, hours = croniter(cron).expanded[:2]
        next_fire(cron, RHYTHM_START)
    except CroniterBadCronError as exc:
        return f"a valid cron expression: {exc}"
    except CroniterBadDateError:
        return "a schedule that fires: this one never does (no such date)"
    if len(minutes) > 1 or len(hours) > 1 or "*" in (minutes[0], hours[0]):
        return ("a schedule that fires at most once a day (one minute and one hour): ratchet_retrain runs once a "
                "night, at 01:00 UTC")
    return None


def next_fire(schedule: str, after: dt.datetime) -> dt.datetime:
    """The schedule's first time strictly after `after` (aware, UTC)."""
    return croniter(cron_of(schedule), after.astimezone(dt.UTC)).get_next(dt.datetime)


def fires_within(schedule: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """The schedule's times in (start, end], oldest first."""
    times, clock = [], croniter(cron_of(schedule), start.astimezone(dt.UTC))
    while (at := clock.get_next(dt.datetime)) <= end:
        times.append(at)
    return times


@functools.cache
def longest_gap(schedule: str) -> dt.timedelta:
    """The longest time between two consecutive times of the schedule (over two ordinary years): how old a model
    retrained on it can get. '@daily' 1 day, '@weekly' 7 days, '@monthly' 31 days."""
    times = fires_within(schedule, RHYTHM_START, RHYTHM_END)
    return max(later - earlier for earlier, later in zip(times, times[1:], strict=False))
