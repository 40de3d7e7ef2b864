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


def version_contender(version: int) -> str:
    """How a version appears among contenders and in evaluations: 'v<N>'."""
    return f"v{version}"


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
    artifact: bytes | None = None

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
    """One contender's back-test days of one month, to store beside its evaluations.

    Regression: `actual` and `predicted`; classification: each day's `loss` (log loss) and `correct`.
    """

    contender: str
    partition: str
    days: tuple[dt.date, ...]
    run_id: str
    actual: tuple[float, ...] | None = None
    predicted: tuple[float, ...] | None = None
    loss: tuple[float, ...] | None = None
    correct: tuple[bool, ...] | None = None
    data_fingerprint: str | None = None


@dataclass(frozen=True)
class DaySeries:
    """A contender's back-test days over several months, in day order (the fields of DayRow, joined)."""

    contender: str
    days: tuple[dt.date, ...]
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
class Alert:
    """An outbox row: a mail written before any attempt to send it."""

    id: int
    model: str
    dedupe_key: str
    source: str
    run_id: str | None
    recipients: tuple[str, ...]
    subject: str
    body_text: str
    body_html: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None


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
class TrialRecord:
    """A version's now-test days since it entered trial, and the days among them with a breach."""

    version: int
    days: tuple[str, ...] = ()
    breach_days: tuple[str, ...] = ()
