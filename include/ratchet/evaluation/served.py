"""Served evaluation: what the REST service actually gave its clients, scored against the actuals that arrived since.

The now-test re-predicts its window with each contender's stored estimator; this module scores the logged
answers instead, beside it, so the now-test measures both what a version would predict today and what clients
were given.
- Rows: the logged answers (status < 400) whose feature id (the row's time key) is in the now-test window,
  grouped by (arm, version). A client may ask for the same id many times: each id counts ONCE per (arm,
  version), with its latest answer (the service answers an unchanged row identically).
- Actuals: the window's rows the now-test itself scores (same target, same lags), so a served id is joined with
  exactly the actual the re-predicted metrics use. An id without such a row (its actual has not arrived yet, or
  its lags cannot be built) waits and is counted as `awaiting`.
- Scores: the now-test's metrics (`modeling.metrics`); a classifier's answers are scored by their logged label
  and probabilities against the version's training classes.
- Verdicts: the now-test requirements are checked on a group with at least `nowtest.min_rows` scored ids
  (fewer: scores, but no verdict); relative bounds use the baselines scored on the same ids. A breach of the
  champion's own arm alerts like a re-predicted breach; a candidate's is recorded (gate 4 reads it).
- A/B: when both arms were scored, each candidate arm is compared with the champion's arm on the ranking
  metric over the stretch of time keys both answered, each arm on its own ids. Descriptive, no significance
  test: the arms' ids are different days of one series (unpaired, autocorrelated errors) and a 10% split gives
  the candidate one or two ids a week; the paired comparison of both versions on every id of the window is the
  re-predicted now-test beside it.
Stored as evaluations of kind 'served' (contender 'v<N>@<arm>', the now-test's partition), in the now-test's
transaction.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.evaluation.requirements import RequirementResult, check_requirements, with_stated
from ratchet.exceptions import DataError
from ratchet.modeling import metrics
from ratchet.modeling.baselines import ROW, SERIES
from ratchet.modeling.features import id_labels
from ratchet.modeling.metrics import finite, improvement
from ratchet.registry.entities import SERVED, EvaluationRow, served_contender

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.registry.entities import Requirement, Served, ServingLog
    from ratchet.specs.model import ModelSpec

CHAMPION_ARM, CANDIDATE_ARM = "champion", "candidate"


@dataclass(frozen=True)
class ServedResult:
    """One (arm, version) of the window's served answers: how many, how they scored, each requirement's verdict."""

    version: int
    arm: str
    role: str  # 'champion' (the champion's own arm), 'candidate', or 'former champion' (before a promotion)
    ids: int  # distinct feature ids answered in the window
    answers: int  # answers logged for them (an id asked twice counts twice here, once everywhere else)
    scored: int  # ids joined with an actual
    served_in_day: int  # rows answered in the day before the run's data end (what gate 4 counts)
    scores: dict[str, float] = field(default_factory=dict)
    undefined: dict[str, str] = field(default_factory=dict)
    requirements: list[RequirementResult] = field(default_factory=list)
    span: tuple[str, str] | None = None  # first and last scored time key

    @property
    def contender(self) -> str:
        """'v<N>@<arm>'."""
        return served_contender(self.version, self.arm)

    @property
    def awaiting(self) -> int:
        """Answered ids whose actual has not arrived (or has no row the now-test scores)."""
        return self.ids - self.scored

    @property
    def failed(self) -> list[RequirementResult]:
        """The requirements these served answers breached."""
        return [r for r in self.requirements if not r.passed]


@dataclass(frozen=True)
class ServedEvaluation:
    """Every (arm, version) served in the window and the A/B comparisons of the arms."""

    results: list[ServedResult]
    comparisons: list[dict[str, Any]]
    min_rows: int

    @property
    def champion(self) -> ServedResult | None:
        """The champion's own arm (its breaches alert), None when it answered nothing in the window."""
        return next((r for r in self.results if r.role == "champion"), None)

    def summary(self) -> dict[str, Any]:
        """Small JSON-able form for XCom and logs."""
        return {r.contender: {"role": r.role, "ids": r.ids, "scored": r.scored, "answers": r.answers,
                              "served_in_day": r.served_in_day, "checked": bool(r.requirements),
                              "failed": [x.describe() for x in r.failed]} for r in self.results} | {
            "comparisons": [c["text"] for c in self.comparisons]}


def _answer_frame(answers: list[tuple[Served, int]]) -> pd.DataFrame:
    """The latest answer of each (arm, version, feature id) as a frame, with how many answers were logged for it."""
    return pd.DataFrame([{"arm": a.arm, "version": a.version, "feature_id": pd.Timestamp(a.feature_id),
                          "series": a.series or "", "prediction": a.prediction, "label": a.label,
                          "probabilities": a.probabilities, "answers": n} for a, n in answers],
                        columns=["arm", "version", "feature_id", "series", "prediction", "label", "probabilities",
                                 "answers"])


class _Scorer:
    """Scores served answers of one window against its actuals, loading a classifier's classes once per version."""

    def __init__(self, registry: Registry, spec: ModelSpec, times: pd.Series, y: pd.Series, X: pd.DataFrame,
                 baselines: dict[str, Any]):
        self.registry, self.spec, self.X, self.y, self.baselines = registry, spec, X, y, baselines
        if ROW in X:  # an event's answers are keyed by its id, a panel's by series and time
            series = id_labels(spec, X[ROW])
        else:
            series = X[SERIES].to_numpy() if SERIES in X else np.full(len(times), "")
        self.position = pd.Series(np.arange(len(times)),
                                  index=pd.MultiIndex.from_arrays([series, pd.DatetimeIndex(times)]))
        self.classes: dict[int, np.ndarray] = {}

    def rows(self, answers: pd.DataFrame) -> np.ndarray:
        """Window row of each answer's (series, feature id), -1 where the window has none."""
        keys = pd.MultiIndex.from_arrays([answers["series"].to_numpy(), pd.DatetimeIndex(answers["feature_id"])])
        return self.position.reindex(keys).fillna(-1).to_numpy(int)

    def score(self, version: int, answers: pd.DataFrame, rows: np.ndarray) -> tuple[dict[str, float], dict[str, str]]:
        """The task's metrics of `answers` (joined to window `rows`)."""
        actual = self.y.iloc[rows].to_numpy()
        if self.spec.task == "regression":
            return metrics.score(self.spec, actual, answers["prediction"].astype(float).to_numpy())
        classes = self._classes(version)
        by_name = {str(c): c for c in classes}
        unknown = sorted(set(answers["label"].astype(str)) - set(by_name))
        if unknown:
            raise DataError(f"model {self.spec.name!r}: the serving log holds label(s) {unknown} that v{version} "
                            f"does not have (its classes: {sorted(by_name)}); the log does not match the version")
        predicted = np.asarray([by_name[str(label)] for label in answers["label"]], dtype=classes.dtype)
        proba = None
        if answers["probabilities"].notna().all():
            proba = np.array([[float(p.get(str(c), 0.0)) for c in classes] for p in answers["probabilities"]])
        return metrics.score(self.spec, actual, predicted, proba, classes)

    def baseline_scores(self, rows: np.ndarray) -> dict[str, dict[str, float]]:
        """Each baseline's metrics on the same window rows (for relative requirements)."""
        return {name: metrics.evaluate(self.spec, fitted, self.X.iloc[rows], self.y.iloc[rows]).values
                for name, fitted in self.baselines.items()}

    def _classes(self, version: int) -> np.ndarray:
        if version not in self.classes:
            self.classes[version] = np.asarray(self.registry.load_estimator(self.spec.name, version).classes_)
        return self.classes[version]


def evaluate_served(registry: Registry, spec: ModelSpec, *, window_start: Any, window_end: Any,
                    times: pd.Series, y: pd.Series, X: pd.DataFrame, baselines: dict[str, Any],
                    requirements: list[Requirement], champion: int | None,
                    day_log: ServingLog) -> ServedEvaluation | None:
    """Score the answers served for the window's feature ids against the window's actuals (see the module).

    `times`, `y`, `X` are the window's rows as the now-test scores them; `baselines` the baselines it fitted on
    the rows before the window; `day_log` the serving log of the day before the data end, for `served_in_day`.
    None when the service answered nothing for the window and nothing in the day.
    """
    frame = _answer_frame(registry.served_answers(spec.name, pd.Timestamp(window_start).to_pydatetime(),
                                                  pd.Timestamp(window_end).to_pydatetime()))
    logged = frame.groupby(["arm", "version"])["answers"].sum().to_dict()
    in_day = {(s.arm, s.version): s.answered for s in day_log.stats
              if s.arm is not None and s.version is not None and s.answered}
    groups = sorted(set(logged) | set(in_day), key=lambda g: (g[0] != CHAMPION_ARM, -g[1]))
    if not groups:
        return None
    scorer = _Scorer(registry, spec, times, y, X, baselines)
    results, scored_rows = [], {}
    for arm, version in groups:
        mine = frame[(frame["arm"] == arm) & (frame["version"] == version)].reset_index(drop=True)
        rows = scorer.rows(mine)
        known = rows >= 0
        role = arm if arm == CANDIDATE_ARM or version == champion else "former champion"
        result = ServedResult(version=int(version), arm=arm, role=role, ids=len(mine),
                              answers=int(logged.get((arm, version), 0)), scored=int(known.sum()),
                              served_in_day=int(in_day.get((arm, version), 0)))
        if known.any():
            scored_rows[result.contender] = (mine[known].reset_index(drop=True), rows[known])
            scores, undefined = scorer.score(version, *scored_rows[result.contender])
            checked = []
            if known.sum() >= spec.nowtest.min_rows:
                checked = check_requirements(requirements, scores,
                                             with_stated(spec, scorer.baseline_scores(rows[known])))
            ids = mine.loc[known, "feature_id"]
            result = replace(result, scores=scores, undefined=undefined, requirements=checked,
                             span=(ids.min().isoformat(), ids.max().isoformat()))
        results.append(result)
    return ServedEvaluation(results, _compare_arms(spec, scorer, results, scored_rows), spec.nowtest.min_rows)


def _compare_arms(spec: ModelSpec, scorer: _Scorer, results: list[ServedResult],
                  scored_rows: dict[str, tuple[pd.DataFrame, np.ndarray]]) -> list[dict[str, Any]]:
    """Each scored candidate arm against the champion's arm on the ranking metric, over their common span."""
    champions = [r for r in results if r.arm == CHAMPION_ARM and r.scored]
    if not champions:
        return []
    reference = next((r for r in champions if r.role == "champion"), max(champions, key=lambda r: r.scored))
    metric, out = spec.metric, []
    for candidate in (r for r in results if r.arm == CANDIDATE_ARM and r.scored):
        start, end = max(candidate.span[0], reference.span[0]), min(candidate.span[1], reference.span[1])
        base = {"metric": metric, "champion": reference.contender, "candidate": candidate.contender,
                "test": "descriptive"}
        if start > end:
            out.append({**base, "span": None, "text": (
                f"A/B: no comparison, the arms answered no common stretch of time keys ({candidate.contender} "
                f"{candidate.span[0][:10]}..{candidate.span[1][:10]}, {reference.contender} "
                f"{reference.span[0][:10]}..{reference.span[1][:10]})")})
            continue
        values, sizes = {}, {}
        for result in (reference, candidate):
            answers, rows = scored_rows[result.contender]
            inside = answers["feature_id"].between(pd.Timestamp(start), pd.Timestamp(end)).to_numpy()
            sizes[result.arm] = int(inside.sum())
            values[result.arm] = finite(scorer.score(result.version, answers[inside].reset_index(drop=True),
                                                     rows[inside])[0].get(metric))
        mine, theirs = values[CANDIDATE_ARM], values[CHAMPION_ARM]
        effect = None if mine is None or theirs is None else improvement(metric, mine, theirs)
        verdict = ("undefined on these ids" if effect is None else
                   f"candidate {abs(effect):.1%} {'better' if effect >= 0 else 'worse'}")
        out.append({**base, "span": [start, end], "n_champion": sizes[CHAMPION_ARM],
                    "n_candidate": sizes[CANDIDATE_ARM], "champion_value": theirs, "candidate_value": mine,
                    "improvement": effect, "text": (
                        f"A/B on served ids {start[:10]}..{end[:10]} (descriptive: unpaired ids, no significance "
                        f"test): {candidate.contender} {metric} {_fmt(mine)} on {sizes[CANDIDATE_ARM]} id(s) vs "
                        f"{reference.contender} {metric} {_fmt(theirs)} on {sizes[CHAMPION_ARM]} id(s): {verdict}")})
    return out


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4g}"


def evaluation_rows(served: ServedEvaluation, common: dict[str, Any], window: dict[str, Any],
                    mailed: str | None) -> list[EvaluationRow]:
    """Per (arm, version): an 'ids' row (scored ids; it carries the counts) and a row per metric, kind 'served'.

    `common` holds the now-test's partition, window and run id; `mailed` is stored on the champion's arm rows,
    whose breaches count in the model's alert history.
    """
    rows = []
    for result in served.results:
        details = {"arm": result.arm, "role": result.role, "window": window, "ids": result.ids,
                   "answers": result.answers, "scored": result.scored, "awaiting": result.awaiting,
                   "served_in_day": result.served_in_day, "min_rows": served.min_rows,
                   "checked": bool(result.requirements), "span": result.span,
                   "requirements": [r.as_dict() for r in result.requirements],
                   "comparisons": [c for c in served.comparisons if result.contender in (c["champion"],
                                                                                         c["candidate"])],
                   "mailed": mailed if result.role == "champion" else None}
        own = {**common, "kind": SERVED, "contender": result.contender, "version": result.version,
               "n_rows": result.scored}
        rows.append(EvaluationRow(**own, metric="ids", value=float(result.scored), details=details))
        for metric, value in result.scores.items():
            verdicts = [r.passed for r in result.requirements if r.metric == metric]
            reason = {"undefined": result.undefined[metric]} if metric in result.undefined else {}
            if not result.requirements:
                reason["no_verdict"] = (f"{result.scored} scored id(s), fewer than nowtest.min_rows "
                                        f"({served.min_rows})")
            rows.append(EvaluationRow(**own, metric=metric, value=value, passed=all(verdicts) if verdicts else None,
                                      details={**details, **reason}))
    return rows
