"""`ratchet demo --nights N`: the demo's nights after the alert, through real DAG runs, to a recovery.

Each night is the daily `ratchet_nowtest` run of that date (the demo data holds every day up to yesterday, so a
night reads only what it would have had). What a night starts runs as Airflow runs it: the champion's breach
starts `ratchet_retrain` for the model, whose asset event starts `ratchet_backtest`; a candidate that passes
every gate is proposed and its `ratchet_promote` run waits in Required Actions. There the demo answers as a
person would ("Approve", or "Promote and re-baseline" when only bounds the ratchet derived from the former
champion's months hold it), unless `approve=False` leaves the answer to a person. The nightly retrain does not
run in a replay: the candidates are those the breach started.

The DAG runs go through an `Airflow` (`AirflowRest`: the REST API of the running stack, what `make run` and
the CLI use; the tests drive the same replay with `dag.test()`). Each night's line of the timeline says what
happened: the champion's verdict, the mails, the candidates in trial, a proposal and the answer.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from ratchet.exceptions import RatchetError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

NIGHT_HOUR = 6  # ratchet_nowtest's schedule: 06:00 UTC
NOWTEST_DAG, PROMOTE_DAG = "ratchet_nowtest", "ratchet_promote"
APPROVE, REBASELINE = "Approve", "Promote and re-baseline"  # ratchet_promote's answers (dags/ratchet_promote.py)
DEMO_COMMENT = "approved by `ratchet demo` (the demo's stand-in for a person)"


class ReplayError(RatchetError):
    """The replay cannot go on: a night's run failed, or there is nothing to replay."""


class Airflow(Protocol):
    """What a replay asks of Airflow."""

    def run(self, dag_id: str, when: dt.datetime, conf: dict[str, Any] | None = None) -> str:
        """Run `dag_id` for the logical date `when` to its end; its final state."""

    def settle(self) -> None:
        """Wait until the runs the last run started have finished (a run waiting for a person excepted)."""

    def answer(self, run_id: str, option: str, comment: str) -> str:
        """Answer the approval of the ratchet_promote run `run_id` as a person would; the run's final state."""


@dataclass
class Night:
    """One replayed night: its date and what happened."""

    night: dt.date
    state: str
    champion: int | None
    verdict: str  # the champion's now-test: 'passed', 'FAILED: ...', 'no verdict: ...'
    mailed: list[str] = field(default_factory=list)  # subjects of the mails this night queued
    trial: dict[str, str] = field(default_factory=dict)  # candidate -> its verdict this night
    proposal: int | None = None
    answer: str | None = None
    promoted: int | None = None
    at: str = ""  # wall clock when the night ended

    def line(self) -> str:
        """The night as one line of the timeline."""
        parts = [f"{self.night} ({self.at}) {NOWTEST_DAG} {self.state}: champion v{self.champion} {self.verdict}"]
        parts += [f"mail '{subject}'" for subject in self.mailed]
        if self.trial:
            parts.append("in trial " + ", ".join(f"{c} {v}" for c, v in self.trial.items()))
        if self.proposal:
            parts.append(f"proposal v{self.proposal} in Required Actions"
                         + (f", answered '{self.answer}'" if self.answer else ", waiting for a person"))
        if self.promoted:
            parts.append(f"champion is now v{self.promoted}")
        return "; ".join(parts)


def replay(airflow: Airflow, registry: Registry, spec: ModelSpec, *, start: dt.date, nights: int, last: dt.date,
           approve: bool = True, say: Callable[[str], None] = print) -> list[Night]:
    """Replay `nights` nights from `start`, the last one on `last` at the latest (the data's last night).
    A night replayed before runs again and reaches the same state.

    Raises:
        ReplayError: nothing to replay, or a night's now-test run failed.
    """
    from ratchet.lifecycle.promotion import Gate, open_proposal, proposal_run_id, rebaseline_only

    if nights < 1:
        raise ReplayError(f"--nights must be at least 1, got {nights}")
    if start > last:
        raise ReplayError(f"nothing to replay: the next night {start} is after {last}, the demo data's last night")
    timeline = []
    for offset in range(min(nights, (last - start).days + 1)):
        night = start + dt.timedelta(days=offset)
        sent = {a.id for a in registry.alerts(spec.name)}
        state = airflow.run(NOWTEST_DAG, dt.datetime.combine(night, dt.time(NIGHT_HOUR), tzinfo=dt.UTC))
        if state != "success":
            raise ReplayError(f"the {NOWTEST_DAG} run of {night} ended {state}: see it in the Airflow UI")
        airflow.settle()
        entry = _night(registry, spec, night, state, sent)
        pending = open_proposal(registry.promotions(spec.name))
        if pending is not None:
            entry.proposal = pending.version
            if approve:
                gates = [Gate(g["name"], g["passed"], g["summary"], g.get("details", {})) for g in pending.gates]
                entry.answer = REBASELINE if rebaseline_only(gates) else APPROVE
                done = airflow.answer(proposal_run_id(spec.name, pending.version), entry.answer, DEMO_COMMENT)
                if done != "success":
                    raise ReplayError(f"the approved {PROMOTE_DAG} run of v{pending.version} ended {done}")
                champion = registry.champion(spec.name)
                entry.promoted = champion.version if champion else None
        entry.at = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
        timeline.append(entry)
        say(entry.line())
    return timeline


def _night(registry: Registry, spec: ModelSpec, night: dt.date, state: str, sent: set[int]) -> Night:
    day = str(night - dt.timedelta(days=1))
    champion = registry.champion(spec.name)
    rows = [e for e in registry.evaluations(spec.name, "nowtest") if e.partition == day and e.version is not None]
    verdicts: dict[str, str] = {}
    for row in rows:
        details = row.details or {}
        if details.get("no_verdict"):
            verdicts.setdefault(row.contender, f"no verdict ({details['no_verdict']})")
        elif row.passed is False:
            verdicts[row.contender] = f"FAILED {row.metric} {row.value:.4g}"
        else:
            verdicts.setdefault(row.contender, "passed")
    own = champion.contender if champion else None
    mailed = [a.subject for a in registry.alerts(spec.name) if a.id not in sent]
    return Night(night, state, champion.version if champion else None, verdicts.get(own, "not tested"), mailed,
                 {c: v for c, v in verdicts.items() if c != own})


class AirflowRest:
    """The REST API of a running Airflow (its scheduler runs what a run starts), as a user logged in."""

    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 1800, every: float = 2.0):
        self.base, self.timeout, self.every = base_url.rstrip("/"), timeout, every
        self.token = self._call("POST", "/auth/token", {"username": username, "password": password})["access_token"]

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, data=None if body is None else json.dumps(body).encode(),
                                         headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def _wait(self, what: str, done: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            value = done()
            if value:
                return value
            time.sleep(self.every)
        raise ReplayError(f"{what} did not finish within {self.timeout:.0f} s; see the Airflow UI")

    def _state(self, dag_id: str, run_id: str) -> str | None:
        state = self._call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")["state"]
        return state if state in ("success", "failed") else None

    def run(self, dag_id: str, when: dt.datetime, conf: dict[str, Any] | None = None) -> str:
        """Trigger `dag_id` for `when` (run id `demo__<when>`; a second replay waits for the first's) to its end."""
        run_id = f"demo__{when.isoformat()}"
        try:
            self._call("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                       {"dag_run_id": run_id, "logical_date": when.isoformat(), "conf": conf or {}})
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # 409: this night ran before (a second replay): wait for it instead
                raise ReplayError(f"triggering {dag_id} for {when}: HTTP {exc.code} {exc.read()[:300]!r}") from None
        return self._wait(f"{dag_id} {run_id}", lambda: self._state(dag_id, run_id))

    def _busy(self) -> list[str]:
        runs = self._call("GET", "/api/v2/dags/~/dagRuns?state=queued&state=running&limit=100")["dag_runs"]
        busy = []
        for run in runs:
            if run["dag_id"] == PROMOTE_DAG and self._approval(run["dag_run_id"]) == "awaiting_input":
                continue  # waits for a person
            busy.append(f"{run['dag_id']} {run['dag_run_id']}")
        return busy

    def _approval(self, run_id: str) -> str | None:
        try:
            return self._call("GET", f"/api/v2/dags/{PROMOTE_DAG}/dagRuns/{quote(run_id, safe='')}"
                                     "/taskInstances/approve")["state"]
        except urllib.error.HTTPError:
            return None

    def settle(self, quiet: float = 15.0) -> None:
        """Until nothing but a run waiting for a person has run for `quiet` seconds (a back-test starts from the
        retrain's asset event a moment after the retrain ends)."""
        calm_since = [None]

        def calm() -> bool:
            if self._busy():
                calm_since[0] = None
                return False
            calm_since[0] = calm_since[0] or time.monotonic()
            return time.monotonic() - calm_since[0] >= quiet

        self._wait("the runs the night started", calm)

    def answer(self, run_id: str, option: str, comment: str) -> str:
        """Answer the approval once it waits, as the Required Actions page does; the run's final state."""
        task = f"/api/v2/dags/{PROMOTE_DAG}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve"
        self._wait(f"the approval of {run_id}", lambda: self._approval(run_id) == "awaiting_input")
        self._call("PATCH", f"{task}/-1/hitlDetails",
                   {"chosen_options": [option], "params_input": {"comment": comment}})
        return self._wait(f"{PROMOTE_DAG} {run_id}", lambda: self._state(PROMOTE_DAG, run_id))
