"""Backfills of ratchet_nowtest: `airflow backfill create` makes runs for past dates, and a backfill run
records its verdicts without queuing any mail (it replays history; nobody is paged about the past).

Executing the created runs needs a scheduler and an api-server; here the runs are created by the real CLI and
their real DagRun rows drive the now-test call each task makes (`pipeline.mails_for`, `pipeline.nowtest`).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from nowtest_helpers import MODEL, SPEC, train_champion, write_source
from spec_factory import write_spec

from ratchet import pipeline


def test_a_backfill_of_past_dates_records_verdicts_without_mail(airflow_db, tmp_path, monkeypatch, registry):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    write_source(registry)
    spec = write_spec(tmp_path, **SPEC)
    train_champion(registry, spec)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "dags", "reserialize"], env=os.environ.copy(), check=True, capture_output=True)
    created = subprocess.run([airflow, "backfill", "create", "--dag-id", "ratchet_nowtest",
                              "--from-date", "2025-07-24", "--to-date", "2025-07-26T06:00:00+00:00"],
                             env=os.environ.copy(), capture_output=True, text=True)
    assert created.returncode == 0, created.stderr[-2000:]
    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == "ratchet_nowtest",
                                            DagRun.run_type == "backfill").order_by(DagRun.logical_date).all()
        session.expunge_all()
    assert [r.logical_date.strftime("%Y-%m-%d %H:%M") for r in runs] == [
        "2025-07-24 06:00", "2025-07-25 06:00", "2025-07-26 06:00"]  # the 06:00 slots: the DAG's schedule

    for run in runs:  # what the task of each backfilled run does
        assert pipeline.mails_for(run) is False
        pipeline.nowtest(MODEL, end=pipeline.run_end(run), airflow_run_id=run.run_id, mail=pipeline.mails_for(run))
    champion = f"v{registry.champion(MODEL).version}"
    verdicts = {e.partition: e.passed for e in registry.evaluations(MODEL, "nowtest", contender=champion,
                                                                    metric="mape")}
    assert verdicts == {"2025-07-23": False, "2025-07-24": False, "2025-07-25": False}  # after the regime change
    assert registry.alerts(MODEL) == []  # recorded, not mailed

    scheduled = DagRun(dag_id="ratchet_nowtest", run_id="scheduled", run_type="scheduled")
    assert pipeline.mails_for(scheduled) is True
