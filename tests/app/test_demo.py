"""The demo data (`ratchet.demo`): deterministic, with the regime change it promises."""
from __future__ import annotations

import datetime as dt

import pandas as pd

from ratchet import demo


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
