"""Daily now-test: the champion and the candidates in trial on the latest days of data.

Contenders: the champion, and every version in trial (`registry.entities.in_trial`: newer than
the champion, every version while the model has none), the rule the trial gate counts days by.
Only the newest TRIAL_LIMIT of them are tested, so a model that retrains nightly without
promotions does not grow its daily cost without bound.

Window: rows with `end - window_days <= time < end`, `end` being the start of the day of the run's data
interval end (`modeling.months.window_bounds`: whole days, whatever the run's clock time), less
`source.label_delay_days` (`sources.labelled_end`): the window is the latest days whose labels have matured, and
its rows still without a label are counted (`awaiting_labels`), never scored.
Features are built on the history read up to `end` (so the window's first rows get their lags),
then sliced. Fewer than `min_rows` usable rows (none at all included) is stale data: a failure.
Each version predicts with its STORED estimator, and is judged only on the window's rows after its own
training data (`Version.train_end`): a version trained through yesterday would otherwise be graded on the
rows it learned, and pass. Until `min_rows` such rows exist it has no verdict (`waiting`): no trial day, no
breach and no recovery, said in the stored rows (`no_verdict`). The baselines are fitted on the rows before
the window and scored on the same rows, for relative requirements and for the mail.

Each candidate with a verdict is also compared with the champion on exactly its rows (`versus_champion`: the
paired test of their row losses, the one the promotion gate uses): what promotion gate 2 reads when the
champion breaches, since a back-test refits every version on the same months and cannot show a fresher fit.

Beside the re-predicted window, the now-test scores what the REST service actually served for the window's
feature ids (`evaluation.served`, kind 'served') and checks the serving requirements on the 24 hours before
the run's data interval end (`evaluation.service_level`, kind 'serving': the service's clock, not data days).

This module judges and stores nothing: `judge_nowtest` gives the outcome and the golden cases harvested from
a re-predicted champion breach (`evaluation.golden.harvest_worst_misses`); `alerting.policy` decides the mail;
`lifecycle.monitoring.run_nowtest` stores the verdict rows (`evaluation_rows`, partition = the window's last
day, so a re-run of the same date overwrites), the cases and the alert in one transaction.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.evaluation.drift import feature_drift
from ratchet.evaluation.golden import harvest_worst_misses, plain_value
from ratchet.evaluation.requirements import (
    RequirementResult,
    check_per_series,
    check_per_slice,
    check_requirements,
    with_stated,
)
from ratchet.evaluation.served import ServedEvaluation, evaluate_served
from ratchet.evaluation.served import evaluation_rows as served_rows
from ratchet.evaluation.service_level import SERVING_DAY, ServiceLevel, check_service_level
from ratchet.evaluation.service_level import evaluation_rows as service_rows
from ratchet.exceptions import DataError
from ratchet.modeling import baselines as baseline_lib
from ratchet.modeling import metrics, sources
from ratchet.modeling.baselines import ROW, SERIES
from ratchet.modeling.features import ContractInputs
from ratchet.modeling.frequency import frequency_of
from ratchet.modeling.months import window_bounds
from ratchet.modeling.slices import per_slice
from ratchet.modeling.sources import naive_utc
from ratchet.modeling.statistics import diebold_mariano, period_losses
from ratchet.registry.entities import NOWTEST, EvaluationRow, Version
from ratchet.specs.model import window_capacity

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

TRIAL_LIMIT = 10
WORST_MISSES = 5
ROWS = "rows"  # the metric of a row that counts rows: a stale window, or a version still waiting for a verdict


@dataclass(frozen=True)
class ContenderResult:
    """One version's now-test: its scores, each requirement's verdict, worst misses and drift."""

    contender: str  # 'v<N>'
    version: int
    role: str  # 'champion' | 'candidate'
    scores: dict[str, float]
    requirements: list[RequirementResult]
    worst_misses: list[dict[str, Any]] = field(default_factory=list)
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)  # feature -> verdict (`evaluation.drift`)
    undefined: dict[str, str] = field(default_factory=dict)  # metric -> why it has no value in this window
    rows: int = 0  # the window's rows after the version's training data: what it is judged on
    waiting: str | None = None  # why it has no verdict yet (too few rows after its training data)
    versus_champion: dict[str, Any] | None = None  # a candidate against the champion on the candidate's rows
    series: dict[str, dict[str, Any]] = field(default_factory=dict)  # a panel's metrics per series (`per_series`)
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)  # metrics per slice (`modeling.slices`)

    @property
    def judged(self) -> bool:
        """Whether it has a verdict today (enough rows after its training data)."""
        return self.waiting is None

    @property
    def failed(self) -> list[RequirementResult]:
        """The requirements this version breached."""
        return [r for r in self.requirements if not r.passed]

    @property
    def passed(self) -> bool:
        """No requirement breached."""
        return not self.failed

    @property
    def drift_warnings(self) -> dict[str, dict[str, Any]]:
        """Inputs whose drift is both significant and material (see `evaluation.drift`)."""
        return {k: v for k, v in self.drift.items() if v.get("warning")}


@dataclass(frozen=True)
class NowtestOutcome:
    """The now-test of one model on one window: every contender's result, the baselines, the alert."""

    model: str
    partition: str  # the window's last day, YYYY-MM-DD
    window_start: dt.datetime
    window_end: dt.datetime
    window_days: int
    n_rows: int
    min_rows: int
    results: list[ContenderResult]
    baselines: dict[str, dict[str, float]]
    alert_id: int | None = None
    harvested: int = 0
    mailed: str | None = None  # 'breach', 'reminder' or 'recovery' when this now-test queued a mail
    since: str | None = None  # the first day of the breach this now-test continues or ends
    served: ServedEvaluation | None = None  # what the service answered for the window's ids, scored
    service: ServiceLevel | None = None  # the serving requirements on the 24 hours before the run
    judged_metrics: tuple[str, ...] = ()  # the metrics of the now-test requirements
    awaiting_labels: int = 0  # the window's rows whose labels have not arrived (not scored, not in n_rows)

    @property
    def stale(self) -> bool:
        """Fewer usable rows in the window than `nowtest.min_rows`: no verdict on the models, an alert on the data."""
        return self.n_rows < self.min_rows

    @property
    def champion(self) -> ContenderResult | None:
        """The champion's result (None while the model has no champion)."""
        return next((r for r in self.results if r.role == "champion"), None)

    @property
    def served_failed(self) -> list[RequirementResult]:
        """The now-test requirements the champion's own served answers breached (re-predicted ones are apart)."""
        own = self.served.champion if self.served else None
        return own.failed if own else []

    @property
    def service_failed(self) -> list[RequirementResult]:
        """The serving requirements breached on the 24 hours before the run."""
        return self.service.failed if self.service else []

    @property
    def passed(self) -> bool:
        """The model's now-test verdict: enough data, the champion meets every now-test requirement on the
        re-predicted window and on what it served, and the service meets its serving requirements."""
        return (not self.stale and (self.champion is None or self.champion.passed) and not self.served_failed
                and not self.service_failed)

    @property
    def alerting(self) -> bool:
        """Whether this outcome queues an alert: the champion breached, or the data is stale."""
        return bool(self.results) and not self.passed and (self.stale or self.champion is not None)

    def summary(self) -> dict[str, Any]:
        """Small JSON-able result for XCom and logs: `contenders` are re-predicted on the window, `served` are
        the service's logged answers for it, `service_level` the serving requirements of the day."""
        return {"model": self.model, "partition": self.partition, "n_rows": self.n_rows, "stale": self.stale,
                "awaiting_labels": self.awaiting_labels,
                "passed": self.passed, "alert_id": self.alert_id, "harvested": self.harvested,
                "mailed": self.mailed,
                "contenders": {r.contender: {"role": r.role, "passed": r.passed, "waiting": r.waiting,
                                             "failed": [x.describe() for x in r.failed]} for r in self.results},
                "served": self.served.summary() if self.served else None,
                "service_level": self.service.summary() if self.service else None}


def _worst_misses(task: str, y: pd.Series, times: pd.Series, y_pred: np.ndarray) -> list[dict[str, Any]]:
    """The WORST_MISSES rows with the largest absolute error (wrong classes for classifiers); `row` is the
    position in the window."""
    actual = y.to_numpy()
    if task == "regression":
        errors = np.abs(actual.astype(float) - np.asarray(y_pred, float))
    else:
        errors = (actual != np.asarray(y_pred)).astype(float)
    order = [i for i in np.argsort(-errors, kind="stable")[:WORST_MISSES] if errors[i] > 0]
    return [{"time": times.iloc[i].isoformat(), "actual": plain_value(actual[i]), "predicted": plain_value(y_pred[i]),
             "abs_error": float(errors[i]), "row": int(i)} for i in order]


def _stored_inputs(version: Version, X: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in version.features if c not in X.columns]
    if missing:
        raise DataError(f"v{version.version} was trained on columns {missing} that the source no longer provides")
    return X[list(version.features)]


def judge_nowtest(registry: Registry, spec: ModelSpec, *, data_interval_end: Any
                  ) -> tuple[NowtestOutcome, list[dict[str, Any]]]:
    """Now-test every contender of the model on the window ending at `data_interval_end`: the outcome (no alert
    state yet: `alerting.policy` fills it in) and the golden cases harvested from a champion breach, unstored.

    Raises:
        DataError: the source cannot be read, or no longer has a column a version was trained on.
    """
    start, end, partition = window_bounds(sources.labelled_end(spec, data_interval_end), spec.nowtest.window_days)
    champion, trial = registry.trial_versions(spec.name)
    trial = trial[:TRIAL_LIMIT]
    versions = ([champion] if champion else []) + trial
    if not versions:  # nothing registered yet: nothing to test, nothing stored
        return NowtestOutcome(spec.name, partition, start.to_pydatetime(), end.to_pydatetime(),
                              spec.nowtest.window_days, 0, spec.nowtest.min_rows, [], {}), []

    raw = sources.read_rows(spec, end=end)
    awaiting = sources.unlabelled(spec, raw, start, end)
    inputs = ContractInputs(spec, raw, end=end)  # each version's own inputs
    _require_window_capacity(spec, frequency_of(spec, inputs.frame))
    X, y, times = inputs.today()  # today's YAML: baselines, served
    window = ((times >= start) & (times < end)).to_numpy()
    before = (times < start).to_numpy()
    n_rows = int(window.sum())
    Xw, yw = X[window].reset_index(drop=True), y[window].reset_index(drop=True)
    tw = times[window].reset_index(drop=True)
    requirements = registry.requirements(spec.name, "nowtest")

    fitted: dict[str, Any] = {}
    if n_rows >= spec.nowtest.min_rows and before.any():
        fitted = {name: baseline_lib.make_baseline(name, spec.task).fit(X[before], y[before])
                  for name in spec.baselines}
    baseline_results = {name: metrics.evaluate(spec, baseline, Xw, yw) for name, baseline in fitted.items()}
    baseline_scores = {name: result.values for name, result in baseline_results.items()}
    baseline_series = ({name: metrics.per_series(spec.task, Xw[SERIES], yw, result)
                        for name, result in baseline_results.items()} if spec.source.series else {})
    baseline_slices = {name: per_slice(spec, Xw, yw, result) for name, result in baseline_results.items()}

    results, champion_window, champion_rows = [], None, None
    for row in versions:
        role = "champion" if champion is not None and row.version == champion.version else "candidate"
        own, vX, vy, vtimes = inputs.of(row.version, row.contract)
        own_window = ((vtimes >= start) & (vtimes < end)).to_numpy()
        drift = feature_drift(row, vX, vtimes, own_window, own.source.categorical)
        if n_rows < spec.nowtest.min_rows:
            results.append(ContenderResult(row.contender, row.version, role, {}, [], [], drift))
            continue
        fresh = own_window & after_training(vtimes, row)
        if fresh.sum() < spec.nowtest.min_rows:
            results.append(ContenderResult(row.contender, row.version, role, {}, [], [], drift, rows=int(fresh.sum()),
                                           waiting=_waiting(row, int(fresh.sum()), int(own_window.sum()),
                                                            spec.nowtest.min_rows)))
            continue
        vXw = _stored_inputs(row, vX[fresh].reset_index(drop=True))
        vyw, vtw = vy[fresh].reset_index(drop=True), vtimes[fresh].reset_index(drop=True)
        estimator = registry.load_estimator(spec.name, row.version)
        scored = metrics.evaluate(spec, estimator, vXw, vyw)
        scores, y_pred, undefined, row_log_loss = scored
        checked = check_requirements(requirements, scores, with_stated(spec, baseline_scores))
        series = vX.loc[fresh, SERIES].to_numpy() if own.source.series else None  # each fresh row's series
        by_series = metrics.per_series(spec.task, series, vyw, scored) if series is not None else {}
        checked += check_per_series(requirements, spec.requirements, by_series, baseline_series,
                                    spec.nowtest.min_rows)
        by_slice = per_slice(own, vX[fresh].reset_index(drop=True), vyw, scored)
        checked += check_per_slice(requirements, spec.requirements, by_slice, baseline_slices, spec.nowtest.min_rows)
        misses = _worst_misses(spec.task, vyw, vtw, y_pred)
        keys = vX.loc[fresh, ROW].to_numpy() if own.source.events else series  # what pairs a row with the champion's
        losses = pd.DataFrame({"time": vtw.to_numpy(), "loss": metrics.row_losses(spec, vyw, y_pred, row_log_loss),
                               "series": keys if keys is not None else ""})
        versus = (versus_champion(spec, losses, champion_rows, champion.contender)
                  if role == "candidate" and champion_rows is not None else None)
        results.append(ContenderResult(row.contender, row.version, role, scores, checked, misses, drift, undefined,
                                       rows=len(vyw), versus_champion=versus, series=by_series, slices=by_slice))
        if role == "champion":
            champion_window, champion_rows = vXw, losses

    day_end = naive_utc(data_interval_end).tz_localize("UTC").to_pydatetime()
    day_log = registry.serving_log(spec.name, day_end - SERVING_DAY, day_end)
    served = evaluate_served(registry, spec, window_start=start, window_end=end, times=tw, y=yw, X=Xw,
                             baselines=fitted, requirements=requirements,
                             champion=champion.version if champion else None, day_log=day_log)
    service = check_service_level(registry.requirements(spec.name, "serving"), day_log)
    outcome = NowtestOutcome(spec.name, partition, start.to_pydatetime(), end.to_pydatetime(),
                             spec.nowtest.window_days, n_rows, spec.nowtest.min_rows, results, baseline_scores,
                             served=served, service=service,
                             judged_metrics=tuple(sorted({r.metric for r in requirements})), awaiting_labels=awaiting)
    cases = []
    if outcome.champion is not None and not outcome.stale and not outcome.champion.passed:
        own = outcome.champion
        cases = harvest_worst_misses(spec, own.contender, own.worst_misses, own.failed, champion_window,
                                     baseline_scores, X[before], y[before])
    if cases:
        known = {case.case_key for case in registry.golden_cases(spec.name)}
        outcome = replace(outcome, harvested=len({c["case_key"] for c in cases} - known))
    return outcome, cases


def after_training(times: pd.Series, version: Version) -> np.ndarray:
    """The rows after the version's training data (every row for a version without a recorded training end)."""
    if version.train_end is None:
        return np.ones(len(times), dtype=bool)
    return (times > naive_utc(version.train_end)).to_numpy()


def _waiting(version: Version, fresh: int, in_window: int, min_rows: int) -> str:
    return (f"{fresh} of the window's {in_window} rows are after v{version.version}'s training data (through "
            f"{naive_utc(version.train_end):%Y-%m-%d}): it is judged from nowtest.min_rows = {min_rows} such rows on")


def _require_window_capacity(spec: ModelSpec, frequency: str) -> None:
    """Refuse a `nowtest.min_rows` one series' window can never hold at the rows' (inferred) frequency: every
    now-test would be stale, an alert about nothing (a declared frequency is checked when the YAML is read)."""
    capacity = window_capacity(spec.nowtest.window_days, frequency)
    if not spec.source.series and capacity is not None and spec.nowtest.min_rows > capacity:
        raise DataError(f"{spec.label}: nowtest.min_rows {spec.nowtest.min_rows} can never be met: a window of "
                        f"{spec.nowtest.window_days} days holds at most {capacity} rows at the rows' frequency "
                        f"{frequency!r}; lower min_rows or widen window_days")


def comparison_metric(spec: ModelSpec) -> str:
    """The loss a candidate and the champion are compared on row by row (`metrics.row_loss_metric`)."""
    return metrics.row_loss_metric(spec)


def versus_champion(spec: ModelSpec, candidate: pd.DataFrame, champion: pd.DataFrame,
                    champion_name: str) -> dict[str, Any]:
    """The candidate against the champion on the candidate's rows (both out of their training data; each frame a
    row per prediction: `time`, `series`, `loss`): the Diebold-Mariano test that its losses, averaged per period
    across series (`statistics.period_losses`), are lower by more than `promotion.min_improvement`."""
    candidate_loss, champion_loss, rows = period_losses(candidate, champion, events=spec.source.events)
    result = diebold_mariano(candidate_loss, champion_loss, margin=spec.promotion.min_improvement)
    metric = comparison_metric(spec)
    common = candidate.merge(champion[["series", "time"]], on=["series", "time"])["time"]
    return {"champion": champion_name, "metric": metric, "rows": rows,
            "first": str(common.min()) if len(common) else None, "last": str(common.max()) if len(common) else None,
            **result.as_dict(),
            "text": f"on the {rows} now-test rows after its training data, {metric} loss "
                    f"{result.relative_difference:+.2%} vs the champion {champion_name} (H0: not "
                    f"{result.margin:.0%} better; p = {result.p_value:.3g})"}


def evaluation_rows(outcome: NowtestOutcome, run_id: str) -> list[EvaluationRow]:
    """The outcome as stored: one row per contender and metric (a 'rows' row when the data is stale), baselines,
    what was served and the service level included."""
    window = {"start": outcome.window_start.isoformat(), "end": outcome.window_end.isoformat(),
              "days": outcome.window_days, "awaiting_labels": outcome.awaiting_labels}
    common = dict(kind=NOWTEST, partition=outcome.partition, n_rows=outcome.n_rows, run_id=run_id,
                  window_start=outcome.window_start, window_end=outcome.window_end)
    rows = []
    for result in outcome.results:
        details = {"role": result.role, "window": window, "n_rows": outcome.n_rows, "min_rows": outcome.min_rows,
                   "mailed": outcome.mailed if result.role == "champion" else None,
                   "stale": outcome.stale, "requirements": [r.as_dict() for r in result.requirements],
                   "worst_misses": result.worst_misses, "drift": result.drift,
                   "drift_warnings": sorted(result.drift_warnings), "passed": result.passed and not outcome.stale,
                   "rows_after_training": result.rows, "versus_champion": result.versus_champion,
                   **({"series": result.series} if result.series else {}),
                   **({"slices": result.slices} if result.slices else {})}
        if not outcome.stale and not result.judged:  # no verdict yet: what it would be judged on, and why not
            waiting = {**details, "no_verdict": result.waiting, "passed": None}
            rows += [EvaluationRow(metric=metric, value=None, contender=result.contender, version=result.version,
                                   passed=None, details=waiting, **common)
                     for metric in sorted({*outcome.judged_metrics, ROWS})]
            continue
        if outcome.stale:
            rows.append(EvaluationRow(metric=ROWS, value=float(outcome.n_rows), contender=result.contender,
                                      version=result.version, passed=False, details=details, **common))
            continue
        for metric, value in result.scores.items():
            checked = [r.passed for r in result.requirements if r.metric == metric]
            reason = {"undefined": result.undefined[metric]} if metric in result.undefined else {}
            rows.append(EvaluationRow(metric=metric, value=value, contender=result.contender, version=result.version,
                                      passed=all(checked) if checked else None, details={**details, **reason},
                                      **common))
    for name, scores in outcome.baselines.items():
        rows += [EvaluationRow(metric=metric, value=value, contender=name, baseline=name, **common)
                 for metric, value in scores.items()]
    if outcome.served:
        rows += served_rows(outcome.served, common, window, outcome.mailed)
    if outcome.service:
        rows += service_rows(outcome.service, common, outcome.mailed)
    return rows


