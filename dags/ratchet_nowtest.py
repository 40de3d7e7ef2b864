"""
### Daily now-test
For every model (one mapped task per model; one model's failure does not stop the others):
the champion and every candidate in trial (versions newer than the champion) predict the last
`nowtest.window_days` days before the run's data interval end with their **stored** estimators.
Their metrics, the baselines' metrics on the same rows, each now-test requirement's verdict,
the worst misses and each feature's drift (KS or chi-square against the training data, same season) are
stored as `nowtest` evaluations of the window's last day. Beside them, what the REST service (`ratchet serve`)
actually served for the window's feature ids is scored against the actuals (each id once per arm and version;
`served` evaluations, both arms of an A/B split compared descriptively), and the serving requirements (latency
p95, error rate, availability) are checked on the 24 hours before the data end (`serving` evaluations).

A breach by the champion (re-predicted, or on what its own arm served), a serving requirement's breach, or
fewer than `nowtest.min_rows` rows in the window (stale data), writes
**one** alert per model and date to the outbox and adds the champion's worst misses to the model's
golden regression cases. The `deliver_alerts` task then mails every queued alert to the model's
`alert_emails` through the `smtp_default` connection. If SMTP is down that task fails, the alert
stays queued, and the retry (or the next delivery of any Ratchet DAG) sends it, exactly once.
Re-running a date overwrites its results and sends nothing twice. A backfill
(`airflow backfill create --dag-id ratchet_nowtest --from-date ... --to-date ...`) records the verdicts of
past dates without queuing any mail: it replays history, it does not page anyone about it.

After the now-tests, `propose` (one mapped task per model whose now-test finished) looks for the
model's candidates in trial that pass **every** promotion gate now, trial days included, records the
best one as *proposed*, and `open_proposal` opens a `ratchet_promote` run for it (run id
`proposal__<model>__v<version>`) that waits for a person to approve it in Airflow's Required Actions.
A model has at most one proposal open; a version is proposed once (re-running the night finds its
run and opens no second one); a backfill proposes nothing. `check_proposals` turns the run red when
a model's `propose` failed, while the other models' proposals still open.

**The review queue.** For each model with a `review:` section, `review` (after the now-tests, whatever
they found) turns the rows people labelled since into golden cases, then queues the day's unsure answers
for a person: what the service answered in the 24 hours before the data end and what the champion answers
on the now-test window, whose top probability is below `review.max_confidence` (or whose prediction
interval is wider than `review.max_interval_width`), one per row, at most `review.per_day`, the least
sure first. The Ratchet page lists them; re-running the date queues the same rows again.

**The way back starts at once.** When a champion breaches a now-test requirement on the re-predicted
window, `retrain_after_breach` starts a `ratchet_retrain` run for that model only (conf `{"model": ...}`,
run id `breach__<model>__<now-test end>`, data up to the now-test's end); its asset event starts a
back-test of that model, and its new versions are in trial from the next now-test on. Only a champion's
breach starts it: stale data, a breach of what the service served and a serving requirement's breach do
not (a new model would not help), nor does a backfill; re-running the date starts nothing twice.
"""
from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import TriggerRule, dag, task

from ratchet.dagkit import START_DATE, TAGS, default_args, deliver_alerts, label
from ratchet.specs.catalog import configured_model_names

MODELS = configured_model_names()


@dag(
    dag_id="ratchet_nowtest",
    schedule="0 6 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    doc_md=__doc__,
    default_args=default_args(retries=2, retry_delay=dt.timedelta(minutes=5)),
)
def ratchet_nowtest():
    @task(map_index_template="{{ model }}")
    def nowtest(model: str, dag_run=None) -> dict:
        from ratchet import pipeline

        label(model=model)
        return pipeline.nowtest(model, end=pipeline.run_end(dag_run), airflow_run_id=dag_run.run_id,
                                mail=pipeline.mails_for(dag_run))

    @task(map_index_template="{{ model }}", trigger_rule=TriggerRule.ALL_DONE)
    def propose(model: str, nowtests, dag_run=None) -> dict:
        from ratchet import pipeline

        label(model=model)
        return pipeline.propose(model, end=pipeline.run_end(dag_run), dag_run=dag_run, nowtests=list(nowtests))

    @task(map_index_template="{{ model }}", trigger_rule=TriggerRule.ALL_DONE)
    def review(model: str, dag_run=None) -> dict:
        from ratchet import pipeline

        label(model=model)
        return pipeline.queue_review(model, end=pipeline.run_end(dag_run))

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def proposals(results) -> list[dict]:
        """The proposals to open, from every model whose `propose` finished (one failure stops no other model)."""
        from ratchet import pipeline

        return pipeline.proposals_to_open(results)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def breaches(results, dag_run=None) -> list[dict]:
        """A ratchet_retrain run for each model whose champion breached (see the DAG's doc)."""
        from ratchet import pipeline

        return pipeline.retrains_after_breach(list(results), end=pipeline.run_end(dag_run), dag_run=dag_run)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def check_proposals(models: list[str], results) -> None:
        """Fail (the run is not green) when some model's `propose` failed; its mapped task's log says why."""
        from ratchet import pipeline

        pipeline.require_proposals(models, list(results))

    tested = nowtest.expand(model=MODELS)
    tested >> review.expand(model=MODELS)
    deliver_alerts(MODELS, tested, what="now-test")
    proposed = propose.partial(nowtests=tested).expand(model=MODELS)
    TriggerDagRunOperator.partial(
        task_id="open_proposal", trigger_dag_id="ratchet_promote", skip_when_already_exists=True,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(proposals(proposed))
    check_proposals(MODELS, proposed)
    TriggerDagRunOperator.partial(
        task_id="retrain_after_breach", trigger_dag_id="ratchet_retrain", skip_when_already_exists=True,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(breaches(tested))


ratchet_nowtest()
