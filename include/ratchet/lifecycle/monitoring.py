"""The daily now-test and the nightly regression test of one model: judge, decide the mail, store both at once.

Evaluation judges (`evaluation.nowtest`, `evaluation.golden`), alerting speaks (`alerting.policy`); this step
above both stores the verdict rows, the harvested golden cases and the alert in ONE transaction, so a task
killed at any point leaves all of them or none, and a re-run of the same date overwrites instead of adding.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ratchet import settings
from ratchet.alerting.mails import Guidance
from ratchet.alerting.policy import nowtest_alert, regression_alert
from ratchet.evaluation.golden import RegressionOutcome, judge_regression, regression_row
from ratchet.evaluation.nowtest import NowtestOutcome, evaluation_rows, judge_nowtest
from ratchet.evaluation.requirements import bound_origin
from ratchet.faults import checkpoint
from ratchet.lifecycle.next_step import next_step

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec


def run_nowtest(registry: Registry, spec: ModelSpec, *, run_id: str, data_interval_end: Any,
                airflow_run_url: str, mail: bool = True) -> NowtestOutcome:
    """Now-test every contender of the model on the window ending at `data_interval_end`; store and alert.

    One alert at most per model and date (dedupe key `nowtest:<model>:<run_id>`). `mail=False` (a backfill)
    records everything but the alert. A model with no version yet stores nothing. The champion's worst misses
    become golden cases on the day its breach starts, not on every day it lasts: those days' misses show the same
    change again and again, and would fill the golden set with days no version trained before them has seen.

    Raises:
        DataError: the source cannot be read, or no longer has a column a version was trained on.
    """
    outcome, cases = judge_nowtest(registry, spec, data_interval_end=data_interval_end)
    if not outcome.results:
        return outcome
    outcome, draft = nowtest_alert(registry, spec, outcome, run_id=run_id, airflow_run_url=airflow_run_url,
                                   mail=mail, guidance=guidance(registry, spec, outcome))
    if cases and outcome.since != outcome.partition:  # golden cases come from the day a breach starts only
        cases, outcome = [], replace(outcome, harvested=0)
    checkpoint("nowtest:verdicts-computed")
    alert_id = registry.record_evaluations(spec.name, evaluation_rows(outcome, run_id), golden_cases=cases,
                                           alert=draft)
    return replace(outcome, alert_id=alert_id)


def guidance(registry: Registry, spec: ModelSpec, outcome: NowtestOutcome) -> Guidance:
    """What a now-test mail says beyond its verdicts: the Ratchet page, how each now-test bound was set, and the
    next step once this now-test counts (`lifecycle.next_step`)."""
    step = next_step(registry, spec, today=outcome)
    bounds = tuple(bound_origin(r, spec.requirements) for r in registry.requirements(spec.name, "nowtest"))
    return Guidance(settings.ratchet_page_url(spec.name), bounds, step.text, step.label, step.url)


def run_regression(registry: Registry, spec: ModelSpec, *, run_id: str, data_interval_end: Any,
                   airflow_run_url: str, mail: bool = True) -> RegressionOutcome:
    """Run the golden cases against the champion, store the pass rate, and alert on a failure.

    The alert's dedupe key is `regression:<model>:<run_id>`: one mail per model and date, queued with the result
    in one transaction. `mail=False` (a backfill) records the result without queuing a mail.

    Raises:
        GoldenFileError: the model's golden file is bad (nothing is stored).
    """
    outcome = judge_regression(registry, spec, data_interval_end=data_interval_end)
    if outcome.result is None:
        return outcome
    draft = regression_alert(spec, outcome, run_id=run_id, airflow_run_url=airflow_run_url, mail=mail)
    alert_id = registry.record_evaluations(spec.name, [regression_row(outcome, run_id)], alert=draft)
    return replace(outcome, alert_id=alert_id)
