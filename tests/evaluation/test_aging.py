"""How a champion ages (`evaluation.aging`), on generated rows whose truth is known.

The drifting rows: y = b(t) x + e, x and e normal (sd 1 and SIGMA), the slope b growing by DRIFT a month. A linear
model fitted on the month before an origin (`backtest.window: 1`) learns the slope of that month's middle; at age k
the month scored is k - 1/2 to k + 1/2 months of drift later, so the error is DRIFT (k + u) x + e with u uniform on
(-1/2, 1/2) and the rmse `truth(k)` = sqrt(DRIFT^2 (k^2 + 1/12) + SIGMA^2). With a bound B on rmse the crossing age
is the first k with that above B (`known_crossing()`: 3, the rmse going 0.42, 0.61 at ages 2, 3). Without drift the
rmse stays SIGMA at every age: no crossing. The same rows are laid out as one series, as a panel of three series
and as events (four a day at random seconds, keyed by id).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from backtest_helpers import write_frame
from spec_factory import build_spec, write_spec
from sqlalchemy import text

from ratchet.evaluation import aging, backtest
from ratchet.modeling.features import ContractInputs
from ratchet.registry.entities import AgePoint, Aging, Crossing

DRIFT, SIGMA, BOUND = 0.2, 0.1, 0.45
START, MONTHS = pd.Timestamp("2023-01-01"), 14
END = START + pd.DateOffset(months=MONTHS)  # 14 whole months of rows: 12 back-test months with history before them
LINEAR = "sklearn.linear_model.LinearRegression"
SHAPES = {
    "series": {},
    "panel": {"source": {"series": ["store"], "features": ["x"]}},
    "events": {"source": {"frequency": "event", "id": "event_id", "features": ["x"]}, "baselines": ["mean"]},
}


def truth(age: int) -> float:
    return math.sqrt(DRIFT ** 2 * (age ** 2 + 1 / 12) + SIGMA ** 2)


def known_crossing() -> int:
    return next(k for k in range(1, 100) if truth(k) > BOUND)


def drifting(shape: str, drift: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.date_range(START, END - pd.Timedelta(days=1), freq="D")
    if shape == "series":
        times = days
    elif shape == "panel":
        times = days.repeat(3)
    else:  # events: 4 a day at random seconds, many sharing a day
        times = days.repeat(4) + pd.to_timedelta(rng.integers(0, 86_400, size=4 * len(days)), unit="s")
    months = np.asarray((times - START).days / 30.44)
    x = rng.normal(size=len(times))
    frame = pd.DataFrame({"day": times, "x": x, "y": (1 + drift * months) * x + rng.normal(scale=SIGMA, size=len(x))})
    if shape == "panel":
        frame["store"] = np.tile([1, 2, 3], len(days))
    if shape == "events":
        frame = frame.sort_values("day", kind="stable").reset_index(drop=True)
        frame["event_id"] = np.arange(len(frame))
    return frame


def spec_of(shape: str, **overrides):
    base = dict(name="aging", table="aging.rows", estimators=[{"class": LINEAR}], backtest={"months": 12, "window": 1},
                requirements=[{"metric": "rmse", "max": BOUND, "scope": "backtest"}])
    return {**base, **SHAPES[shape], **overrides}


def curves_of(spec, frame: pd.DataFrame):
    inputs = ContractInputs(spec, frame, end=END)
    (months,) = backtest.month_groups(spec, inputs.frame, end=END, groups=1)
    values = aging.measure(spec, backtest.Contender("v1", 1, LINEAR, {}), inputs, months)
    return months, {metric: aging.curve(by_age) for metric, by_age in values.items()}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_drifting_relationship_crosses_its_bound_near_the_known_age(shape):
    spec = build_spec(**spec_of(shape))
    months, curves = curves_of(spec, drifting(shape, DRIFT))
    assert len(months) == 12 and aging.max_age(12) == 6
    rmse = curves["rmse"]
    assert [p.age for p in rmse] == list(range(1, 7))
    assert all(p.n == 7 for p in rmse)  # balanced: every age over the same 7 origins
    assert all(set(p.by_origin) == set(months[:7]) for p in rmse)
    for p in rmse:  # each age's mean near the truth
        assert abs(p.mean - truth(p.age)) < 0.08 * truth(p.age), (p.age, p.mean, truth(p.age))
        assert p.low < p.mean < p.high and p.sd > 0
    assert rmse[-1].mean > 2 * rmse[1].mean  # it ages
    (crossing,) = aging.crossings(spec, list(spec.requirements), curves, months, {})
    assert crossing.bounds == (BOUND,) * 6 and crossing.direction == "max"
    assert abs(crossing.age - known_crossing()) <= 1, (crossing.age, known_crossing())
    assert rmse[crossing.age - 1].mean > BOUND >= rmse[crossing.age - 2].mean  # the first age beyond the bound


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_stationary_relationship_never_crosses(shape):
    spec = build_spec(**spec_of(shape))
    months, curves = curves_of(spec, drifting(shape, 0.0))
    assert all(abs(p.mean - SIGMA) < 0.03 for p in curves["rmse"])
    (crossing,) = aging.crossings(spec, list(spec.requirements), curves, months, {})
    assert crossing.age is None


def test_a_relative_bound_follows_its_baselines_back_test_values_on_the_months_each_age_scores():
    spec = build_spec(**spec_of("series", baselines=["mean"],
                                requirements=[{"metric": "rmse", "max": 0.9, "relative_to": "baseline",
                                               "scope": "backtest"}]))
    months, curves = curves_of(spec, drifting("series", DRIFT))
    table = {"mean": {"rmse": {m: 0.5 for m in months}}}  # 0.9 x 0.5: the same 0.45 as the absolute bound
    (relative,) = aging.crossings(spec, list(spec.requirements), curves, months, table)
    assert relative.bounds == pytest.approx((0.45,) * 6)
    assert abs(relative.age - known_crossing()) <= 1
    table["mean"]["rmse"] = {m: 0.5 + 0.05 * i for i, m in enumerate(months)}  # the baseline worsens month by month
    (looser,) = aging.crossings(spec, list(spec.requirements), curves, months, table)
    # age k scores months k-1 .. k+5 (one per origin): the bound is 0.9 x the baseline's mean over them
    assert looser.bounds == pytest.approx(tuple(0.9 * (0.5 + 0.05 * (k - 1 + 3)) for k in range(1, 7)))
    del table["mean"]["rmse"][months[9]]  # a month the back-test has no baseline value for
    (partial,) = aging.crossings(spec, list(spec.requirements), curves, months, table)
    assert partial.bounds[3:] == (None,) * 3  # ages 4..6 score months[9]: their bound cannot be applied
    assert partial.age is None or partial.age <= 3  # and they are never judged


def test_fewer_back_test_months_give_fewer_ages_and_too_few_none():
    assert [aging.max_age(n) for n in (3, 4, 5, 6, 12, 24, 120)] == [0, 2, 2, 3, 6, 12, 12]


def _aged(crossing_age: int | None, max_age: int = 12) -> Aging:
    points = {"rmse": tuple(AgePoint(a, 1.0, 0.1, 0.9, 1.1, {"2024-01": 1.0}) for a in range(1, max_age + 1))}
    crossing = Crossing(1, "rmse", "max", "backtest", "rmse max 0.45 (back-test)", (0.45,) * max_age, crossing_age)
    months = tuple(f"{2020 + m // 12}-{m % 12 + 1:02d}" for m in range(2 * max_age))
    return Aging("m", 1, "run", months, max_age, points, (crossing,))


@pytest.mark.parametrize(("crossing_age", "recommended", "limit"), [
    (1, "@daily", 0), (2, "@weekly", 14), (3, "@weekly", 28), (4, "@monthly", 42), (None, "@monthly", 168)])
def test_the_cadence_is_half_the_days_a_bound_held_rounded_down(crossing_age, recommended, limit):
    plan = aging.retrain_plan(_aged(crossing_age), "@daily")
    assert (plan.recommended, plan.limit_days, plan.often_enough) == (recommended, limit, True)
    assert plan.held_days == 2 * limit


def test_a_configured_schedule_is_judged_by_its_longest_gap():
    assert not aging.retrain_plan(_aged(2), "@monthly").often_enough  # 31 days > 14
    assert aging.retrain_plan(_aged(2), "0 0 * * 1,4").often_enough  # 4 days
    assert aging.retrain_plan(_aged(4), "@monthly").often_enough  # 31 days <= 42
    assert aging.retrain_plan(_aged(None), "@quarterly").often_enough  # 92 <= 168: it held every month measured
    assert not aging.retrain_plan(_aged(None), "@yearly").often_enough
    assert not aging.retrain_plan(_aged(1), "@weekly").often_enough
    assert aging.retrain_plan(_aged(1), "@daily").reason == (
        "rmse max 0.45 (back-test) is broken in the first month after training already: no cadence was shown to "
        "hold it")
    assert aging.retrain_plan(_aged(3), "@monthly").describe() == (
        "recommended @weekly (rmse max 0.45 (back-test) is broken at age 3 months (the mean over 13 origins), so it "
        "held at least 56 days; retrain at least every 28 days); configured @monthly: NOT often enough: up to 31 "
        "days between retrains")


def test_the_champion_ages_stored_once_refitted_only_when_its_rows_change(registry, tmp_path):
    """run_aging stores the champion's curves and crossing; a re-run on the same rows reads the stored curves again
    (a marker written into them survives), against today's bounds: a tightened bound moves the crossing. New rows
    refit."""
    from promote_helpers import register_fitted

    frame = drifting("series", DRIFT)
    table = write_frame(registry, frame)
    spec = write_spec(tmp_path, **spec_of("series", table=table))
    registry.sync_model(spec)
    version = register_fitted(registry, "aging", "run-1", estimator_class=LINEAR, hyperparameters={},
                              contract=spec.source.contract(["x"], "day"))
    registry.record_promotion("aging", version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="tests", gates=[], run_id="tests", expected_previous_version=None)

    first = aging.run_aging(registry, spec, run_id="night-1", end=END)
    stored = registry.aging("aging", version)
    assert stored.curves == first.curves and stored.crossing_age == first.crossing_age
    assert abs(stored.crossing_age - known_crossing()) <= 1 and len(stored.origins) == 7
    assert stored.crossings[0].requirement_id == registry.requirements("aging")[0].id

    with registry.engine.begin() as conn:  # a marker in the stored curve: read again, never refitted
        conn.execute(text("UPDATE version_aging SET curves = jsonb_set(curves, '{rmse,0,mean}', '42')"))
    tighter = write_spec(tmp_path, **spec_of("series", table=table,
                                             requirements=[{"metric": "rmse", "max": 0.2, "scope": "backtest"}]))
    registry.sync_model(tighter)
    again = aging.run_aging(registry, tighter, run_id="night-2", end=END)
    assert again.curves["rmse"][0].mean == 42 and again.run_id == "night-2"
    assert again.crossing_age == 1  # the marker breaks 0.2 at age 1
    with registry.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM version_aging")).scalar() == 1

    later = END + pd.DateOffset(months=1)  # a month of new rows
    days = pd.date_range(END, later - pd.Timedelta(days=1), freq="D")
    x = np.random.default_rng(1).normal(size=len(days))
    schema, name = table.split(".")
    with registry.engine.begin() as conn:
        pd.DataFrame({"day": days, "x": x, "y": (1 + DRIFT * MONTHS) * x}).to_sql(name, conn, schema=schema,
                                                                                index=False, if_exists="append")
    refitted = aging.run_aging(registry, tighter, run_id="night-3", end=later)
    assert refitted.months[-1] == (later - pd.DateOffset(months=1)).strftime("%Y-%m")
    assert refitted.curves["rmse"][0].mean < 1  # refitted on the new months: the marker is gone


def test_no_champion_or_too_few_months_measure_nothing(registry, tmp_path):
    from promote_helpers import register_fitted

    table = write_frame(registry, drifting("series", DRIFT))
    spec = write_spec(tmp_path, **spec_of("series", table=table, backtest={"months": 3}))
    registry.sync_model(spec)
    assert aging.run_aging(registry, spec, run_id="n", end=END) is None  # no champion
    version = register_fitted(registry, "aging", "run-1", estimator_class=LINEAR, hyperparameters={},
                              contract=spec.source.contract(["x"], "day"))
    registry.record_promotion("aging", version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="tests", gates=[], run_id="tests", expected_previous_version=None)
    assert aging.run_aging(registry, spec, run_id="n", end=END) is None  # 3 back-test months: no age to measure
    assert registry.aging("aging", version) is None
