"""
### Nightly retraining
For every model YAML in the models folder (one mapped task per model):
load the data up to the run's logical date, run the random hyperparameter search with
time-ordered cross-validation (part of the trials narrowed around the champion's hyperparameters,
the rest exploring the whole space), store every trial with its fold scores, and register the best
`search.candidates` refitted on all history as new versions (artifact, checksum, latency, size).

Each model's task updates the `ratchet_model_versions` asset (its extra names the model and versions),
which starts `ratchet_backtest`. A model whose spec or data is bad, or whose every trial failed, fails its
own mapped task at once (no retry) with a message naming the problem (the distinct trial errors, counted),
and with it the run; the other models go on and announce theirs. The trials of a date are searched once:
re-running a date reuses the recorded trials and versions (no duplicates, nothing resampled).

**Each model's `retrain.schedule`** (default `@daily`; a cron expression or an Airflow preset, in UTC) decides
which nights retrain it: a run covers the day before its data end, and a model whose schedule has no time in that
day is skipped, its log saying when it is next due (a model without any version yet is always due). A skipped
model announces nothing, so the back-test this run starts leaves it alone.

**Param `model`** (optional): a run for one model only, whatever its schedule; the other models' tasks are
skipped. `ratchet_nowtest` starts such a run (run id `breach__<model>__<now-test end>`, data up to the now-test's
end) when a champion breaches a now-test requirement: the way back starts at once, not the next night, whatever
the schedule. Its new versions are newer
than the champion, so they are in trial from the next now-test on.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, dag, task

from ratchet.dagkit import START_DATE, TAGS, default_args, label, only_model_param
from ratchet.specs.catalog import configured_model_names

MODELS = configured_model_names()
MODEL_VERSIONS = Asset("ratchet_model_versions")


@dag(
    dag_id="ratchet_retrain",
    schedule="0 1 * * *",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    doc_md=__doc__,
    default_args=default_args(retries=1, retry_delay=dt.timedelta(minutes=2)),
    params={"model": only_model_param(MODELS)},
)
def ratchet_retrain():
    @task(map_index_template="{{ model }}", outlets=[MODEL_VERSIONS])
    def retrain(model: str, dag_run=None, outlet_events=None, params=None) -> dict:
        from ratchet import pipeline

        label(model=model)
        pipeline.run_only(model, requested=params["model"])
        result = pipeline.retrain(model, end=pipeline.run_end(dag_run),
                                  author=dag_run.triggering_user_name or "ratchet_retrain",
                                  on_schedule=not params["model"])
        outlet_events[MODEL_VERSIONS].extra = result
        return result

    retrain.expand(model=MODELS)


ratchet_retrain()
