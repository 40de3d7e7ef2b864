"""What the registry hands out and takes in: plain frozen dataclasses, never ORM rows.

Entities name things the way users do: a model by its name, a version by its number, a contender as
'v<N>' or a baseline's name. The surrogate ids of the tables stay inside `ratchet.registry`, except
the few that are themselves names people use (a requirement, a promotion and an alert are numbered).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

CHAMPION = "champion"
# PostgreSQL NOTIFY channel: a transaction that moves a champion or registers a version notifies it with the
# model's name, delivered at commit, so every serving replica drops what it cached for that model at once
MODELS_CHANGED = "ratchet_models_changed"
REQUIREMENT_CHANGE = "requirement"  # the source of an alert saying a person set a requirement's bound again


# What an evaluation measured: the kinds the `evaluations` table accepts (its check constraint is built from them)
BACKTEST = "backtest"  # a contender walked forward over one month of history
NOWTEST = "nowtest"  # a contender on the latest days
REGRESSION_TEST = "regression"  # the champion on its golden cases (not the `task: regression` of a spec)
GATE = "gate"  # accepted since the first schema; nothing stores it (gate evidence is in the promotion's `gates`)
SERVED = "served"  # a version's served predictions scored against actuals
SERVING = "serving"  # the model's REST service itself: latency, errors, availability
EVALUATION_KINDS = (BACKTEST, NOWTEST, REGRESSION_TEST, GATE, SERVED, SERVING)

SERVICE_CONTENDER = "service"  # the contender of 'serving' evaluations: the model's REST service, not a version


def version_contender(version: int) -> str:
    """How a version appears among contenders and in evaluations: 'v<N>'."""
    return f"v{version}"


def served_contender(version: int, arm: str) -> str:
    """How a version's served predictions in one arm appear in 'served' evaluations: 'v<N>@champion', 'v<N>@candidate'.

    The arm is part of the name because one version can answer in both arms of a window (a candidate promoted
    mid-window answered first as the candidate, then as the champion).
    """
    return f"v{version}@{arm}"


def in_trial(version: int, champion: int | None) -> bool:
    """The trial rule: a version is in trial from its registration until a newer version becomes champion.

    So every version newer than the champion is in trial, and every version while the model has none.
    """
    return champion is None or version > champion


@dataclass(frozen=True)
class Trial:
    """One recorded trial of a nightly search: what was tried and how it scored (or why it failed)."""

    run_id: str
    trial_index: int
    estimator_class: str
    params: dict[str, Any]
    sampling: str
    metric: str
    fold_scores: list[Any]
    mean_score: float | None
    fit_seconds: float
    error: str | None
    created_at: dt.datetime
    details: dict[str, Any] | None = None  # its model's complexity, its paired test against the run's best trial


@dataclass(frozen=True)
class Version:
    """A registered model version: estimator, hyperparameters, training window and metadata.

    `artifact` (the fitted estimator's bytes) is only filled when asked for: it can be megabytes.
    """

    model: str
    version: int
    estimator_class: str
    hyperparameters: dict[str, Any]
    artifact_sha256: str
    artifact_format: str
    train_start: dt.datetime | None
    train_end: dt.datetime | None
    dataset_fingerprint: str
    features: tuple[str, ...]
    target: str
    package_versions: dict[str, Any]
    author: str
    fit_seconds: float
    predict_latency_p95_ms: float | None
    size_bytes: int
    cv_metric: str | None
    cv_score: float | None
    run_id: str | None
    trial_started_at: dt.datetime
    created_at: dt.datetime
    contract: dict[str, Any]  # its feature contract (`specs.model.Source.contract`): what it reads, never today's YAML
    spec_snapshot: dict[str, Any]  # the model's YAML when it was trained
    code_version: str | None
    python_version: str | None
    artifact: bytes | None = None
    details: dict[str, Any] | None = None  # its decision threshold, why its metric ranked it, a student's teacher

    @property
    def threshold(self) -> float | None:
        """The probability of the positive class it decides at (`classification.threshold`); None: the most probable
        class."""
        return (self.details or {}).get("threshold", {}).get("value")

    @property
    def teacher(self) -> dict[str, Any] | None:
        """A student's teacher (`lifecycle.students`): its `version` and `estimator_class`, `why` the student was
        trained, the `student` class and what it fitted (`targets`, `learns_from`); None: not a student."""
        return (self.details or {}).get("teacher")

    @property
    def search_budget(self) -> dict[str, Any] | None:
        """How `search.time_budget_minutes` cut short the search it came from (trials run of planned, minutes,
        `message`); None: its search ran every trial."""
        return (self.details or {}).get("search_budget")

    @property
    def simplicity(self) -> dict[str, Any] | None:
        """Its run's simplicity choice (`modeling.simplicity.Choice.record`): the best trial, the simplest not
        significantly worse, the paired test, their complexities and this version's `role`; None: not chosen so."""
        return (self.details or {}).get("simplicity")

    @property
    def contender(self) -> str:
        """'v<N>'."""
        return version_contender(self.version)


@dataclass(frozen=True)
class EvaluationRow:
    """One metric value to store; `contender` is 'v<N>' for a version or the baseline's name."""

    kind: str
    contender: str
    partition: str
    metric: str
    value: float | None
    n_rows: int
    run_id: str
    version: int | None = None
    baseline: str | None = None
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    data_fingerprint: str | None = None
    passed: bool | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class DayRow:
    """One contender's back-test predictions of one month, to store beside its evaluations: each row's time and, in
    a panel, its series (`series`, None for a single series).

    Regression: `actual` and `predicted`; classification: each row's `loss` (log loss) and `correct`.
    """

    contender: str
    partition: str
    times: tuple[dt.datetime, ...]
    run_id: str
    series: tuple[str, ...] | None = None
    actual: tuple[float, ...] | None = None
    predicted: tuple[float, ...] | None = None
    loss: tuple[float, ...] | None = None
    correct: tuple[bool, ...] | None = None
    data_fingerprint: str | None = None


@dataclass(frozen=True)
class DaySeries:
    """A contender's back-test predictions over several months, in time order (the fields of DayRow, joined)."""

    contender: str
    times: tuple[dt.datetime, ...]
    series: tuple[str, ...] | None
    actual: tuple[float, ...] | None
    predicted: tuple[float, ...] | None
    loss: tuple[float, ...] | None
    correct: tuple[bool, ...] | None


@dataclass(frozen=True)
class Evaluation(EvaluationRow):
    """A stored metric value of one contender on one slice of data (a month, a now-test day...)."""

    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class RequirementChange:
    """One line of a requirement's history: created, edited, removed or tightened by a ratchet."""

    old_bound: float | None
    new_bound: float | None
    change: str
    changed_by: str
    reason: str
    promotion_id: int | None
    changed_at: dt.datetime
    derivation: dict[str, Any] | None = None


@dataclass(frozen=True)
class Requirement:
    """An active requirement as stored (its bound may be tighter than the YAML's after a ratchet)."""

    id: int
    metric: str
    direction: str
    bound: float
    relative_to: str | None
    scope: str
    history: tuple[RequirementChange, ...] = ()
    calibrate: float | None = None  # the false-alarm rate its bound is calibrated to, when it is


@dataclass(frozen=True)
class RatchetStep:
    """Tighten one requirement to `new_bound` (applied only if still stricter than the stored bound)."""

    requirement_id: int
    new_bound: float
    reason: str
    derivation: dict[str, Any] | None = None  # how the bound was computed (quantile, windows, alpha...)


@dataclass(frozen=True)
class Promotion:
    """A recorded promotion decision: who asked, why, the gates with their evidence, and the outcome
    ('promoted', 'rejected', 'dry_run', or 'proposed': Ratchet asked a person to approve it)."""

    id: int
    model: str
    version: int
    previous_version: int | None
    kind: str
    outcome: str
    triggered_by: str
    reason: str
    gates: list[dict[str, Any]]
    dry_run: bool
    run_id: str | None
    created_at: dt.datetime
    comment: str | None  # what the person who answered a proposal wrote


@dataclass(frozen=True)
class AlertDelivery:
    """An alert on one notifier channel: 'sending' while a send is under way, then 'sent' or back to 'queued'
    with the error; `reply` is what the receiving server answered when it accepted the alert."""

    channel: str
    status: str
    attempts: int
    last_error: str | None
    reply: str | None
    sent_at: dt.datetime | None


@dataclass(frozen=True)
class Alert:
    """An outbox row: an alert written before any attempt to send it, with its state on each channel.

    `status` is 'sent' once every channel of the model has it, `attempts` counts the deliveries that tried it,
    and `last_error` names each channel that failed the last one.
    """

    id: int
    model: str
    dedupe_key: str
    source: str
    run_id: str | None
    recipients: tuple[str, ...]
    subject: str
    body_text: str
    body_html: str | None
    link: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    deliveries: tuple[AlertDelivery, ...] = ()

    def sent_on(self, channel: str) -> bool:
        """Whether the alert already went out on `channel` (it is never sent there again)."""
        return any(d.channel == channel and d.status == "sent" for d in self.deliveries)


@dataclass(frozen=True)
class AlertDraft:
    """An alert to queue: written once per dedupe key, in the same transaction as the results it reports."""

    dedupe_key: str
    source: str
    run_id: str | None
    recipients: tuple[str, ...]
    subject: str
    body_text: str
    body_html: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class GoldenCase:
    """A regression case: inputs, the expected prediction and its tolerance; from the file or harvested."""

    case_key: str
    source: str
    name: str
    inputs: dict[str, Any]
    expected: float
    tolerance: float
    created_at: dt.datetime


@dataclass(frozen=True)
class Report:
    """The back-test report of one run: its summary and the rendered HTML."""

    model: str
    run_id: str
    summary: dict[str, Any]
    html: str
    created_at: dt.datetime


@dataclass(frozen=True)
class AgePoint:
    """One age of an aging curve (`evaluation.aging`): a metric's mean over the origins at that many months since
    training, its spread (standard deviation, and the 95% t-interval of the mean), and each origin's value."""

    age: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None
    by_origin: dict[str, float]  # origin month (the first month scored) -> the metric at this age

    @property
    def n(self) -> int:
        """How many origins have a value at this age."""
        return len(self.by_origin)


@dataclass(frozen=True)
class Crossing:
    """A stored requirement read along an aging curve: the bound applied at each age (a relative one to its
    baselines' back-test values on the same months; None where it cannot be applied) and the first age whose mean
    breaks it (None: it holds at every age measured)."""

    requirement_id: int | None
    metric: str
    direction: str  # 'max' | 'min'
    scope: str
    requirement: str  # the bound in words: 'rmse max 0.9 × baseline (back-test)'
    bounds: tuple[float | None, ...]  # one per age, from age 1
    age: int | None

    def breaks(self, value: float, age: int) -> bool:
        """Whether `value` at `age` is beyond the bound applied there (never where no bound could be applied)."""
        bound = self.bounds[age - 1]
        return bound is not None and (value > bound if self.direction == "max" else value < bound)


@dataclass(frozen=True)
class Aging:
    """How a version ages: fitted once before each origin month and scored on it and the months after, without
    refitting; one curve per metric over ages 1..`max_age` (months since training), and where each stored
    requirement is first broken. `months` are the months scored, oldest first; the origins are its first ones."""

    model: str
    version: int
    run_id: str
    months: tuple[str, ...]
    max_age: int
    curves: dict[str, tuple[AgePoint, ...]]  # metric -> one point per age
    crossings: tuple[Crossing, ...]
    data_fingerprint: str | None = None  # the chained fingerprint of the rows through the last month scored
    created_at: dt.datetime | None = None

    @property
    def origins(self) -> tuple[str, ...]:
        """The months the version was fitted before, each scored at every age."""
        return self.months[:len(self.months) - self.max_age + 1]

    @property
    def crossing(self) -> Crossing | None:
        """The requirement broken first (the youngest crossing age), None when every one holds."""
        broken = [c for c in self.crossings if c.age is not None]
        return min(broken, key=lambda c: c.age) if broken else None

    @property
    def crossing_age(self) -> int | None:
        """The first age, in months since training, at which the mean breaks a requirement."""
        return None if self.crossing is None else self.crossing.age


@dataclass(frozen=True)
class TrialRecord:
    """A version's now-test days since it entered trial, and the days among them with a breach; and its served
    days: now-test days on which it answered at least one row as a split's candidate without a served breach."""

    version: int
    days: tuple[str, ...] = ()
    breach_days: tuple[str, ...] = ()
    served_days: tuple[str, ...] = ()
    served_breach_days: tuple[str, ...] = ()


@dataclass(frozen=True)
class Served:
    """One row the REST service answered (or one request it refused): what was served, by which version, how fast.

    `feature_id` is the row's time key (and `series` its series, in a panel); `arm` is 'champion' or 'candidate' (a
    `serving.split`); `route` is 'id'
    (features read from the source) or 'rows' (features in the request body). A refused request has a `status`
    >= 400, an `error` and no prediction. Rows of one request share its `request_id` and `latency_ms`.
    """

    model: str
    version: int | None
    request_id: str
    route: str
    arm: str
    feature_id: dt.datetime | None
    prediction: float | None
    label: str | None
    probabilities: dict[str, float] | None
    cache_hit: bool
    latency_ms: float
    status: int
    error: str | None
    replica: str
    served_at: dt.datetime
    series: str | None = None  # a panel row's series label; None for a single series
    fallback_from: int | None = None  # the split's candidate that failed on this row (the champion answered)


@dataclass(frozen=True)
class Probe:
    """One health check of a service replica: database reachable and every champion loadable, or why not."""

    replica: str
    healthy: bool
    detail: str | None
    probed_at: dt.datetime


@dataclass(frozen=True)
class ServingStats:
    """The requests of one period of a model's serving log, of one (arm, version) or, with both None, of all.

    Counted per request (`request_id`), so a request of many rows is one request with one latency; `answered`
    and `cache_hits` count rows. A refused request has no version: it is in its arm's `version=None` group. The
    latency quantiles leave refused requests (4xx) out: a refusal answered at once says nothing of the service.
    """

    start: dt.datetime  # the period's start (aware UTC)
    arm: str | None
    version: int | None
    requests: int
    answered: int  # rows answered (status < 400)
    cache_hits: int  # answered rows that came from the cache
    errors: int  # requests answered with a status >= 500 (the service's failures)
    refused: int  # requests refused with a 4xx status (the client's mistakes)
    latency_p50_ms: float | None
    latency_p95_ms: float | None


@dataclass(frozen=True)
class ProbeStats:
    """Every replica's health probes in one period: how many, how many healthy, and the wall-clock minutes
    (UTC) that hold at least one healthy probe."""

    start: dt.datetime
    probes: int
    healthy: int
    healthy_minutes: int


@dataclass(frozen=True)
class ServingLog:
    """A model's serving log and the service's probes over [start, end), aggregated per period from `start`."""

    start: dt.datetime
    end: dt.datetime
    period: dt.timedelta
    stats: tuple[ServingStats, ...]
    probes: tuple[ProbeStats, ...]
    first_probe: dt.datetime | None  # the first probe ever stored: availability is counted from it

    def periods(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """[start, end) of every period, oldest first (the last one ends at `end`)."""
        out, at = [], self.start
        while at < self.end:
            out.append((at, min(at + self.period, self.end)))
            at += self.period
        return out
