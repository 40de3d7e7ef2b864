"""
### Nightly regression tests
For every model (one mapped task per model): load the golden cases file next to the model's YAML
(`<name>.golden.yaml`; a bad file fails the model's task with the file, case and field, and
changes nothing), then run every golden case (from the file and harvested from failed now-tests)
through the champion's **stored** estimator. The pass rate is stored as a `regression`
evaluation of the day; a failed case writes one alert per model and date to the outbox, and
`deliver_alerts` mails it through `smtp_default` (failing visibly, and retrying, while SMTP is down).
The same check is gate 3 of `ratchet_promote`. A backfill records results without queuing mails.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

from ratchet.dagkit import START_DATE, TAGS, default_args, deliver_alerts, label
from ratchet.specs.catalog import configured_model_names

MODELS = configured_model_names()


@dag(
    dag_id="ratchet_regression",
    schedule="0 4 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    doc_md=__doc__,
    default_args=default_args(retries=2, retry_delay=dt.timedelta(minutes=5)),
)
def ratchet_regression():
    @task(map_index_template="{{ model }}")
    def regression(model: str, dag_run=None) -> dict:
        from ratchet import pipeline

        label(model=model)
        return pipeline.regression(model, end=pipeline.run_end(dag_run), airflow_run_id=dag_run.run_id,
                                   mail=pipeline.mails_for(dag_run))

    deliver_alerts(MODELS, regression.expand(model=MODELS), what="regression tests")


ratchet_regression()
