"""What Ratchet's DAG files share: default arguments, start date, tags, task labels and the alert delivery task.

Imported by every DAG file at parse time, so it stays light: Airflow's SDK only. The model list is not
here: each DAG file reads it itself (`configured_model_names()`), so every parse sees the current folder.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Param, TriggerRule, get_current_context, task

# Far enough back that a run for any date of real history (a replay, a backfill) creates its tasks;
# every DAG keeps catchup=False, so this start date schedules nothing by itself.
START_DATE = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TAGS = ["ratchet"]


def default_args(*, retries: int, retry_delay: dt.timedelta) -> dict[str, Any]:
    """The default arguments of a Ratchet DAG: owner 'ratchet', the DAG's own retry policy, and an
    `execution_timeout` for every task (`RATCHET_TASK_TIMEOUT_MINUTES`, default 120; a model's
    `search.time_budget_minutes` is refused unless shorter, so the retrain task outlives its search)."""
    from ratchet.settings import task_timeout_minutes  # light: the standard library only

    return {"owner": "ratchet", "retries": retries, "retry_delay": retry_delay,
            "execution_timeout": dt.timedelta(minutes=task_timeout_minutes())}


def model_param(models: list[str]) -> Param:
    """The required `model` Param of a manual DAG: one of the configured models (preselected when there is one)."""
    return Param(models[0] if len(models) == 1 else None, type="string", **({"enum": models} if models else {}),
                 title="Model", description="A configured model (one YAML file in the models folder)")


def only_model_param(models: list[str]) -> Param:
    """The optional `model` Param of a DAG that handles every model: empty runs them all, a name runs only it (the
    run a champion's breach starts names its model)."""
    return Param(None, type=["null", "string"], enum=[None, *models], title="Only this model",
                 description="Leave empty for every model; a model's name runs only that model")


def label(**fields: str) -> None:
    """Give the running mapped task its label (the fields its `map_index_template` reads)."""
    get_current_context().update(fields)


@task(trigger_rule=TriggerRule.ALL_DONE)
def deliver_alerts(models: list[str], results: Any, what: str) -> dict:
    """Mail every queued alert; fails (and retries) while SMTP is unreachable or when a model's task failed."""
    from ratchet import pipeline

    return pipeline.deliver_alerts(models, list(results), what=what)
