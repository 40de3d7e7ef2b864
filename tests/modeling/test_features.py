"""Features (`ratchet.modeling.features`): target lags by calendar day."""
from __future__ import annotations

import pandas as pd
from source_helpers import sample_frame
from spec_factory import build_spec

from ratchet.modeling import features, sources


def test_lags_are_looked_up_by_calendar_day_so_gaps_never_shift_them():
    frame = sample_frame(20).drop(index=[10]).reset_index(drop=True)  # 2024-01-11 is missing
    spec = build_spec(name="m", table="s.t", source={"target_lags": [1], "features": ["x"]})
    X, y, times = features.make_xy(spec, sources.validate_frame(spec, frame))
    by_day = dict(zip(frame["day"], frame["y"], strict=True))
    assert pd.Timestamp("2024-01-12") not in set(times)  # its lag (the missing day) is unknown: dropped
    for lag, day in zip(X["target_lag_1"], times, strict=True):
        assert lag == by_day[day - pd.Timedelta(days=1)]
