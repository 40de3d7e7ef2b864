"""Serving requirements (`ratchet.evaluation.service_level`): latency p95, error rate and availability of the day
before the now-test's data end, from the logged requests and probes, checked and alerted by the now-test."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from nowtest_helpers import BEFORE_CHANGE, MODEL, SPEC, train_champion, write_source
from served_helpers import answer, probe_every_minute
from spec_factory import spec_data, write_spec

from ratchet.alerting import outbox
from ratchet.evaluation.service_level import availability
from ratchet.lifecycle.monitoring import run_nowtest
from ratchet.registry.entities import ProbeStats

SERVING = [{"metric": "serving_latency_p95_ms", "max": 50},
           {"metric": "serving_error_rate", "max": 0.05},
           {"metric": "availability", "min": 0.99}]
DAY_START = BEFORE_CHANGE - dt.timedelta(days=1)


@pytest.fixture
def model(tmp_path, registry):
    write_source(registry)
    data = spec_data(**SPEC)
    spec = write_spec(tmp_path, data, requirements=[*data["requirements"], *SERVING])
    return spec, train_champion(registry, spec)


def _run(registry, spec, end, run_id=None):
    return run_nowtest(registry, spec, run_id=run_id or f"nt@{end:%F}", data_interval_end=end,
                       airflow_run_url="http://airflow/run")


def _log_day(registry, champion):
    """19 quick answers, one 5xx, one refused request, and a slow request outside the day (not counted)."""
    at = DAY_START + dt.timedelta(hours=3)
    rows = [answer(MODEL, champion, "2025-07-01", 250.0, at, latency_ms=10.0) for _ in range(19)]
    rows += [answer(MODEL, champion, "2025-07-01", None, at, status=500, latency_ms=200.0),
             answer(MODEL, champion, "2025-07-01", None, at, status=401, latency_ms=0.5),
             answer(MODEL, champion, "2025-07-01", 250.0, DAY_START - dt.timedelta(minutes=1), latency_ms=5000.0)]
    registry.log_served(rows)


def test_the_day_before_the_data_end_meets_its_serving_requirements(model, registry, smtp_server):
    spec, (champion, _) = model
    _log_day(registry, champion)
    started = BEFORE_CHANGE - dt.timedelta(hours=2)  # the service's first probe ever: availability counts from it
    probe_every_minute(registry, started, BEFORE_CHANGE, healthy=lambda minute: minute != 30)

    outcome = _run(registry, spec, BEFORE_CHANGE)
    level = outcome.service
    assert (level.start, level.end) == (DAY_START, BEFORE_CHANGE)
    assert (level.requests, level.errors, level.refused) == (20, 1, 1)  # the 401 is the client's: not counted
    assert level.values["serving_latency_p95_ms"] == pytest.approx(np.percentile([10.0] * 19 + [200.0], 95))
    assert level.values["serving_error_rate"] == pytest.approx(1 / 20)
    assert (level.healthy_minutes, level.minutes) == (119, 120)
    assert level.values["availability"] == pytest.approx(119 / 120)
    assert [r.passed for r in level.results] == [True, True, True] and outcome.passed
    stored = {e.metric: e for e in registry.evaluations(MODEL, "serving")}
    assert set(stored) == {"serving_latency_p95_ms", "serving_error_rate", "availability"}
    row = stored["serving_error_rate"]
    assert (row.contender, row.version, row.partition, row.passed, row.n_rows) == ("service", None, "2025-07-09",
                                                                                   True, 20)
    assert row.window_start == DAY_START and row.details["refused"] == 1
    assert row.details["requirements"][0]["text"] == "serving_error_rate 0.05 <= max 0.05 (serving)"
    assert outcome.summary()["service_level"]["period"] == "2025-07-09 06:00 .. 2025-07-10 06:00 UTC"
    assert outbox.deliver_alerts(registry)["sent"] == []


def test_a_day_without_requests_gives_no_verdict_and_without_probes_breaches_availability(model, registry,
                                                                                         smtp_server):
    spec, _ = model
    outcome = _run(registry, spec, BEFORE_CHANGE)
    level = outcome.service
    assert [r.metric for r in level.results] == ["availability"] and level.values["availability"] == 0.0
    assert level.no_verdict["serving_latency_p95_ms"] == "no requests between 2025-07-09 06:00 and 2025-07-10 06:00 UTC"
    assert not outcome.passed and outcome.alert_id is not None
    stored = {e.metric: e for e in registry.evaluations(MODEL, "serving")}
    assert stored["serving_latency_p95_ms"].passed is None and stored["serving_latency_p95_ms"].value is None
    assert stored["serving_error_rate"].details["no_verdict"].startswith("no requests between")
    assert stored["availability"].passed is False and stored["availability"].details["probes"] == 0

    outbox.deliver_alerts(registry)
    (mail,) = smtp_server.messages
    assert mail["message"]["Subject"] == f"[Ratchet] {MODEL} now-test failed: availability 0 < min 0.99"
    body = mail["message"].get_body(("plain",)).get_content()
    assert "Serving requirements, 2025-07-09 06:00 .. 2025-07-10 06:00 UTC" in body
    assert "no verdict: no requests between" in body and "0 health probe(s)" in body


def test_slow_answers_breach_the_latency_bound(model, registry, smtp_server):
    spec, (champion, _) = model
    registry.log_served([answer(MODEL, champion, "2025-07-01", 250.0, DAY_START + dt.timedelta(hours=1),
                                latency_ms=80.0 + i) for i in range(10)])
    probe_every_minute(registry, BEFORE_CHANGE - dt.timedelta(minutes=30), BEFORE_CHANGE)
    outcome = _run(registry, spec, BEFORE_CHANGE)
    assert [r.metric for r in outcome.service_failed] == ["serving_latency_p95_ms"]
    outbox.deliver_alerts(registry)
    subject = smtp_server.messages[0]["message"]["Subject"]
    assert subject == f"[Ratchet] {MODEL} now-test failed: serving_latency_p95_ms 88.55 > max 50"


def test_availability_counts_minutes_from_the_first_probe_ever_up_to_now():
    day = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
    end = day + dt.timedelta(days=1)
    full = ProbeStats(day, 1440, 1440, 1440)
    assert availability(full, day - dt.timedelta(days=9), day, end, end) == (1.0, 1440)
    half = ProbeStats(day, 720, 720, 720)
    assert availability(half, day - dt.timedelta(days=9), day, end, end) == (0.5, 1440)
    # the service first ran at noon: the morning does not count against it
    assert availability(half, day + dt.timedelta(hours=12, seconds=5), day, end, end) == (1.0, 720)
    # the day is not over: counted up to now
    assert availability(half, day - dt.timedelta(days=9), day, end, day + dt.timedelta(hours=12)) == (1.0, 720)
    assert availability(None, None, day, end, end) == (None, 0)  # no probe ever: nothing to count
