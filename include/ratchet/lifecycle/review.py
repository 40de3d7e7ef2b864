"""The review queue, each day and at each retraining (`review:` in the YAML).

Each day (`ratchet_nowtest`'s `review` task, `queue_reviews`), for a model with a `review:` section:
1. Rows labelled since the last run become golden cases (source 'reviewed'): their inputs are the features built
   from the source at the row's key with the person's label, the expected value is the label (a class label must be
   a number to be stored as one: `golden_cases.expected` is a number) and the tolerance 0 for a class, half the
   interval the row was queued with for a number (a version as sure as the one that answered misses it at the
   interval's miss rate, 1 - coverage). `evaluation.golden` judges reviewed cases against the champion.
2. Unsure answers are queued: what the REST service answered in the 24 hours before the run's data end (each logged
   row, any arm or version) and what the champion answers on the now-test's window (its rows after its training
   data), whose top probability is below `review.max_confidence` (classification) or whose prediction interval is
   wider than `review.max_interval_width` (regression; `modeling.review.Intervals`, from the answering version's
   back-test residuals). Only rows the source has are queued (their features are read from it), one item per row
   key whoever answered it (the least sure answer kept), at most `review.per_day` a day, the least sure first.
Queuing at serve time would put a source read and a registry write on the service's request path; a daily task
over the prediction log keeps the service as fast as it was.

At retraining (`reviewed_source`), every labelled row of the source takes its label and trains the search and the
refit at its own time with the sample weight `review.weight` (`modeling.weights`: when the estimator's fit takes
one); a labelled row newer than the mature labels joins them, so the version's training data ends there.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ratchet.evaluation.golden import case_key, plain_value
from ratchet.evaluation.nowtest import after_training
from ratchet.modeling import review, sources
from ratchet.modeling.features import is_model_input, make_xy
from ratchet.modeling.months import window_bounds
from ratchet.modeling.weights import accepts_sample_weight, final_estimator
from ratchet.registry.entities import GOLDEN_REVIEWED, ReviewItem, version_contender

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.registry.entities import Version
    from ratchet.specs.model import ModelSpec

log = logging.getLogger(__name__)
SERVED_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class ReviewOutcome:
    """What one day's review task did for a model: candidates found, items queued, golden cases made."""

    model: str
    day: dt.date
    candidates: dict[str, int] = field(default_factory=dict)  # origin -> unsure answers found (before de-dup)
    queued: tuple[ReviewItem, ...] = ()
    golden_cases: int = 0
    unjudged: tuple[str, ...] = ()  # why some answers could not be judged (a version without back-test residuals)

    def summary(self) -> dict[str, Any]:
        """Small JSON-able form for XCom and logs."""
        return {"model": self.model, "day": self.day.isoformat(), "candidates": self.candidates,
                "queued": len(self.queued), "queued_by_origin": {o: sum(i.origin == o for i in self.queued)
                                                                 for o in self.candidates},
                "golden_cases": self.golden_cases, "unjudged": list(self.unjudged)}


def queue_reviews(registry: Registry, spec: ModelSpec, *, end: Any, run_id: str) -> ReviewOutcome:
    """Make golden cases of the rows labelled since, then queue the day's unsure answers (see the module).

    Raises:
        DataError: the source cannot be read or its rows fail their checks.
    """
    day = sources.naive_utc(end).date()
    if spec.review is None:
        return ReviewOutcome(spec.name, day)
    raw = sources.read_rows(spec, end=end)
    golden = _golden_cases(registry, spec, raw, end)
    keys, _ = review.raw_keys(spec, raw)
    actual = dict(zip(keys, _label_texts(raw[spec.source.target]), strict=True))
    judge = _Judge(registry, spec)
    served = _served(registry, spec, end, actual, judge)
    nowtest = _nowtest(registry, spec, raw, end, judge)
    unsure = sorted((item for item in served + nowtest if judge.unsure(item)),
                    key=lambda i: (-i.doubt, i.origin != "served", i.item_key))
    queued = registry.queue_review_items(spec.name, unsure, day=day, per_day=spec.review.per_day, run_id=run_id)
    log.info("%s: %d unsure answer(s) of %d served and %d now-test rows; %d queued for review (review.per_day %d)",
             spec.name, len(unsure), len(served), len(nowtest), len(queued), spec.review.per_day)
    return ReviewOutcome(spec.name, day, {"served": sum(i.origin == "served" for i in unsure),
                                          "nowtest": sum(i.origin == "nowtest" for i in unsure)},
                         tuple(queued), golden, tuple(judge.unjudged))


class _Judge:
    """How unsure each answer is: a classifier's top probability, a regressor's interval (per version, from its
    back-test residuals, computed once)."""

    def __init__(self, registry: Registry, spec: ModelSpec):
        self.registry, self.spec, self.bound = registry, spec, spec.review
        self._intervals: dict[int, review.Intervals | None] = {}
        self.unjudged: list[str] = []

    def intervals(self, version: int) -> review.Intervals | None:
        if version not in self._intervals:
            contender = version_contender(version)
            months = sorted({p for c, p, _ in self.registry.metric_values(self.spec.name, "backtest", self.spec.metric)
                             if c == contender})
            days = self.registry.backtest_days(self.spec.name, [contender], months).get(contender)
            found = None if days is None else review.intervals_from(days.actual, days.predicted,
                                                                    self.bound.coverage)
            if found is None:
                self.unjudged.append(f"v{version} has fewer than {review.MIN_BIN_ROWS} back-test residuals: its "
                                     "answers have no interval yet")
            self._intervals[version] = found
        return self._intervals[version]

    def regression(self, base: dict[str, Any], version: int, predicted: np.ndarray) -> list[ReviewItem]:
        """Items of one version's numeric answers, with their intervals (none when it has no back-test yet)."""
        intervals = self.intervals(version)
        if intervals is None:
            return []
        low, high = intervals.of(predicted)
        return [ReviewItem(**base[i], version=version, answer=repr(float(predicted[i])),
                           interval=(float(low[i]), float(high[i]))) for i in range(len(predicted))]

    def unsure(self, item: ReviewItem) -> bool:
        if item.interval is not None:
            return item.interval[1] - item.interval[0] > self.bound.max_interval_width
        return item.confidence is not None and item.confidence < self.bound.max_confidence


def _served(registry: Registry, spec: ModelSpec, end: Any, actual: dict[str, str | None],
            judge: _Judge) -> list[ReviewItem]:
    """The REST service's answers of the day before `end`, for rows the source has (`actual`: key -> its label)."""
    stop = sources.naive_utc(end).tz_localize("UTC").to_pydatetime()
    answered = [s for s in registry.served(spec.name, stop - SERVED_DAY, stop)
                if s.status < 400 and s.version is not None and s.feature_id is not None]
    items = []
    for number in sorted({s.version for s in answered}):
        mine = [s for s in answered if s.version == number
                and review.item_key(s.series, s.feature_id) in actual]
        base = [{"item_key": review.item_key(s.series, s.feature_id), "feature_id": s.feature_id,
                 "series": s.series, "origin": "served",
                 "actual": actual[review.item_key(s.series, s.feature_id)]} for s in mine]
        if spec.task == "regression":
            items += judge.regression(base, number, np.array([s.prediction for s in mine], dtype=float))
        else:
            items += [ReviewItem(**b, version=number, answer=str(s.label), probabilities=s.probabilities,
                                 confidence=max(s.probabilities.values()))
                      for b, s in zip(base, mine, strict=True) if s.probabilities]
    return items


def _nowtest(registry: Registry, spec: ModelSpec, raw: pd.DataFrame, end: Any, judge: _Judge) -> list[ReviewItem]:
    """The champion's answers on the now-test window's rows after its training data (as the now-test scores them)."""
    champion = registry.champion(spec.name)
    if champion is None:
        return []
    start, stop, _ = window_bounds(sources.labelled_end(spec, end), spec.nowtest.window_days)
    own = spec.for_version(champion.version, champion.contract)
    X, y, times = make_xy(own, sources.checked_rows(own, raw, end=stop))
    inside = ((times >= start) & (times < stop)).to_numpy() & after_training(times, champion)
    if not inside.any():
        return []
    Xw, yw, tw = (part[inside].reset_index(drop=True) for part in (X, y, times))
    labels = review.row_labels(own, Xw)
    base = [{"item_key": review.item_key(None if labels is None else labels[i], t), "feature_id": t.to_pydatetime(),
             "series": None if labels is None else str(labels[i]), "origin": "nowtest", "actual": text}
            for i, (t, text) in enumerate(zip(tw, _label_texts(yw), strict=True))]
    estimator = registry.load_estimator(spec.name, champion.version)
    inputs = Xw[list(champion.features)]
    if spec.task == "regression":
        return judge.regression(base, champion.version, estimator.predict(inputs))
    return _classified(base, champion, estimator, inputs)


def _classified(base: list[dict[str, Any]], version: Version, estimator: Any,
                inputs: pd.DataFrame) -> list[ReviewItem]:
    proba = estimator.predict_proba(inputs)
    classes = [str(c) for c in estimator.classes_]
    answers = estimator.predict(inputs)
    return [ReviewItem(**b, version=version.version, answer=str(plain_value(answers[i])),
                       probabilities={c: float(p) for c, p in zip(classes, proba[i], strict=True)},
                       confidence=float(proba[i].max())) for i, b in enumerate(base)]


def _label_texts(column: pd.Series) -> list[str | None]:
    """Each row's label as text (as a class label is named: a whole number without '.0'), None where it has none."""
    return [None if sources.is_empty(v) else sources.category_text(v) for v in column]


def _golden_cases(registry: Registry, spec: ModelSpec, raw: pd.DataFrame, end: Any) -> int:
    """Golden cases of the items labelled since the last run whose label is a number (see the module)."""
    pending = [i for i in registry.review_items(spec.name, pending=False)
               if i.golden_case_key is None and _number(i.label)]
    if not pending:
        return 0
    labelled, found = review.with_labels(spec, raw, {i.item_key: i.label for i in pending},
                                         keep_before=sources.labelled_end(spec, end))
    X, _, times = make_xy(spec, sources.checked_rows(spec, labelled, end=end))
    position = {key: i for i, key in enumerate(review.built_keys(spec, X, times)) if key in found}
    cases = {}
    for item in pending:
        if item.item_key not in position:  # its row is gone from the source, or its lags cannot be built
            continue
        row = X.iloc[position[item.item_key]]
        inputs = {c: plain_value(row[c]) for c in X.columns if is_model_input(c)}
        cases[item.id] = {
            "case_key": case_key(spec.name, GOLDEN_REVIEWED, item.item_key), "source": GOLDEN_REVIEWED,
            "name": f"reviewed {item.item_key}: {item.label} by {item.labelled_by} (v{item.version} answered "
                    f"{item.answer})",
            "inputs": {c: None if isinstance(v, float) and math.isnan(v) else v for c, v in inputs.items()},
            "expected": float(item.label),
            "tolerance": 0.0 if item.interval is None else (item.interval[1] - item.interval[0]) / 2}
    return registry.add_reviewed_golden_cases(spec.name, cases) if cases else 0


def _number(label: str | None) -> bool:
    try:
        return label is not None and math.isfinite(float(label))
    except ValueError:
        return False


@dataclass(frozen=True)
class Weighting:
    """The sample weights of the rows a retraining built (`weights`: None when no labelled row is among them), how
    many labelled rows are among them, out of how many labelled items, and a labelled row's weight."""

    weights: np.ndarray | None
    rows: int
    items: int
    weight: float

    def details(self, model: Any) -> dict[str, Any] | None:
        """What a version keeps of its labelled rows (`details.review`): how many trained it, with what weight, and
        whether its estimator took the weight; None when no labelled row trained it."""
        if not self.rows:
            return None
        weighted = accepts_sample_weight(model)
        estimator = type(final_estimator(model)).__name__
        return {"labelled": self.items, "rows": self.rows, "weight": self.weight, "weighted": weighted,
                "text": f"{self.rows} reviewed row(s) trained it with sample weight {self.weight:g}" if weighted else
                        f"{self.rows} reviewed row(s) trained it, each once: {estimator}.fit takes no sample_weight"}


@dataclass(frozen=True)
class ReviewedRows:
    """The rows a retraining learns from: the source's, labelled rows with their labels (`labelled`: their keys),
    and the sample weight of a labelled row."""

    frame: pd.DataFrame
    labelled: frozenset[str] = frozenset()
    items: int = 0  # labelled items in the queue, found in the source or not
    weight: float = 1.0

    def weighting(self, spec: ModelSpec, X: pd.DataFrame, times: pd.Series) -> Weighting:
        """The sample weights of the rows `features.make_xy` built from `frame`."""
        chosen = np.fromiter((key in self.labelled for key in review.built_keys(spec, X, times)), dtype=bool,
                             count=len(X))
        weights = np.where(chosen, self.weight, 1.0) if chosen.any() else None
        return Weighting(weights, int(chosen.sum()), self.items, self.weight)


def reviewed_source(registry: Registry, spec: ModelSpec, end: Any) -> ReviewedRows:
    """The rows a retraining on the data before `end` learns from (see the module); the source's rows with mature
    labels alone when the model has no `review:` or no labelled row."""
    labelled_end = sources.labelled_end(spec, end)
    items = registry.review_items(spec.name, pending=False) if spec.review else []
    if not items:
        return ReviewedRows(sources.read_source(spec, end=labelled_end))
    raw = sources.read_rows(spec, end=end)
    rows, found = review.with_labels(spec, raw, {i.item_key: i.label for i in items}, keep_before=labelled_end)
    log.info("%s: %d of %d labelled review row(s) found in the source; they train with sample weight %g",
             spec.name, len(found), len(items), spec.review.weight)
    return ReviewedRows(sources.checked_rows(spec, rows, end=end), frozenset(found), len(items), spec.review.weight)
