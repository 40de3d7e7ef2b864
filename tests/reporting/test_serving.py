"""The serving panel's and `ratchet status`'s numbers (`ratchet.reporting.serving`) from a real serving log."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from served_helpers import seed_serving
from spec_factory import write_spec

from ratchet.reporting.serving import last_day, serving_panel

NOW = dt.datetime(2026, 1, 11, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def spec(registry, tmp_path):
    from promote_helpers import register_fitted

    spec = write_spec(tmp_path, name="demand")
    registry.sync_model(spec)
    for run in ("r1", "r2"):
        register_fitted(registry, "demand", run)
    seed_serving(registry, "demand", NOW)
    return spec


def test_the_panel_shows_each_days_requests_latency_cache_errors_availability_and_arms(registry, spec):
    panel = serving_panel(registry, spec, now=NOW)
    days = panel["days"]
    assert len(days) == 14 and days[0]["day"] == "2026-01-11" and days[-1]["day"] == "2025-12-29"
    today, yesterday = days[0], days[1]
    assert (today["requests"], today["answered"], today["errors"], today["refused"]) == (7, 5, 1, 1)
    assert today["arms"] == {"champion": 6, "candidate": 1}
    answered_or_failed = [2.0, 4.0, 6.0, 8.0, 100.0, 3.0]  # the 4xx is left out of latency
    assert today["latency_p50_ms"] == pytest.approx(np.percentile(answered_or_failed, 50))
    assert today["latency_p95_ms"] == pytest.approx(np.percentile(answered_or_failed, 95))
    assert today["cache_hit_rate"] == pytest.approx(2 / 5) and today["error_rate"] == pytest.approx(1 / 6)
    assert (today["availability"], today["healthy_minutes"], today["minutes"]) == (pytest.approx(29 / 30), 29, 30)
    assert yesterday["requests"] == 2 and yesterday["availability"] is None  # before the service's first probe
    assert all(d["requests"] == 0 for d in days[2:]) and panel["active"]
    served = panel["served"]
    assert served["partition"] == "2026-01-10"
    assert served["arms"]["v1@champion"]["metrics"] == {"rmse": 2.0} and served["arms"]["v2@candidate"]["ids"] == 2
    (statement,) = served["comparisons"]  # both arms' rows carry it: shown once
    assert "descriptive" in statement and "v2@candidate rmse 1.5 on 2 id(s)" in statement


def test_status_shows_the_last_24_hours(registry, spec):
    block = last_day(registry, spec, now=NOW)
    assert (block["requests"], block["errors"], block["refused"]) == (7, 1, 1)  # yesterday's two are 25 h old
    assert block["start"] == (NOW - dt.timedelta(days=1)).isoformat() and block["end"] == NOW.isoformat()
    assert block["availability"] == pytest.approx(29 / 30) and block["served"]["partition"] == "2026-01-10"
