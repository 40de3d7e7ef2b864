"""Whether a nightly ratchet_retrain run retrains a model, from the model's `retrain.schedule`.

ratchet_retrain runs once a night and covers the day before its data end: a model is due in the run whose last
day holds a time of its schedule, so '@weekly' (Sunday 00:00 UTC) is retrained by Sunday's 01:00 run, '@daily' by
every run, and a run at any odd hour (a replay, a manual run of every model) decides the same way for its own day.
A model without any version yet is due in every run: a model added on a Monday has its first version that night,
not on Sunday.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ratchet.specs.schedule import cron_of, fires_within, next_fire

NIGHT = dt.timedelta(days=1)  # what one nightly run covers: the day before its data end


@dataclass(frozen=True)
class RetrainDue:
    """A schedule read at one run's data end: whether it is due, the time that made it due, the next time."""

    schedule: str
    due: bool
    fired: dt.datetime | None  # the schedule's latest time in the run's day, if any
    next_time: dt.datetime  # the schedule's first time after the run's data end
    first: bool = False  # the model has no version yet: due whatever the schedule

    def describe(self, model: str, end: dt.datetime) -> str:
        """The line a retrain task logs: why it retrains or is skipped, and when the model is next due."""
        schedule = self.schedule + (f" ({cron_of(self.schedule)})" if cron_of(self.schedule) != self.schedule else "")
        window = f"{_utc(end - NIGHT)} .. {_utc(end)}"
        if self.fired is not None:
            return f"model {model!r} retrains on schedule {schedule}: due at {_utc(self.fired)}, within {window}"
        if self.first:
            return (f"model {model!r} has no version yet: its first retrain runs now, whatever its schedule "
                    f"{schedule} (next due {_utc(self.next_time)})")
        return (f"model {model!r} is not due: its retrain schedule {schedule} has no time within {window}; next due "
                f"{_utc(self.next_time)} (retrained by the first nightly run after it, or now by a run with the "
                f"Param model={model})")


def retrain_due(schedule: str, end: dt.datetime, *, first: bool = False) -> RetrainDue:
    """`schedule` (a spec's `retrain.schedule`) read at a run's data end `end` (aware); `first`: the model has no
    version yet."""
    fired = fires_within(schedule, end - NIGHT, end)
    return RetrainDue(schedule, bool(fired) or first, fired[-1] if fired else None, next_fire(schedule, end), first)


def _utc(moment: dt.datetime | None) -> str:
    return "-" if moment is None else f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
