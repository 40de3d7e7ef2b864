"""The registry store (`ratchet.registry.Registry`): one champion per model, version numbers, trustworthy artifacts."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from spec_factory import build_spec
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from ratchet.modeling import artifacts


def _fitted_model():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    return Ridge(alpha=0.5).fit(X, X @ np.array([1.0, -2.0, 0.5])), X


def _register(registry, name, run_id):
    model, _ = _fitted_model()
    art = artifacts.dump(model)
    return registry.register_version(
        name, run_id=run_id, trial_index=None, estimator_class="sklearn.linear_model.Ridge",
        hyperparameters={"alpha": 0.5}, artifact=art.data, artifact_sha256=art.sha256, artifact_format=art.format,
        dataset_fingerprint="f" * 64, features=["a", "b", "c"], target="y", package_versions={},
        author="test", fit_seconds=0.01, size_bytes=art.size_bytes,
        contract=build_spec(name=name).source.contract(["a", "b", "c"], "day"), spec_snapshot={})


def _add_model_with_versions(registry, name="m", versions=2):
    with registry.engine.begin() as conn:
        conn.execute(text("INSERT INTO models (name, task, owner, spec) VALUES (:n, 'regression', 't', '{}')"),
                     {"n": name})
    for i in range(versions):
        _register(registry, name, f"r{i + 1}")
    return registry.versions(name)


def test_two_concurrent_transactions_cannot_both_create_a_champion(registry):
    _add_model_with_versions(registry)
    with registry.engine.connect() as conn:  # the race is between raw transactions on the aliases table
        rows = conn.execute(text("SELECT model_id, id FROM model_versions ORDER BY version")).all()
    model_id, version_ids = rows[0][0], [version_id for _, version_id in rows]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def set_champion(version_id):
        conn = registry.engine.connect()
        trans = conn.begin()
        try:
            barrier.wait()
            conn.execute(text("INSERT INTO aliases (model_id, alias, version_id) VALUES (:m, 'champion', :v)"),
                         {"m": model_id, "v": version_id})
            trans.commit()
            outcomes.append("committed")
        except IntegrityError:
            trans.rollback()
            outcomes.append("refused")
        finally:
            conn.close()

    threads = [threading.Thread(target=set_champion, args=(v,)) for v in version_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["committed", "refused"]
    with registry.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM aliases WHERE alias = 'champion'")).scalar() == 1


def test_version_numbers_are_per_model_and_registration_is_idempotent(registry):
    versions = _add_model_with_versions(registry)
    assert [v.version for v in versions] == [1, 2]
    again = _register(registry, "m", "r1")
    assert again == 1
    assert len(registry.versions("m")) == 2


def test_artifact_round_trips_exactly_through_the_registry(registry):
    _add_model_with_versions(registry, versions=1)
    original, X = _fitted_model()
    loaded = registry.load_estimator("m", 1)
    assert type(loaded) is type(original)
    np.testing.assert_array_equal(loaded.coef_, original.coef_)
    np.testing.assert_array_equal(loaded.predict(X), original.predict(X))


def test_tampered_artifact_is_refused_with_a_clear_error(registry):
    _add_model_with_versions(registry, versions=1)
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE model_versions SET artifact = artifact || '\\x00'::bytea"))
    with pytest.raises(artifacts.ArtifactError, match="checksum mismatch"):
        registry.load_estimator("m", 1)


def test_unknown_model_and_version_are_named(registry):
    from ratchet.exceptions import NotFoundError, UnknownModelError

    _add_model_with_versions(registry, versions=1)
    with pytest.raises(UnknownModelError, match="unknown model 'nope'.*\\['m'\\]"):
        registry.versions("nope")
    with pytest.raises(NotFoundError, match="no version 9; its versions: \\[1\\]"):
        registry.version("m", 9)


def _served(model, request_id, status=200, prediction=1.5, at="2026-11-23T10:00:00+00:00"):
    import datetime as dt

    from ratchet.registry.entities import Served

    return Served(model=model, version=1 if status < 400 else None, request_id=request_id, route="id",
                  arm="champion", feature_id=dt.datetime(2026, 11, 23), prediction=prediction if status < 400 else None,
                  label=None, probabilities=None, cache_hit=False, latency_ms=3.5, status=status,
                  error=None if status < 400 else "no row", replica="r1", served_at=dt.datetime.fromisoformat(at))


def test_the_serving_log_round_trips_and_refuses_an_unknown_model_whole(registry):
    import datetime as dt

    from ratchet.exceptions import UnknownModelError

    _add_model_with_versions(registry, "m", versions=1)
    rows = [_served("m", "a"), _served("m", "b", status=404, at="2026-11-23T11:00:00+00:00")]
    assert registry.log_served(rows) == 2
    day = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    assert registry.served("m", day, day + dt.timedelta(days=1)) == rows
    assert registry.served("m", day + dt.timedelta(days=1), day + dt.timedelta(days=2)) == []
    with pytest.raises(UnknownModelError, match="ghost"):
        registry.log_served([_served("m", "c"), _served("ghost", "d")])
    assert len(registry.served("m", day, day + dt.timedelta(days=1))) == 2  # the refused batch wrote nothing


def test_probes_round_trip_by_time(registry):
    import datetime as dt

    from ratchet.registry.entities import Probe

    t0 = dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)
    probes = [Probe("r1", True, None, t0), Probe("r2", False, "database unreachable", t0 + dt.timedelta(minutes=1))]
    for probe in probes:
        registry.record_probe(probe)
    assert registry.probes(t0, t0 + dt.timedelta(hours=1)) == probes
    assert registry.probes(t0 + dt.timedelta(seconds=1), t0 + dt.timedelta(hours=1)) == probes[1:]


def _notifications(conn, seconds=2.0):
    """Model names NOTIFYed on the models-changed channel within `seconds`."""
    import select as io_select
    import time

    names, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        if io_select.select([conn], [], [], 0.1)[0]:
            conn.poll()
            names += [n.payload for n in conn.notifies]
            conn.notifies.clear()
    return names


def test_a_new_version_and_a_champion_move_notify_and_a_rolled_back_move_does_not(registry, database_url):
    import psycopg2
    from sqlalchemy.exc import IntegrityError

    from ratchet.exceptions import ConcurrentPromotionError
    from ratchet.registry.entities import MODELS_CHANGED
    from ratchet.settings import normalize_url

    _add_model_with_versions(registry, "m", versions=1)
    listener = psycopg2.connect(normalize_url(database_url).replace("+psycopg2", ""))
    listener.autocommit = True
    listener.cursor().execute(f"LISTEN {MODELS_CHANGED}")
    gates = [{"gate": "test", "passed": True}]
    try:
        _register(registry, "m", "r2")
        assert _notifications(listener, 1.0) == ["m"]
        with pytest.raises(IntegrityError, match="ck_promotion_kind"):  # moved, then the decision row fails
            registry.record_promotion("m", 1, kind="bogus", outcome="promoted", triggered_by="t", reason="r",
                                      gates=gates, run_id=None, expected_previous_version=None)
        assert _notifications(listener, 1.0) == [] and registry.champion("m") is None
        registry.record_promotion("m", 1, kind="initial", outcome="promoted", triggered_by="t", reason="r",
                                  gates=gates, run_id=None, expected_previous_version=None)
        assert _notifications(listener, 1.0) == ["m"]
        with pytest.raises(ConcurrentPromotionError):  # a stale expectation is refused before anything moves
            registry.record_promotion("m", 2, kind="promotion", outcome="promoted", triggered_by="t", reason="r",
                                      gates=gates, run_id=None, expected_previous_version=None)
        assert _notifications(listener, 1.0) == []
    finally:
        listener.close()


def test_the_serving_log_is_aggregated_per_request_day_arm_and_version(registry):
    import datetime as dt
    from dataclasses import replace

    from ratchet.registry.entities import Probe

    _add_model_with_versions(registry, "m", versions=2)
    day = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)

    def at(hours):
        return (day + dt.timedelta(hours=hours)).isoformat()

    rows = [replace(_served("m", f"c{i}", at=at(1)), latency_ms=float(i + 1), cache_hit=i % 2 == 0)
            for i in range(10)]  # champion v1: latencies 1..10 ms, half from the cache
    rows += [replace(_served("m", "post", at=at(2)), latency_ms=50.0, feature_id=dt.datetime(2026, 11, d))
             for d in (20, 21, 22)]  # one request of three rows: one latency
    rows += [replace(_served("m", "cand", at=at(3)), arm="candidate", version=2, latency_ms=7.0)]
    rows += [replace(_served("m", "bad", status=422, at=at(4)), latency_ms=0.1),
             replace(_served("m", "boom", status=500, at=at(5)), latency_ms=90.0)]
    rows += [replace(_served("m", "next-day", at=at(25)), latency_ms=2.0)]
    registry.log_served(rows)
    for minute, healthy in ((0, True), (0, False), (1, False), (2, True), (2, True)):
        registry.record_probe(Probe("r1", healthy, None, day + dt.timedelta(minutes=minute, seconds=10)))

    log = registry.serving_log("m", day, day + dt.timedelta(days=2))
    first, second = day, day + dt.timedelta(days=1)
    assert log.periods() == [(first, second), (second, day + dt.timedelta(days=2))]
    by_key = {(s.start, s.arm, s.version): s for s in log.stats}
    total = by_key[(first, None, None)]
    assert (total.requests, total.answered, total.cache_hits, total.errors, total.refused) == (14, 14, 5, 1, 1)
    # p95 over the 13 requests that were not refused (1..10, 50, 7, 90 ms), interpolated like percentile_cont
    import numpy as np

    latencies = [*range(1, 11), 50.0, 7.0, 90.0]
    assert total.latency_p95_ms == pytest.approx(np.percentile(latencies, 95))
    assert total.latency_p50_ms == pytest.approx(np.percentile(latencies, 50))
    assert by_key[(first, "champion", 1)].requests == 11 and by_key[(first, "champion", 1)].answered == 13
    assert by_key[(first, "candidate", 2)].answered == 1
    assert by_key[(first, "champion", None)].refused == 1 and by_key[(first, "champion", None)].errors == 1
    assert by_key[(second, None, None)].requests == 1
    (probes,) = log.probes
    assert (probes.start, probes.probes, probes.healthy, probes.healthy_minutes) == (first, 5, 3, 2)
    assert log.first_probe == day + dt.timedelta(seconds=10)

    registry.log_served([replace(_served("m", "again", at=at(6)), prediction=2.5,
                                 feature_id=dt.datetime(2026, 11, 21))])  # id 21 asked again, answered anew
    answers = registry.served_answers("m", dt.datetime(2026, 11, 21), dt.datetime(2026, 11, 23))
    # by time key, answered rows only: each id's latest answer and how many answers it had
    assert [(a.feature_id.day, a.prediction, n) for a, n in answers] == [(21, 2.5, 2), (22, 1.5, 1)]
