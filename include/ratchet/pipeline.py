"""What each DAG task does, in one call per task: open the registry, load the spec, run the step.

The DAG files stay thin and importable in milliseconds; everything heavy is imported here, at call time.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any

# What the tasks below import when they run: preloaded by ratchet.executor before it forks task processes.
TASK_LIBRARIES = (
    "numpy", "pandas", "scipy.stats", "sqlalchemy", "psycopg2",
    "sklearn.compose", "sklearn.impute", "sklearn.metrics", "sklearn.model_selection", "sklearn.pipeline",
    "sklearn.preprocessing", "airflow.providers.smtp.hooks.smtp",
    "ratchet.alerts", "ratchet.backtest", "ratchet.baselines", "ratchet.data", "ratchet.nowtest",
    "ratchet.promotion", "ratchet.registry", "ratchet.regression", "ratchet.reports", "ratchet.search",
)


def preload() -> list[str]:
    """Import the tasks' libraries and every configured model's estimator classes, ahead of any task.

    A process that forks task processes afterwards hands them over already imported, so a task does
    not spend seconds importing scikit-learn. Returns the models whose specs loaded; a broken spec is
    skipped here, its own tasks report it.
    """
    import importlib

    from ratchet import artifacts, config

    for module in TASK_LIBRARIES:
        importlib.import_module(module)
    artifacts.skops_io()
    loaded = []
    for path in config.spec_files():
        try:
            loaded.append(config.load_spec(path).name)
        except config.FileError:
            continue
    return loaded


def run_end(dag_run):
    """The data cut-off of a DAG run: its logical date (the schedule slot, or the date a manual run was
    triggered for, so re-triggering a date redoes that date), else its data interval end, else its
    trigger time. Airflow 3 gives a manual run the data interval of its trigger time, not of its date."""
    return dag_run.logical_date or dag_run.data_interval_end or dag_run.run_after


def run_key(dag_id: str, end) -> str:
    """Identifies a run by its DAG and data end, so re-running the same date reuses its rows."""
    return f"{dag_id}@{end.isoformat()}"


@contextmanager
def model_context(model: str):
    """The model's validated spec (synced into the registry) and an open Registry."""
    from ratchet import config
    from ratchet.registry import Registry

    specs = config.load_specs()
    if model not in specs:
        raise config.SpecError(config.settings.models_dir(), "name", f"one of the configured models {sorted(specs)}",
                               model)
    registry = Registry.from_settings()
    try:
        registry.sync_model(specs[model])
        yield specs[model], registry
    finally:
        registry.dispose()


def retrain(model: str, *, end) -> dict[str, Any]:
    from ratchet import search

    with model_context(model) as (spec, registry):
        versions = search.retrain_model(registry, spec, run_id=run_key("ratchet_retrain", end), logical_date=end)
    return {"model": model, "versions": versions}


def backtest_group(model: str, group: int, groups: int, *, end) -> dict[str, Any]:
    """Back-test the `group`-th of `groups` slices of the model's back-test months."""
    from ratchet import backtest, data

    with model_context(model) as (spec, registry):
        frame = data.read_source(spec, end=end)
        months = backtest.month_groups(spec, frame, end=end, groups=groups)[group]
        if not months:
            return {"model": model, "months": [], "computed": 0, "skipped": 0}
        counts = backtest.run_partition(registry, spec, months, run_id=run_key("ratchet_backtest", end), end=end,
                                        frame=frame)
    return {"model": model, "months": months, **counts}


def require_every_model(models: list[str], results, *, what: str, per_model: int = 1) -> None:
    """Fail (so the DAG run is not green) when some model's mapped tasks did not all finish."""
    from collections import Counter

    finished = Counter(result["model"] for result in results if result)
    missing = sorted(model for model in models if finished[model] < per_model)
    if missing:
        raise RuntimeError(f"the {what} of model(s) {missing} failed; their mapped tasks' logs say why")


def backtest_report(model: str, *, end) -> dict[str, str]:
    from ratchet import reports

    with model_context(model) as (spec, registry):
        return {"model": model, "report": str(reports.write_report(registry, spec, run_key("ratchet_backtest", end)))}


def airflow_run_url(dag_id: str, run_id: str) -> str:
    """Link to a DAG run in the Airflow UI, for alert mails."""
    from urllib.parse import quote

    from ratchet import settings

    return f"{settings.airflow_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def nowtest(model: str, *, end, airflow_run_id: str) -> dict[str, Any]:
    from ratchet import nowtest as nowtests

    with model_context(model) as (spec, registry):
        outcome = nowtests.run_nowtest(registry, spec, run_id=run_key("ratchet_nowtest", end), data_interval_end=end,
                                       airflow_run_url=airflow_run_url("ratchet_nowtest", airflow_run_id))
    return outcome.summary()


def regression(model: str, *, end, airflow_run_id: str) -> dict[str, Any]:
    from ratchet import regression as regressions

    with model_context(model) as (spec, registry):
        outcome = regressions.run_regression(registry, spec, run_id=run_key("ratchet_regression", end),
                                             data_interval_end=end,
                                             airflow_run_url=airflow_run_url("ratchet_regression", airflow_run_id))
    return outcome.summary()


def deliver_alerts(models: list[str], results, *, what: str, conn_id: str | None = None) -> dict[str, list[int]]:
    """Send every queued alert (of every model) through the Airflow SMTP connection, then fail the
    task if some model's step did not finish, so the DAG run is not green when a model failed."""
    from ratchet import alerts, settings
    from ratchet.registry import Registry

    registry = Registry.from_settings()
    try:
        report = alerts.deliver_alerts(registry, conn_id or settings.SMTP_CONN_ID)
    finally:
        registry.dispose()
    require_every_model(models, results, what=what)
    return report
