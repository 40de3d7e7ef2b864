"""Every DAG file imports cleanly, declares what operators need to see, and stays thin."""
from __future__ import annotations

import ast

import pytest
from dag_helpers import DAGS

PUBLIC_DAG_IDS = {"ratchet_retrain", "ratchet_backtest", "ratchet_nowtest", "ratchet_promote", "ratchet_regression",
                  "ratchet_requirements"}
HEAVY_MODULES = ("pandas", "numpy", "sklearn", "sqlalchemy", "scipy", "skops", "ratchet.registry",
                 "ratchet.modeling", "ratchet.evaluation", "ratchet.lifecycle", "ratchet.reporting", "ratchet.alerting")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dagbag_has_no_import_errors_and_every_public_dag(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= PUBLIC_DAG_IDS


def test_every_dag_has_tags_owner_retries_and_doc(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and len(dag.doc_md.strip()) > 40, f"{dag_id} has no real doc_md"
        assert dag.default_args.get("owner") not in (None, "", "airflow"), f"{dag_id} has no owner"
        assert dag.default_args.get("retries", 0) >= 1, f"{dag_id} does not retry"


@pytest.mark.parametrize("path", sorted(DAGS.glob("*.py")), ids=lambda p: p.name)
def test_dag_files_import_nothing_heavy_at_top_level(path):
    tree = ast.parse(path.read_text())
    for node in tree.body:  # module level only: imports inside tasks are the point
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        for name in names:
            assert not name.startswith(HEAVY_MODULES), f"{path.name} imports {name} at top level"


def test_every_task_of_every_dag_has_a_finite_execution_timeout(dagbag):
    """RATCHET_TASK_TIMEOUT_MINUTES (default 120) bounds every task; the approval's wait for a person is not
    execution (Airflow 3.3 parks it in awaiting_input), so it keeps no response deadline."""
    import datetime as dt

    from ratchet.settings import task_timeout_minutes

    expected = dt.timedelta(minutes=task_timeout_minutes())
    for dag_id, dag in dagbag.dags.items():
        for task in dag.tasks:
            assert task.execution_timeout == expected, f"{dag_id}.{task.task_id}: {task.execution_timeout}"
    approve = dagbag.dags["ratchet_promote"].get_task("approve")
    assert approve.response_timeout is None


def test_task_timeout_setting_is_read_and_checked(monkeypatch):
    from ratchet import settings
    from ratchet.exceptions import ConfigurationError

    monkeypatch.setenv(settings.TASK_TIMEOUT_ENV, "45")
    assert settings.task_timeout_minutes() == 45
    for bad in ("0", "-3", "soon", "inf"):
        monkeypatch.setenv(settings.TASK_TIMEOUT_ENV, bad)
        with pytest.raises(ConfigurationError, match="RATCHET_TASK_TIMEOUT_MINUTES"):
            settings.task_timeout_minutes()
