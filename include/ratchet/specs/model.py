"""What a model spec is: the frozen dataclasses a YAML file becomes, and the vocabulary it may use.

The metric names, their directions and the baselines live here once, and so does every default: a field's
default is its dataclass field's, which `specs.parsing` reads back (never writing the value again); everything
else (parsing, metrics, requirements, search) reads them from this module, which imports nothing heavy.
"""
from __future__ import annotations

import importlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

TASKS = ("regression", "classification")
REGRESSION_METRICS = ("rmse", "mae", "mape", "r2", "pinball")
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss", "pr_auc", "brier")
# classification metrics scored on probabilities: an estimator without `predict_proba` has none of them
PROBABILITY_METRICS = ("roc_auc", "log_loss", "pr_auc", "brier")
# classification metrics scored on the decided class: the decision threshold changes them
THRESHOLDED_METRICS = ("accuracy", "f1")
# measured on the version itself: `fit_seconds` is the seconds its refit on all history took (scope 'gate')
COMPUTATIONAL_METRICS = ("predict_latency_p95_ms", "model_size_bytes", "fit_seconds")
# Measured on the REST service (`ratchet serve`) from its prediction log and health probes; scope 'serving' only
SERVING_METRICS = ("serving_latency_p95_ms", "serving_error_rate", "availability")
LOWER_IS_BETTER = {
    "rmse": True, "mae": True, "mape": True, "r2": False, "pinball": True,
    "accuracy": False, "f1": False, "roc_auc": False, "log_loss": True, "pr_auc": False, "brier": True,
    "predict_latency_p95_ms": True, "model_size_bytes": True, "fit_seconds": True,
    "serving_latency_p95_ms": True, "serving_error_rate": True, "availability": False,
}
# the metrics a panel gets per series (means of row losses; f1 and roc_auc stay whole-panel figures)
SERIES_METRICS = {"regression": ("rmse", "mae", "mape", "r2"), "classification": ("accuracy", "log_loss")}
REGRESSION_BASELINES = ("last_value", "seasonal_naive_7", "mean")  # the defaults; any `seasonal_naive_<N>` is known
SEASONAL_NAIVE = "seasonal_naive_"  # `seasonal_naive_<N>`: the target N periods (or rows) earlier in its series
CLASSIFICATION_BASELINES = ("majority", "last_value")
SCOPES = ("backtest", "nowtest", "gate", "serving")
SPLIT_TRIAL = "trial"  # `serving.split.candidate`: the newest version in trial, whichever it is
# `promotion.trial_days_from`: the trial gate counts now-test days in trial, or days served as a split's candidate
TRIAL_DAY_SOURCES = ("nowtest", "served")
MISSING_TARGET_POLICIES = ("drop", "error")
# a lag of k: k periods of `source.frequency` earlier, k calendar days earlier, or k rows earlier in its series
LAG_POLICIES = ("periods", "days", "rows")
# `source.frequency`: one row per series and period; the period's length (a month is a calendar month)
FREQUENCIES = {"30min": "30min", "hour": "1h", "day": "1D", "week": "7D", "month": "MS"}
# `source.frequency: event`: rows are events keyed by `source.id`, many may share a time, no target lags
EVENT = "event"
EVENT_BASELINES = {"regression": ("mean",), "classification": ("majority",)}  # the baselines that need no lag
# `classification.threshold: {optimize: ...}`: what a tuned threshold may maximise (or a user metric, minimised)
THRESHOLD_OBJECTIVES = ("f1", "accuracy")
# Estimators whose fitted state the artifact format stores and loads (`modeling.artifacts` trusts these types)
TRUSTED_ESTIMATOR_MODULES = ("sklearn.",)
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
# `distill.when`: train students only when the best teacher fails a computational requirement, or every night
DISTILL_WHEN = ("gate_fails", "always")
DEFAULT_OWNER = "ratchet"  # `owner:` when a spec names none
# The channel alerts go out on when a spec lists no `alerts.notifiers`: mail to its `alert_emails`
DEFAULT_NOTIFIER_CLASS = "ratchet.alerting.notifiers.SmtpNotifier"


def load_class(class_path: str) -> type:
    """The class named by an import path such as `sklearn.linear_model.Ridge` (imports its module)."""
    module_name, _, class_name = class_path.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def seasonal_period(baseline: str) -> int | None:
    """The season N of a `seasonal_naive_<N>` baseline (a positive integer), None for any other name."""
    if not baseline.startswith(SEASONAL_NAIVE):
        return None
    digits = baseline.removeprefix(SEASONAL_NAIVE)
    return int(digits) if digits.isdigit() and int(digits) > 0 and digits == str(int(digits)) else None


def window_capacity(window_days: int, frequency: str | None) -> int | None:
    """The most rows one series can have in a window of `window_days` days at `frequency`; None when the frequency
    is not known yet (inferred from the rows)."""
    per_day = {"30min": 48, "hour": 24, "day": 1}
    if frequency in per_day:
        return window_days * per_day[frequency]
    if frequency in ("week", "month"):
        return -(-window_days // (7 if frequency == "week" else 28))
    return None


def task_metrics(task: str) -> tuple[str, ...]:
    """The prediction-quality metrics of a task ('regression' or 'classification')."""
    return REGRESSION_METRICS if task == "regression" else CLASSIFICATION_METRICS


def lower_is_better(metric: str) -> bool:
    """Whether a lower value of `metric` is better; a user metric (`metrics:`) is a cost, so lower is better."""
    return LOWER_IS_BETTER.get(metric, True)


@dataclass(frozen=True)
class RowKey:
    """What identifies one row of a model's source and orders its rows: the one place that decides it.

    Every module that orders, partitions, matches, looks up or names rows asks the key (`Source.key`) instead
    of reading `time_column`. A row is its series (the `source.series` columns; none for a single series) and
    its time: one row per series and time. An event source's row is its id (`source.id`): many events may share a
    time, and its series columns (when declared) name the entity an event belongs to.
    """

    time: str  # the column that orders rows, partitions them into months and anchors windows and lags
    series: tuple[str, ...] = ()  # the columns naming a row's series in a panel; empty for a single series
    id: str | None = None  # an event source's row id (`source.id`)

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns whose values together are unique in the source (series columns are features only when
        declared so)."""
        return (self.id,) if self.id else (*self.series, self.time)

    def describe(self, values: tuple[Any, ...]) -> str:
        """A row's key in words for messages, e.g. "day = 2024-04-10 00:00:00"."""
        return ", ".join(f"{column} = {value}" for column, value in zip(self.columns, values, strict=True))


@dataclass(frozen=True)
class Source:
    """Where a model's rows come from (`source:`): a table or SELECT, its time column, target and features."""

    time_column: str
    target: str
    table: str | None = None
    query: str | None = None
    conn_id: str | None = None
    features: tuple[str, ...] | None = None
    categorical: tuple[str, ...] = ()
    target_lags: tuple[int, ...] = ()
    missing_target: str = "drop"  # rows without a target: dropped (and counted) or an error
    lags_by: str = "periods"  # a lag of k is the target k periods, k calendar days or k rows earlier in its series
    series: tuple[str, ...] = ()  # `source.series`: the key columns of a panel's series; none for one series
    frequency: str | None = None  # `source.frequency` (a key of FREQUENCIES, or EVENT); None: inferred from the rows
    id: str | None = None  # `source.id`: an event source's row id
    label_delay_days: int = 0  # `source.label_delay_days`: how long a row's label takes to arrive

    @property
    def key(self) -> RowKey:
        """What identifies a row of this source (see `RowKey`)."""
        return RowKey(self.time_column, self.series, self.id)

    def split_key(self, split_by: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The columns whose values the A/B split hashes: an event's `serving.split.by` entity, else its series
        columns, else its id; a panel's series (none for a single series: its rows split by time)."""
        if self.events:
            return split_by or self.series or (self.id,)
        return self.series

    @property
    def events(self) -> bool:
        """Whether the rows are events (`frequency: event`): keyed by id, no target lags, no period."""
        return self.frequency == EVENT

    def contract(self, features: Iterable[str], frequency: str | None) -> dict[str, Any]:
        """The feature contract a version trained on this source keeps (JSON): its row key (series columns and
        time), target, the resolved `features` it was given, categorical columns, target lags and how they are
        counted, the `frequency` of its rows (declared or inferred), missing-target policy. Where the rows live
        (`table`, `query`, `conn_id`) is not part of it: moving the table moves every version.
        """
        return {"time_column": self.time_column, "target": self.target, "features": list(features),
                "categorical": list(self.categorical), "target_lags": list(self.target_lags),
                "lags_by": self.lags_by, "missing_target": self.missing_target, "series": list(self.series),
                "frequency": frequency, **({"id": self.id} if self.id else {})}

    def under(self, contract: Mapping[str, Any]) -> Source:
        """This source read under a version's feature contract (`contract`): the version's inputs, today's place.
        A contract stored before panels and frequencies (no `series`, no `frequency`) is one series at the
        frequency its rows show."""
        return replace(self, time_column=contract["time_column"], target=contract["target"],
                       features=tuple(contract["features"]), categorical=tuple(contract["categorical"]),
                       target_lags=tuple(contract["target_lags"]), lags_by=contract["lags_by"],
                       missing_target=contract["missing_target"], series=tuple(contract.get("series", ())),
                       frequency=contract.get("frequency"), id=contract.get("id"))


@dataclass(frozen=True)
class EstimatorSpec:
    """One estimator of `estimators:`: its import path, fixed params and search space."""

    class_path: str
    params: dict[str, Any] = field(default_factory=dict)
    search_space: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load_class(self) -> type:
        """The estimator class named by `class_path` (imports its module)."""
        return load_class(self.class_path)


@dataclass(frozen=True)
class DistillSpec:
    """`distill:`: lighter students, each trained on the outputs of the night's best teacher (`modeling.distill`)
    and registered as a candidate beside it; `n_trials` random trials tune each student's `search_space`."""

    students: tuple[EstimatorSpec, ...]
    when: str = "gate_fails"
    n_trials: int = 10


@dataclass(frozen=True)
class SearchSpec:
    """`search:`: how many random trials, CV folds, the seed, how many candidates to register and whether a simpler
    trial not significantly worse than the best wins a slot."""

    n_trials: int = 20
    cv_folds: int = 3
    seed: int = 0
    candidates: int = 2
    metric: str | None = None
    explore_fraction: float = 0.5
    # minutes the whole search may take: no trial starts after it, a running one is stopped; None: no limit
    time_budget_minutes: float | None = None
    # seconds one trial's cross-validation may take before its process is killed; None: no limit (run in-process)
    trial_timeout_seconds: float | None = None
    # why `metric` is not the task's default when no metric was given (an estimator without probabilities)
    metric_reason: str | None = None
    # among the trials not significantly worse than the best, the simplest wins a candidate slot (`modeling.simplicity`)
    prefer_simpler: bool = True
    # the level of that paired test (the best is significantly better below it); None: `promotion.significance`
    simpler_significance: float | None = None


@dataclass(frozen=True)
class RequirementSpec:
    """One entry of `requirements:`: a bound (`max` or `min`) on a metric, in a scope."""

    metric: str
    direction: str
    bound: float  # +inf (max) or -inf (min) until a calibrated requirement gets its first bound
    scope: str
    relative_to: str | None = None
    calibrate: float | None = None  # derive the bound from the champion's back-test at this false-alarm rate
    per_series: bool = False  # a panel's now-test checks the bound on every series too (and names those breaching)
    per_slice: bool = False  # the now-test checks the bound on every value of every `evaluation.slices` column too
    min_rows: int | None = None  # rows a series or slice needs in the window to be judged; None: `nowtest.min_rows`

    @property
    def key(self) -> tuple[str, str | None, str, str]:
        """What matches it with its stored requirement: metric, baseline, scope and direction."""
        return self.metric, self.relative_to, self.scope, self.direction


@dataclass(frozen=True)
class RetrainSpec:
    """`retrain:`: when the nightly ratchet_retrain retrains the model, a cron expression or an Airflow preset in UTC
    (`specs.schedule`); on other nights its task is skipped. A run naming the model (by hand, or after a breach)
    retrains it whatever the schedule."""

    schedule: str = "@daily"


@dataclass(frozen=True)
class BacktestSpec:
    """`backtest:`: how many complete months, and an expanding or fixed (months) training window."""

    months: int = 12
    window: str | int = "expanding"


@dataclass(frozen=True)
class NowtestSpec:
    """`nowtest:`: the window of the latest days and the rows it needs to give a verdict."""

    window_days: int = 7
    min_rows: int = 5


@dataclass(frozen=True)
class EvaluationSpec:
    """`evaluation:`: the columns whose values every metric is also stored for (slices), and the quantile the
    `pinball` loss scores."""

    slices: tuple[str, ...] = ()
    quantile: float = 0.5


@dataclass(frozen=True)
class ThresholdSpec:
    """`classification.threshold:` of a binary classifier: a fixed probability of the positive class (the last
    of the two), or `optimize: <metric>`, chosen on the training folds only and stored with each version."""

    value: float | None = 0.5  # None when `optimize` names what the threshold is tuned for
    optimize: str | None = None


@dataclass(frozen=True)
class UserMetric:
    """One entry of `metrics:`: a user's metric by import path `module:function`, called as
    f(y_true, y_pred) or f(y_true, y_pred, proba); a cost (lower is better)."""

    name: str
    function: str
    takes_proba: bool = False

    def load(self) -> Any:
        """The metric's function (imports its module)."""
        module_name, _, attribute = self.function.partition(":")
        return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class StatedBaseline:
    """A baseline stated as numbers, not computed (`baselines: [{name, metrics, source}]`): what a person or an
    earlier system achieves ("two reviewers labelling 1,000 cases get 70%"), a constant a candidate must beat,
    always shown with where the numbers come from."""

    name: str
    metrics: dict[str, float]
    source: str


@dataclass(frozen=True)
class NotifierSpec:
    """One entry of `alerts.notifiers:`: an Airflow `BaseNotifier` subclass by import path, the keyword arguments
    it is built with for each message, and the channel name its deliveries are recorded under."""

    class_path: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def load_class(self) -> type:
        """The notifier class named by `class_path` (imports its module)."""
        return load_class(self.class_path)

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two entries one channel: the same name, class and arguments (digests are per channel)."""
        return self.name, self.class_path, json.dumps(self.kwargs, sort_keys=True, default=str)


def channel_name(class_path: str) -> str:
    """The default channel name of a notifier class: `...SmtpNotifier` is 'smtp', `...WebhookNotifier` 'webhook'."""
    name = class_path.rpartition(".")[2].lower()
    return name.removesuffix("notifier") or name


DEFAULT_NOTIFIERS = (NotifierSpec(DEFAULT_NOTIFIER_CLASS, {}, channel_name(DEFAULT_NOTIFIER_CLASS)),)


@dataclass(frozen=True)
class AlertsSpec:
    """`alerts:`: how often a breach that goes on is mailed again (a recovery is mailed once, when it ends), and
    the channels every alert of the model goes out on (default: mail to `alert_emails`)."""

    repeat_after_days: int = 7
    notifiers: tuple[NotifierSpec, ...] = DEFAULT_NOTIFIERS


@dataclass(frozen=True)
class SplitSpec:
    """`serving.split:`: a fixed fraction of feature ids, chosen by a hash, is answered by a candidate.

    `candidate` is 'trial' (the newest version in trial, if any) or a version number. `by`: an event model's
    entity columns (a customer), hashed instead of the event's id so an entity keeps its arm.
    """

    candidate: str | int
    fraction: float
    by: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServingSpec:
    """`serving:`: how long the REST service reuses an answer, and an optional A/B split."""

    cache_ttl_seconds: float = 300.0
    split: SplitSpec | None = None


@dataclass(frozen=True)
class RatchetSpec:
    """`promotion.ratchet:`: whether a promotion tightens requirements, and the false-alarm rate it allows.

    A tightened now-test bound is the (1 - false_alarm_rate) quantile of the champion's own metric over every
    now-test window of its back-test; a back-test bound, the one-sided upper confidence bound of its monthly
    mean at that rate.
    """

    enabled: bool = False
    false_alarm_rate: float = 0.05


@dataclass(frozen=True)
class PromotionSpec:
    """`promotion:`: what a candidate must show to replace the champion."""

    min_improvement: float = 0.0
    min_months_won: int = 0
    min_trial_days: int = 0
    significance: float = 0.05  # level of the paired test a candidate must pass to count as better
    trial_days_from: str = "nowtest"  # which days gate 4 counts: now-test days in trial, or served days
    ratchet: RatchetSpec = field(default_factory=RatchetSpec)


@dataclass(frozen=True)
class ModelSpec:
    """A validated model YAML file: everything Ratchet needs to train, test and promote the model."""

    name: str
    task: str
    owner: str
    alert_emails: tuple[str, ...]
    source: Source
    estimators: tuple[EstimatorSpec, ...]
    search: SearchSpec
    baselines: tuple[str, ...]
    requirements: tuple[RequirementSpec, ...]
    backtest: BacktestSpec
    nowtest: NowtestSpec
    promotion: PromotionSpec
    path: Path
    alerts: AlertsSpec = field(default_factory=AlertsSpec)
    serving: ServingSpec = field(default_factory=ServingSpec)
    golden_cases_file: Path | None = None
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    threshold: ThresholdSpec = field(default_factory=ThresholdSpec)
    user_metrics: tuple[UserMetric, ...] = ()
    stated_baselines: tuple[StatedBaseline, ...] = ()
    description: str | None = None  # `description:` the model's intended use, as its owner states it (model card)
    limits: tuple[str, ...] = ()  # `limits:` what its owner says it must not be used for or does badly (model card)
    distill: DistillSpec | None = None  # `distill:` the students trained on the best teacher, if any
    retrain: RetrainSpec = field(default_factory=RetrainSpec)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    contract_of: int | None = None  # the version whose feature contract `source` holds (`for_version`), if any

    def for_version(self, version: int, contract: Mapping[str, Any]) -> ModelSpec:
        """This spec with the inputs of `version` (its stored feature contract) instead of today's YAML: what
        predicting, back-testing, now-testing and golden cases of that version read. Search, baselines and the
        requirements stay today's."""
        return replace(self, source=self.source.under(contract), contract_of=version)

    @property
    def label(self) -> str:
        """How messages name the model: "model 'demand'", or "model 'demand' v3" under a version's contract."""
        return f"model {self.name!r}" + (f" v{self.contract_of}" if self.contract_of is not None else "")

    @property
    def metric(self) -> str:
        """The metric search and back-tests rank contenders by."""
        return self.search.metric or ("rmse" if self.task == "regression" else "log_loss")

    def estimator(self, class_path: str) -> EstimatorSpec:
        """The spec's estimator of that class; a bare one (no fixed params, no space) if the spec no longer lists it.

        Versions and recorded trials keep their class when the YAML changes, so they can still be refitted.
        """
        return next((e for e in self.estimators if e.class_path == class_path), EstimatorSpec(class_path))

    @property
    def metrics(self) -> tuple[str, ...]:
        """The prediction-quality metrics every contender of this model is scored on: the task's and the user's."""
        return task_metrics(self.task) + tuple(m.name for m in self.user_metrics)

