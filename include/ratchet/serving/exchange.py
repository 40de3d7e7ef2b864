"""One request as the service notes it on its way through: what the edge saw, what the routes answered.

The edge (`serving.edge`) makes it before anything else and records it once the answer is sent
(`serving.recording`): metrics and the prediction log are written in that one place. Routes and error handlers
only fill it in.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ratchet.serving.routing import ModelState
    from ratchet.serving.service import Answered

EXCHANGE_KEY = "ratchet.exchange"  # where a request's ASGI scope holds its Exchange
MODELS_PATH, HEALTH_PATH, METRICS_PATH = "/v1/models", "/healthz", "/metrics"
ROUTE_MODELS, ROUTE_MODEL, ROUTE_ID, ROUTE_ROWS = "models", "model", "id", "rows"
ROUTE_HEALTH, ROUTE_METRICS, ROUTE_OTHER = "healthz", "metrics", "other"
PREDICT_ROUTES = frozenset({ROUTE_ID, ROUTE_ROWS})  # the routes whose requests the prediction log keeps
_PLAIN_ROUTES = {HEALTH_PATH: ROUTE_HEALTH, METRICS_PATH: ROUTE_METRICS}
_PREDICT_BY_METHOD = {"GET": ROUTE_ID, "POST": ROUTE_ROWS}


def route_of(method: str, path: str) -> tuple[str, str | None]:
    """The metrics and log label of a request (the routes of `serving.routers`), and the model its path names.

    Labelled from the path alone, before routing, so that the edge can count the requests it refuses.
    """
    if not path.startswith(MODELS_PATH):
        return _PLAIN_ROUTES.get(path, ROUTE_OTHER), None
    parts = path[len(MODELS_PATH):].split("/")  # '' -> [''], '/m' -> ['', 'm'], '/m/predict' -> ['', 'm', 'predict']
    if parts == [""]:
        return ROUTE_MODELS, None
    if parts[0] or not parts[1] or len(parts) > 3:
        return ROUTE_OTHER, None
    if len(parts) == 2:
        return ROUTE_MODEL, parts[1]
    if parts[2] == "predict" and method in _PREDICT_BY_METHOD:
        return _PREDICT_BY_METHOD[method], parts[1]
    return ROUTE_OTHER, None


@dataclass(slots=True)
class Exchange:
    """A request's route label and model, when it started, and what became of it (status, answers or error)."""

    route: str
    model: str | None  # the model the path names (configured or not)
    started: float  # time.perf_counter() when the request arrived
    status: int = 0  # the status answered
    passed_edge: bool = False  # the token, content type and size were accepted: the request reached the app
    state: ModelState | None = None  # the model that answered
    answers: list[Answered] | None = None
    feature_id: dt.datetime | None = None  # the id a GET asked for, logged with a refusal too
    series: str | None = None  # the series a GET asked for in a panel (its label), logged with a refusal too
    error: str | None = None  # the detail of an error answer
    _request_id: str | None = None

    @property
    def request_id(self) -> str:
        """A random id, made when first asked for (a log row or an error names it)."""
        if self._request_id is None:
            self._request_id = str(uuid.uuid4())
        return self._request_id

    def answered(self, state: ModelState, answers: list[Answered]) -> None:
        """Note the rows a route answered, and the model state that answered them."""
        self.state, self.answers = state, answers
