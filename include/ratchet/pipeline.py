"""What each DAG task does, in one call per task: open the registry, load the spec, run the step.

The DAG files stay thin and importable in milliseconds; everything heavy is imported here, at call time.
A `UserError` (a broken spec, bad data, a refused promotion) leaves every call here as Airflow's
`AirflowFailException`, so Airflow fails the task at once instead of retrying what cannot change.
Every call runs its native thread pools (OpenMP, BLAS) at the size the executor leaves one task, so tasks side
by side do not fight over the cores (`ratchet.threads`).
"""
from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ratchet import settings, threads
from ratchet.exceptions import ModelsFailed, UserError

if TYPE_CHECKING:
    import datetime as dt

    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

# What the tasks below import when they run: preloaded by ratchet.executor before it forks task processes.
TASK_LIBRARIES = (
    "numpy", "pandas", "scipy.stats", "sqlalchemy", "psycopg2",
    "sklearn.compose", "sklearn.impute", "sklearn.metrics", "sklearn.model_selection", "sklearn.pipeline",
    "sklearn.preprocessing", "airflow.providers.smtp.hooks.smtp",
    "ratchet.alerting.notifiers", "ratchet.alerting.outbox", "ratchet.evaluation.aging", "ratchet.evaluation.backtest",
    "ratchet.evaluation.golden", "ratchet.evaluation.nowtest", "ratchet.lifecycle.promotion",
    "ratchet.lifecycle.retrain", "ratchet.registry", "ratchet.reporting.reports",
)

Result = TypeVar("Result")


def task_step(step: Callable[..., Result]) -> Callable[..., Result]:
    """Run `step` as one task: its native thread pools at the size the executor leaves a task
    (`threads.task_limits`), and a UserError raised as AirflowFailException (no retry) with the same message."""

    @functools.wraps(step)
    def run(*args: Any, **kwargs: Any) -> Result:
        try:
            with threads.task_limits() as pools:
                print(pools)
                return step(*args, **kwargs)
        except UserError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc

    return run


def preload() -> list[str]:
    """Import the tasks' libraries and every configured model's estimator classes, ahead of any task.

    A process that forks task processes afterwards hands them over already imported, so a task does
    not spend seconds importing scikit-learn. Returns the models whose specs loaded; a broken spec is
    skipped here, its own tasks report it.
    """
    import importlib

    from ratchet.modeling import artifacts
    from ratchet.specs import load_spec, spec_files

    for module in TASK_LIBRARIES:
        importlib.import_module(module)
    artifacts.skops_io()
    loaded = []
    for path in spec_files():
        try:
            loaded.append(load_spec(path).name)
        except UserError:
            continue
    return loaded


def run_end(dag_run: Any) -> dt.datetime:
    """The data cut-off of a DAG run: its logical date (the schedule slot, or the date a manual run was
    triggered for, so re-triggering a date redoes that date), else its data interval end, else its
    trigger time. Airflow 3 gives a manual run the data interval of its trigger time, not of its date."""
    return dag_run.logical_date or dag_run.data_interval_end or dag_run.run_after


def run_key(dag_id: str, end: dt.datetime) -> str:
    """Identifies a run by its DAG and data end, so re-running the same date reuses its rows."""
    return f"{dag_id}@{end.isoformat()}"


@contextmanager
def model_context(model: str) -> Iterator[tuple[ModelSpec, Registry]]:
    """The model's validated spec (synced into the registry) and an open Registry."""
    from ratchet.registry import Registry
    from ratchet.specs import get_spec

    spec = get_spec(model)
    registry = Registry.from_settings()
    try:
        registry.sync_model(spec)
        yield spec, registry
    finally:
        registry.dispose()


def run_only(model: str, *, requested: str | None, announced: Iterable[str] | None = None) -> None:
    """Skip this model's task when the run is for other models: the run's `model` Param names one model (the
    way back after a breach retrains and back-tests only the breaching model), or, in a run started by
    `ratchet_retrain`'s asset events, `announced` names the models that registered versions. Neither: every model.
    """
    wanted = {requested} if requested else (set(announced) if announced is not None else None)
    if wanted is not None and model not in wanted:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(f"this run is for {sorted(wanted)}, not {model}")


def announced_models(triggering_asset_events: Any) -> list[str] | None:
    """The models named by the asset events that started a run (each retrain task's event names its model), or
    None for a run no asset event started (scheduled or manual)."""
    events = [event for found in (triggering_asset_events or {}).values() for event in found]
    if not events:
        return None
    return sorted({(event.extra or {}).get("model") for event in events} - {None})


def breach_run_id(model: str, end: dt.datetime) -> str:
    """The id of the ratchet_retrain run a champion's breach starts: one per model and now-test date, so a re-run
    of the date finds it instead of starting a second one."""
    return f"breach__{model}__{end.isoformat()}"


def retrains_after_breach(results: Iterable[dict[str, Any] | None], *, end: dt.datetime,
                          dag_run: Any) -> list[dict[str, Any]]:
    """The ratchet_retrain runs to start (TriggerDagRunOperator arguments): one per model whose champion breached
    a now-test requirement on the re-predicted window, on the day the breach starts (the nightly retrain goes on
    while it lasts). Stale data (nothing to learn from), a breach of what was served or of a serving requirement
    (the service, not the model) and a backfill (the past) start none.
    The run reads data up to the now-test's end (`run_after`; no logical date, so it never collides with the
    nightly run of that date)."""
    if is_backfill(dag_run):
        return []
    breaching = sorted(result["model"] for result in results if result and not result["stale"]
                       and result["mailed"] == "breach"
                       and any(c["role"] == "champion" and not c["passed"] for c in result["contenders"].values()))
    return [{"trigger_run_id": breach_run_id(model, end), "conf": {"model": model}, "run_after": end.isoformat()}
            for model in breaching]


@task_step
def retrain(model: str, *, end: dt.datetime, author: str = "ratchet_retrain",
            on_schedule: bool = False) -> dict[str, Any]:
    """Retrain one model on the data before `end`; returns the versions it registered (each records `author`).

    `on_schedule` (a run of every model, not one naming it): the model's `retrain.schedule` decides (a model without
    a version is always due), and on a night it is not due the task is skipped, logging when it next is
    (`lifecycle.schedule`)."""
    from ratchet.lifecycle.retrain import retrain_model
    from ratchet.lifecycle.schedule import retrain_due

    with model_context(model) as (spec, registry):
        if on_schedule:
            due = retrain_due(spec.retrain.schedule, end, first=not registry.versions(model))
            print(due.describe(model, end))
            if not due.due:
                from airflow.sdk.exceptions import AirflowSkipException

                raise AirflowSkipException(due.describe(model, end))
        versions = retrain_model(registry, spec, run_id=run_key("ratchet_retrain", end), logical_date=end,
                                 author=author)
    return {"model": model, "versions": versions}


@task_step
def backtest_group(model: str, group: int, groups: int, *, end: dt.datetime) -> dict[str, Any]:
    """Back-test the `group`-th of `groups` slices of the model's back-test months."""
    from ratchet.evaluation import backtest
    from ratchet.modeling import sources
    from ratchet.modeling.features import ContractInputs

    with model_context(model) as (spec, registry):
        labelled = sources.labelled_end(spec, end)  # months whose labels have all arrived
        inputs = ContractInputs(spec, sources.read_rows(spec, end=labelled), end=labelled)
        months = backtest.month_groups(spec, inputs.frame, end=labelled, groups=groups)[group]
        if not months:
            return {"model": model, "months": [], "computed": 0, "skipped": 0}
        counts = backtest.run_partition(registry, spec, months, run_id=run_key("ratchet_backtest", end),
                                        end=labelled, inputs=inputs)
    return {"model": model, "months": months, **counts}


@task_step
def aging(model: str, *, end: dt.datetime) -> dict[str, Any]:
    """Measure how the model's champion ages over its back-test months (`evaluation.aging`) and store it; logs and
    returns the curve of the ranking metric, the crossing age and the retrain plan it recommends."""
    from ratchet.evaluation.aging import retrain_plan, run_aging
    from ratchet.modeling import sources

    with model_context(model) as (spec, registry):
        measured = run_aging(registry, spec, run_id=run_key("ratchet_backtest", end),
                             end=sources.labelled_end(spec, end))
    if measured is None:
        print(f"model {model!r}: no aging measured (no champion, or fewer back-test months than it needs)")
        return {"model": model, "aging": None}
    curve = {p.age: p.mean for p in measured.curves[spec.metric]}
    plan = retrain_plan(measured, spec.retrain.schedule)
    print(f"model {model!r} v{measured.version} ages over {len(measured.origins)} origins "
          f"({measured.origins[0]}..{measured.origins[-1]}): {spec.metric} by months since training "
          + ", ".join(f"{age}: {value:.4g}" for age, value in curve.items() if value is not None))
    for crossing in measured.crossings:
        print(f"  {crossing.requirement}: "
              + (f"broken at age {crossing.age}" if crossing.age else "holds at every age"))
    print(f"  {plan.describe()}")
    return {"model": model, "version": measured.version, "curve": curve, "crossing_age": measured.crossing_age,
            "recommended": plan.recommended}


def require_every_model(models: list[str], results: Iterable[dict[str, Any] | None], *, what: str,
                        per_model: int = 1) -> None:
    """Fail (so the DAG run is not green) when some model's mapped tasks did not all finish."""
    finished = Counter(result["model"] for result in results if result)
    missing = sorted(model for model in models if finished[model] < per_model)
    if missing:
        raise ModelsFailed(f"the {what} of model(s) {missing} failed; their mapped tasks' logs say why")


@task_step
def backtest_report(model: str, *, end: dt.datetime) -> dict[str, str]:
    """Write the model's back-test report for the run ending at `end`; returns its file path and data summary."""
    from ratchet.modeling import features, sources
    from ratchet.reporting import reports

    with model_context(model) as (spec, registry):
        data = features.data_summary(spec, sources.read_source(spec, end=sources.labelled_end(spec, end)))
        path = reports.write_report(registry, spec, run_key("ratchet_backtest", end), data)
    return {"model": model, "report": str(path), "data": data}


def airflow_run_url(dag_id: str, run_id: str) -> str:
    """Link to a DAG run in the Airflow UI, for alert mails."""
    from urllib.parse import quote

    return f"{settings.airflow_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def is_backfill(dag_run: Any) -> bool:
    """Whether a DAG run replays the past (`airflow backfill`): it records verdicts, it pages and proposes nothing."""
    return str(getattr(dag_run.run_type, "value", dag_run.run_type)) == "backfill"


def mails_for(dag_run: Any) -> bool:
    """Whether a run's breaches are mailed: not for a backfill, which replays the past to record its verdicts."""
    return not is_backfill(dag_run)


@task_step
def nowtest(model: str, *, end: dt.datetime, airflow_run_id: str, mail: bool = True) -> dict[str, Any]:
    """Now-test one model on the window ending at `end`; returns the outcome's summary."""
    from ratchet.lifecycle.monitoring import run_nowtest

    with model_context(model) as (spec, registry):
        outcome = run_nowtest(registry, spec, run_id=run_key("ratchet_nowtest", end), data_interval_end=end,
                              airflow_run_url=airflow_run_url("ratchet_nowtest", airflow_run_id), mail=mail)
    return outcome.summary()


@task_step
def regression(model: str, *, end: dt.datetime, airflow_run_id: str, mail: bool = True) -> dict[str, Any]:
    """Run one model's golden cases against its champion; returns the outcome's summary."""
    from ratchet.lifecycle.monitoring import run_regression

    with model_context(model) as (spec, registry):
        outcome = run_regression(registry, spec, run_id=run_key("ratchet_regression", end), data_interval_end=end,
                                 airflow_run_url=airflow_run_url("ratchet_regression", airflow_run_id), mail=mail)
    return outcome.summary()


@task_step
def propose(model: str, *, end: dt.datetime, dag_run: Any,
            nowtests: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """Propose the model's best candidate that passes every gate now (`lifecycle.promotion.propose`).

    Returns the model and the arguments of the ratchet_promote run to open for it (none, or one), for
    TriggerDagRunOperator. Nothing is proposed by a backfill, which replays the past, nor for a model
    whose now-test of this run did not finish (`nowtests`: the run's now-test results, None for a failed one).
    """
    from ratchet.lifecycle.promotion import proposal_run_id
    from ratchet.lifecycle.promotion import propose as propose_candidate

    proposals: list[dict[str, Any]] = []
    tested = any(result and result["model"] == model for result in nowtests)
    if tested and not is_backfill(dag_run):
        with model_context(model) as (spec, registry):
            proposal = propose_candidate(registry, spec, run_id=run_key("ratchet_nowtest", end),
                                         reason=f"proposed by ratchet: passed every gate on {end:%Y-%m-%d}")
        if proposal is not None:
            conf = {"model": model, "version": proposal.version, "reason": proposal.reason, "proposal": True}
            proposals.append({"trigger_run_id": proposal_run_id(model, proposal.version), "conf": conf})
    return {"model": model, "proposals": proposals}


def proposals_to_open(results: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The proposals of every model whose propose step finished, one list (a failed step gives None)."""
    return [proposal for result in results if result for proposal in result["proposals"]]


@task_step
def require_proposals(models: list[str], results: Iterable[dict[str, Any] | None]) -> None:
    """Fail (no retry) when some model's propose step failed, so the now-test run is not green."""
    require_every_model(models, results, what="proposal step")


@task_step
def review(model: str, version: int, rebaseline_option: str) -> str:
    """The gates' verdicts on a proposed version as Markdown, with links to the model's Ratchet page and the
    version's model card: the body of the approval a person is asked for. Fails when a gate no longer passes (there
    is nothing to approve), unless only ratcheted bounds fail: then the body says what the answer `rebaseline_option`
    would do."""
    from ratchet.exceptions import ProposalOutdated
    from ratchet.lifecycle.promotion import rebaseline_only
    from ratchet.lifecycle.promotion import review as review_gates

    with model_context(model) as (spec, registry):
        outcome = review_gates(registry, spec, version)
        alpha = spec.promotion.ratchet.false_alarm_rate
    print(outcome.describe())
    rebaseline = rebaseline_only(outcome.gates)
    if not outcome.passed and not rebaseline:
        failed = "; ".join(f"gate {g.number} {g.name}: {g.summary}" for g in outcome.gates if not g.passed)
        raise ProposalOutdated(f"{model} v{version} does not pass every gate now, so there is nothing to approve: "
                               f"{failed}")
    page = settings.ratchet_page_url(model)
    body = outcome.markdown()
    if rebaseline:
        body += (f"\n\n**Gate 1 fails only on {len(rebaseline)} bound(s) the ratchet derived from a former champion's "
                 f"months** (its row above says how). **Approve** runs the gates again and fails on them. "
                 f"**{rebaseline_option}** sets them again from v{version}'s own back-test at a false-alarm rate of "
                 f"{alpha:g} (the ratchet's derivation; recorded as your decision, with this proposal as the evidence, "
                 f"and mailed to the owners), then promotes, in one transaction.")
    return (f"{body}\n\nBack-test, now-test and versions side by side: [Ratchet page]({page}); what v{version} is "
            f"for, where it does worst and its stated limits: [model card]({settings.card_url(model, version)})")


@task_step
def promote(model: str, version: int, *, reason: str, triggered_by: str, dry_run: bool,
            run_id: str | None, comment: str | None = None, rebaseline: bool = False) -> dict[str, Any]:
    """Promote a version through the gates (see `lifecycle.promotion`); logs and returns the decision."""
    from ratchet.lifecycle.promotion import promote_by_name

    outcome = promote_by_name(model, version, reason=reason, triggered_by=triggered_by, dry_run=dry_run,
                              run_id=run_id, comment=comment, rebaseline=rebaseline)
    return _decision(outcome)


@task_step
def decline(model: str, version: int, *, reason: str, rejected_by: str, comment: str | None,
            run_id: str | None) -> dict[str, Any]:
    """Record a person's rejection of a proposed version (`lifecycle.promotion.decline`); logs and returns it."""
    from ratchet.lifecycle.promotion import decline as decline_version

    with model_context(model) as (spec, registry):
        outcome = decline_version(registry, spec, version=version, reason=reason, rejected_by=rejected_by,
                                  comment=comment, run_id=run_id)
    return _decision(outcome)


@task_step
def rebaseline(params: dict[str, Any], *, changed_by: str, airflow_run_id: str) -> dict[str, Any]:
    """Set a requirement's bound again from the ratchet_requirements run's Params (`lifecycle.rebaseline`);
    prints and returns the model and the change. A bad Param fails at once, naming it; nothing changes."""
    from ratchet.lifecycle.rebaseline import rebaseline as set_again

    with model_context(params["model"]) as (spec, registry):
        changes = set_again(registry, spec, metric=params["metric"], scope=params["scope"], reason=params["reason"],
                            changed_by=changed_by, run_id=airflow_run_id, bound=params.get("bound"),
                            calibrate=params.get("calibrate"), relative_to=params.get("relative_to"),
                            version=params.get("version"),
                            link=airflow_run_url("ratchet_requirements", airflow_run_id))
    for c in changes:
        print(f"{spec.name} {c['metric']} ({c['scope']}): {c['direction']} {c['old_bound']:.6g} -> "
              f"{c['new_bound']:.6g} by {changed_by}")
    return {"model": spec.name, "changes": changes}


def _decision(outcome: Any) -> dict[str, Any]:
    print(outcome.describe())
    return {"model": outcome.model, "version": outcome.version, "outcome": outcome.outcome,
            "kind": outcome.kind, "promotion_id": outcome.promotion_id}


@task_step
def deliver_alerts(models: list[str], results: Iterable[dict[str, Any] | None], *, what: str) -> dict[str, list[int]]:
    """Send every queued alert (of every model) on its model's notifier channels (default: mail through the
    Airflow SMTP connection), then fail the task if some model's step did not finish, so the DAG run is not
    green when a model failed.

    Channels and recipients come from each model's current YAML: an alert queued without recipients gets the
    current `alert_emails`, and a channel added or fixed in `alerts.notifiers` applies to alerts still queued.
    """
    from ratchet.alerting import outbox
    from ratchet.registry import Registry
    from ratchet.specs import load_catalog

    specs = load_catalog().specs
    registry = Registry.from_settings()
    try:
        report = outbox.deliver_alerts(registry, specs)
    finally:
        registry.dispose()
    require_every_model(models, results, what=what)
    return report
