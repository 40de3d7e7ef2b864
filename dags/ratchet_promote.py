"""
### Promote a model version (manual)
Trigger with **model**, **version**, **reason** (required) and **dry_run**. The version must pass the gates:

1. it meets every back-test and gate requirement;
2. it beats the champion on the back-test (`promotion.min_improvement` on the mean, `min_months_won` months);
3. the model's golden regression cases pass;
4. `promotion.min_trial_days` days of now-tests in trial without a breach;
5. latency and size bounds hold.

The first champion of a model, and a rollback to a former champion, need gates 1, 3 and 5 only.
When all pass, the champion alias moves in one transaction with the recorded decision (who, why,
gates and evidence) and, if `promotion.ratchet.enabled`, the requirements tighten towards the new
champion. A failed gate fails the task (no retry) with each failed gate and its numbers; the
decision is recorded as *rejected* and nothing else changes. A dry run records the gate results only.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

from ratchet.dagkit import START_DATE, TAGS, default_args
from ratchet.specs.catalog import configured_model_names

MODELS = configured_model_names()


@dag(
    dag_id="ratchet_promote",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=4,
    tags=TAGS,
    doc_md=__doc__,
    default_args=default_args(retries=2, retry_delay=dt.timedelta(seconds=30)),
    params={
        "model": Param(MODELS[0] if len(MODELS) == 1 else None, type="string",
                       **({"enum": MODELS} if MODELS else {}),
                       title="Model", description="A configured model (one YAML file in the models folder)"),
        "version": Param(None, type="integer", minimum=1, title="Version",
                         description="The version number to promote (see the Ratchet page or `ratchet status`)"),
        "reason": Param(None, type="string", minLength=1, title="Reason",
                        description="Why this version should become the champion (stored with the decision)"),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Run and record the gates without moving the champion"),
    },
)
def ratchet_promote():
    @task(task_id="promote")
    def promote_version(params: dict | None = None, dag_run=None, run_id: str | None = None) -> dict:
        """Gate failures and bad inputs fail at once (no retry); infrastructure errors retry."""
        from ratchet import pipeline

        return pipeline.promote(params["model"], params["version"], reason=params["reason"],
                                triggered_by=dag_run.triggering_user_name or str(dag_run.run_type),
                                dry_run=bool(params["dry_run"]), run_id=run_id)

    promote_version()


ratchet_promote()
