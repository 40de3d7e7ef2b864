"""
### Set a requirement's bound again (re-baseline; manual)
The ratchet only tightens bounds, each derived from a champion's back-test months. After a regime change a
bound derived from the months before it may fail every model, the champion included (gate 1 of
`ratchet_promote` then says so in words). Setting the bound again is a person's decision, and this DAG is
the way to take it (a proposal's **Promote and re-baseline** is the other): the only way a bound ever loosens.

Trigger with **model**, **metric**, **scope** (`backtest`, `nowtest`, `gate` or `serving`), optionally
**relative_to** (for a bound relative to a baseline; empty: the absolute bound), **reason** (required), and
exactly one of

- **bound**: the new bound, a number (`max`/`min` as the requirement already has it);
- **calibrate**: a false-alarm rate; the bound is derived from **version**'s own back-test (default: the
  current champion) exactly as the ratchet derives it (now-test: the quantile over now-test windows of its
  back-test days; back-test or gate: the one-sided confidence bound of its monthly mean).

The change is stored in the requirement's history as *rebaseline*, with who triggered the run, the reason
and the evidence (the old bound and how it had been derived, the new one and how it was), and a mail to the
model's `alert_emails` is queued in the same transaction; `deliver_alerts` sends it. A bad Param (an unknown
model or requirement, both or neither of bound and calibrate, an empty reason, a bound a metric cannot
have) fails the run with a message naming it, and changes nothing. Re-running the run changes nothing more.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, TriggerRule, dag, task

from ratchet.dagkit import START_DATE, TAGS, default_args, model_param
from ratchet.specs.catalog import configured_model_names

MODELS = configured_model_names()
SCOPES = ["backtest", "nowtest", "gate", "serving"]
CHANGED_BY = "ratchet_requirements"  # who a run nobody triggered by name is recorded as


@dag(
    dag_id="ratchet_requirements",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    doc_md=__doc__,
    default_args=default_args(retries=1, retry_delay=dt.timedelta(minutes=1)),
    params={
        "model": model_param(MODELS),
        "metric": Param("", type="string", title="Metric",
                        description="The requirement's metric, as in the YAML (e.g. mape, rmse)"),
        "scope": Param("nowtest", type="string", enum=SCOPES, title="Scope", description="The requirement's scope"),
        "relative_to": Param(None, type=["null", "string"], title="Relative to",
                             description="For a bound relative to a baseline: the YAML's relative_to; empty: absolute"),
        "bound": Param(None, type=["null", "number"], title="Bound",
                       description="The new bound (give this or calibrate)"),
        "calibrate": Param(None, type=["null", "number"], title="Calibrate",
                           description="A false-alarm rate (e.g. 0.05): derive the bound from a version's back-test"),
        "version": Param(None, type=["null", "integer"], title="Version",
                         description="With calibrate: the version whose back-test to use (empty: the champion)"),
        "reason": Param("", type="string", title="Reason", description="Why (required; kept in the history)"),
    },
)
def ratchet_requirements():
    @task
    def rebaseline(params: dict | None = None, dag_run=None, run_id: str | None = None) -> dict:
        """Set the bound again; a bad Param fails at once (no retry), naming it."""
        from ratchet import pipeline

        return pipeline.rebaseline(params, changed_by=dag_run.triggering_user_name or CHANGED_BY,
                                   airflow_run_id=run_id)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def deliver_alerts(params: dict | None = None, ti=None) -> dict:
        """Mail the owners (and anything else queued); fails, so the run is red, when `rebaseline` failed."""
        from ratchet import pipeline

        return pipeline.deliver_alerts([params["model"]], [ti.xcom_pull(task_ids="rebaseline")], what="re-baseline")

    rebaseline() >> deliver_alerts()


ratchet_requirements()
