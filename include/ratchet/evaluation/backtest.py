"""Walk-forward back-tests over month partitions, and the tables that read their results back.

For each complete month, every contender (the champion, the last retrain's candidates, the
baselines) is fitted on the rows before the month (expanding, or the last `window` months)
and scored on the month. Results are keyed by (contender, month) with the month's chained
data fingerprint, so a month whose history has not changed is never computed twice.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from statistics import fmean
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.evaluation.requirements import with_stated
from ratchet.exceptions import DataError
from ratchet.faults import checkpoint
from ratchet.modeling import baselines, metrics, sources
from ratchet.modeling.features import ContractInputs, make_estimator
from ratchet.modeling.months import complete_months, month_bounds, month_fingerprints
from ratchet.modeling.slices import per_slice
from ratchet.registry.entities import BACKTEST, DayRow, EvaluationRow, Version
from ratchet.specs.model import ModelSpec

if TYPE_CHECKING:
    from ratchet.registry import Registry

BacktestTable = dict[str, dict[str, dict[str, float]]]  # contender -> metric -> month -> value


@dataclass(frozen=True)
class Contender:
    """Something back-tested: a registered version (refitted with its hyperparameters) or a baseline."""

    name: str
    version: int | None = None
    estimator_class: str | None = None
    params: dict[str, Any] | None = None
    baseline: str | None = None
    contract: dict[str, Any] | None = None  # a version's feature contract: its inputs, whatever the YAML says now

    @classmethod
    def of(cls, version: Version) -> Contender:
        """A registered version as a contender: refitted with its hyperparameters on its own inputs."""
        return cls(version.contender, version.version, version.estimator_class, version.hyperparameters,
                   contract=version.contract)


def contenders(registry: Registry, spec: ModelSpec) -> list[Contender]:
    """The champion, every candidate of the last retrain run, and the baselines."""
    versions = {}
    champion = registry.champion(spec.name)
    for row in ([champion] if champion else []) + registry.latest_run_versions(spec.name):
        versions[row.version] = Contender.of(row)
    return [*versions.values(), *(Contender(name, baseline=name) for name in spec.baselines)]


def month_groups(spec: ModelSpec, frame: pd.DataFrame, *, end: Any, groups: int) -> list[list[str]]:
    """The months to back-test, oldest first, split into `groups` consecutive slices (some may be empty).

    Raises:
        DataError: the rows hold no complete month with rows before it (a back-test of nothing is no result),
            saying through when rows are needed.
    """
    times = frame[spec.source.key.time]
    months = complete_months(times, spec.backtest.months, before=end)
    if not months:
        first, last = pd.Timestamp(times.min()), pd.Timestamp(times.max())
        start = first.to_period("M").to_timestamp() + pd.offsets.MonthBegin(1)
        through = start + pd.offsets.MonthEnd(0)
        raise DataError(f"{spec.label}: too little history for a back-test: the rows run from {first} to {last}, "
                        f"and a back-test month must be a whole calendar month after the first row's month, before "
                        f"{pd.Timestamp(end)}; the first one ({start:%Y-%m}) needs rows through {through:%Y-%m-%d} "
                        f"({max((through - last.normalize()).days, 0)} more days) and a run after it")
    size = max(1, math.ceil(len(months) / groups))
    return [months[i * size:(i + 1) * size] for i in range(groups)]


def _estimator_for(spec: ModelSpec, contender: Contender) -> Any:
    if contender.baseline:
        return baselines.make_baseline(contender.baseline, spec.task)
    return make_estimator(spec, spec.estimator(contender.estimator_class), contender.params or {})


def inputs_of(inputs: ContractInputs, contender: Contender) -> tuple[ModelSpec, pd.DataFrame, pd.Series, pd.Series]:
    """The contender's spec and (X, y, times): a version's under its feature contract, a baseline's under today's
    YAML."""
    if contender.contract is None:
        return (inputs.spec, *inputs.today())
    return inputs.of(contender.version, contender.contract)


def fit_before(spec: ModelSpec, contender: Contender, X: pd.DataFrame, y: pd.Series, times: pd.Series,
               month: str) -> tuple[Any, int]:
    """The contender fitted on the rows before `month` (its back-test training window), and how many rows those
    are."""
    train = month_rows(spec, times, month)[1]
    return _estimator_for(spec, contender).fit(X.iloc[train], y.iloc[train]), train.stop - train.start


def month_rows(spec: ModelSpec, times: pd.Series, month: str) -> tuple[slice, slice]:
    """(rows to predict, rows to train on) of `month` among `times` (in time order, as validated): the month, and
    the rows before it (the last `backtest.window` months of them unless the window is expanding). Positions, not
    masks: a slice of millions of training rows is a view, a mask a copy."""
    start, stop = month_bounds(month)
    first = start - pd.DateOffset(months=int(spec.backtest.window)) if spec.backtest.window != "expanding" else None
    bounds = [start, stop] if first is None else [start, stop, first]
    at = np.searchsorted(times.to_numpy(), [b.to_datetime64() for b in bounds])
    return slice(at[0], at[1]), slice(0 if first is None else at[2], at[0])


def run_partition(registry: Registry, spec: ModelSpec, months: list[str], *, run_id: str, end: Any,
                  inputs: ContractInputs | None = None) -> dict[str, int]:
    """Back-test every contender on each month; store the new results in one transaction.

    `inputs` holds the source's rows up to `end` when the caller has already read them (read here otherwise);
    they are settled on the contenders' contracts before the first month. A version is refitted on its own inputs
    (its feature contract), the baselines on today's YAML's. Returns how many (contender, month) pairs were
    computed and how many were skipped as unchanged.

    Raises:
        DataError: a month has no rows to predict, or no rows before it to train on; the source no longer
            satisfies a version's contract.
    """
    inputs = ContractInputs(spec, sources.read_rows(spec, end=end), end=end) if inputs is None else inputs
    everyone = contenders(registry, spec)
    inputs.settle((c.version, c.contract) for c in everyone if c.contract is not None)
    fingerprints = month_fingerprints(spec, inputs.frame)
    X, y, times = inputs.today()
    stored = registry.evaluated_fingerprints(spec.name, BACKTEST)
    rows, days, computed, skipped = [], [], 0, 0
    for month in months:
        start, stop = month_bounds(month)
        test, train = month_rows(spec, times, month)
        if test.stop == test.start or train.stop == train.start:
            raise DataError(f"model {spec.name!r}: month {month} has {test.stop - test.start} rows to predict "
                            f"and {train.stop - train.start} rows before it to train on")
        for contender in everyone:
            if stored.get((contender.name, month)) == fingerprints[month]:
                skipped += 1
                continue
            own, cX, cy, ctimes = inputs_of(inputs, contender)
            model, trained_on = fit_before(own, contender, cX, cy, ctimes, month)
            test = month_rows(spec, ctimes, month)[0]
            tX, ty = cX.iloc[test], cy.iloc[test]  # the month's rows: for the scores, the groups and the days
            scores = metrics.evaluate(spec, model, tX, ty)
            by_series = metrics.per_series(spec.task, tX[baselines.SERIES], ty, scores) if own.source.series else {}
            by_slice = per_slice(spec, tX, ty, scores)
            computed += 1
            rows += [EvaluationRow(kind=BACKTEST, contender=contender.name, partition=month, metric=name,
                                   value=value, n_rows=len(ty), run_id=run_id, version=contender.version,
                                   baseline=contender.baseline, window_start=start.to_pydatetime(),
                                   window_end=stop.to_pydatetime(), data_fingerprint=fingerprints.get(month),
                                   details={"train_rows": trained_on,
                                            **({"undefined": scores.undefined[name]}
                                               if name in scores.undefined else {}),
                                            **series_details(by_series, name),
                                            **series_details(by_slice, name, "slices", "slice_rows")})
                     for name, value in scores.values.items()]
            days.append(_day_row(spec, contender.name, month, ctimes.iloc[test], tX, ty, scores, run_id,
                                 fingerprints.get(month)))
        checkpoint("backtest:month-computed")
    registry.record_evaluations(spec.name, rows, days=days)
    return {"computed": computed, "skipped": skipped}


def series_details(by_series: dict[str, dict[str, Any]], metric: str, values_key: str = "series",
                   rows_key: str = "series_rows") -> dict[str, Any]:
    """A metric row's per-series (or per-slice: `modeling.slices`) evidence (`metrics.per_series`): each group's
    value and rows, under `values_key` and `rows_key`; nothing without groups, or for a metric not computed per
    group."""
    if not by_series or metric not in next(iter(by_series.values())):
        return {}
    return {values_key: {name: values[metric] for name, values in by_series.items()},
            rows_key: {name: values["rows"] for name, values in by_series.items()}}


def _day_row(spec: ModelSpec, contender: str, month: str, times: pd.Series, X: pd.DataFrame, y: pd.Series,
             scores: metrics.Scores, run_id: str, fingerprint: str | None) -> DayRow:
    """The month's predictions, a value per row with its time and series, as the registry keeps them for windows
    and paired tests."""
    series = tuple(X[baselines.SERIES].tolist()) if spec.source.series else None
    common = dict(contender=contender, partition=month, times=tuple(times.dt.to_pydatetime().tolist()),
                  series=series, run_id=run_id, data_fingerprint=fingerprint)
    if spec.task == "regression":  # whole columns at once: a panel month holds tens of thousands of rows
        return DayRow(**common, actual=tuple(y.to_numpy(float).tolist()),
                      predicted=tuple(np.asarray(scores.predictions, float).tolist()))
    correct = tuple((y.to_numpy() == np.asarray(scores.predictions)).tolist())
    loss = tuple(np.asarray(scores.row_loss, float).tolist()) if scores.row_loss is not None else None
    return DayRow(**common, loss=loss, correct=correct)


def metric_table(registry: Registry, spec: ModelSpec, metric: str | None = None) -> dict[str, dict[str, float]]:
    """contender -> month -> value of one metric (default: the ranking metric), over the months the spec back-tests."""
    table: dict[str, dict[str, float]] = {}
    for contender, month, value in registry.metric_values(spec.name, BACKTEST, metric or spec.metric):
        if value is not None:
            table.setdefault(contender, {})[month] = value
    months = sorted({m for values in table.values() for m in values})[-spec.backtest.months:]
    return {c: {m: v for m, v in values.items() if m in months} for c, values in table.items()}


def metric_tables(registry: Registry, spec: ModelSpec) -> BacktestTable:
    """contender -> metric -> month -> value for every metric of the task (the evidence gates and ratchet read)."""
    table: BacktestTable = defaultdict(dict)
    for metric in spec.metrics:
        for contender, months in metric_table(registry, spec, metric).items():
            table[contender][metric] = months
    return table


def months_of(table: BacktestTable, contender: str) -> list[str]:
    """The months with a result of `contender`, sorted."""
    return sorted({m for months in table.get(contender, {}).values() for m in months})


def means_on(table: BacktestTable, contender: str, months: list[str]) -> dict[str, float]:
    """Mean of each metric of `contender` over `months` (only metrics present in every one of them)."""
    means = {}
    for metric, values in table.get(contender, {}).items():
        if months and all(m in values for m in months):
            means[metric] = fmean(values[m] for m in months)
    return means


def baseline_means(spec: ModelSpec, table: BacktestTable, months: list[str]) -> dict[str, dict[str, float]]:
    """baseline -> metric -> mean over `months`, for the spec's baselines that have results, and its stated
    baselines' constants."""
    return with_stated(spec, {name: means_on(table, name, months) for name in spec.baselines if name in table})


def backtest_summary(registry: Registry, spec: ModelSpec,
                     table: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """Per contender: mean of the ranking metric, months, and months won against the reference.

    The reference is the champion, or the best baseline while the model has none. `table` is
    `metric_table(registry, spec)` when the caller already has it.
    """
    table = metric_table(registry, spec) if table is None else table
    champion = registry.champion(spec.name)
    baseline_names = [b for b in spec.baselines if b in table]
    reference = champion.contender if champion and champion.contender in table \
        else min(baseline_names, key=lambda b: _mean(table[b]) * (1 if metrics.lower_is_better(spec.metric) else -1),
                 default=None)
    months = sorted({m for values in table.values() for m in values})
    summary = {"metric": spec.metric, "reference": reference, "months": months, "contenders": {}}
    for name, values in table.items():
        ref = table.get(reference, {})
        common = [m for m in values if m in ref]
        won = [m for m in common if metrics.better(spec.metric, values[m], ref[m])]
        summary["contenders"][name] = {
            "kind": "baseline" if name in spec.baselines else "version",
            "mean": _mean(values), "months": len(values), "months_won": len(won) if name != reference else None,
            "won": won if name != reference else [],
        }
    return summary


def _mean(values: dict[str, float]) -> float:
    return float(sum(values.values()) / len(values)) if values else math.nan
