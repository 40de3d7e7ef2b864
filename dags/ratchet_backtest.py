"""
### Walk-forward back-test
Runs when `ratchet_retrain` registers versions (asset `ratchet_model_versions`) and nightly at 03:00.
For each model, the last `backtest.months` complete months are split into a few consecutive groups
(one mapped task each, labelled *model · first..last month*), which spread over the workers. In each
month, every contender (the champion, the last retrain's candidates, the baselines) is fitted on the
data before the month (expanding window or the last `backtest.window` months) and scored on the month.

A (contender, month) already computed on the same data (same chained fingerprint of every row up to
the month) is skipped, so a re-run on unchanged data computes nothing. A report per model (chart per
month with the requirement line, wins against the champion) is stored in PostgreSQL and in `reports/`;
a model's report task fails (and with it the run) when one of its groups or the report did not finish.

Then each model's **aging** task measures how its champion ages: fitted once before each of the first back-test
months (the origins) and scored without refitting on the months after, its metric by months since training, averaged
over the origins, and the age at which it first breaks a back-test or now-test requirement; stored per version,
refitted only when the rows changed, and shown on the Ratchet page with the retrain cadence it recommends.

A run started by the asset back-tests the models whose retrain announced versions (each event names its
model), so the retrain a champion's breach starts is followed by a back-test of that model only; the
other models' tasks are skipped. **Param `model`** (optional) does the same for a manual run.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, TriggerRule, dag, task

from ratchet.dagkit import START_DATE, TAGS, default_args, label, only_model_param
from ratchet.specs.catalog import configured_model_names

MODELS = configured_model_names()
MONTH_GROUPS = 2  # mapped tasks per model: enough to spread over workers, few enough that task start-up stays small


@dag(
    dag_id="ratchet_backtest",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC"),
                                 assets=Asset("ratchet_model_versions")),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=TAGS,
    doc_md=__doc__,
    default_args=default_args(retries=1, retry_delay=dt.timedelta(minutes=2)),
    params={"model": only_model_param(MODELS)},
)
def ratchet_backtest():
    def only(model: str, params: dict, triggering_asset_events) -> None:
        from ratchet import pipeline

        pipeline.run_only(model, requested=params["model"],
                          announced=pipeline.announced_models(triggering_asset_events))

    @task(map_index_template="{{ label }}")
    def backtest(model: str, group: int, dag_run=None, params=None, triggering_asset_events=None) -> dict:
        from ratchet import pipeline

        label(label=f"{model} · group {group + 1}/{MONTH_GROUPS}")
        only(model, params, triggering_asset_events)
        result = pipeline.backtest_group(model, group, MONTH_GROUPS, end=pipeline.run_end(dag_run))
        if result["months"]:
            label(label=f"{model} · {result['months'][0]}..{result['months'][-1]}")
        return result

    @task(map_index_template="{{ model }}", trigger_rule=TriggerRule.ALL_DONE)
    def report(model: str, groups, dag_run=None, params=None, triggering_asset_events=None) -> dict:
        """Report what the model's groups stored, then fail (and so fail the run) if one of them failed."""
        from ratchet import pipeline

        label(model=model)
        only(model, params, triggering_asset_events)
        written = pipeline.backtest_report(model, end=pipeline.run_end(dag_run))
        pipeline.require_every_model([model], list(groups), what="back-test", per_model=MONTH_GROUPS)
        return written

    @task(map_index_template="{{ model }}", trigger_rule=TriggerRule.ALL_DONE)
    def aging(model: str, groups, dag_run=None, params=None, triggering_asset_events=None) -> dict:
        """After the model's months: how its champion ages (read against the baselines' back-test values)."""
        from ratchet import pipeline

        label(model=model)
        only(model, params, triggering_asset_events)
        pipeline.require_every_model([model], list(groups), what="back-test", per_model=MONTH_GROUPS)
        return pipeline.aging(model, end=pipeline.run_end(dag_run))

    groups = backtest.expand_kwargs([{"model": m, "group": g} for m in MODELS for g in range(MONTH_GROUPS)])
    report.partial(groups=groups).expand(model=MODELS)
    aging.partial(groups=groups).expand(model=MODELS)


ratchet_backtest()
