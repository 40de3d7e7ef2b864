"""The pandas reference for the features of a few rows: the history before them and the rows, validated together by
the source's own checks, then `features.make_xy`, the path training takes. The plain-Python builder the service and
`ratchet predict` use (`serving.features.build`) is tested against it, row by row."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ratchet.exceptions import PredictError
from ratchet.modeling import sources
from ratchet.modeling.features import make_xy
from ratchet.modeling.frequency import FREQUENCY, shifted


def input_rows(spec, frame: pd.DataFrame) -> pd.DataFrame:
    """Rows to predict, their time column parsed to naive UTC and sorted."""
    time = spec.source.key.time
    rows = frame.copy()
    rows[time] = pd.to_datetime(rows[time], utc=True).dt.tz_localize(None)
    return rows.sort_values(time, kind="stable").reset_index(drop=True)


def features_of_rows(spec, history: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The features of `rows` (from `input_rows`) and their times, target lags taken from `history` (source rows
    before the first input row) and from earlier input rows; rows without a target are left out of the lags as a
    full read leaves them out.

    Raises:
        PredictError: a row whose lags cannot be computed.
        DataError: the rows fail the source's own checks.
    """
    src = spec.source
    time = src.key.time
    rows = rows.reindex(columns=history.columns)  # source columns the model does not use may be absent
    # unknown targets get a valid placeholder for validation, then become unknown (NaN) again for the lags
    known = history[src.target].dropna()
    placeholder = known.iloc[-1] if len(known) else (0.0 if spec.task == "regression" else "")
    unknown = rows[src.target].isna().to_numpy()
    rows[src.target] = rows[src.target].where(~unknown, placeholder)
    combined = sources.validate_frame(spec, pd.concat([history, rows], ignore_index=True), whole_source=False)
    target = combined[src.target]
    combined[src.target] = target.astype(float if pd.api.types.is_numeric_dtype(target) else object)
    combined.loc[combined[time].isin(rows.loc[unknown, time]), src.target] = np.nan

    X, _, times = make_xy(spec, combined)
    wanted = (times >= rows[time].iloc[0]).to_numpy()
    lacking = sorted(set(rows[time]) - set(times[wanted]))
    if lacking:
        raise PredictError(_unknown_lags(spec, combined, lacking))
    return X[wanted].reset_index(drop=True), times[wanted].reset_index(drop=True)


def _unknown_lags(spec, combined: pd.DataFrame, lacking: list) -> str:
    """The refusal of rows whose lags are unknown, naming the first row and the first lag (and day) it lacks."""
    src = spec.source
    first = lacking[0]
    known = combined.loc[combined[src.target].notna(), src.key.time]
    if src.lags_by != "rows":
        def back(k):
            return first - pd.Timedelta(days=k) if src.lags_by == "days" else \
                shifted(pd.Series([first]), k, combined.attrs[FREQUENCY]).iloc[0]
        lag = next(k for k in src.target_lags if back(k) not in set(known))
        reached = f"{back(lag):%Y-%m-%d} (lag {lag})"
    else:
        position = combined.index[combined[src.key.time] == first][0]
        lag = next(k for k in src.target_lags if position - k < 0 or pd.isna(combined[src.target].iloc[position - k]))
        reached = f"the row {lag} before it (lag {lag}, source.lags_by: rows)"
    return (f"cannot compute target lags {list(src.target_lags)} for {len(lacking)} input row(s), first at "
            f"{first}: the target of {reached} is neither in the input nor in the source")
