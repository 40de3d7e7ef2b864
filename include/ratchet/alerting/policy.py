"""Whether and what to mail after a now-test or a regression test: evaluation judges, this module speaks.

The evaluations (`evaluation.nowtest`, `evaluation.golden`) give verdicts and know nothing of mail. Here a
model's alert state is read back from its stored verdict days (`alert_history`) and today's outcome decides the
mail (`mail_decision`): a new breach, a reminder of one that goes on, a recovery once it ends, or nothing. The
chosen mail becomes an outbox draft (`alert_draft`) that the caller stores with the verdicts in one transaction.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ratchet.alerting.mails import Guidance, build_nowtest_alert, build_recovery_alert, build_regression_alert
from ratchet.alerting.outbox import alert_draft
from ratchet.evaluation.nowtest import NowtestOutcome, evaluation_rows
from ratchet.registry.entities import (
    NOWTEST,
    REGRESSION_TEST,
    SERVED,
    SERVICE_CONTENDER,
    SERVING,
    AlertDraft,
    Evaluation,
    EvaluationRow,
    served_contender,
    version_contender,
)

if TYPE_CHECKING:
    from ratchet.evaluation.golden import RegressionOutcome
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec


def nowtest_alert(registry: Registry, spec: ModelSpec, outcome: NowtestOutcome, *, run_id: str,
                  airflow_run_url: str, mail: bool = True, guidance: Guidance | None = None
                  ) -> tuple[NowtestOutcome, AlertDraft | None]:
    """The outcome with its alert state (`mailed`, `since`) filled in, and the draft of the mail it sends.

    With a champion the mail follows `mail_decision` over the champion's verdict days; before any champion only
    stale data alerts. `mail=False` (a backfill) records the state and drafts nothing. `guidance` (the page, how
    the bounds were set, the next step) goes into the mail.
    """
    if outcome.champion is None:
        if not (outcome.alerting and mail):
            return outcome, None
        outcome = replace(outcome, mailed="breach")  # stale data before any champion
        return outcome, alert_draft(spec, NOWTEST, run_id, build_nowtest_alert(outcome, airflow_run_url, guidance))
    champion = outcome.champion.version
    history = alert_history(registry, spec.name, champion)
    former = former_champion(registry, spec.name, champion)
    if former is not None:  # a breach of the champion it replaced goes on until this one passes: then, recovery
        history = alert_history(registry, spec.name, former) + history
    today = alert_rows(evaluation_rows(outcome, run_id), champion)
    kind, since = mail_decision(history, outcome.partition, outcome.alerting, spec.alerts.repeat_after_days, today)
    outcome = replace(outcome, since=since, mailed=kind if mail else None)
    if outcome.mailed == "recovery":
        return outcome, alert_draft(spec, NOWTEST, run_id, build_recovery_alert(outcome, airflow_run_url, guidance))
    if outcome.mailed:
        return outcome, alert_draft(spec, NOWTEST, run_id, build_nowtest_alert(outcome, airflow_run_url, guidance))
    return outcome, None


def regression_alert(spec: ModelSpec, outcome: RegressionOutcome, *, run_id: str, airflow_run_url: str,
                     mail: bool = True) -> AlertDraft | None:
    """The draft of the mail a failed regression test sends (None when it passed, or for a backfill)."""
    if outcome.result is None or outcome.result.passed or not mail:
        return None
    return alert_draft(spec, REGRESSION_TEST, run_id,
                       build_regression_alert(spec.name, outcome.version, outcome.result, airflow_run_url))


def former_champion(registry: Registry, model: str, champion: int) -> int | None:
    """The champion `champion` replaced, by its latest promotion (None for a first champion)."""
    promoted = [p for p in registry.promotions(model) if p.outcome == "promoted" and p.version == champion]
    return promoted[-1].previous_version if promoted else None


def alert_history(registry: Registry, model: str, champion: int) -> list[Evaluation]:
    """The verdict rows the model's alert state follows: the champion's re-predicted now-tests, what its own arm
    served, and the service's level (`mail_decision` reads them day by day)."""
    return [row for kind, contender in _alert_contenders(champion)
            for row in registry.evaluations(model, kind, contender=contender)]


def alert_rows(rows: Iterable[EvaluationRow], champion: int) -> list[EvaluationRow]:
    """Of one now-test's rows, those `alert_history` would read back."""
    wanted = set(_alert_contenders(champion))
    return [row for row in rows if (row.kind, row.contender) in wanted]


def _alert_contenders(champion: int) -> list[tuple[str, str]]:
    return [(NOWTEST, version_contender(champion)), (SERVED, served_contender(champion, "champion")),
            (SERVING, SERVICE_CONTENDER)]


def mail_decision(history: Iterable[Evaluation], partition: str, alerting: bool, repeat_after_days: int,
                  today: Iterable[EvaluationRow] = ()) -> tuple[str | None, str | None]:
    """Whether today's now-test mails, from the champion's earlier verdict days: (kind, first day of the breach).

    'breach' when a breach starts; 'reminder' when it goes on and its last mail is `repeat_after_days` old (so
    a breach that lasts a month is mailed about four times, not thirty); 'recovery' when a mailed breach ends;
    None otherwise. Days between recorded now-tests do not interrupt a breach, and neither does a day that gives
    no verdict on what breached (no requests to measure a latency on, too few served ids): a breach ends only
    when what breached is measured again and passes, so a quiet day never reads as a recovery.
    """
    open_keys, start, last_mail = _breach_state(history, partition)
    if alerting:
        if start is None:
            return "breach", partition
        waited = last_mail is None or (dt.date.fromisoformat(partition) - dt.date.fromisoformat(last_mail)).days \
            >= repeat_after_days
        return ("reminder" if waited else None), start
    if start is not None and _still_open(open_keys, *_verdict_keys(today)[:3]):
        return None, start  # today says nothing about what breached: no recovery yet, and no news
    return ("recovery", start) if last_mail else (None, None)


def _breach_state(history: Iterable[Evaluation], before: str | None = None
                  ) -> tuple[set[tuple[str, str]], str | None, str | None]:
    """After the verdict days before `before` (all, when None): the (kind, metric) keys of the breach still open,
    its first day and the last day it was mailed (None, None without an open breach)."""
    by_day: dict[str, list[EvaluationRow]] = {}
    for row in history:
        if before is None or row.partition < before:
            by_day.setdefault(row.partition, []).append(row)
    open_keys: set[tuple[str, str]] = set()
    start = last_mail = None
    for day in sorted(by_day):
        failed, undecided, kinds, mailed = _verdict_keys(by_day[day])
        open_keys = _still_open(open_keys, failed, undecided, kinds)
        if not open_keys:
            start = last_mail = None
            continue
        start = start or day
        last_mail = day if mailed else last_mail
    return open_keys, start, last_mail


def open_breach(history: Iterable[Evaluation]) -> dict[str, Any] | None:
    """The breach still going on after the latest verdict day, as `mail_decision` follows it: {since, metrics
    (what breached, 'served <metric>' for served answers), mailed (the last day it was mailed, None if never)};
    None when nothing is open. An open breach is the model's open alert; it closes with a recovery."""
    keys, start, last_mail = _breach_state(history)
    if start is None:
        return None
    metrics = sorted({f"served {metric}" if kind == SERVED else metric for kind, metric in keys})
    return {"since": start, "metrics": metrics, "mailed": last_mail}


def _verdict_keys(rows: Iterable[EvaluationRow]) -> tuple[set, set, set[str], bool]:
    """A day's (kind, metric) keys that failed and that had a requirement but no verdict, its kinds, and whether
    it was mailed."""
    failed, undecided, kinds, mailed = set(), set(), set(), False
    for row in rows:
        details = row.details or {}
        kinds.add(row.kind)
        if row.passed is False:
            failed.add((row.kind, row.metric))
        elif row.passed is None and details.get("no_verdict"):
            undecided.add((row.kind, row.metric))
        mailed = mailed or bool(details.get("mailed"))
    return failed, undecided, kinds, mailed


def _still_open(open_keys: set, failed: set, undecided: set, kinds: set[str]) -> set:
    """The breach keys a day leaves open: those failing, and those it gave no verdict on (or measured nothing of)."""
    return failed | {key for key in open_keys if key in undecided or key[0] not in kinds}


def last_verdict(rows: Iterable[Evaluation]) -> dict[str, Any] | None:
    """The latest now-test day among verdict rows (`alert_history`): it passed if none of that day's rows failed.

    Returns None without rows, else {day, passed, failed_metrics, breaching_series, breaching_slices, run_id}; a
    metric breached on what was served is named 'served <metric>'; `breaching_series` maps each series of a panel
    that breached a `per_series` requirement to the metrics it breached, `breaching_slices` each slice that
    breached a `per_slice` one.
    """
    rows = list(rows)
    if not rows:
        return None
    day = max(r.partition for r in rows)
    latest = [r for r in rows if r.partition == day]
    failed = {f"served {r.metric}" if r.kind == SERVED else r.metric for r in latest if r.passed is False}
    groups: dict[str, dict[str, set[str]]] = {"series": {}, "slice": {}}
    for row in latest:
        for verdict in (row.details or {}).get("requirements", []) if row.passed is False else []:
            for kind, breaching in groups.items():
                if verdict.get(kind) is not None and not verdict["passed"]:
                    breaching.setdefault(verdict[kind], set()).add(verdict["metric"])
    return {"day": day, "passed": all(r.passed is not False for r in latest), "failed_metrics": sorted(failed),
            **{f"breaching_{'series' if kind == 'series' else 'slices'}":
               {name: sorted(metrics) for name, metrics in sorted(breaching.items())}
               for kind, breaching in groups.items()},
            "run_id": latest[-1].run_id}
