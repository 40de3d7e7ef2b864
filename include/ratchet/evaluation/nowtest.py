"""Daily now-test: the champion and the candidates in trial on the latest days of data.

Contenders: the champion, and every version in trial (`registry.entities.in_trial`: newer than
the champion, every version while the model has none), the rule the trial gate counts days by.
Only the newest TRIAL_LIMIT of them are tested, so a model that retrains nightly without
promotions does not grow its daily cost without bound.

Window: rows with `end - window_days <= time < end`, `end` being the run's data interval end.
Features are built on the history read up to `end` (so the window's first rows get their lags),
then sliced. Fewer than `min_rows` usable rows (none at all included) is stale data: a failure.
Each version predicts with its STORED estimator; the baselines are fitted on the rows before
the window and scored on the same rows, for relative requirements and for the mail.

Beside the re-predicted window, the now-test scores what the REST service actually served for the window's
feature ids (`evaluation.served`, kind 'served') and checks the serving requirements on the day before the
data end (`evaluation.service_level`, kind 'serving').

Results are stored as evaluations (partition = the window's last day), so a re-run of the same date
overwrites instead of adding rows. A champion breach (re-predicted, or on what its own arm served), a
serving requirement's breach or stale data writes ONE alert per model and date to the outbox (dedupe key
`nowtest:<model>:<run_id>`); the worst misses of a re-predicted champion breach become harvested golden cases.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.alerting.mails import build_nowtest_alert, build_recovery_alert
from ratchet.alerting.outbox import alert_draft
from ratchet.evaluation.drift import feature_drift
from ratchet.evaluation.golden import case_key
from ratchet.evaluation.requirements import RequirementResult, check_requirements
from ratchet.evaluation.served import ServedEvaluation, evaluate_served
from ratchet.evaluation.served import evaluation_rows as served_rows
from ratchet.evaluation.service_level import SERVING_DAY, ServiceLevel, check_service_level
from ratchet.evaluation.service_level import evaluation_rows as service_rows
from ratchet.exceptions import DataError
from ratchet.faults import checkpoint
from ratchet.modeling import baselines as baseline_lib
from ratchet.modeling import metrics, sources
from ratchet.modeling.features import is_model_input, make_xy
from ratchet.modeling.metrics import best_baseline
from ratchet.modeling.months import window_bounds
from ratchet.registry.entities import (
    SERVICE_CONTENDER,
    Evaluation,
    EvaluationRow,
    Version,
    served_contender,
    version_contender,
)

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

TRIAL_LIMIT = 10
WORST_MISSES = 5
HARVEST_SOURCE = "harvested"


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
    service: ServiceLevel | None = None  # the serving requirements on the day before the data end

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
        """The serving requirements breached on the day before the data end."""
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
                "passed": self.passed, "alert_id": self.alert_id, "harvested": self.harvested,
                "contenders": {r.contender: {"role": r.role, "passed": r.passed,
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
    return [{"time": times.iloc[i].isoformat(), "actual": _plain(actual[i]), "predicted": _plain(y_pred[i]),
             "abs_error": float(errors[i]), "row": int(i)} for i in order]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _stored_inputs(version: Version, X: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in version.features if c not in X.columns]
    if missing:
        raise DataError(f"v{version.version} was trained on columns {missing} that the source no longer provides")
    return X[list(version.features)]


def run_nowtest(registry: Registry, spec: ModelSpec, *, run_id: str, data_interval_end: Any,
                airflow_run_url: str, mail: bool = True) -> NowtestOutcome:
    """Now-test every contender of the model on the window ending at `data_interval_end`; store and alert.

    The verdicts, the harvested misses and the alert are stored in one transaction: a task killed at any
    point leaves all of them or none. `mail=False` (a backfill) records everything but the alert.

    Raises:
        DataError: the source cannot be read, or no longer has a column a version was trained on.
    """
    start, end, partition = window_bounds(data_interval_end, spec.nowtest.window_days)
    champion, trial = registry.trial_versions(spec.name)
    trial = trial[:TRIAL_LIMIT]
    versions = ([champion] if champion else []) + trial
    if not versions:  # nothing registered yet: nothing to test, nothing stored
        return NowtestOutcome(spec.name, partition, start.to_pydatetime(), end.to_pydatetime(),
                              spec.nowtest.window_days, 0, spec.nowtest.min_rows, [], {})

    frame = sources.read_source(spec, end=end)
    X, y, times = make_xy(spec, frame)
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
    baseline_scores = {name: metrics.evaluate(spec.task, baseline, Xw, yw).values for name, baseline in fitted.items()}

    results = []
    for row in versions:
        role = "champion" if champion is not None and row.version == champion.version else "candidate"
        drift = feature_drift(row, X, times, window, spec.source.categorical)
        if n_rows < spec.nowtest.min_rows:
            results.append(ContenderResult(row.contender, row.version, role, {}, [], [], drift))
            continue
        estimator = registry.load_estimator(spec.name, row.version)
        scores, y_pred, undefined, _ = metrics.evaluate(spec.task, estimator, _stored_inputs(row, Xw), yw)
        checked = check_requirements(requirements, scores, baseline_scores)
        misses = _worst_misses(spec.task, yw, tw, y_pred)
        results.append(ContenderResult(row.contender, row.version, role, scores, checked, misses, drift, undefined))

    day_end = end.tz_localize("UTC").to_pydatetime()
    day_log = registry.serving_log(spec.name, day_end - SERVING_DAY, day_end)
    served = evaluate_served(registry, spec, window_start=start, window_end=end, times=tw, y=yw, X=Xw,
                             baselines=fitted, requirements=requirements,
                             champion=champion.version if champion else None, day_log=day_log)
    service = check_service_level(registry.requirements(spec.name, "serving"), day_log)
    outcome = NowtestOutcome(spec.name, partition, start.to_pydatetime(), end.to_pydatetime(),
                             spec.nowtest.window_days, n_rows, spec.nowtest.min_rows, results, baseline_scores,
                             served=served, service=service)
    cases = []
    if outcome.champion is not None and not outcome.stale and not outcome.champion.passed:
        cases = harvest_worst_misses(spec, outcome.champion, Xw, baseline_scores, X[before], y[before])
    if cases:
        known = {case.case_key for case in registry.golden_cases(spec.name)}
        outcome = replace(outcome, harvested=len({c["case_key"] for c in cases} - known))
    draft = None
    if outcome.champion is not None:
        history = alert_history(registry, spec.name, outcome.champion.version)
        today = alert_rows(_evaluation_rows(outcome, run_id), outcome.champion.version)
        kind, since = mail_decision(history, partition, outcome.alerting, spec.alerts.repeat_after_days, today)
        outcome = replace(outcome, since=since, mailed=kind if mail else None)
        if outcome.mailed == "recovery":
            draft = alert_draft(spec, "nowtest", run_id, build_recovery_alert(outcome, airflow_run_url))
        elif outcome.mailed:
            draft = alert_draft(spec, "nowtest", run_id, build_nowtest_alert(outcome, airflow_run_url))
    elif outcome.alerting and mail:  # stale data before any champion
        outcome = replace(outcome, mailed="breach")
        draft = alert_draft(spec, "nowtest", run_id, build_nowtest_alert(outcome, airflow_run_url))
    checkpoint("nowtest:verdicts-computed")
    alert_id = registry.record_evaluations(spec.name, _evaluation_rows(outcome, run_id), golden_cases=cases,
                                           alert=draft)
    return replace(outcome, alert_id=alert_id)


def _evaluation_rows(outcome: NowtestOutcome, run_id: str) -> list[EvaluationRow]:
    """One row per contender and metric (a 'rows' row when the data is stale), baselines included."""
    window = {"start": outcome.window_start.isoformat(), "end": outcome.window_end.isoformat(),
              "days": outcome.window_days}
    common = dict(kind="nowtest", partition=outcome.partition, n_rows=outcome.n_rows, run_id=run_id,
                  window_start=outcome.window_start, window_end=outcome.window_end)
    rows = []
    for result in outcome.results:
        details = {"role": result.role, "window": window, "n_rows": outcome.n_rows, "min_rows": outcome.min_rows,
                   "mailed": outcome.mailed if result.role == "champion" else None,
                   "stale": outcome.stale, "requirements": [r.as_dict() for r in result.requirements],
                   "worst_misses": result.worst_misses, "drift": result.drift,
                   "drift_warnings": sorted(result.drift_warnings), "passed": result.passed and not outcome.stale}
        if outcome.stale:
            rows.append(EvaluationRow(metric="rows", value=float(outcome.n_rows), contender=result.contender,
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


def alert_history(registry: Registry, model: str, champion: int) -> list[Evaluation]:
    """The verdict rows the model's alert state follows: the champion's re-predicted now-tests, what its own arm
    served, and the service's level (`mail_decision` reads them day by day)."""
    return [row for kind, contender in _alert_contenders(champion)
            for row in registry.evaluations(model, kind, contender=contender)]


def alert_rows(rows: Iterable[EvaluationRow], champion: int) -> list[EvaluationRow]:
    """Of one now-test's rows, those `alert_history` would read back."""
    wanted = set(_alert_contenders(champion))
    return [row for row in rows if (row.kind, row.contender) in wanted]


def _alert_contenders(champion: int) -> list[tuple[str, str]]:
    return [("nowtest", version_contender(champion)), ("served", served_contender(champion, "champion")),
            ("serving", SERVICE_CONTENDER)]


def harvest_tolerance(spec: ModelSpec, failed: list[RequirementResult], actual: float,
                      baseline_error: float | None) -> float:
    """The tolerance of a harvested case: the per-row error the failed requirement allows.

    mae/rmse bound the typical error directly; mape bounds it relative to the actual value. For
    requirements without a per-row reading (r2, classification metrics) the case asks to be at
    least as good as the best baseline was on that row (0 for classifiers: the right class).
    """
    allowed = []
    for result in failed:
        if result.effective_bound is None:
            continue
        if result.metric in ("mae", "rmse"):
            allowed.append(result.effective_bound)
        elif result.metric == "mape":
            allowed.append(result.effective_bound * abs(actual))
    if allowed:
        return float(max(allowed))
    if spec.task == "classification":
        return 0.0
    return float(baseline_error) if baseline_error is not None and math.isfinite(baseline_error) else 0.0


def harvest_worst_misses(spec: ModelSpec, result: ContenderResult, Xw: pd.DataFrame,
                         baseline_scores: dict[str, dict[str, float]], X_before: pd.DataFrame,
                         y_before: pd.Series) -> list[dict[str, Any]]:
    """The champion's worst misses as golden cases (key: sha256 of model + time), to store with the verdict.

    Each case's tolerance comes from `harvest_tolerance`; the best baseline (by mae) is fitted on the
    rows before the window for the per-row fallback.
    """
    best_name = best_baseline("mae", baseline_scores)[0] if spec.task == "regression" else None
    baseline_pred = None
    if best_name is not None:
        baseline_pred = baseline_lib.make_baseline(best_name, spec.task).fit(X_before, y_before).predict(Xw)
    cases = []
    for miss in result.worst_misses:
        i = miss["row"]
        actual = miss["actual"]
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            continue  # non-numeric class labels cannot be stored as an expected number
        inputs = {c: _plain(Xw.iloc[i][c]) for c in Xw.columns if is_model_input(c)}
        inputs = {c: (None if isinstance(v, float) and np.isnan(v) else v) for c, v in inputs.items()}
        baseline_error = abs(float(baseline_pred[i]) - actual) if baseline_pred is not None else None
        cases.append({
            "case_key": case_key(spec.name, miss["time"]), "source": HARVEST_SOURCE,
            "name": f"now-test miss {miss['time'][:16]} ({result.contender} predicted {miss['predicted']:.4g})",
            "inputs": inputs, "expected": float(actual),
            "tolerance": harvest_tolerance(spec, result.failed, float(actual), baseline_error),
        })
    return cases


def mail_decision(history: Iterable[Evaluation], partition: str, alerting: bool, repeat_after_days: int,
                  today: Iterable[EvaluationRow] = ()) -> tuple[str | None, str | None]:
    """Whether today's now-test mails, from the champion's earlier verdict days: (kind, first day of the breach).

    'breach' when a breach starts; 'reminder' when it goes on and its last mail is `repeat_after_days` old (so
    a breach that lasts a month is mailed about four times, not thirty); 'recovery' when a mailed breach ends;
    None otherwise. Days between recorded now-tests do not interrupt a breach, and neither does a day that gives
    no verdict on what breached (no requests to measure a latency on, too few served ids): a breach ends only
    when what breached is measured again and passes, so a quiet day never reads as a recovery.
    """
    by_day: dict[str, list[EvaluationRow]] = {}
    for row in history:
        if row.partition < partition:
            by_day.setdefault(row.partition, []).append(row)
    open_keys: set[tuple[str, str]] = set()
    start = last_mail = None
    for day in sorted(by_day):
        failed, undecided, kinds, mailed = _verdict_keys(by_day[day])
        open_keys = _still_open(open_keys, failed, undecided, kinds)
        if not open_keys:
            start = last_mail = None
            continue
        start = start or day
        last_mail = day if mailed else last_mail
    if alerting:
        if start is None:
            return "breach", partition
        waited = last_mail is None or (dt.date.fromisoformat(partition) - dt.date.fromisoformat(last_mail)).days \
            >= repeat_after_days
        return ("reminder" if waited else None), start
    if start is not None and _still_open(open_keys, *_verdict_keys(today)[:3]):
        return None, start  # today says nothing about what breached: no recovery yet, and no news
    return ("recovery", start) if last_mail else (None, None)


def _verdict_keys(rows: Iterable[EvaluationRow]) -> tuple[set, set, set[str], bool]:
    """A day's (kind, metric) keys that failed and that had a requirement but no verdict, its kinds, and whether
    it was mailed."""
    failed, undecided, kinds, mailed = set(), set(), set(), False
    for row in rows:
        details = row.details or {}
        kinds.add(row.kind)
        if row.passed is False:
            failed.add((row.kind, row.metric))
        elif row.passed is None and details.get("no_verdict"):
            undecided.add((row.kind, row.metric))
        mailed = mailed or bool(details.get("mailed"))
    return failed, undecided, kinds, mailed


def _still_open(open_keys: set, failed: set, undecided: set, kinds: set[str]) -> set:
    """The breach keys a day leaves open: those failing, and those it gave no verdict on (or measured nothing of)."""
    return failed | {key for key in open_keys if key in undecided or key[0] not in kinds}


def last_verdict(rows: Iterable[Evaluation]) -> dict[str, Any] | None:
    """The latest now-test day among verdict rows (`alert_history`): it passed if none of that day's rows failed.

    Returns None without rows, else {day, passed, failed_metrics, run_id}; a metric breached on what was served
    is named 'served <metric>'.
    """
    rows = list(rows)
    if not rows:
        return None
    day = max(r.partition for r in rows)
    latest = [r for r in rows if r.partition == day]
    failed = {f"served {r.metric}" if r.kind == "served" else r.metric for r in latest if r.passed is False}
    return {"day": day, "passed": all(r.passed is not False for r in latest), "failed_metrics": sorted(failed),
            "run_id": latest[-1].run_id}
