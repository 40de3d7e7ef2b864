"""ratchet_retrain: nightly random search per model; registers the best candidates."""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, TriggerRule, dag, get_current_context, task

from ratchet.config import configured_model_names

MODELS = configured_model_names()
MODEL_VERSIONS = Asset("ratchet_model_versions")

DOC = """
### Nightly retraining
For every model YAML in the models folder (one mapped task per model):
load the data up to the run's data interval end, run the random hyperparameter search with
time-ordered cross-validation (part of the trials narrowed around the champion's hyperparameters,
the rest exploring the whole space), store every trial with its fold scores, and register the best
`search.candidates` refitted on all history as new versions (artifact, checksum, latency, size).

A model whose data is bad fails its own mapped task with a message naming the problem; the others go on,
and `verify` fails the run so it does not look green. When at least one model registered versions, the
`ratchet_model_versions` asset is updated, which starts `ratchet_backtest`. Re-running a date reuses the
same trials and versions (no duplicates).
"""


@dag(
    dag_id="ratchet_retrain",
    schedule="0 1 * * *",
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["ratchet"],
    doc_md=DOC,
    default_args={"owner": "ratchet", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
)
def ratchet_retrain():
    @task(map_index_template="{{ model }}")
    def retrain(model: str, dag_run=None) -> dict:
        from ratchet import pipeline

        get_current_context()["model"] = model
        return pipeline.retrain(model, end=pipeline.run_end(dag_run))

    @task(outlets=[MODEL_VERSIONS], trigger_rule=TriggerRule.ALL_DONE)
    def publish(results, outlet_events=None) -> list[dict]:
        """Announce new versions to the back-test, when any model got some."""
        from airflow.sdk.exceptions import AirflowSkipException

        retrained = [r for r in results if r and r["versions"]]
        if not retrained:
            raise AirflowSkipException("no model registered new versions")
        outlet_events[MODEL_VERSIONS].extra = {"models": {r["model"]: r["versions"] for r in retrained}}
        return retrained

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def verify(results) -> None:
        from ratchet import pipeline

        pipeline.require_every_model(MODELS, list(results), what="retrain")

    retrained = retrain.expand(model=MODELS)
    publish(retrained)
    verify(retrained)


ratchet_retrain()
