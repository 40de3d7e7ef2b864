"""The registry's tables (SQLAlchemy 2 ORM). Only `ratchet.registry` touches these classes.

Every table carries the constraints that keep the registry honest even when two
writers race: one champion per model (primary key on model + alias), one row per
evaluation key, one version number per model, one alert per dedupe key, one delivery per alert
and channel.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ratchet.registry.entities import EVALUATION_KINDS, SERVING

JsonType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """The registry's tables; JSON columns are JSONB on PostgreSQL."""

    type_annotation_map = {dict[str, Any]: JsonType, list[Any]: JsonType}


def _now() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Model(Base):
    """A model by name, with the spec it was last synced from."""

    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    task: Mapped[str] = mapped_column(String(20), nullable=False)
    owner: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    spec: Mapped[dict[str, Any]] = mapped_column(nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()
    __table_args__ = (CheckConstraint("task IN ('regression', 'classification')", name="ck_models_task"),)


class SearchTrial(Base):
    """One trial of a nightly search; unique per (model, run, trial index)."""

    __tablename__ = "search_trials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    run_id: Mapped[str] = mapped_column(String(250), nullable=False)
    trial_index: Mapped[int] = mapped_column(Integer, nullable=False)
    estimator_class: Mapped[str] = mapped_column(String(300), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    sampling: Mapped[str] = mapped_column(String(20), nullable=False, default="explore")
    metric: Mapped[str] = mapped_column(String(50), nullable=False)
    fold_scores: Mapped[list[Any]] = mapped_column(nullable=False)
    mean_score: Mapped[float | None] = mapped_column(Float)
    fit_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    # its model's complexity and its paired test against the run's best trial (`modeling.simplicity`); NULL before
    details: Mapped[dict[str, Any] | None] = mapped_column()
    created_at: Mapped[dt.datetime] = _now()
    __table_args__ = (UniqueConstraint("model_id", "run_id", "trial_index", name="uq_trial_run_index"),)


class ModelVersion(Base):
    """A registered version: numbered per model, with its artifact and metadata."""

    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    estimator_class: Mapped[str] = mapped_column(String(300), nullable=False)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    artifact: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    artifact_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    artifact_format: Mapped[str] = mapped_column(String(50), nullable=False)
    train_start: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    train_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    dataset_fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    features: Mapped[list[Any]] = mapped_column(nullable=False)
    target: Mapped[str] = mapped_column(String(200), nullable=False)
    package_versions: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    author: Mapped[str] = mapped_column(String(200), nullable=False)
    fit_seconds: Mapped[float] = mapped_column(Float, nullable=False)
    predict_latency_p95_ms: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cv_metric: Mapped[str | None] = mapped_column(String(50))
    cv_score: Mapped[float | None] = mapped_column(Float)
    trial_id: Mapped[int | None] = mapped_column(ForeignKey("search_trials.id", ondelete="SET NULL"))
    run_id: Mapped[str | None] = mapped_column(String(250))
    # what the version's inputs are (`specs.model.Source.contract`) and the YAML it was trained under, so that
    # a YAML edit changes what the next search trains, never how this version predicts
    contract: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    spec_snapshot: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    code_version: Mapped[str | None] = mapped_column(String(100))
    python_version: Mapped[str | None] = mapped_column(String(50))
    # what fitting decided beyond the hyperparameters (`classification.threshold`) and why the search ranked by its
    # metric; NULL for a version without either
    details: Mapped[dict[str, Any] | None] = mapped_column()
    trial_started_at: Mapped[dt.datetime] = _now()
    created_at: Mapped[dt.datetime] = _now()
    model: Mapped[Model] = relationship()
    __table_args__ = (
        UniqueConstraint("model_id", "version", name="uq_version_number"),
        UniqueConstraint("model_id", "run_id", "trial_id", name="uq_version_run_trial"),
    )


EVALUATION_KINDS_CHECK = "kind IN (" + ", ".join(f"'{kind}'" for kind in EVALUATION_KINDS) + ")"
# a 'serving' evaluation belongs to the model's service rather than to a version or a baseline
EVALUATION_OWNER_CHECK = (f"kind = '{SERVING}' AND version_id IS NULL AND baseline IS NULL "
                          f"OR kind <> '{SERVING}' AND (version_id IS NOT NULL) <> (baseline IS NOT NULL)")


class Evaluation(Base):
    """One metric value of one contender (a version, a baseline, or a model's service) on one slice of data."""

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    contender: Mapped[str] = mapped_column(String(100), nullable=False)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    baseline: Mapped[str | None] = mapped_column(String(100))
    partition: Mapped[str] = mapped_column(String(50), nullable=False)
    window_start: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    metric: Mapped[str] = mapped_column(String(50), nullable=False)
    value: Mapped[float | None] = mapped_column(Float)
    n_rows: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    passed: Mapped[bool | None] = mapped_column(Boolean)
    details: Mapped[dict[str, Any] | None] = mapped_column()
    run_id: Mapped[str] = mapped_column(String(250), nullable=False)
    created_at: Mapped[dt.datetime] = _now()
    __table_args__ = (
        CheckConstraint(EVALUATION_KINDS_CHECK, name="ck_eval_kind"),
        CheckConstraint(EVALUATION_OWNER_CHECK, name="ck_eval_version_xor_baseline"),
        UniqueConstraint("model_id", "kind", "contender", "partition", "metric", name="uq_evaluation_key"),
    )


class Requirement(Base):
    """A requirement's current bound; inactive once removed from the YAML."""

    __tablename__ = "requirements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    metric: Mapped[str] = mapped_column(String(50), nullable=False)
    direction: Mapped[str] = mapped_column(String(3), nullable=False)
    bound: Mapped[float] = mapped_column(Float, nullable=False)
    relative_to: Mapped[str | None] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(20), nullable=False)
    calibrate: Mapped[float | None] = mapped_column(Float)  # false-alarm rate of a bound derived from the back-test
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _now()
    history: Mapped[list[RequirementChange]] = relationship(
        back_populates="requirement", order_by="RequirementChange.id"
    )
    __table_args__ = (
        CheckConstraint("direction IN ('max', 'min')", name="ck_req_direction"),
        CheckConstraint("scope IN ('backtest', 'nowtest', 'gate', 'serving')", name="ck_req_scope"),
        UniqueConstraint("model_id", "metric", "relative_to", "scope", "direction", name="uq_requirement_key"),
    )


class RequirementChange(Base):
    """A row of a requirement's history (created, edited, removed, ratchet)."""

    __tablename__ = "requirement_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requirement_id: Mapped[int] = mapped_column(
        ForeignKey("requirements.id", ondelete="CASCADE"), nullable=False
    )
    old_bound: Mapped[float | None] = mapped_column(Float)
    new_bound: Mapped[float | None] = mapped_column(Float)
    change: Mapped[str] = mapped_column(String(20), nullable=False)
    changed_by: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    promotion_id: Mapped[int | None] = mapped_column(ForeignKey("promotions.id", ondelete="SET NULL"))
    derivation: Mapped[dict[str, Any] | None] = mapped_column()  # how a calibrated bound was computed
    changed_at: Mapped[dt.datetime] = _now()
    requirement: Mapped[Requirement] = relationship(back_populates="history")


class Alias(Base):
    """Named pointer to a version. The primary key makes 'one champion per model' a database fact."""

    __tablename__ = "aliases"
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(50), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"), nullable=False)
    updated_at: Mapped[dt.datetime] = _now()


class Promotion(Base):
    """A promotion decision with its gates and evidence."""

    __tablename__ = "promotions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False)
    previous_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    triggered_by: Mapped[str] = mapped_column(String(200), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)  # what the person who approved or rejected a proposal wrote
    gates: Mapped[list[Any]] = mapped_column(nullable=False)
    dry_run: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    run_id: Mapped[str | None] = mapped_column(String(250))
    created_at: Mapped[dt.datetime] = _now()
    __table_args__ = (
        CheckConstraint("kind IN ('initial', 'promotion', 'rollback')", name="ck_promotion_kind"),
        CheckConstraint("outcome IN ('promoted', 'rejected', 'dry_run', 'proposed')", name="ck_promotion_outcome"),
    )


class Alert(Base):
    """Outbox row: written before any send, so an SMTP failure never loses an alert."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True, nullable=False)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    run_id: Mapped[str | None] = mapped_column(String(250))
    recipients: Mapped[list[Any]] = mapped_column(nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    body_text: Mapped[str] = mapped_column(Text, nullable=False)
    body_html: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text)  # the Airflow run that raised it
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="queued")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _now()
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    deliveries: Mapped[list[AlertDelivery]] = relationship(order_by="AlertDelivery.id", lazy="selectin")
    __table_args__ = (CheckConstraint("status IN ('queued', 'sending', 'sent')", name="ck_alert_status"),)


class AlertDelivery(Base):
    """An alert on one notifier channel: sent there at most once, so a failed channel is retried alone."""

    __tablename__ = "alert_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False)
    channel: Mapped[str] = mapped_column(String(100), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text)  # what the receiving server answered to the send
    created_at: Mapped[dt.datetime] = _now()
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", name="uq_alert_delivery_channel"),
        CheckConstraint("status IN ('queued', 'sending', 'sent')", name="ck_alert_delivery_status"),
    )


class GoldenCase(Base):
    """A golden regression case; unique per (model, case key)."""

    __tablename__ = "golden_cases"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    case_key: Mapped[str] = mapped_column(String(64), nullable=False)
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    inputs: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    expected: Mapped[float] = mapped_column(Float, nullable=False)
    tolerance: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[dt.datetime] = _now()
    __table_args__ = (
        CheckConstraint("source IN ('file', 'harvested')", name="ck_golden_source"),
        UniqueConstraint("model_id", "case_key", name="uq_golden_case"),
    )


class BacktestReport(Base):
    """The back-test report of one run of a model."""

    __tablename__ = "backtest_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    run_id: Mapped[str] = mapped_column(String(250), nullable=False)
    summary: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    html: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = _now()
    __table_args__ = (UniqueConstraint("model_id", "run_id", name="uq_report_run"),)


class BacktestDay(Base):
    """One contender's back-test predictions of one month, a value per predicted row, for windows, quantiles and
    paired tests.

    One row per (model, contender, month) with arrays, not a row per prediction: 10 models x 120 months x 5
    contenders is 6,000 rows. Each prediction has its time and, in a panel, its series (`series`, NULL for a
    single series; PostgreSQL compresses the repeated names). Regression keeps `actual` and `predicted`;
    classification keeps each row's log loss and whether the predicted class was right (what its metrics and
    paired tests need).
    """

    __tablename__ = "backtest_days"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    contender: Mapped[str] = mapped_column(String(100), nullable=False)
    partition: Mapped[str] = mapped_column(String(50), nullable=False)
    times: Mapped[list[dt.datetime]] = mapped_column(ARRAY(DateTime(timezone=False)), nullable=False)
    series: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    actual: Mapped[list[float] | None] = mapped_column(ARRAY(Float))
    predicted: Mapped[list[float] | None] = mapped_column(ARRAY(Float))
    loss: Mapped[list[float] | None] = mapped_column(ARRAY(Float))
    correct: Mapped[list[bool] | None] = mapped_column(ARRAY(Boolean))
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(String(250), nullable=False)
    created_at: Mapped[dt.datetime] = _now()
    __table_args__ = (UniqueConstraint("model_id", "contender", "partition", name="uq_backtest_day_month"),)


class VersionAging(Base):
    """How one version ages (`entities.Aging`): its curves per metric and the age each requirement is broken at,
    replaced whenever it is measured again (a re-run, new months, a requirement changed)."""

    __tablename__ = "version_aging"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False)
    run_id: Mapped[str] = mapped_column(String(250), nullable=False)
    months: Mapped[list[Any]] = mapped_column(nullable=False)
    max_age: Mapped[int] = mapped_column(Integer, nullable=False)
    curves: Mapped[dict[str, Any]] = mapped_column(nullable=False)
    crossings: Mapped[list[Any]] = mapped_column(nullable=False)
    crossing_age: Mapped[int | None] = mapped_column(Integer)  # the youngest crossing: what the page and status read
    data_fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = _now()
    __table_args__ = (UniqueConstraint("model_id", "version_id", name="uq_version_aging"),)


class ServedPrediction(Base):
    """One answer of the REST service (or one refused request), logged off the request path in batches.

    A row per predicted row: `request_id` groups the rows of one request, whose latency they share.
    `feature_id` is the row's time key; `arm` says whether the champion or a split's candidate answered.
    A refused or failed request has a `status` >= 400, an `error` and no prediction.
    """

    __tablename__ = "served_predictions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), nullable=False)
    version: Mapped[int | None] = mapped_column(Integer)
    request_id: Mapped[str] = mapped_column(String(36), nullable=False)
    route: Mapped[str] = mapped_column(String(10), nullable=False)
    arm: Mapped[str] = mapped_column(String(20), nullable=False)
    feature_id: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=False))
    series: Mapped[str | None] = mapped_column(Text)  # a panel row's series label, NULL for a single series
    fallback_from: Mapped[int | None] = mapped_column(Integer)  # a failed split candidate the champion stood in for
    prediction: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(Text)
    probabilities: Mapped[dict[str, Any] | None] = mapped_column()
    cache_hit: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[int] = mapped_column(Integer, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    replica: Mapped[str] = mapped_column(String(200), nullable=False)
    served_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    __table_args__ = (
        CheckConstraint("route IN ('id', 'rows')", name="ck_served_route"),
        CheckConstraint("arm IN ('champion', 'candidate')", name="ck_served_arm"),
        Index("ix_served_model_time", "model_id", "served_at"),
        Index("ix_served_model_feature", "model_id", "feature_id"),
    )


class ServingProbe(Base):
    """One health check of a service replica (database reachable, champions loadable), for `availability`."""

    __tablename__ = "serving_probes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    replica: Mapped[str] = mapped_column(String(200), nullable=False)
    healthy: Mapped[bool] = mapped_column(Boolean, nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)
    probed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
