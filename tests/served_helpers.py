"""Serving-log rows written the way the REST service writes them (`Registry.log_served`, `Registry.record_probe`),
and a version's own predictions of a now-test window, for tests of the served now-test and serving requirements."""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace

import pandas as pd

from ratchet.modeling import sources
from ratchet.modeling.features import make_xy
from ratchet.modeling.months import window_bounds
from ratchet.registry.entities import Probe, Served


def answer(model: str, version: int | None, feature_id, prediction: float | None, served_at: dt.datetime, *,
           arm: str = "champion", request_id: str | None = None, latency_ms: float = 5.0, status: int = 200,
           cache_hit: bool = False, label: str | None = None, probabilities: dict | None = None) -> Served:
    """One logged row: an answered prediction, or (status >= 400) a refused or failed request."""
    failed = status >= 400
    return Served(model=model, version=None if failed else version, request_id=request_id or uuid.uuid4().hex,
                  route="id", arm=arm, feature_id=pd.Timestamp(feature_id).to_pydatetime(),
                  prediction=None if failed else prediction, label=None if failed else label,
                  probabilities=None if failed else probabilities, cache_hit=cache_hit, latency_ms=latency_ms,
                  status=status, error="refused" if failed else None, replica="127.0.0.1:8000:1", served_at=served_at)


def window_predictions(registry, spec, end, version: int) -> pd.DataFrame:
    """The version's own predictions of the now-test window ending at `end`: time, actual, predicted."""
    start, stop, _ = window_bounds(end, spec.nowtest.window_days)
    X, y, times = make_xy(spec, sources.read_source(spec, end=stop))
    inside = ((times >= start) & (times < stop)).to_numpy()
    estimator = registry.load_estimator(spec.name, version)
    features = list(registry.version(spec.name, version).features)
    return pd.DataFrame({"time": times[inside].to_numpy(), "actual": y[inside].to_numpy(),
                         "predicted": estimator.predict(X[inside][features])})


def serve_window(registry, spec, end, version: int, *, arm: str = "champion", scale: float = 1.0,
                 ids=None, served_at: dt.datetime | None = None, **fields) -> list[Served]:
    """Log the version's predictions (times `scale`) of the window's ids (all, or the times in `ids`), served
    one hour before `end` (inside the serving day); returns the rows logged."""
    frame = window_predictions(registry, spec, end, version)
    if ids is not None:
        frame = frame[frame["time"].isin(pd.DatetimeIndex(ids))]
    when = served_at or pd.Timestamp(end).to_pydatetime() - dt.timedelta(hours=1)
    rows = [answer(spec.name, version, t, float(p) * scale, when, arm=arm, **fields)
            for t, p in zip(frame["time"], frame["predicted"], strict=True)]
    registry.log_served(rows)
    return rows


def probe_every_minute(registry, start: dt.datetime, end: dt.datetime, *, healthy=lambda minute: True,
                       replica: str = "127.0.0.1:8000:1") -> None:
    """One probe 10 s into every minute of [start, end); `healthy(i)` says whether the i-th minute's was healthy."""
    minutes = int((end - start) / dt.timedelta(minutes=1))
    for i in range(minutes):
        registry.record_probe(Probe(replica, healthy(i), None if healthy(i) else "database unreachable",
                                    start + dt.timedelta(minutes=i, seconds=10)))


def requests(rows: list[Served], **changes) -> list[Served]:
    """`rows` with fields changed (latency, status...), each its own request."""
    return [replace(r, request_id=uuid.uuid4().hex, **changes) for r in rows]


def seed_serving(registry, model: str, now: dt.datetime, *, champion: int = 1, candidate: int = 2) -> None:
    """A day and a half of a REST service as the UI and `ratchet status` show it, and the now-test's latest served
    evaluation of a split (stored rows as `evaluation.served` writes them).

    Today (UTC, before `now`): 4 requests of the champion (latencies 2, 4, 6 and 8 ms, two from the cache), one
    refused (4xx), one failed (5xx, 100 ms), one of the candidate (3 ms); probes every minute of the last 30
    minutes, minute 5 unhealthy. Yesterday: 2 requests of the champion.
    """
    from ratchet.registry import EvaluationRow

    today = now - dt.timedelta(minutes=40)
    rows = [answer(model, champion, "2026-01-01", 1.0, today, latency_ms=ms, cache_hit=ms <= 4) for ms in (2, 4, 6, 8)]
    rows += [answer(model, None, "2026-01-01", None, today, status=404, latency_ms=1.0),
             answer(model, None, "2026-01-01", None, today, status=503, latency_ms=100.0),
             answer(model, candidate, "2026-01-02", 1.0, today, arm="candidate", latency_ms=3.0)]
    rows += [answer(model, champion, "2026-01-03", 1.0, now - dt.timedelta(days=1, hours=1)) for _ in range(2)]
    registry.log_served(rows)
    probe_every_minute(registry, now - dt.timedelta(minutes=30), now, healthy=lambda minute: minute != 5)
    comparison = {"champion": f"v{champion}@champion", "candidate": f"v{candidate}@candidate",
                  "text": f"A/B on served ids (descriptive): v{candidate}@candidate rmse 1.5 on 2 id(s) vs "
                          f"v{champion}@champion rmse 2 on 9 id(s): candidate 25.0% better"}
    for version, arm, rmse, ids, passed in ((champion, "champion", 2.0, 9, True), (candidate, "candidate", 1.5, 2,
                                                                                    None)):
        details = {"arm": arm, "role": arm, "scored": ids, "awaiting": 1, "checked": passed is not None,
                   "comparisons": [comparison]}
        registry.record_evaluations(model, [
            EvaluationRow(kind="served", contender=f"v{version}@{arm}", partition="2026-01-10", metric=metric,
                          value=value, n_rows=ids, run_id="nt", version=version, passed=verdict, details=details)
            for metric, value, verdict in (("ids", float(ids), None), ("rmse", rmse, passed))])
