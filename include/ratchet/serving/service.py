"""The REST service's state and answers, without HTTP: models, routing, caches, invalidation, log and probes.

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ratchet import threads
from ratchet.exceptions import DataError, NotFoundError, PredictError, RatchetError, UnknownModelError
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


class Refused(Exception):
    """A request the service answers with an error status and a message (never a stack trace)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Answer:
    """One row's answer: the prediction (a number, or the class label) and a classifier's class probabilities."""

    prediction: Any
    probabilities: dict[str, float] | None


class Service:
    """Everything a replica keeps between requests, and the threads that keep it current."""

    def __init__(self, url: str, *, replica: str, probe_seconds: float, models_dir: Path | None = None):
        self.url, self.replica, self.models_dir = url, replica, models_dir
        self.registry = Registry(url)
        self.metrics = ServingMetrics()
        self.reader = FeatureReader(url)
        self.estimators = Estimators(self.registry)
        self.answers = TTLCache()  # model -> (version, feature id, fingerprint) -> Answer
        self.known_rows = TTLCache()  # model -> feature id -> RowFeatures (the fingerprint of the id, its features)
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
            self.load_error = f"the Ratchet database is unreachable ({_first_line(exc)}); retrying"
            log.error("cannot load the models yet: %s", self.load_error)
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
            return ModelState(name, None, None, None, (), None, False, refusal=(503, f"model {name!r} is not "
                                                                                    f"served: {exc}"))
        try:
            return resolve(self.registry, self.estimators, spec)
        except UnknownModelError:
            return ModelState(name, spec, None, None, (), None, False, refusal=(
                404, f"model {name!r} has no version in the registry yet; the ratchet_retrain DAG registers them"))
        except RatchetError as exc:  # an artifact refused by the safe loader, say
            log.error("model %r cannot be served: %s", name, exc)
            return ModelState(name, spec, None, None, (), None, True, refusal=(503, f"model {name!r} cannot be "
                                                                                   f"served: {exc}"))

    def states(self) -> list[ModelState]:
        """Every configured model's state, by name."""
        return [self._states[name] for name in sorted(self._states)]

    def known(self, model: str) -> ModelState | None:
        """The model's state, None if it is not configured."""
        return self._states.get(model)

    def state(self, model: str) -> ModelState:
        """The model's state, if it is configured.

        Raises:
            Refused: 503 before the models are loaded, 404 for an unknown model.
        """
        state = self._states.get(model)
        if state is not None:
            return state
        if self.load_error:
            raise Refused(503, f"the service has not loaded its models: {self.load_error}")
        raise Refused(404, f"unknown model {model!r}; configured models: {sorted(self._states)}")

    @staticmethod
    def servable(state: ModelState) -> ModelState:
        """The state, if it can answer predictions.

        Raises:
            Refused: the model's spec is broken (503) or it has no champion yet (404).
        """
        if state.refusal:
            raise Refused(*state.refusal)
        return state

    # -- answers -------------------------------------------------------------------------------------
    def cached_answer(self, state: ModelState, arm: Arm, feature_id: dt.datetime) -> Answer | None:
        """The cached answer of an id, if its fingerprint and its answer are both still within their TTL."""
        known: RowFeatures | None = self.known_rows.get(state.name, feature_id)
        if known is None:
            return None
        return self.answers.get(state.name, (arm.version.version, feature_id, known.fingerprint))

    def answer_by_id(self, state: ModelState, arm: Arm, feature_id: dt.datetime) -> tuple[Answer, bool]:
        """The answer of an id and whether it came from the cache (reads the source unless the id is remembered).

        Raises:
            Refused: no row at that time (404), lags that cannot be computed (422), unusable source rows (500),
                an unreachable database (503).
        """
        spec, name = state.spec, state.name
        ttl = spec.serving.cache_ttl_seconds
        known = self.known_rows.get(name, feature_id)
        if known is None:
            with _refusals():
                known = self.reader.by_id(spec, feature_id)
            self.known_rows.put(name, feature_id, known, ttl)
        key = (arm.version.version, feature_id, known.fingerprint)
        cached = self.answers.get(name, key)
        if cached is not None:
            return cached, True
        answer = predict_answers(spec, arm.estimator, known.X)[0]
        self.answers.put(name, key, answer, ttl)
        return answer, False

    def answer_records(self, state: ModelState,
                       records: list[dict[str, Any]]) -> list[tuple[dt.datetime, Arm, Answer]]:
        """Answers of rows sent in a request, in the request's order; each row routed by its time key.

        Raises:
            Refused: a bad row (422, naming the row and field), an unreachable database (503).
        """
        with _refusals():
            X, keys = self.reader.of_records(state.spec, records)
        arms = [state.arm_for(key) for key in keys]
        answers: list[Answer | None] = [None] * len(keys)
        for arm in {a.name: a for a in arms}.values():
            chosen = [i for i, a in enumerate(arms) if a is arm]
            for i, answer in zip(chosen, predict_answers(state.spec, arm.estimator, X.iloc[chosen]), strict=True):
                answers[i] = answer
        return list(zip(keys, arms, answers, strict=True))

    # -- health ------------------------------------------------------------------------------------
    def health(self) -> Health:
        """Database reachable, notifications connected, and every configured champion loadable (loads it if needed).

        A champion that differs from the one in memory (a missed notification) reloads the model.
        """
        try:
            self.registry.ping()
        except Exception as exc:
            return Health(False, f"unreachable: {_first_line(exc)}", {}, (f"database unreachable: {_first_line(exc)}",))
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
        if state.spec is None or (state.refusal and state.refusal[0] >= 500):
            return state.refusal[1], state.refusal[1]
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
        return f"champion v{champion.version} loaded", None


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


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _champion_text(state: ModelState | None) -> str:
    if state is None:
        return "(model removed)"
    return f"v{state.champion.version.version}" if state.champion else "none"


@contextmanager
def _refusals() -> Iterator[None]:
    """Turn Ratchet's errors while answering into `Refused` with the status the request deserves.

    Unknown row 404; a request's rows or lags that cannot be used 422; source rows that fail their own checks
    500 (the source is wrong, not the request); an unreachable database 503.
    """
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except NotFoundError as exc:
        raise Refused(404, str(exc)) from None
    except PredictError as exc:
        raise Refused(422, str(exc)) from None
    except DataError as exc:
        raise Refused(500, f"the source cannot be used: {exc}") from None
    except DBAPIError as exc:
        raise Refused(503, f"the database is unreachable: {_first_line(exc)}") from None
