"""The REST service's state and answers, without HTTP: models, routing, caches, invalidation, log and probes.

It raises Ratchet's own errors (an unknown model, a request it cannot predict, a database it cannot reach); the
app's edge (`serving.errors`) decides which HTTP status each one gets.

Specs, champions, split candidates and their loaded estimators live in memory and are replaced, model by
model, when PostgreSQL notifies a change (`notify.ChangeListener`) or the models folder changes; a lost
notification connection reloads everything and drops every cached answer. An answer by id is cached under
(model, version, feature id, fingerprint of the row and its lag history) for `serving.cache_ttl_seconds`;
the fingerprint of an id is itself remembered for the TTL, so a cache hit reads nothing from PostgreSQL and a
corrected source row is seen at most one TTL later.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ratchet import threads
from ratchet.exceptions import (
    DatabaseUnavailableError,
    NoChampionError,
    NotServableError,
    PredictError,
    RatchetError,
    UnavailableError,
    UnknownModelError,
)
from ratchet.modeling.features import series_label
from ratchet.registry import Registry
from ratchet.serving.cache import TTLCache
from ratchet.serving.log import ServedLog
from ratchet.serving.metrics import ServingMetrics
from ratchet.serving.notify import ChangeListener
from ratchet.serving.probes import Health, Prober
from ratchet.serving.routing import Arm, Estimators, ModelState, resolve
from ratchet.serving.rows import FeatureReader, RowFeatures
from ratchet.specs.catalog import Catalog, load_catalog, spec_files

if TYPE_CHECKING:
    import pandas as pd

    from ratchet.specs.model import ModelSpec

log = logging.getLogger(__name__)
MISS = object()  # `Service._route`: an event's entity is not remembered, so its cached answer cannot be found


@dataclass(frozen=True)
class Answer:
    """One row's answer: the prediction (a number, or the class label) and a classifier's class probabilities."""

    prediction: Any
    probabilities: dict[str, float] | None


@dataclass(frozen=True, slots=True)
class Answered:
    """A row answered for a request: its feature id, the arm that answered, the answer, whether it was cached."""

    feature_id: dt.datetime
    arm: Arm
    answer: Answer
    cached: bool
    series: str | None = None  # a panel row's series label (`features.series_label`); None for a single series
    fallback_from: int | None = None  # the split's candidate that failed on this row, when the champion answered


class Service:
    """Everything a replica keeps between requests, and the threads that keep it current."""

    def __init__(self, url: str, *, replica: str, probe_seconds: float, models_dir: Path | None = None):
        self.url, self.replica, self.models_dir = url, replica, models_dir
        self.registry = Registry(url)
        self.metrics = ServingMetrics()
        self.reader = FeatureReader(url)
        self.estimators = Estimators(self.registry)
        self.answers = TTLCache()  # model -> (version, feature id, fingerprint) -> Answer
        self.known_rows = TTLCache()  # model -> (version, feature id) -> RowFeatures (fingerprint, features)
        self.log = ServedLog(self.registry, self.metrics)
        self.listener = ChangeListener(url, on_connect=self.reload_all, on_change=self.reload_model,
                                       on_lost=self.forget_cached, on_idle=self.check_models_folder)
        self.prober = Prober(self.registry, self.metrics, replica, self.health, probe_seconds)
        self._states: dict[str, ModelState] = {}
        self._catalog: Catalog | None = None
        self._folder: tuple | None = None
        self._reload = threading.Lock()
        self.load_error: str | None = "not started"

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Load every model (or keep retrying in the background if the database is down) and start the threads.

        Native thread pools (OpenMP, BLAS) run one thread for the life of the process (`threads.serving_limits`):
        a request predicts a row or a few, where threads only add start-up cost, and concurrent requests are what
        use the cores.
        """
        threads.serving_limits()
        try:
            self.listener.connect()
        except Exception as exc:
            self.load_error = f"the Ratchet database is unreachable ({database_failure(exc)}); retrying"
            log.error("cannot load the models yet: %s (%s)", self.load_error, first_line(exc))
        self.listener.start()
        self.log.start()
        self.prober.start()

    def stop(self) -> None:
        """Stop the threads, write the queued prediction log, close connections."""
        self.prober.stop()
        self.listener.stop()
        self.log.stop()
        self.reader.dispose()
        self.registry.dispose()

    # -- model states ----------------------------------------------------------------------------
    def reload_all(self) -> None:
        """Reload the specs and every model's state from the registry; drop every cached answer."""
        with self._reload:
            self._catalog, self._folder = load_catalog(self.models_dir), self._folder_signature()
            self._states = {name: self._resolve(name) for name in self._catalog.names}
            self.forget_cached()
            self.load_error = None

    def reload_model(self, name: str) -> None:
        """Reload the specs and one model's state (a NOTIFY named it); drop its cached answers."""
        with self._reload:
            self._catalog, self._folder = load_catalog(self.models_dir), self._folder_signature()
            if name in self._catalog.names:
                self._states[name] = self._resolve(name)
            else:
                self._states.pop(name, None)
            self.answers.drop(name)
            self.known_rows.drop(name)
        log.info("model %r reloaded: champion %s", name, _champion_text(self._states.get(name)))

    def forget_cached(self) -> None:
        """Drop every cached answer and remembered fingerprint (nothing cached survives a gap in notifications)."""
        self.answers.clear()
        self.known_rows.clear()

    def check_models_folder(self) -> None:
        """Reload everything when a spec file was added, removed or edited."""
        if self._catalog is not None and self._folder_signature() != self._folder:
            log.warning("the models folder changed: reloading every model")
            self.reload_all()

    def _folder_signature(self) -> tuple:
        try:
            return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in spec_files(self.models_dir))
        except (OSError, RatchetError):
            return ()

    def _resolve(self, name: str) -> ModelState:
        try:
            spec = self._catalog.get(name)
        except RatchetError as exc:
            return ModelState(name=name, refusal=NotServableError(f"model {name!r} is not served: {exc}"))
        try:
            return resolve(self.registry, self.estimators, spec)
        except UnknownModelError:
            return ModelState(name=name, spec=spec, refusal=NoChampionError(
                f"model {name!r} has no version in the registry yet; the ratchet_retrain DAG registers them"))
        except RatchetError as exc:  # an artifact refused by the safe loader, say
            log.error("model %r cannot be served: %s", name, exc)
            return ModelState(name=name, spec=spec, registered=True,
                              refusal=NotServableError(f"model {name!r} cannot be served: {exc}"))

    def states(self) -> list[ModelState]:
        """Every configured model's state, by name."""
        return [self._states[name] for name in sorted(self._states)]

    def known(self, model: str) -> ModelState | None:
        """The model's state, None if it is not configured."""
        return self._states.get(model)

    def state(self, model: str) -> ModelState:
        """The model's state, if it is configured.

        Raises:
            UnavailableError: the models are not loaded yet (the database was unreachable at start).
            UnknownModelError: no model of that name is configured.
        """
        state = self._states.get(model)
        if state is not None:
            return state
        if self.load_error:
            raise UnavailableError(f"the service has not loaded its models: {self.load_error}")
        raise UnknownModelError(f"unknown model {model!r}; configured models: {sorted(self._states)}")

    def servable(self, model: str) -> ModelState:
        """The model's state, if it can answer predictions.

        Raises:
            UnavailableError: the models are not loaded yet.
            UnknownModelError: no model of that name is configured.
            NoChampionError: it has no version or no champion yet.
            NotServableError: its spec is broken, or its champion cannot be loaded.
        """
        state = self.state(model)
        if state.refusal is not None:
            raise state.refusal.with_traceback(None)  # the one stored error, raised afresh for each request
        return state

    # -- answers -------------------------------------------------------------------------------------
    def cached(self, state: ModelState, feature_id: dt.datetime | None, series: dict[str, str] | None = None
               ) -> Answered | None:
        """The cached answer of an id, if its fingerprint and its answer are both still within their TTL."""
        label = series_key(state.spec, series)
        route = self._route(state, feature_id, series, label, read=False)
        if route is MISS:
            return None
        arm = state.arm_for(feature_id, route)
        known: RowFeatures | None = self.known_rows.get(state.name, (arm.version.version, label, feature_id))
        if known is None:
            return None
        answer = self.answers.get(state.name, (arm.version.version, label, feature_id, known.fingerprint))
        return None if answer is None else Answered(known.feature_id, arm, answer, True, label)

    def answer_by_id(self, state: ModelState, feature_id: dt.datetime | None,
                     series: dict[str, str] | None = None) -> Answered:
        """The answer of an id (in a panel, of the series whose key columns have the values `series`; an event's,
        `feature_id` None and `series` its id), read from the source unless the id is remembered; from the cache
        when it can be.

        Raises:
            NotFoundError: the source has no row at that time (of that series).
            PredictError: its lags cannot be computed.
            DataError: the source's rows cannot be used.
            DatabaseUnavailableError: the source's database is unreachable.
        """
        label = series_key(state.spec, series)
        arm = state.arm_for(feature_id, self._route(state, feature_id, series, label))
        if arm is state.champion:
            return self._answer_by_id(state, arm, feature_id, series, label)
        try:
            return self._answer_by_id(state, arm, feature_id, series, label)
        except Exception as exc:  # noqa: BLE001 - whatever the candidate did, the champion answers
            log.error("model %r: the split's candidate v%d failed on %s: %s; the champion answers", state.name,
                      arm.version.version, label if feature_id is None else feature_id, first_line(exc))
            answered = self._answer_by_id(state, state.champion, feature_id, series, label)
            return replace(answered, fallback_from=arm.version.version)

    def _route(self, state: ModelState, feature_id: dt.datetime | None, series: dict[str, str] | None,
               label: str | None, *, read: bool = True) -> str | None | object:
        """What the split hashes for an id: its series or event label, or an event's entity (`serving.split.by`,
        else `source.series`), read from the event's row as the champion reads it (remembered like any row).
        MISS when the entity is not remembered and `read` is False."""
        columns = entity_columns(state.spec)
        if columns is None or state.candidate is None:
            return label
        known = self._known(state, state.champion, feature_id, series, label, read=read)
        return MISS if known is None else series_label(columns, known.values)

    def _known(self, state: ModelState, arm: Arm, feature_id: dt.datetime | None, series: dict[str, str] | None,
               label: str | None, *, read: bool = True) -> RowFeatures | None:
        """The id's row as the arm's version reads it, remembered for `serving.cache_ttl_seconds` (None when not
        remembered and `read` is False)."""
        key = (arm.version.version, label, feature_id)
        known = self.known_rows.get(state.name, key)
        if known is None and read:
            with _database_errors():
                known = self.reader.by_id(arm.spec, feature_id, series)
            self.known_rows.put(state.name, key, known, state.spec.serving.cache_ttl_seconds)
        return known

    def _answer_by_id(self, state: ModelState, arm: Arm, feature_id: dt.datetime | None, series: dict[str, str] | None,
                      label: str | None) -> Answered:
        spec, name = state.spec, state.name
        ttl = spec.serving.cache_ttl_seconds
        known = self._known(state, arm, feature_id, series, label)
        key = (arm.version.version, label, feature_id, known.fingerprint)
        cached = self.answers.get(name, key)
        if cached is not None:
            return Answered(known.feature_id, arm, cached, True, label)
        answer = predict_answers(spec, arm.estimator, known.X)[0]
        self.answers.put(name, key, answer, ttl)
        return Answered(known.feature_id, arm, answer, False, label)

    def answer_records(self, state: ModelState, records: list[dict[str, Any]]) -> list[Answered]:
        """Answers of rows sent in a request, in the request's order; each row routed by its time key (by its
        series, in a panel).

        Raises:
            PredictError: a bad row, naming the row and field.
            DataError: the source's rows cannot be used.
            DatabaseUnavailableError: the source's database is unreachable.
        """
        built: dict[int, tuple[pd.DataFrame, list[dt.datetime], list[str | None]]] = {}

        def inputs(arm: Arm) -> tuple[pd.DataFrame, list[dt.datetime], list[str | None]]:
            """Every row's features as the arm's version reads them (its contract), built once per version."""
            if arm.version.version not in built:
                with _database_errors():
                    built[arm.version.version] = self.reader.of_records(arm.spec, records)
            return built[arm.version.version]

        _, keys, labels = inputs(state.champion)
        routes = record_routes(state.spec, records, labels)
        arms = [state.arm_for(key, route) for key, route in zip(keys, routes, strict=True)]
        answers: list[Answer | None] = [None] * len(keys)
        failed: int | None = None
        for arm in {a.name: a for a in arms}.values():
            chosen = [i for i, a in enumerate(arms) if a is arm]
            try:
                predicted = predict_answers(state.spec, arm.estimator, inputs(arm)[0].iloc[chosen])
            except Exception as exc:  # noqa: BLE001 - a candidate's failure: the champion answers its rows
                if arm is state.champion:
                    raise
                log.error("model %r: the split's candidate v%d failed on %d posted row(s): %s; the champion "
                          "answers", state.name, arm.version.version, len(chosen), first_line(exc))
                failed = arm.version.version
                predicted = predict_answers(state.spec, state.champion.estimator,
                                            inputs(state.champion)[0].iloc[chosen])
                for i in chosen:
                    arms[i] = state.champion
            for i, answer in zip(chosen, predicted, strict=True):
                answers[i] = answer
        return [Answered(key, arm, answer, False, label,
                         fallback_from=failed if arm is state.champion and failed is not None and
                         state.arm_for(key, route) is not state.champion else None)
                for key, arm, answer, label, route in zip(keys, arms, answers, labels, routes, strict=True)]

    # -- health ------------------------------------------------------------------------------------
    def health(self) -> Health:
        """Database reachable, notifications connected, and every configured champion loadable (loads it if needed).

        A champion that differs from the one in memory (a missed notification) reloads the model.
        """
        try:
            self.registry.ping()
        except Exception as exc:
            reason = database_failure(exc)
            return Health(False, f"unreachable: {reason}", {}, (f"database unreachable: {reason}",))
        problems, models = [], {}
        if self.load_error:
            problems.append(f"models not loaded: {self.load_error}")
        if not self.listener.connected.is_set():
            problems.append("not listening for promotions (reconnecting)")
        for state in self.states():
            status, problem = self._model_health(state)
            models[state.name] = status
            if problem:
                problems.append(problem)
        return Health(not problems, "reachable", models, tuple(problems))

    def _model_health(self, state: ModelState) -> tuple[str, str | None]:
        if isinstance(state.refusal, UnavailableError):
            return str(state.refusal), str(state.refusal)
        if not state.registered:
            return "no version registered yet", None
        try:
            champion = self.registry.champion(state.name)
            if champion is None:
                return "no champion yet", None
            self.estimators.get(champion)
        except UnknownModelError:
            return "no version registered yet", None
        except RatchetError as exc:
            message = f"model {state.name!r}: champion cannot be loaded: {exc}"
            return message, message
        served = state.champion.version if state.champion else None
        if served is None or (served.version, served.artifact_sha256) != (champion.version, champion.artifact_sha256):
            log.warning("model %r: the champion is v%d but v%s was served: reloading", state.name, champion.version,
                        served.version if served else None)
            self.reload_model(state.name)
        try:
            with _database_errors():
                self.reader.check_contract(state.spec.for_version(champion.version, champion.contract))
        except RatchetError as exc:
            message = f"model {state.name!r}: champion v{champion.version} cannot predict: {exc}"
            return message, message
        return f"champion v{champion.version} loaded", None


def entity_columns(spec: ModelSpec) -> tuple[str, ...] | None:
    """The entity columns an event model's split hashes (`serving.split.by`, else `source.series`); None when the
    split hashes what a row is already keyed by (its series or event id), or there is no split."""
    split = spec.serving.split
    if not spec.source.events or split is None:
        return None
    columns = spec.source.split_key(split.by)
    return None if columns == (spec.source.id,) else columns


def record_routes(spec: ModelSpec, records: list[dict[str, Any]], labels: list[str | None]) -> list[str | None]:
    """What the split hashes for each posted row: its label (series or event id), or an event's entity columns.

    Raises:
        PredictError: a row lacks an entity column the split hashes.
    """
    columns = entity_columns(spec)
    if columns is None:
        return labels
    for i, record in enumerate(records):
        missing = [c for c in columns if c not in record]
        if missing:
            raise PredictError(f"rows[{i}]: missing {missing}; model {spec.name!r} splits its events by the "
                               f"entity {list(columns)}: each row names its entity")
    return [series_label(columns, record) for record in records]


def series_key(spec: ModelSpec, series: dict[str, str] | None) -> str | None:
    """The label a panel's series (an event: its id) is cached, routed and logged by (`features.series_label`);
    None for one series."""
    columns = (spec.source.id,) if spec.source.events else spec.source.series
    return series_label(columns, series) if columns and series else None


def predict_answers(spec: ModelSpec, estimator: Any, X: pd.DataFrame) -> list[Answer]:
    """Each row's prediction (and class probabilities for a classifier that has them)."""
    predictions = estimator.predict(X)
    if spec.task != "classification":
        return [Answer(float(p), None) for p in predictions]
    if not hasattr(estimator, "predict_proba"):
        return [Answer(_plain(p), None) for p in predictions]
    classes = [str(_plain(c)) for c in estimator.classes_]
    return [Answer(_plain(p), dict(zip(classes, map(float, row), strict=True)))
            for p, row in zip(predictions, estimator.predict_proba(X), strict=True)]


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON can hold."""
    return value.item() if isinstance(value, np.generic) else value


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (a database error's own, without SQLAlchemy's wrapping)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _champion_text(state: ModelState | None) -> str:
    if state is None:
        return "(model removed)"
    return f"v{state.champion.version.version}" if state.champion else "none"


# What a database driver's message says, and what the service may repeat of it: never a host, port or user name
_DATABASE_FAILURES = (
    ("connection refused", "connection refused"),
    ("timeout expired", "connection timed out"),
    ("timed out", "connection timed out"),
    ("authentication failed", "authentication failed"),
    ("no pg_hba.conf entry", "connection not allowed by the server"),
    ('role "', "the database user does not exist"),
    ("does not exist", "the database does not exist"),
    ("could not translate host name", "host name not found"),
    ("too many clients", "too many connections"),
    ("starting up", "the server is starting up"),
    ("shutting down", "the server is shutting down"),
    ("terminating connection", "the server closed the connection"),
    ("closed the connection", "the server closed the connection"),
)


def database_failure(exc: BaseException) -> str:
    """Why a database cannot be reached, in words that name no host, port, user or password (the driver's own
    message names them; it goes to the service's log, not to clients)."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    for clue, reason in _DATABASE_FAILURES:
        if clue in text:
            return reason
    return type(getattr(exc, "orig", None) or exc).__name__


@contextmanager
def _database_errors() -> Iterator[None]:
    """A database that cannot be reached while answering becomes `DatabaseUnavailableError` (the request may be
    retried); Ratchet's own errors pass as they are."""
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as exc:
        log.warning("a source read failed: %s", first_line(exc))
        raise DatabaseUnavailableError(f"the database is unreachable: {database_failure(exc)}") from None
