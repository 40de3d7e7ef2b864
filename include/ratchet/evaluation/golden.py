"""Model regression tests: golden cases with expected outputs and tolerances.

Cases come from two places: a file the user keeps next to the model's YAML
(`<stem>.golden.yaml`, or the file named by `golden_cases:`) and the worst misses harvested
from failed now-tests. The file is a YAML list of

    - name: holiday with heavy rain          # unique in the file
      inputs: {temperature: 3.0, precipitation: 25.0, is_holiday: 1, promo: 0,
               day_of_week: 2, target_lag_1: 180.0, target_lag_7: 175.0}
      expected: 140.0
      tolerance: 15.0                        # |prediction - expected| <= tolerance passes

`inputs` holds every feature of the model and each `target_lag_<k>` of `source.target_lags`.
(Named "golden" rather than "regression" so it never reads as the `task: regression` of a spec.)
A bad file raises GoldenFileError naming the file, the case index and the field, before
anything is stored. A case's key is the sha256 of its name and inputs, so editing the
expectation or tolerance of a case updates it, and removing it from the file removes it.
Every case runs against a version's STORED estimator, exactly as it is served.

A third source: rows a person labelled in the review queue (`lifecycle.review`), the rows a model was least sure of.
No version can be expected to answer all of them as the person did, so they are judged as a group against the
champion: a version passes them when it misses no more of them than the champion does (the champion itself always
passes them, so the nightly regression test never alerts on them; a promotion cannot make them worse). The other
cases must all pass, as always.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from ratchet.evaluation.requirements import RequirementResult
from ratchet.exceptions import GoldenFileError
from ratchet.modeling import baselines as baseline_lib
from ratchet.modeling.features import is_model_input, lag_name
from ratchet.modeling.metrics import best_baseline
from ratchet.modeling.months import window_bounds
from ratchet.registry.entities import (
    GOLDEN_HARVESTED,
    GOLDEN_REVIEWED,
    REGRESSION_TEST,
    EvaluationRow,
    GoldenCase,
    Version,
    version_contender,
)

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

CASE_FIELDS = ("name", "inputs", "expected", "tolerance")
ROW_FALSE_FAIL = 0.05  # the share of its rows on which a model meeting a bound would fail a harvested case
HARVEST_SOURCE = GOLDEN_HARVESTED  # the `source` of a case harvested from a now-test miss


@dataclass(frozen=True)
class GoldenResult:
    """The verdict of a version on golden cases: passed, and each failed case with its numbers."""

    passed: bool
    # each failure: {name, source, expected, predicted, tolerance, error}
    failures: list[dict[str, Any]] = field(default_factory=list)
    n_cases: int = 0
    # the reviewed cases judged against the champion: {cases, missed, champion_missed, champion}
    reviewed: dict[str, Any] | None = None

    def describe(self) -> str:
        """'3 golden case(s) passed', or how many failed and the first five failures; and the reviewed cases."""
        reviewed = self.reviewed
        fixed = [f for f in self.failures if f["source"] != GOLDEN_REVIEWED]
        said = ("" if reviewed is None else
                f"; {reviewed['missed']} of {reviewed['cases']} reviewed case(s) missed, "
                + (f"the champion v{reviewed['champion']} misses {reviewed['champion_missed']}"
                   if reviewed["champion"] is not None else "no champion to compare with"))
        if fixed:
            return f"{len(fixed)} of {self.n_cases} golden case(s) failed: " + "; ".join(
                describe_failure(f) for f in fixed[:5]) + said
        if not self.passed:
            return (f"{reviewed['missed']} of {reviewed['cases']} reviewed case(s) missed, more than the champion "
                    f"v{reviewed['champion']}'s {reviewed['champion_missed']}; every other golden case passed")
        passed = f"{self.n_cases - len(self.failures)} of {self.n_cases}" if self.failures else f"{self.n_cases}"
        return f"{passed} golden case(s) passed" + said


def describe_failure(failure: dict[str, Any]) -> str:
    """One failed case in words: its name, the prediction, the expectation and tolerance (or the error)."""
    if failure.get("error"):
        return f"{failure['name']}: {failure['error']}"
    return (f"{failure['name']}: predicted {failure['predicted']:.4g}, expected {failure['expected']:.4g} "
            f"± {failure['tolerance']:.4g}")


def plain_value(value: Any) -> Any:
    """A NumPy scalar as the plain Python value it holds (JSON-able); anything else as it is."""
    return value.item() if hasattr(value, "item") else value


def case_key(*parts: Any) -> str:
    """A stable sha256 of the parts (JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def expected_inputs(spec: ModelSpec) -> tuple[list[str] | None, list[str]]:
    """(declared features or None when the spec takes every column, lag inputs) a case must give."""
    features = list(spec.source.features) if spec.source.features is not None else None
    return features, [lag_name(lag) for lag in spec.source.target_lags]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_case(spec: ModelSpec, path: Path, index: int, raw: Any, names: set[str]) -> dict[str, Any]:
    where = f"case [{index}]"
    if not isinstance(raw, dict):
        raise GoldenFileError(path, where, "a mapping with " + ", ".join(CASE_FIELDS), raw)
    unknown = sorted(set(raw) - set(CASE_FIELDS))
    if unknown:
        raise GoldenFileError(path, f"{where} field '{unknown[0]}'", f"only the fields {list(CASE_FIELDS)}")
    for name in CASE_FIELDS:
        if raw.get(name) is None:
            raise GoldenFileError(path, f"{where} field '{name}'", "a value; the field is required")
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise GoldenFileError(path, f"{where} field 'name'", "a non-empty string", name)
    where = f"case [{index}] {name!r}"
    if name in names:
        raise GoldenFileError(path, f"{where} field 'name'", "a name not used by an earlier case", name)
    inputs = raw["inputs"]
    if not isinstance(inputs, dict) or not inputs:
        raise GoldenFileError(path, f"{where} field 'inputs'", "a mapping of feature -> value", inputs)
    features, lags = expected_inputs(spec)
    required = [*(features or []), *lags]
    missing = [c for c in required if c not in inputs]
    if missing:
        raise GoldenFileError(path, f"{where} field 'inputs'", f"a value for every input {required}; missing {missing}")
    if features is not None:
        extra = sorted(set(inputs) - set(required))
        if extra:
            raise GoldenFileError(path, f"{where} field 'inputs.{extra[0]}'",
                                  f"only the model's inputs {required}", extra[0])
    for column, value in inputs.items():
        categorical = column in spec.source.categorical
        if not (_number(value) or (categorical and isinstance(value, str))):
            kind = "a number or a string (categorical feature)" if categorical else "a finite number"
            raise GoldenFileError(path, f"{where} field 'inputs.{column}'", kind, value)
    expected, tolerance = raw["expected"], raw["tolerance"]
    if not _number(expected):
        raise GoldenFileError(path, f"{where} field 'expected'", "a finite number (the expected prediction)", expected)
    if not _number(tolerance) or tolerance < 0:
        raise GoldenFileError(path, f"{where} field 'tolerance'", "a number >= 0", tolerance)
    names.add(name)
    return {"case_key": case_key(name, inputs), "name": name, "inputs": dict(inputs),
            "expected": float(expected), "tolerance": float(tolerance)}


def read_golden_file(spec: ModelSpec) -> list[dict[str, Any]]:
    """The validated cases of the model's golden file ([] when the model has none).

    Raises:
        GoldenFileError: naming the file, the case and the field, before anything is stored.
    """
    path = spec.golden_cases_file
    if path is None or not Path(path).exists():
        return []
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise GoldenFileError(path, "(document)", "valid YAML", str(exc).splitlines()[0]) from None
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise GoldenFileError(path, "(document)", "a list of cases", type(raw).__name__)
    names: set[str] = set()
    return [_validate_case(spec, Path(path), i, case, names) for i, case in enumerate(raw)]


def load_golden_file(registry: Registry, spec: ModelSpec) -> dict[str, int]:
    """Validate the whole file first, then make the stored file cases match it (one transaction)."""
    return registry.sync_golden_file(spec.name, read_golden_file(spec))


def input_frame(spec: ModelSpec, version: Version, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A DataFrame in the column order the version was trained on, from plain input mappings, typed by the
    version's own feature contract (its categorical columns, whatever the YAML says now).

    The baselines' helper columns are left empty (the estimator pipelines drop them); a missing
    model input raises KeyError naming it.
    """
    categorical = spec.for_version(version.version, version.contract).source.categorical
    columns = list(version.features)
    frame = pd.DataFrame(rows).reindex(columns=columns)
    for column in columns:
        if column in categorical:
            frame[column] = frame[column].astype(object)
        else:
            frame[column] = pd.to_numeric(frame[column], errors="raise").astype(float)
    return frame


def _missing_inputs(version: Version, inputs: dict[str, Any]) -> list[str]:
    return [c for c in version.features if is_model_input(c) and inputs.get(c) is None]


def evaluate_cases(spec: ModelSpec, version: Version, estimator: Any,
                   cases: Iterable[GoldenCase | dict[str, Any]]) -> GoldenResult:
    """Run golden cases (stored ones or plain mappings) through a fitted estimator of `version`."""
    failures, runnable = [], []
    for case in cases:
        get = case.get if isinstance(case, dict) else lambda key, c=case: getattr(c, key)
        item = {"name": get("name"), "source": get("source"), "expected": get("expected"),
                "tolerance": get("tolerance"), "inputs": get("inputs")}
        missing = _missing_inputs(version, item["inputs"])
        if missing:
            failures.append({**_public(item), "predicted": None,
                             "error": f"inputs lack {missing} that v{version.version} needs"})
        else:
            runnable.append(item)
    n_cases = len(failures) + len(runnable)
    if runnable:
        predictions = estimator.predict(input_frame(spec, version, [c["inputs"] for c in runnable]))
        for item, predicted in zip(runnable, predictions, strict=True):
            predicted = float(predicted)
            if not abs(predicted - item["expected"]) <= item["tolerance"]:
                failures.append({**_public(item), "predicted": predicted, "error": None})
    return GoldenResult(passed=not failures, failures=failures, n_cases=n_cases)


def harvest_tolerance(spec: ModelSpec, failed: list[RequirementResult], actual: float,
                      baseline_error: float | None) -> float:
    """The tolerance of a harvested case: the error on one row that a model meeting the failed requirement exceeds
    on only ROW_FALSE_FAIL of its rows.

    A bound on rmse, mae or mape bounds the typical error, not every row's: a tolerance equal to the bound fails a
    model that just meets it on about half its rows. With normal errors of a model exactly at the bound, |error|
    exceeds 1.96 rmse, or 2.46 mae (1.96 sigma, sigma = mae x sqrt(pi / 2)), on 5% of the rows; mape is mae
    relative to the actual value. The case still catches the miss it was harvested from, which broke the bound
    by far more. For requirements without a per-row reading (r2, classification metrics) the case asks to be at
    least as good as the best baseline was on that row (0 for classifiers: the right class).
    """
    z = float(stats.norm.ppf(1 - ROW_FALSE_FAIL / 2))
    allowed = []
    for result in failed:
        if result.effective_bound is None:
            continue
        if result.metric == "rmse":
            allowed.append(z * result.effective_bound)
        elif result.metric == "mae":
            allowed.append(z * math.sqrt(math.pi / 2) * result.effective_bound)
        elif result.metric == "mape":
            allowed.append(z * math.sqrt(math.pi / 2) * result.effective_bound * abs(actual))
    if allowed:
        return float(max(allowed))
    if spec.task == "classification":
        return 0.0
    return float(baseline_error) if baseline_error is not None and math.isfinite(baseline_error) else 0.0


def harvest_worst_misses(spec: ModelSpec, contender: str, misses: list[dict[str, Any]],
                         failed: list[RequirementResult], Xw: pd.DataFrame,
                         baseline_scores: dict[str, dict[str, float]], X_before: pd.DataFrame,
                         y_before: pd.Series) -> list[dict[str, Any]]:
    """A breaching champion's worst misses in the now-test window `Xw` (`misses`: their rows, times, actual and
    predicted values) as golden cases (key: sha256 of model + time), to store with the verdict.

    Each case's tolerance comes from `harvest_tolerance`; the best baseline (by mae) is fitted on the
    rows before the window for the per-row fallback.
    """
    best_name = best_baseline("mae", baseline_scores)[0] if spec.task == "regression" else None
    baseline_pred = None
    if best_name is not None:
        baseline_pred = baseline_lib.make_baseline(best_name, spec.task).fit(X_before, y_before).predict(Xw)
    cases = []
    for miss in misses:
        i = miss["row"]
        actual = miss["actual"]
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            continue  # non-numeric class labels cannot be stored as an expected number
        inputs = {c: plain_value(Xw.iloc[i][c]) for c in Xw.columns if is_model_input(c)}
        inputs = {c: (None if isinstance(v, float) and np.isnan(v) else v) for c, v in inputs.items()}
        baseline_error = abs(float(baseline_pred[i]) - actual) if baseline_pred is not None else None
        cases.append({
            "case_key": case_key(spec.name, miss["time"]), "source": HARVEST_SOURCE,
            "name": f"now-test miss {miss['time'][:16]} ({contender} predicted {miss['predicted']:.4g})",
            "inputs": inputs, "expected": float(actual),
            "tolerance": harvest_tolerance(spec, failed, float(actual), baseline_error),
        })
    return cases


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item[k] for k in ("name", "source", "expected", "tolerance")}


def run_golden_cases(registry: Registry, spec: ModelSpec, version: int) -> GoldenResult:
    """Load the golden file (a bad file raises, nothing changes), then run every case of the model (file,
    harvested and reviewed) against the stored estimator of `version`; reviewed cases are judged against the
    champion (see the module)."""
    load_golden_file(registry, spec)
    cases = registry.golden_cases(spec.name)
    if not cases:
        return GoldenResult(passed=True, failures=[], n_cases=0)
    row = registry.version(spec.name, version)
    result = evaluate_cases(spec, row, registry.load_estimator(spec.name, version), cases)
    reviewed = [c for c in cases if c.source == GOLDEN_REVIEWED]
    if not reviewed:
        return result
    missed = sum(f["source"] == GOLDEN_REVIEWED for f in result.failures)
    champion = registry.champion(spec.name)
    theirs = missed
    if champion is not None and champion.version != version:
        theirs = len(evaluate_cases(spec, champion, registry.load_estimator(spec.name, champion.version),
                                    reviewed).failures)
    fixed_failed = any(f["source"] != GOLDEN_REVIEWED for f in result.failures)
    return replace(result, passed=not fixed_failed and missed <= theirs, reviewed={
        "cases": len(reviewed), "missed": missed, "champion_missed": theirs if champion else None,
        "champion": champion.version if champion else None})


@dataclass(frozen=True)
class RegressionOutcome:
    """What the nightly regression test of one model found, and the alert it queued (if any, once stored)."""

    model: str
    partition: str
    version: int | None  # the champion tested (None: the model has no champion yet)
    result: GoldenResult | None
    alert_id: int | None = None

    def summary(self) -> dict[str, Any]:
        """Small JSON-able result for XCom and logs."""
        result = self.result
        return {"model": self.model, "partition": self.partition, "version": self.version,
                "n_cases": result.n_cases if result else 0, "passed": result.passed if result else None,
                "failures": [describe_failure(f) for f in result.failures[:20]] if result else [],
                "alert_id": self.alert_id}


def judge_regression(registry: Registry, spec: ModelSpec, *, data_interval_end: Any) -> RegressionOutcome:
    """Run the golden cases against the champion (partition = the day before `data_interval_end`); store nothing.

    A bad golden file raises GoldenFileError before anything is stored; a model without a champion has no result.
    """
    _start, _end, partition = window_bounds(data_interval_end, 1)
    load_golden_file(registry, spec)
    champion = registry.champion(spec.name)
    if champion is None:
        return RegressionOutcome(spec.name, partition, None, None)
    return RegressionOutcome(spec.name, partition, champion.version, run_golden_cases(registry, spec, champion.version))


def regression_row(outcome: RegressionOutcome, run_id: str) -> EvaluationRow:
    """The outcome as stored: one evaluation (kind 'regression', metric 'golden_pass_rate'), so a re-run of the
    same date replaces it."""
    result = outcome.result
    rate = (result.n_cases - len(result.failures)) / result.n_cases if result.n_cases else None
    return EvaluationRow(
        kind=REGRESSION_TEST, contender=version_contender(outcome.version), version=outcome.version,
        partition=outcome.partition, metric="golden_pass_rate", value=rate, n_rows=result.n_cases, run_id=run_id,
        passed=result.passed, details={"n_cases": result.n_cases, "failures": result.failures})
