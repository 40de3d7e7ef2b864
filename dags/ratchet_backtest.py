"""ratchet_backtest: walk-forward back-test per model and month, after retraining and nightly."""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, TriggerRule, dag, get_current_context, task

from ratchet.config import model_names

DOC = """
### Walk-forward back-test
Runs when `ratchet_retrain` registers versions (asset `ratchet_model_versions`) and nightly at 03:00.
For each model, the last `backtest.months` complete months are split into a few groups of months
(one mapped task each, labelled *model · first..last month*). In each month, every contender (the
champion, the last retrain's candidates, the baselines) is fitted on the data before the month
(expanding window or the last `backtest.window` months) and scored on the month.

A (contender, month) already computed on the same data (same chained fingerprint of every row up to
the month) is skipped, so a re-run on unchanged data computes nothing. A report per model (chart per
month with the requirement line, wins against the champion) is stored in PostgreSQL and in `reports/`.
"""


@dag(
    dag_id="ratchet_backtest",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 3 * * *", timezone="UTC"),
                                 assets=Asset("ratchet_model_versions")),
    start_date=dt.datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["ratchet"],
    doc_md=DOC,
    default_args={"owner": "ratchet", "retries": 1, "retry_delay": dt.timedelta(minutes=2)},
)
def ratchet_backtest():
    @task
    def configured_models() -> list[str]:
        return model_names()

    @task(map_index_template="{{ model }}")
    def plan(model: str, data_interval_end=None, dag_run=None) -> list[dict]:
        from ratchet import pipeline

        get_current_context()["model"] = model
        return pipeline.plan_backtest(model, end=data_interval_end or dag_run.run_after)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def gather(plans) -> list[dict]:
        """All models' month groups in one list; a model whose planning failed is left out."""
        return [partition for model_plan in plans if model_plan for partition in model_plan]

    @task(map_index_template="{{ partition['label'] }}")
    def backtest(partition: dict, data_interval_end=None, dag_run=None) -> dict:
        from ratchet import pipeline

        get_current_context()["partition"] = partition
        return pipeline.backtest_partition(partition, end=data_interval_end or dag_run.run_after)

    @task(map_index_template="{{ model }}", trigger_rule=TriggerRule.ALL_DONE)
    def report(model: str, data_interval_end=None, dag_run=None) -> str:
        from ratchet import pipeline

        get_current_context()["model"] = model
        return pipeline.backtest_report(model, end=data_interval_end or dag_run.run_after)

    models = configured_models()
    partitions = gather(plan.expand(model=models))
    backtest.expand(partition=partitions) >> report.expand(model=models)


ratchet_backtest()
