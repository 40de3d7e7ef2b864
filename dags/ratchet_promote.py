"""
### Promote a model version (manual, or a proposal a person approves)
Trigger with **model**, **version**, **reason** (required) and **dry_run**. The version must pass the gates:

1. it meets every back-test and gate requirement;
2. it beats the champion on the back-test (`promotion.min_improvement` on the mean, `min_months_won` months);
3. the model's golden regression cases pass;
4. `promotion.min_trial_days` days of now-tests in trial without a breach;
5. latency and size bounds hold.

The first champion of a model, and a rollback to a former champion, need gates 1, 3 and 5 only.
When all pass, the champion alias moves in one transaction with the recorded decision (who, why,
gates and evidence) and, if `promotion.ratchet.enabled`, the requirements tighten towards the new
champion. A failed gate fails the task (no retry) with each failed gate and its numbers; the
decision is recorded as *rejected* and nothing else changes. A dry run records the gate results only.

**Proposals.** When a candidate in trial passes every gate, the daily `ratchet_nowtest` opens a run
of this DAG with **proposal** on (run id `proposal__<model>__v<version>`). `gates` evaluates the gates
again and shows them in `approve`, a Required Action (Airflow's human-in-the-loop): **Approve**
runs `promote`, which promotes exactly as a manual trigger does, recorded as triggered by the person
who approved; **Reject** runs `reject`, which records a *rejected* decision with that person and
their comment and leaves the champion as it is. A rejection is a decision, not a failure: the run
ends green with `promote` skipped. If a gate no longer passes when the run starts, `gates` fails and
nobody is asked. A manual trigger (proposal off) skips `gates` and `approve`.

**Promote and re-baseline.** After a regime change, bounds the ratchet derived from the former champion's
months can fail every candidate (gate 1 then says "the data changed"). A candidate that passes every gate
but those is proposed too, and its approval offers a third answer, **Promote and re-baseline**: those bounds
are set again from the candidate's own back-test at `promotion.ratchet.false_alarm_rate` (as the ratchet
derives them), recorded as *rebaseline* by the person who chose it with the proposal as evidence, the
owners mailed (`deliver_alerts` sends it), and the candidate promoted, all in one transaction. **Approve**
on such a proposal runs the gates again and fails on those bounds, changing nothing. A manual trigger does
the same with **rebaseline** on.
"""
from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator
from airflow.sdk import Param, TriggerRule, dag, task

from ratchet.dagkit import START_DATE, TAGS, default_args, model_param
from ratchet.specs.catalog import configured_model_names

MODELS = configured_model_names()
APPROVE, REBASELINE, REJECT = "Approve", "Promote and re-baseline", "Reject"
ANSWER = "answer"  # XCom key of the person's answer


class ApproveOrReject(HITLBranchOperator):
    """A person's Approve or Reject, each running its own task, with the answer (who, which, comment) in XCom.

    Airflow's ApprovalOperator skips every task after it on Reject, so nothing could record the rejection;
    HITLBranchOperator runs the task of the answer but keeps no XCom of it (branching ends the task by an
    exception, before the return value is pushed), so the answer is pushed here first.
    """

    def __init__(self, **kwargs: Any) -> None:
        """HITLOperator takes an `execution_timeout` (every Ratchet task has one) as the deadline of the person's
        answer, and would fail an unanswered proposal at it; here it stays the bound of the execution (writing the
        request), and the wait for an answer has no deadline, as before."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Passing `execution_timeout` to HITLOperator")
            super().__init__(**kwargs)
        if kwargs.get("response_timeout") is None and self.response_timeout is not None:
            self.execution_timeout, self.response_timeout = self.response_timeout, None

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Validate the answer (HITLOperator), push it, run the task it maps to."""
        answer = HITLOperator.execute_complete(self, context=context, event=event)
        context["ti"].xcom_push(key=ANSWER, value=answer)
        return self.do_branch(context, [self.options_mapping[option] for option in answer["chosen_options"]])


def _answer(ti: Any) -> tuple[str, str | None, str] | None:
    """Who answered the approval, their comment and the option they chose, or None when nobody was asked (a
    manual trigger)."""
    answer = ti.xcom_pull(task_ids="approve", key=ANSWER)
    if not answer:
        return None
    comment = ((answer.get("params_input") or {}).get("comment") or "").strip()
    return answer["responded_by_user"]["name"], comment or None, answer["chosen_options"][0]


@dag(
    dag_id="ratchet_promote",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=4 + len(MODELS),  # each model has at most one proposal waiting for a person
    tags=TAGS,
    doc_md=__doc__,
    default_args=default_args(retries=2, retry_delay=dt.timedelta(seconds=30)),
    params={
        "model": model_param(MODELS),
        "version": Param(None, type="integer", minimum=1, title="Version",
                         description="The version number to promote (see the Ratchet page or `ratchet status`)"),
        "reason": Param(None, type="string", minLength=1, title="Reason",
                        description="Why this version should become the champion (stored with the decision)"),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Run and record the gates without moving the champion"),
        "rebaseline": Param(False, type="boolean", title="Re-baseline",
                            description="If gate 1 fails only on bounds the ratchet derived from a former champion's "
                                        "months, set them again from this version's own back-test, then promote "
                                        "(recorded as your decision; see ratchet_requirements)"),
        "proposal": Param(False, type="boolean", title="Proposal",
                          description="Ask a person to approve first (set by ratchet_nowtest when it proposes a "
                                      "candidate; leave off for a manual promotion)"),
    },
)
def ratchet_promote():
    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def proposal(params: dict | None = None) -> bool:
        """Only a proposal asks a person; a manual trigger goes straight to `promote`."""
        return bool(params["proposal"])

    @task(task_id="gates")
    def gates(params: dict | None = None) -> str:
        """The gates' verdicts as Markdown for the approval; fails (no retry) when one no longer passes."""
        from ratchet import pipeline

        return pipeline.review(params["model"], params["version"], REBASELINE)

    approve = ApproveOrReject(
        task_id="approve",
        subject="Promote {{ params.model }} v{{ params.version }}?",
        body="{{ params.reason }}\n\n{{ ti.xcom_pull(task_ids='gates') }}",
        options=[APPROVE, REBASELINE, REJECT],
        options_mapping={APPROVE: "promote", REBASELINE: "promote", REJECT: "reject"},
        params={"comment": Param("", type=["string", "null"], title="Comment",
                                 description="Why you approve or reject it (stored with the decision)")},
    )

    @task(task_id="promote", trigger_rule=TriggerRule.NONE_FAILED)
    def promote_version(params: dict | None = None, dag_run=None, run_id: str | None = None, ti=None) -> dict:
        """Gate failures and bad inputs fail at once (no retry); infrastructure errors retry."""
        from ratchet import pipeline

        answer = _answer(ti)
        triggered_by, comment, chosen = answer or (dag_run.triggering_user_name or str(dag_run.run_type), None, None)
        return pipeline.promote(params["model"], params["version"], reason=params["reason"],
                                triggered_by=triggered_by, dry_run=bool(params["dry_run"]), run_id=run_id,
                                comment=comment, rebaseline=bool(params["rebaseline"]) or chosen == REBASELINE)

    @task(task_id="reject")
    def reject(params: dict | None = None, run_id: str | None = None, ti=None) -> dict:
        """Record the person's rejection with their comment; the champion stays."""
        from ratchet import pipeline

        rejected_by, comment, _ = _answer(ti)
        return pipeline.decline(params["model"], params["version"], reason=params["reason"],
                                rejected_by=rejected_by, comment=comment, run_id=run_id)

    @task(task_id="deliver_alerts")
    def deliver_alerts() -> dict:
        """Mail what the promotion queued (a re-baseline's mail to the owners), and anything else still queued."""
        from ratchet import pipeline

        return pipeline.deliver_alerts([], [], what="promotion")

    promoted = promote_version()
    proposal() >> gates() >> approve >> [promoted, reject()]
    promoted >> deliver_alerts()


ratchet_promote()
