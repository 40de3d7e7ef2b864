"""The now-test of an event model: labels that arrive late, and a slice whose world changed.

Generated applications (40 a day, several to a second) whose label is `x > 0` (5% noise) until day 50; from then
on, in the `web` channel only (a fifth of the applications), it flips. The champion is trained through the real
search on the days before the flip. Labels take `label_delay_days: 2`; the last two days' labels are empty, and
so are one in ten of the window's web applications (overdue). The whole window's accuracy stays above its bound,
web's falls to nothing: the per-slice requirement names it, and so does the status.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.alerting.policy import last_verdict
from ratchet.evaluation import nowtest
from ratchet.lifecycle.retrain import retrain_model

FIRST = pd.Timestamp("2026-01-01")
FLIP = FIRST + pd.Timedelta(days=50)
RUN = dt.datetime(2026, 3, 2, 6, tzinfo=dt.UTC)  # day 60: its window is days 51..57 (matured through day 58)
SPEC = {"name": "applications", "table": "events_src.applications", "task": "classification",
        "source": {"time_column": "at", "target": "accepted", "frequency": "event", "id": "application_id",
                   "label_delay_days": 2, "categorical": ["channel"]},
        "estimators": [{"class": "sklearn.linear_model.LogisticRegression"}],
        "search": {"n_trials": 1, "cv_folds": 2, "candidates": 1},
        "evaluation": {"slices": ["channel"]},
        "nowtest": {"window_days": 7, "min_rows": 50},
        "baselines": ["majority", {"name": "clerks", "metrics": {"accuracy": 0.6},
                                   "source": "two clerks deciding 500 applications, 2025-11"}],
        "requirements": [{"metric": "accuracy", "min": 0.7, "scope": "nowtest", "per_slice": True, "min_rows": 20},
                         {"metric": "accuracy", "min": 1.0, "relative_to": "clerks", "scope": "nowtest"}]}


def _applications(days: int = 60, per_day: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = days * per_day
    at = FIRST + pd.to_timedelta(np.sort(rng.integers(0, days * 86_400 // 600, n)) * 600, unit="s")  # 10-min steps
    x = rng.normal(size=n)
    channel = np.where(rng.random(n) < 0.2, "web", "store")
    accepted = ((x > 0) ^ (rng.random(n) < 0.05)).astype(float)
    flipped = (at >= FLIP) & (channel == "web")
    accepted[flipped] = 1 - accepted[flipped]
    frame = pd.DataFrame({"application_id": np.arange(n), "at": at, "x": x, "channel": channel,
                          "accepted": accepted})
    frame.loc[frame["at"] >= RUN.replace(tzinfo=None) - pd.Timedelta(days=2), "accepted"] = np.nan  # not yet
    window = (frame["at"] >= FLIP + pd.Timedelta(days=1)) & (frame["at"] < FLIP + pd.Timedelta(days=8))
    frame.loc[window & (frame["channel"] == "web") & (frame["application_id"] % 10 == 0), "accepted"] = np.nan
    return frame


@pytest.fixture
def judged(tmp_path, registry):
    frame = _applications()
    with registry.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS events_src CASCADE; CREATE SCHEMA events_src"))
        frame.to_sql("applications", conn, schema="events_src", index=False)
    spec = write_spec(tmp_path, **SPEC)
    registry.sync_model(spec)
    (version,) = retrain_model(registry, spec, run_id="r1", logical_date=FLIP + pd.Timedelta(days=2))
    registry.record_promotion(spec.name, version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="first champion", gates=[], run_id="p1", expected_previous_version=None)
    outcome, _ = nowtest.judge_nowtest(registry, spec, data_interval_end=RUN)
    return frame, outcome


def test_the_window_is_the_latest_matured_days_and_counts_the_labels_still_awaited(judged):
    frame, outcome = judged
    start, end = FLIP + pd.Timedelta(days=1), FLIP + pd.Timedelta(days=8)
    assert (outcome.window_start, outcome.window_end) == (start.to_pydatetime(), end.to_pydatetime())
    inside = frame[(frame["at"] >= start) & (frame["at"] < end)]
    assert outcome.awaiting_labels == int(inside["accepted"].isna().sum()) > 0
    assert outcome.n_rows == int(inside["accepted"].notna().sum())
    assert outcome.summary()["awaiting_labels"] == outcome.awaiting_labels


def test_the_slice_whose_world_changed_is_named_while_the_whole_window_passes(judged):
    _, outcome = judged
    champion = outcome.champion
    whole = [r for r in champion.requirements if r.slice is None]
    assert [r.passed for r in whole] == [True, True] and champion.scores["accuracy"] > 0.7
    clerks = next(r for r in whole if r.relative_to == "clerks")  # a stated baseline: its constant, not refitted
    assert (clerks.baseline_name, clerks.baseline_value, clerks.effective_bound) == ("clerks", 0.6, 0.6)
    assert "clerks" not in outcome.baselines  # nothing computed or stored for it
    (breach,) = champion.failed
    assert breach.slice == "channel=web" and breach.value == pytest.approx(champion.slices["channel=web"]["accuracy"])
    assert breach.describe().startswith("slice channel=web: accuracy 0.") and breach.value < 0.2
    assert champion.slices["channel=store"]["accuracy"] > 0.9
    rows = nowtest.evaluation_rows(outcome, "run-1")
    verdict = last_verdict(rows)
    assert verdict["breaching_slices"] == {"channel=web": ["accuracy"]} and verdict["breaching_series"] == {}
