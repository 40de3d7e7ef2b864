"""The statistics behind bounds and gates: metric distributions over windows, confidence bounds, paired tests.

Paired test: Diebold–Mariano on the loss differences of two contenders per period over their common back-test
rows, with a Newey–West (autocorrelation-robust) variance and the Harvey–Leybourne–Newbold small-sample
correction, one-sided, against Student's t. Chosen over a paired block bootstrap because it is closed-form
(a gate runs it on thousands of periods in milliseconds, the same answer every time) and its HAC variance
handles what makes naive tests lie on forecasts: errors that persist from one period to the next.

At any frequency and over many series, every row counts but no row is taken as independent of its neighbours:
the losses of a period are first averaged across series (`period_losses`), since series of one panel share
shocks (a holiday, the weather), and the test runs on the series of periods, whose Newey–West lag grows with the
persistence it sees (Andrews' rule), so the dependence within a day of hourly rows is in the variance.
tests/modeling/test_statistics.py measures the test's size at hourly resolution and over many series.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ratchet.modeling.metrics import score

if TYPE_CHECKING:
    from ratchet.specs.model import ModelSpec


@dataclass(frozen=True)
class PairedTest:
    """The evidence that one contender's daily losses are lower than another's."""

    test: str
    margin: float  # the improvement (a fraction of the reference's loss) H0 says the candidate does not reach
    n_days: int
    mean_difference: float  # mean of candidate loss - reference loss (negative: the candidate is better)
    relative_difference: float  # mean_difference / mean reference loss
    statistic: float
    p_value: float  # one-sided: H1 the candidate's expected loss is lower
    lag: int  # Newey-West lag (Andrews' automatic choice)

    def as_dict(self) -> dict[str, Any]:
        """The test as JSON-able gate evidence."""
        return asdict(self)


def newey_west_lag(d: np.ndarray) -> int:
    """Andrews' (1991) automatic lag for the Bartlett kernel, from an AR(1) fitted to the differences.

    The more the daily differences persist (rho), the more lags the variance needs: 3 for independent
    days over a year, about 12 when rho is 0.6. Never below the rule of thumb floor(4 (n/100)^(2/9)).
    """
    n = d.size
    floor = int(math.floor(4 * (n / 100) ** (2 / 9))) if n else 0
    if n < 3 or d.std() == 0:
        return floor
    rho = float(np.clip(np.corrcoef(d[1:], d[:-1])[0, 1], -0.97, 0.97))
    alpha = 4 * rho ** 2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    return max(floor, min(n - 1, int(math.ceil(1.1447 * (alpha * n) ** (1 / 3)))))


def diebold_mariano(candidate_loss: np.ndarray, reference_loss: np.ndarray, margin: float = 0.0) -> PairedTest:
    """One-sided Diebold–Mariano test that `candidate_loss` is lower than `reference_loss` by more than `margin`.

    H0: E[candidate] >= (1 - margin) E[reference], on the days both losses are defined (NaN days are left out):
    with a margin, a candidate must be materially better, not just better by an amount only noise supports.
    With fewer than 10 common days, or no variation in the differences, the p-value is 1 (no evidence).
    """
    candidate_loss, reference_loss = np.asarray(candidate_loss, float), np.asarray(reference_loss, float)
    both = np.isfinite(candidate_loss) & np.isfinite(reference_loss)
    d, reference = candidate_loss[both] - (1 - margin) * reference_loss[both], reference_loss[both]
    n = d.size
    lag = newey_west_lag(d)
    name = f"Diebold-Mariano, one-sided, Newey-West variance (lag {lag}), HLN-corrected, t({max(n - 1, 0)})"
    mean = float((candidate_loss[both] - reference).mean()) if n else math.nan
    base = float(reference.mean()) if n else math.nan
    relative = mean / base if n and base else math.nan
    centred = d - d.mean() if n else d
    variance = float(centred @ centred) / n if n else 0.0
    for k in range(1, lag + 1):
        variance += 2 * (1 - k / (lag + 1)) * float(centred[k:] @ centred[:-k]) / n
    if n < 10 or variance <= 0:
        return PairedTest(name, margin, n, mean, relative, math.nan, 1.0, lag)
    statistic = float(d.mean()) / math.sqrt(variance / n) * math.sqrt((n - 1) / n)
    return PairedTest(name, margin, n, mean, relative, statistic, float(stats.t.cdf(statistic, df=n - 1)), lag)


def period_losses(candidate: pd.DataFrame, reference: pd.DataFrame, *, events: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Two contenders' losses per period, for `diebold_mariano`: each frame has a row per prediction (`time`,
    `series`, `loss`); the rows both predicted with a finite loss are matched by (series, time) and averaged per
    time across series. Returns (candidate, reference, rows matched), periods in time order.

    `events`: many rows share a time, and the events of one day share its conditions, so the period is the
    calendar day. Rows are matched by (series, time) when that keys each frame's rows (the now-test passes each
    event's id as its `series`), else by position when both frames hold the same rows in the same order (a
    back-test month predicted by two contenders).

    Raises:
        ValueError: events whose rows can be matched neither way.
    """
    if events and not (_keyed(candidate) and _keyed(reference)):
        if len(candidate) != len(reference) or not np.array_equal(candidate["time"].to_numpy(),
                                                                   reference["time"].to_numpy()):
            raise ValueError("the two contenders' events are not the same rows: they cannot be paired")
        both = pd.DataFrame({"time": candidate["time"].to_numpy(), "loss_candidate": candidate["loss"].to_numpy(),
                             "loss_reference": reference["loss"].to_numpy()})
    else:
        both = candidate.merge(reference, on=["series", "time"], suffixes=("_candidate", "_reference"))
    both = both[np.isfinite(both["loss_candidate"]) & np.isfinite(both["loss_reference"])]
    period = pd.DatetimeIndex(both["time"]).floor("D") if events else both["time"]
    per_period = both.groupby(period, sort=True)[["loss_candidate", "loss_reference"]].mean()
    return per_period["loss_candidate"].to_numpy(), per_period["loss_reference"].to_numpy(), len(both)


def _keyed(frame: pd.DataFrame) -> bool:
    """Whether (series, time) is unique among the frame's rows."""
    return not frame.duplicated(["series", "time"]).any()


def window_metric(spec: ModelSpec, metric: str, actual: np.ndarray | None, predicted: np.ndarray | None,
                  loss: np.ndarray | None, correct: np.ndarray | None) -> float:
    """`metric` on the rows of one window (regression from actual and predicted; classification from the
    daily log loss and hits). NaN when undefined on these rows."""
    if spec.task == "regression":
        return score(spec, actual, predicted)[0][metric]
    if metric == "log_loss":
        return float(np.nanmean(loss)) if np.isfinite(loss).any() else math.nan
    if metric == "accuracy":
        return float(np.mean(correct))
    raise ValueError(f"{metric} cannot be calibrated from daily values; use a bound")


def windows(days: np.ndarray, window_days: int, min_rows: int) -> list[np.ndarray]:
    """Row masks of every window of `window_days` calendar days ending on a day of the series, from the first
    day a whole window fits, keeping those with at least `min_rows` rows (what a now-test of such a window
    would not call stale)."""
    days = np.asarray(days, dtype="datetime64[D]")
    if days.size == 0:
        return []
    first = days.min() + np.timedelta64(window_days - 1, "D")
    masks = []
    for end in np.unique(days[days >= first]):
        mask = (days > end - np.timedelta64(window_days, "D")) & (days <= end)
        if mask.sum() >= min_rows:
            masks.append(mask)
    return masks


def quantile_bound(values: np.ndarray, alpha: float, direction: str) -> float:
    """The (1 - alpha) quantile for a `max` bound, the alpha quantile for a `min` bound (NaN values left out)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(np.quantile(values, 1 - alpha if direction == "max" else alpha))


def mean_confidence_bound(values: np.ndarray, alpha: float, direction: str) -> tuple[float, float, float]:
    """A one-sided (1 - alpha) confidence bound of the mean of `values` (upper for `max`, lower for `min`),
    with Student's t on n - 1 degrees of freedom. Returns (bound, mean, standard deviation)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    n, mean = values.size, float(values.mean())
    sd = float(values.std(ddof=1)) if n > 1 else 0.0
    margin = float(stats.t.ppf(1 - alpha, df=n - 1)) * sd / math.sqrt(n) if n > 1 else 0.0
    return (mean + margin if direction == "max" else mean - margin), mean, sd
