"""Data sources against real PostgreSQL: reading, validation errors, lags, partitions, fingerprints."""
from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from ratchet import demo
from ratchet.exceptions import DataError
from ratchet.lifecycle import retrain
from ratchet.modeling import features, months, sources
from ratchet.specs import parse_spec


def _spec(source: dict, task: str = "regression"):
    return parse_spec(Path("m.yaml"), {"name": "m", "task": task, "source": {"time_column": "day", "target": "y",
                                                                             **source},
                                       "estimators": [{"class": "sklearn.linear_model.Ridge"}]})


def _frame(n=90):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"day": pd.date_range("2024-01-01", periods=n), "y": rng.normal(size=n) + 10,
                         "x": rng.normal(size=n), "kind": rng.choice(["a", "b"], n)})


@pytest.fixture
def table(registry):
    def write(frame: pd.DataFrame) -> str:
        name = f"t_{uuid.uuid4().hex[:8]}"
        with registry.engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA IF NOT EXISTS datatest"))
            frame.to_sql(name, conn, schema="datatest", index=False)
        return f"datatest.{name}"
    return write


def test_reads_a_table_sorted_and_only_before_end(table):
    frame = _frame().sample(frac=1, random_state=1)  # stored in random order; a table is sorted in SQL
    spec = _spec({"table": table(frame), "categorical": ["kind"]})
    rows = sources.read_source(spec, end=dt.datetime(2024, 2, 1, tzinfo=dt.UTC))
    assert len(rows) == 31 and rows["day"].is_monotonic_increasing and rows["day"].max() == pd.Timestamp("2024-01-31")


def test_reads_a_query(table):
    name = table(_frame())
    rows = sources.read_source(_spec({"query": f"SELECT day, y, x FROM {name} WHERE x > 0 ORDER BY day"}))
    assert (rows["x"] > 0).all() and list(rows.columns) == ["day", "y", "x"]


@pytest.mark.parametrize("mutate, source, message", [
    (lambda f: f.drop(columns=["x"]), {"features": ["x"]}, r"missing columns \['x'\]; the source has"),
    (lambda f: f, {}, r"feature 'kind' is not numeric .*declare it in source.categorical"),
    (lambda f: f.assign(y=f["y"].where(f.index != 5)), {"categorical": ["kind"]},
     r"target 'y' has 1 missing values \(NaN\), first at 2024-01-06"),
    (lambda f: pd.concat([f, f.iloc[[3]]]), {"categorical": ["kind"]},
     r"duplicate timestamps in 'day', first 2024-01-04"),
    (lambda f: f.iloc[0:0], {"categorical": ["kind"]}, r"the source returned no rows"),
])
def test_bad_tables_get_precise_errors(table, mutate, source, message):
    spec = _spec({"table": table(mutate(_frame())), **source})
    with pytest.raises(DataError, match=message):
        sources.read_source(spec)


def test_unordered_query_results_are_refused(table):
    name = table(_frame())
    spec = _spec({"query": f"SELECT day, y, x FROM {name} ORDER BY day DESC"})
    with pytest.raises(DataError, match="not in order: row 1 .* comes after row 0 .*add ORDER BY"):
        sources.read_source(spec)


def test_a_missing_table_is_named():
    with pytest.raises(DataError, match="cannot read table datatest.nope"):
        sources.read_source(_spec({"table": "datatest.nope"}))


def test_too_little_history_names_counts():
    with pytest.raises(DataError, match="too little history for cv: 10 rows, at least 56 needed"):
        sources.require_rows(_spec({"table": "s.t"}), _frame(10), 56, "cv")


def test_lags_are_looked_up_by_calendar_day_so_gaps_never_shift_them():
    frame = _frame(20).drop(index=[10]).reset_index(drop=True)  # 2024-01-11 is missing
    spec = _spec({"table": "s.t", "target_lags": [1], "features": ["x"]})
    X, y, times = features.make_xy(spec, sources.validate_frame(spec, frame))
    by_day = dict(zip(frame["day"], frame["y"], strict=True))
    assert pd.Timestamp("2024-01-12") not in set(times)  # its lag (the missing day) is unknown: dropped
    for lag, day in zip(X["target_lag_1"], times, strict=True):
        assert lag == by_day[day - pd.Timedelta(days=1)]


def test_month_fingerprints_change_from_an_edited_month_onwards_only():
    spec = _spec({"table": "s.t", "categorical": ["kind"]})
    frame = sources.validate_frame(spec, _frame(90))
    before = months.month_fingerprints(spec, frame)
    assert months.month_fingerprints(spec, frame.copy()) == before
    frame.loc[frame["day"] == pd.Timestamp("2024-02-10"), "y"] += 1
    after = months.month_fingerprints(spec, frame)
    assert after["2024-01"] == before["2024-01"]
    assert after["2024-02"] != before["2024-02"] and after["2024-03"] != before["2024-03"]


def test_complete_months_leave_out_the_running_month():
    times = pd.Series(pd.date_range("2024-01-01", "2024-04-15"))
    assert months.complete_months(times, 12) == ["2024-01", "2024-02", "2024-03"]
    assert months.complete_months(times, 2, before=dt.datetime(2024, 3, 1)) == ["2024-01", "2024-02"]


def test_a_month_the_data_lacks_stays_among_the_complete_months():
    times = pd.Series(pd.date_range("2024-01-01", "2024-04-15"))
    times = times[times.dt.month != 2]
    assert months.complete_months(times, 2) == ["2024-02", "2024-03"]  # not silently ["2024-01", "2024-03"]


def test_bad_data_leaves_the_registry_unchanged(registry, table):
    frame = _frame(120).drop(columns=["kind"])
    frame.loc[50, "y"] = np.nan
    spec = _spec({"table": table(frame)})
    registry.sync_model(spec)
    def counts():
        with registry.engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                    for t in ("model_versions", "search_trials", "evaluations")}

    before = counts()
    with pytest.raises(DataError, match="missing values"):
        retrain.retrain_model(registry, spec, run_id="r", logical_date=dt.datetime(2024, 6, 1))
    assert counts() == before == {"model_versions": 0, "search_trials": 0, "evaluations": 0}


def test_demo_data_is_deterministic_and_changes_regime():
    start, end, change = dt.date(2024, 1, 1), dt.date(2024, 12, 31), dt.date(2024, 11, 1)
    one = demo.generate_demand(start, end, seed=7, regime_change=change)
    assert one.equals(demo.generate_demand(start, end, seed=7, regime_change=change))
    assert not one.equals(demo.generate_demand(start, end, seed=8, regime_change=change))
    calm = demo.generate_demand(start, end, seed=7)
    after = pd.to_datetime(one["day"]) >= pd.Timestamp("2024-11-15")
    assert (one.loc[after, "demand"] - calm.loc[after, "demand"]).mean() > 50
    assert (one.loc[~after & (pd.to_datetime(one["day"]) < pd.Timestamp(change)), "demand"]
            == calm.loc[pd.to_datetime(calm["day"]) < pd.Timestamp(change), "demand"]).all()
