"""The serving log and the probes: what the REST service answered, and whether each replica was healthy.

The service appends its answers in batches off the request path (`log_served`); the now-test reads them back
de-duplicated per feature id (`served_answers`) and the service-level requirements read them aggregated in SQL per
period (`serving_log`), so a window asked a million times still reads a handful of rows.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import fields as dataclass_fields
from typing import Any

from sqlalchemy import DateTime, Integer, Interval, Select, bindparam, func, null, select, text, union_all
from sqlalchemy.dialects.postgresql import insert

from ratchet.exceptions import UnknownModelError
from ratchet.registry import entities
from ratchet.registry.base import Store
from ratchet.registry.schema import Model, ServedPrediction, ServingProbe

_SERVED_FIELDS = [f.name for f in dataclass_fields(entities.Served) if f.name != "model"]


class ServingStore(Store):
    """The REST service's prediction log, per model, and every replica's health probes."""

    def log_served(self, rows: Iterable[entities.Served]) -> int:
        """Append the REST service's answers (one batch, one transaction); returns how many rows were written.

        Rows of models the registry does not know are refused with `UnknownModelError`, the whole batch with them.
        """
        rows = list(rows)
        if not rows:
            return 0
        with self._session() as session:
            ids = dict(session.execute(select(Model.name, Model.id).where(
                Model.name.in_({r.model for r in rows}))).tuples().all())
            unknown = sorted({r.model for r in rows} - set(ids))
            if unknown:
                raise UnknownModelError(f"served rows name unknown model(s) {unknown}")
            session.execute(insert(ServedPrediction), [
                {"model_id": ids[r.model], **{k: getattr(r, k) for k in _SERVED_FIELDS}} for r in rows])
        return len(rows)

    def served(self, model: str, start: dt.datetime, end: dt.datetime) -> list[entities.Served]:
        """What the service answered for the model with `start <= served_at < end`, oldest first."""
        with self._session() as session:
            m = self._model(session, model)
            found = session.scalars(select(ServedPrediction).where(
                ServedPrediction.model_id == m.id, ServedPrediction.served_at >= start,
                ServedPrediction.served_at < end).order_by(ServedPrediction.served_at, ServedPrediction.id))
            return [_served(r, model) for r in found]

    def served_answers(self, model: str, start: dt.datetime,
                       end: dt.datetime) -> list[tuple[entities.Served, int]]:
        """For each (arm, version, series, feature id) answered (status < 400) with `start <= feature_id < end`
        (naive UTC time keys), whenever it was served: its latest answer and how many answers were logged for it.

        De-duplicated in SQL, so a window whose ids were asked a million times still reads one row per id.
        """
        sp = ServedPrediction
        key = (sp.arm, sp.version, sp.series, sp.feature_id)
        with self._session() as session:
            m = self._model(session, model)
            ranked = (select(sp.id, func.count().over(partition_by=key).label("answers"),
                             func.row_number().over(partition_by=key, order_by=(sp.served_at.desc(), sp.id.desc()))
                             .label("rank"))
                      .where(sp.model_id == m.id, sp.status < 400, sp.feature_id >= start, sp.feature_id < end)
                      .subquery())
            found = session.execute(select(sp, ranked.c.answers).join(ranked, ranked.c.id == sp.id)
                                    .where(ranked.c.rank == 1).order_by(*key))
            return [(_served(r, model), answers) for r, answers in found]

    def serving_log(self, model: str, start: dt.datetime, end: dt.datetime,
                    period: dt.timedelta = dt.timedelta(days=1)) -> entities.ServingLog:
        """The model's serving log and every replica's probes over [start, end), aggregated in SQL per period of
        `period` counted from `start`: per (arm, version) and in all, one latency per request (see `ServingStats`).
        """
        with self._session() as session:
            m = self._model(session, model)
            stride = bindparam("stride", period, type_=Interval())
            origin = bindparam("origin", start, type_=DateTime(timezone=True))
            sp = ServedPrediction
            answered = sp.status < 400
            per_request = (select(func.date_bin(stride, sp.served_at, origin).label("start"), sp.arm, sp.version,
                                  sp.request_id, func.max(sp.latency_ms).label("latency"),
                                  func.max(sp.status).label("status"),
                                  func.count().filter(answered).label("answered"),
                                  func.count().filter(answered & sp.cache_hit).label("hits"))
                           .where(sp.model_id == m.id, sp.served_at >= start, sp.served_at < end)
                           .group_by(text("1"), sp.arm, sp.version, sp.request_id).cte())
            both = union_all(_request_stats(per_request, by_arm=True), _request_stats(per_request, by_arm=False))
            stats = [entities.ServingStats(*row) for row in session.execute(
                both.order_by(text("start, arm NULLS FIRST, version NULLS FIRST")))]
            probe_start = func.date_bin(stride, ServingProbe.probed_at, origin)
            probes = [entities.ProbeStats(*row) for row in session.execute(
                select(probe_start, func.count(), func.count().filter(ServingProbe.healthy),
                       func.count(func.distinct(func.date_trunc("minute", ServingProbe.probed_at)))
                       .filter(ServingProbe.healthy))
                .where(ServingProbe.probed_at >= start, ServingProbe.probed_at < end)
                .group_by(probe_start).order_by(probe_start))]
            first = session.scalar(select(func.min(ServingProbe.probed_at)))
            return entities.ServingLog(start, end, period, tuple(stats), tuple(probes), first)

    def record_probe(self, probe: entities.Probe) -> None:
        """Store one health check of a service replica."""
        with self._session() as session:
            session.add(ServingProbe(replica=probe.replica, healthy=probe.healthy, detail=probe.detail,
                                     probed_at=probe.probed_at))

    def probes(self, start: dt.datetime, end: dt.datetime) -> list[entities.Probe]:
        """Every replica's health checks with `start <= probed_at < end`, oldest first."""
        with self._session() as session:
            found = session.scalars(select(ServingProbe).where(
                ServingProbe.probed_at >= start, ServingProbe.probed_at < end).order_by(ServingProbe.probed_at))
            return [entities.Probe(r.replica, r.healthy, r.detail, r.probed_at) for r in found]


def _served(row: ServedPrediction, model: str) -> entities.Served:
    return entities.Served(model=model, **{k: getattr(row, k) for k in _SERVED_FIELDS})


def _request_stats(requests: Any, *, by_arm: bool) -> Select:
    """Per period (and per arm and version when `by_arm`): the `ServingStats` columns over the per-request rows of
    `serving_log`; otherwise arm and version are NULL and every request of the period counts once."""
    c = requests.c
    keys = [c.arm, c.version] if by_arm else [null().label("arm"), null().label("version")]
    refused = c.status.between(400, 499)
    return (select(c.start, *keys, func.count().label("requests"), func.sum(c.answered).cast(Integer),
                   func.sum(c.hits).cast(Integer), func.count().filter(c.status >= 500), func.count().filter(refused),
                   func.percentile_cont(0.5).within_group(c.latency).filter(~refused),
                   func.percentile_cont(0.95).within_group(c.latency).filter(~refused))
            .group_by(c.start, *(keys if by_arm else [])))
