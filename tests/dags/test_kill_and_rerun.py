"""A task killed with SIGKILL leaves no half-written rows, and re-running the date reaches a clean run's rows.

Each step runs as a task process does: a new Python process calling `ratchet.pipeline`. With
RATCHET_KILL_AT set, the process kills itself (SIGKILL: no cleanup, no exception handler) at a named
point where it has done its work but not stored it (`ratchet.faults`): retrain after recording its
trials and before registering versions, back-test after computing a month and before storing the group,
now-test after computing its verdicts and before storing them with their alert and harvested cases.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys

import pytest
from dag_helpers import stored_rows
from nowtest_helpers import AFTER_CHANGE, MODEL, SPEC, write_source
from spec_factory import write_spec
from sqlalchemy import text

# Pipeline steps killed and rerun in subprocesses: minutes, not seconds.
pytestmark = pytest.mark.slow

TRAIN_END = dt.datetime(2025, 7, 1, 1, tzinfo=dt.UTC)
STEPS = {  # step -> (pipeline call, kill point)
    "retrain": (f"pipeline.retrain({MODEL!r}, end={TRAIN_END!r})", "retrain:trials-recorded"),
    "backtest": (f"pipeline.backtest_group({MODEL!r}, 0, 1, end={TRAIN_END!r})", "backtest:month-computed"),
    "nowtest": (f"pipeline.nowtest({MODEL!r}, end={AFTER_CHANGE!r}, airflow_run_id='manual')",
                "nowtest:verdicts-computed"),
}


def run_step(step: str, kill: bool) -> subprocess.CompletedProcess:
    call, point = STEPS[step]
    env = {**os.environ, "RATCHET_KILL_AT": point if kill else ""}
    code = f"import datetime; from ratchet import pipeline; {call}"  # the calls hold datetime reprs
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def _table_counts(registry) -> dict[str, int]:
    with registry.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("search_trials", "model_versions", "evaluations", "alerts", "golden_cases")}


def _promote_first(registry) -> None:
    registry.record_promotion(MODEL, 1, kind="initial", outcome="promoted", triggered_by="tests", reason="first",
                              gates=[], run_id="promote", expected_previous_version=None)


@pytest.fixture
def model(tmp_path, monkeypatch, registry):
    write_source(registry)
    write_spec(tmp_path, **SPEC)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    return registry


def _truncate(registry) -> None:
    from ratchet.registry.schema import Base

    with registry.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} RESTART IDENTITY"
                          " CASCADE"))


def test_killed_steps_leave_nothing_half_written_and_reruns_converge_to_a_clean_run(model):
    registry = model
    for step in STEPS:  # a clean night: every step once
        assert run_step(step, kill=False).returncode == 0
        if step == "retrain":
            _promote_first(registry)
    clean = stored_rows(registry, MODEL)
    assert clean["versions"] and clean["alerts"] and clean["golden_cases"]  # the night did its job
    _truncate(registry)

    before = _table_counts(registry)
    killed = run_step("retrain", kill=True)
    assert killed.returncode == -signal.SIGKILL
    after = _table_counts(registry)
    assert after["search_trials"] > 0 and after["model_versions"] == before["model_versions"] == 0

    assert run_step("retrain", kill=False).returncode == 0
    _promote_first(registry)
    for step in ("backtest", "nowtest"):
        before = _table_counts(registry)
        assert run_step(step, kill=True).returncode == -signal.SIGKILL
        assert _table_counts(registry) == before, f"a killed {step} left rows behind"
        assert run_step(step, kill=False).returncode == 0

    assert stored_rows(registry, MODEL) == clean


def test_a_rerun_after_a_promotion_keeps_the_recorded_trials_and_registers_nothing(model):
    registry = model
    assert run_step("retrain", kill=False).returncode == 0
    trials, versions = stored_rows(registry, MODEL)["trials"], stored_rows(registry, MODEL)["versions"]
    _promote_first(registry)  # the champion changes what a new search would sample
    assert run_step("retrain", kill=False).returncode == 0
    assert stored_rows(registry, MODEL)["trials"] == trials and stored_rows(registry, MODEL)["versions"] == versions
