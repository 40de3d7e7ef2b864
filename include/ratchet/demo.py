"""Demo data: daily demand with seasonality, weather, holidays, promotions and a recent regime change.

Deterministic from a seed and the same rows whatever the day: the rows of the three years to REFERENCE_END,
relabelled to end yesterday (their `day_of_week`, holidays and season are those of the reference years, so a
relabelled Monday may carry another day's number). Only where calendar months cut them differs from one day to
the next (the back-test's months, so the ratchet's bounds), so the demo tells nearly the story the tests replay.
`make run` loads the history up to the day before the regime change, where the first champion is trained,
back-tested and promoted; then the last days arrive: from the change on, the shop sells at a lower price
(`price` 4.99 -> 3.99) and demand jumps (by 65 plus half the temperature), a price the champion never saw.
The now-test of the alert night (`alert_night`, REPLAY_NIGHTS days before the data's last day) holds
REGIME_CHANGE_DAYS changed days and fails; an alert mail goes out; `ratchet demo` (`ratchet.replay`) replays
the nights after it.
"""
from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

DEMO_SCHEMA = "demo"
DEMO_TABLE = "daily_demand"
HOLIDAYS = ((1, 1), (5, 1), (7, 4), (10, 3), (11, 11), (12, 25), (12, 26), (12, 31))
DEMO_MODEL = "daily_demand"  # include/models/demand.yaml, the model the demo table feeds
REGIME_CHANGE_DAYS = 10  # changed days in the alert night's 14-day now-test window
REPLAY_NIGHTS = 12  # the nights after the alert night that `make run` replays, the last one yesterday's
PRICE, NEW_PRICE = 4.99, 3.99  # the shop's price before and from the regime change
# The demo's rows are always those of the years ending on this day, relabelled to end on the day `make run` loads
# them (yesterday): ten days of a new regime are a small sample, and rows drawn for another season or calendar
# told another story (ending in a December, candidates trained on them missed the ratcheted bounds for weeks).
REFERENCE_END = dt.date(2025, 6, 30)


def alert_night(end: dt.date) -> dt.date:
    """The night whose now-test alerts on the regime change, in demo data ending on `end`: REPLAY_NIGHTS days
    before it, so that the nights replayed after it end with the night of `end` (a night reads the days before)."""
    return end - dt.timedelta(days=REPLAY_NIGHTS)


def regime_change_day(end: dt.date) -> dt.date:
    """The first day of the new regime in demo data ending on `end`: REGIME_CHANGE_DAYS before the alert night."""
    return alert_night(end) - dt.timedelta(days=REGIME_CHANGE_DAYS)


def _yesterday() -> dt.date:
    return dt.date.today() - dt.timedelta(days=1)


def generate_demand(start: dt.date, end: dt.date, *, seed: int = 7,
                    regime_change: dt.date | None = None) -> pd.DataFrame:
    """One row per day from `start` to `end` inclusive; from `regime_change` on, the price is lower and demand
    higher (a level shift and a stronger temperature response)."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, end, freq="D")
    n = len(days)
    day_of_year = days.dayofyear.to_numpy()
    day_of_week = days.dayofweek.to_numpy()
    yearly = np.cos(2 * np.pi * (day_of_year - 200) / 365.25)
    temperature = 12 + 10 * yearly + rng.normal(0, 3, n)
    precipitation = np.round(rng.gamma(0.6, 3.0, n) * (rng.random(n) < 0.45), 1)
    is_holiday = np.array([(d.month, d.day) in HOLIDAYS for d in days], dtype=int)
    promo = (rng.random(n) < 0.08).astype(int)
    weekly = np.array([0.0, 4.0, 6.0, 8.0, 18.0, 30.0, -12.0])[day_of_week]
    trend = np.linspace(0, 12, n)
    demand = (200 + trend + weekly + 1.8 * temperature - 2.2 * precipitation - 45 * is_holiday
              + 25 * promo + rng.normal(0, 6, n))
    after = np.zeros(n, dtype=bool) if regime_change is None else np.asarray(days >= pd.Timestamp(regime_change))
    demand = demand + after * (65 + 0.5 * temperature)
    return pd.DataFrame({
        "day": days.date, "demand": np.round(demand, 2), "temperature": np.round(temperature, 1),
        "precipitation": precipitation, "is_holiday": is_holiday, "promo": promo, "day_of_week": day_of_week,
        "price": np.where(after, NEW_PRICE, PRICE),
    })


def generate_classification(start: dt.date, end: dt.date, *, seed: int = 11) -> pd.DataFrame:
    """Daily binary target (a 'busy day' flag) with a learnable signal from features and yesterday."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, end, freq="D")
    n = len(days)
    load = rng.normal(0, 1, n)
    weekend = (days.dayofweek >= 5).astype(int)
    logit = 1.8 * load + 1.2 * weekend - 0.4 + rng.normal(0, 0.5, n)
    busy = (logit > 0).astype(int)
    return pd.DataFrame({"day": days.date, "busy": busy, "load": np.round(load, 3), "weekend": weekend})


def load_demo(url: str, *, seed: int = 7, end: dt.date | None = None, years: int = 3,
              before_change: bool = False) -> dict:
    """Write the demo table `demo.daily_demand` (replacing its rows in one transaction).

    `before_change` writes only the days before the regime change: the history `make run` trains and
    promotes the first champion on, so that its first now-test, after a load of every day, judges a
    regime the champion never saw. Both loads write the same rows for the days they share.
    """
    from sqlalchemy import text

    from ratchet.settings import make_engine

    end = end or _yesterday()
    shift = end - REFERENCE_END
    frame = generate_demand(dt.date(REFERENCE_END.year - years, REFERENCE_END.month, 1), REFERENCE_END, seed=seed,
                            regime_change=regime_change_day(REFERENCE_END))
    frame["day"] += shift  # the reference rows, relabelled to end on `end`: the story the tests replay
    start, change = frame["day"].iloc[0], regime_change_day(end)
    if before_change:
        frame = frame[frame["day"] < change]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {DEMO_SCHEMA}"))
            conn.execute(text(
                f"CREATE TABLE IF NOT EXISTS {DEMO_SCHEMA}.{DEMO_TABLE} (day date PRIMARY KEY, demand double precision "
                "NOT NULL, temperature double precision, precipitation double precision, is_holiday integer, "
                "promo integer, day_of_week integer, price double precision)"))
            conn.execute(text(  # a table an earlier demo wrote, before it had prices
                f"ALTER TABLE {DEMO_SCHEMA}.{DEMO_TABLE} ADD COLUMN IF NOT EXISTS price double precision"))
            conn.execute(text(f"DELETE FROM {DEMO_SCHEMA}.{DEMO_TABLE}"))
            frame.to_sql(DEMO_TABLE, conn, schema=DEMO_SCHEMA, if_exists="append", index=False, method="multi",
                         chunksize=1000)
    finally:
        engine.dispose()
    return {"table": f"{DEMO_SCHEMA}.{DEMO_TABLE}", "rows": len(frame), "start": str(start),
            "end": str(frame["day"].iloc[-1]), "regime_change": str(change), "before_change": before_change}


def first_champion(registry: Registry, spec: ModelSpec) -> int:
    """The version `make run` promotes first: of the latest retrain's versions, the best back-test mean.

    Raises:
        NotFoundError: the model has no retrained version yet.
    """
    from ratchet.evaluation import backtest
    from ratchet.exceptions import NotFoundError
    from ratchet.registry import version_contender

    versions = [v.version for v in registry.latest_run_versions(spec.name)]
    if not versions:
        raise NotFoundError(f"model {spec.name!r} has no retrained version yet: run ratchet_retrain first")
    means = backtest.backtest_summary(registry, spec)["contenders"]
    return min(versions, key=lambda v: means.get(version_contender(v), {}).get("mean", float("inf")))
