"""Ratchet's DAG files loaded as `dag.test()` runs them in the tests."""
from __future__ import annotations

from pathlib import Path

DAGS = Path(__file__).resolve().parents[1] / "dags"


def load_dag(dag_id: str):
    """The DAG from its file, parsed without import errors, with retries off: a failing task must show
    at once, not after a retry delay inside dag.test()."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{dag_id}.py"))
    assert not bag.import_errors
    dag = bag.get_dag(dag_id)
    for task in dag.tasks:
        task.retries = 0
    return dag
