"""Daily now-test: the champion and the candidates in trial on the latest days of data.

Contenders: the champion, and every version in trial. A version is in trial from the moment
it is registered until a newer version becomes champion: "in trial" = newer than the champion
(every version while the model has none), the same rule `promotion` uses to count trial days.
Only the newest TRIAL_LIMIT of them are tested, so a model that retrains nightly without
promotions does not grow its daily cost without bound.

Window: rows with `end - window_days <= time < end`, `end` being the run's data interval end.
Features are built on the history read up to `end` (so the window's first rows get their lags),
then sliced. Fewer than `min_rows` usable rows (none at all included) is stale data: a failure.
Each version predicts with its STORED estimator; the baselines are fitted on the rows before
the window and scored on the same rows, for relative requirements and for the mail.

Results are stored as evaluations (kind 'nowtest', partition = the window's last day), so a
re-run of the same date overwrites instead of adding rows. A champion breach or stale data
writes ONE alert per model and date to the outbox (dedupe key `nowtest:<model>:<run_id>`);
the worst misses of a champion breach become harvested golden cases.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from typing import Any

TRIAL_LIMIT = 10
WORST_MISSES = 5
PSI_WARNING = 0.2
PSI_BINS = 10
HARVEST_SOURCE = "harvested"


@dataclass(frozen=True)
class ContenderResult:
    contender: str  # 'v<N>'
    version: int
    role: str  # 'champion' | 'candidate'
    scores: dict[str, float]
    requirements: list  # RequirementResult
    worst_misses: list[dict[str, Any]] = field(default_factory=list)
    drift: dict[str, float | None] = field(default_factory=dict)

    @property
    def failed(self) -> list:
        return [r for r in self.requirements if not r.passed]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def drift_warnings(self) -> dict[str, float]:
        return {k: v for k, v in self.drift.items() if v is not None and v > PSI_WARNING}


@dataclass(frozen=True)
class NowtestOutcome:
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

    @property
    def stale(self) -> bool:
        return self.n_rows < self.min_rows

    @property
    def champion(self) -> ContenderResult | None:
        return next((r for r in self.results if r.role == "champion"), None)

    @property
    def passed(self) -> bool:
        """The model's now-test verdict: enough data and the champion meets every now-test requirement."""
        return not self.stale and (self.champion is None or self.champion.passed)

    @property
    def alerting(self) -> bool:
        return bool(self.results) and not self.passed and (self.stale or self.champion is not None)

    def summary(self) -> dict[str, Any]:
        """Small JSON-able result for XCom and logs."""
        return {"model": self.model, "partition": self.partition, "n_rows": self.n_rows, "stale": self.stale,
                "passed": self.passed, "alert_id": self.alert_id, "harvested": self.harvested,
                "contenders": {r.contender: {"role": r.role, "passed": r.passed,
                                             "failed": [x.describe() for x in r.failed]} for r in self.results}}


def trial_versions(registry, model: str):
    """(champion row or None, versions in trial newest first, at most TRIAL_LIMIT)."""
    champion = registry.champion(model)
    newer = [v for v in registry.versions(model) if champion is None or v.version > champion.version]
    return champion, sorted(newer, key=lambda v: v.version, reverse=True)[:TRIAL_LIMIT]


def window_bounds(end, window_days: int) -> tuple[Any, Any, str]:
    """[start, end) of the window as naive UTC timestamps, and its last day as the partition."""
    import pandas as pd

    from ratchet.data import _naive_utc

    end = _naive_utc(end)
    start = end - pd.Timedelta(days=window_days)
    return start, end, (end - pd.Timedelta(microseconds=1)).strftime("%Y-%m-%d")


def psi(expected, actual, bins: int = PSI_BINS) -> float | None:
    """Population stability index of `actual` against `expected` (None without data).

    Few distinct training values are compared as categories, otherwise on training deciles.
    """
    import numpy as np

    expected = np.asarray(expected, float)
    actual = np.asarray(actual, float)
    expected, actual = expected[~np.isnan(expected)], actual[~np.isnan(actual)]
    if expected.size == 0 or actual.size == 0:
        return None
    values = np.unique(expected)
    if values.size <= bins:
        categories = np.union1d(values, np.unique(actual))
        e = np.array([(expected == c).mean() for c in categories])
        a = np.array([(actual == c).mean() for c in categories])
    else:
        inner = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))[1:-1]
        e = np.bincount(np.searchsorted(inner, expected, side="right"), minlength=inner.size + 1) / expected.size
        a = np.bincount(np.searchsorted(inner, actual, side="right"), minlength=inner.size + 1) / actual.size
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _drift(version, X, times, window) -> dict[str, float | None]:
    """PSI of each numeric model input in the window against the version's training window."""
    import pandas as pd

    from ratchet.data import _naive_utc
    from ratchet.regression import INTERNAL_PREFIX

    if version.train_start is None or version.train_end is None:
        return {}
    train = ((times >= _naive_utc(version.train_start)) & (times <= _naive_utc(version.train_end))).to_numpy()
    return {column: psi(X.loc[train, column], X.loc[window, column]) for column in version.features
            if not column.startswith(INTERNAL_PREFIX) and column in X
            and pd.api.types.is_numeric_dtype(X[column])}


def _worst_misses(task: str, y, times, y_pred) -> list[dict[str, Any]]:
    """The WORST_MISSES rows with the largest absolute error (wrong classes for classifiers); `row` is the
    position in the window."""
    import numpy as np

    actual = y.to_numpy()
    if task == "regression":
        errors = np.abs(actual.astype(float) - np.asarray(y_pred, float))
    else:
        errors = (actual != np.asarray(y_pred)).astype(float)
    order = [i for i in np.argsort(-errors, kind="stable")[:WORST_MISSES] if errors[i] > 0]
    return [{"time": times.iloc[i].isoformat(), "actual": _plain(actual[i]), "predicted": _plain(y_pred[i]),
             "abs_error": float(errors[i]), "row": int(i)} for i in order]


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _stored_inputs(version, X):
    missing = [c for c in version.features if c not in X.columns]
    if missing:
        from ratchet.data import DataError

        raise DataError(f"v{version.version} was trained on columns {missing} that the source no longer provides")
    return X[list(version.features)]


def run_nowtest(registry, spec, *, run_id: str, data_interval_end, airflow_run_url: str) -> NowtestOutcome:
    """Now-test every contender of the model on the window ending at `data_interval_end`; store and alert."""
    from ratchet import baselines as baseline_lib
    from ratchet import data, metrics
    from ratchet.requirements import check_requirements

    start, end, partition = window_bounds(data_interval_end, spec.nowtest.window_days)
    champion, trial = trial_versions(registry, spec.name)
    versions = ([champion] if champion else []) + trial
    if not versions:  # nothing registered yet: nothing to test, nothing stored
        return NowtestOutcome(spec.name, partition, start.to_pydatetime(), end.to_pydatetime(),
                              spec.nowtest.window_days, 0, spec.nowtest.min_rows, [], {})

    frame = data.read_source(spec, end=end)
    X, y, times = data.make_xy(spec, frame)
    window = ((times >= start) & (times < end)).to_numpy()
    before = (times < start).to_numpy()
    n_rows = int(window.sum())
    Xw, yw = X[window].reset_index(drop=True), y[window].reset_index(drop=True)
    tw = times[window].reset_index(drop=True)
    requirements = registry.requirements(spec.name, "nowtest")

    baseline_scores: dict[str, dict[str, float]] = {}
    if n_rows >= spec.nowtest.min_rows and before.any():
        for name in spec.baselines:
            fitted = baseline_lib.make_baseline(name, spec.task).fit(X[before], y[before])
            baseline_scores[name], _ = metrics.evaluate(spec.task, fitted, Xw, yw)

    results = []
    for row in versions:
        role = "champion" if champion is not None and row.version == champion.version else "candidate"
        drift = _drift(row, X, times, window)
        if n_rows < spec.nowtest.min_rows:
            results.append(ContenderResult(f"v{row.version}", row.version, role, {}, [], [], drift))
            continue
        estimator = registry.load_estimator(spec.name, row.version)
        scores, y_pred = metrics.evaluate(spec.task, estimator, _stored_inputs(row, Xw), yw)
        checked = check_requirements(requirements, scores, baseline_scores)
        misses = _worst_misses(spec.task, yw, tw, y_pred)
        results.append(ContenderResult(f"v{row.version}", row.version, role, scores, checked, misses, drift))

    outcome = NowtestOutcome(spec.name, partition, start.to_pydatetime(), end.to_pydatetime(),
                             spec.nowtest.window_days, n_rows, spec.nowtest.min_rows, results, baseline_scores)
    registry.record_evaluations(spec.name, _evaluation_rows(outcome, run_id))
    harvested = 0
    if outcome.champion is not None and not outcome.stale and not outcome.champion.passed:
        harvested = harvest_worst_misses(registry, spec, outcome.champion, Xw, baseline_scores, X[before], y[before])
    outcome = replace(outcome, harvested=harvested)
    if outcome.alerting:
        from ratchet import alerts

        subject, text, body = alerts.build_nowtest_alert(outcome, airflow_run_url)
        alert_id = registry.enqueue_alert(spec.name, dedupe_key=f"nowtest:{spec.name}:{run_id}", source="nowtest",
                                          run_id=run_id, recipients=list(spec.alert_emails), subject=subject,
                                          body_text=text, body_html=body)
        outcome = replace(outcome, alert_id=alert_id)
    return outcome


def _evaluation_rows(outcome: NowtestOutcome, run_id: str) -> list:
    """One row per contender and metric (a 'rows' row when the data is stale), baselines included."""
    from ratchet.registry import EvaluationRow

    window = {"start": outcome.window_start.isoformat(), "end": outcome.window_end.isoformat(),
              "days": outcome.window_days}
    common = dict(kind="nowtest", partition=outcome.partition, n_rows=outcome.n_rows, run_id=run_id,
                  window_start=outcome.window_start, window_end=outcome.window_end)
    rows = []
    for result in outcome.results:
        details = {"role": result.role, "window": window, "n_rows": outcome.n_rows, "min_rows": outcome.min_rows,
                   "stale": outcome.stale, "requirements": [r.as_dict() for r in result.requirements],
                   "worst_misses": result.worst_misses, "drift": result.drift,
                   "drift_warnings": sorted(result.drift_warnings), "passed": result.passed and not outcome.stale}
        if outcome.stale:
            rows.append(EvaluationRow(metric="rows", value=float(outcome.n_rows), contender=result.contender,
                                      version=result.version, passed=False, details=details, **common))
            continue
        for metric, value in result.scores.items():
            checked = [r.passed for r in result.requirements if r.metric == metric]
            rows.append(EvaluationRow(metric=metric, value=value, contender=result.contender, version=result.version,
                                      passed=all(checked) if checked else None, details=details, **common))
    for name, scores in outcome.baselines.items():
        rows += [EvaluationRow(metric=metric, value=value, contender=name, baseline=name, **common)
                 for metric, value in scores.items()]
    return rows


def harvest_tolerance(spec, failed, actual: float, baseline_error: float | None) -> float:
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


def harvest_worst_misses(registry, spec, result: ContenderResult, Xw, baseline_scores, X_before, y_before) -> int:
    """Add the champion's worst misses as golden cases (key: sha256 of model + time); returns how many were new."""
    import numpy as np

    from ratchet import baselines as baseline_lib
    from ratchet.regression import INTERNAL_PREFIX, case_key
    from ratchet.requirements import best_baseline

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
        inputs = {c: _plain(Xw.iloc[i][c]) for c in Xw.columns if not c.startswith(INTERNAL_PREFIX)}
        inputs = {c: (None if isinstance(v, float) and np.isnan(v) else v) for c, v in inputs.items()}
        baseline_error = abs(float(baseline_pred[i]) - actual) if baseline_pred is not None else None
        cases.append({
            "case_key": case_key(spec.name, miss["time"]), "source": HARVEST_SOURCE,
            "name": f"now-test miss {miss['time'][:16]} ({result.contender} predicted {miss['predicted']:.4g})",
            "inputs": inputs, "expected": float(actual),
            "tolerance": harvest_tolerance(spec, result.failed, float(actual), baseline_error),
        })
    return registry.add_golden_cases(spec.name, cases)
