"""Ratchet's DAG files loaded as `dag.test()` runs them in the tests, the rows their runs store, and a person
answering a run's approval."""
from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from conftest import PASSWORD, USER

DAGS = Path(__file__).resolve().parents[1] / "dags"


def load_dag(dag_id: str):
    """The DAG from its file, parsed without import errors, with retries off: a failing task must show
    at once, not after a retry delay inside dag.test()."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{dag_id}.py"))
    assert not bag.import_errors
    dag = bag.get_dag(dag_id)
    for task in dag.tasks:
        task.retries = 0
    return dag


def timed_run(dag_id: str, when, conf: dict | None = None):
    """`dag.test()` of the DAG at `when` with `conf`: (the run, its seconds)."""
    started = time.perf_counter()
    run = load_dag(dag_id).test(logical_date=when, run_conf=conf)
    return run, time.perf_counter() - started


def task_states(run) -> dict[tuple[str, str], str]:
    """(task id, rendered map index) -> state of every task instance of a run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == run.run_id,
                                                 TaskInstance.dag_id == run.dag_id).all()
        return {(ti.task_id, ti.rendered_map_index or str(ti.map_index)): ti.state for ti in tis}


def stored_rows(registry, model: str) -> dict[str, list]:
    """Every row the nightly DAGs store for `model` in a stable order, without what differs by nature: surrogate ids,
    timestamps, timings (also the prediction time per row the simplicity choice records, `untimed`), who started
    the run (a version's author) and its artifact's checksum (the archive records when it was written; the fitted
    model shows in the back-test's predictions). Two runs of the same nights on the same data must store these
    equal, however their tasks were scheduled, killed or retried."""
    from ratchet.registry.entities import BACKTEST

    def without(row, *fields):
        return dataclasses.replace(row, **dict.fromkeys(fields), details=untimed(row.details))

    versions = [without(v, "fit_seconds", "predict_latency_p95_ms", "trial_started_at", "created_at", "author",
                        "artifact_sha256")
                for v in registry.versions(model)]
    evaluations = sorted((without(e, "created_at") for e in registry.evaluations(model)),
                         key=lambda e: (e.kind, e.contender, e.partition, e.metric))
    backtested = [e for e in evaluations if e.kind == BACKTEST]
    return {
        "trials": [without(t, "fit_seconds", "created_at") for t in registry.trials(model)],
        "versions": versions,
        "run_versions": sorted((run, sorted(registry.run_versions(model, run).items()))
                               for run in {v.run_id for v in versions}),
        "evaluations": evaluations,
        "backtest_days": sorted(registry.backtest_days(model, {e.contender for e in backtested},
                                                       {e.partition for e in backtested}).items()),
        "alerts": [(a.dedupe_key, a.subject, a.recipients, a.status) for a in registry.alerts(model)],
        "golden_cases": sorted((c.case_key, c.name, c.expected, c.tolerance) for c in registry.golden_cases(model)),
    }


TIMED = {"predict_us", "text"}  # a model's measured microseconds per predicted row, and the line that quotes them


def untimed(details):
    """A trial's or version's details without the prediction timings the simplicity choice keeps (`TIMED`, at any
    depth): the choice itself, the parameter counts and the paired test's figures stay."""
    if isinstance(details, dict):
        return {key: untimed(value) for key, value in details.items() if key not in TIMED}
    if isinstance(details, list):
        return [untimed(value) for value in details]
    return details


def first_night(registry, today, trained_until, *, regression: bool = False) -> dict:
    """One night of the cycle for every configured model, as the conformance tests run it: `ratchet_retrain` on the
    rows before `trained_until` (a version is judged only on rows after its training data), `ratchet_backtest`, a
    first `ratchet_promote` of each model's best version by its back-test mean, `ratchet_nowtest` (and
    `ratchet_regression`). Returns the runs, their seconds, the specs and (best version, run state) per model."""
    import datetime as dt

    from ratchet.evaluation.backtest import backtest_summary
    from ratchet.specs import load_specs
    from ratchet.specs.model import lower_is_better

    runs, seconds = {}, {}
    runs["retrain"], seconds["retrain"] = timed_run("ratchet_retrain", trained_until + dt.timedelta(hours=1))
    runs["backtest"], seconds["backtest"] = timed_run("ratchet_backtest", today + dt.timedelta(hours=3))
    specs, promoted = load_specs(), {}
    for name, spec in specs.items():
        means = backtest_summary(registry, spec)["contenders"]
        sign = 1 if lower_is_better(spec.metric) else -1
        best = min((v.version for v in registry.versions(name)), key=lambda v: sign * means[f"v{v}"]["mean"])
        run, _ = timed_run("ratchet_promote", today + dt.timedelta(hours=5),
                           {"model": name, "version": best, "reason": "conformance: first champion", "dry_run": False})
        promoted[name] = (best, run.state)
    runs["nowtest"], seconds["nowtest"] = timed_run("ratchet_nowtest", today + dt.timedelta(hours=6))
    if regression:
        runs["regression"], seconds["regression"] = timed_run("ratchet_regression", today + dt.timedelta(hours=7))
    print("\nconformance run seconds:", {k: round(v, 1) for k, v in seconds.items()})
    return {"runs": runs, "seconds": seconds, "specs": specs, "promoted": promoted}


class Person(threading.Thread):
    """A person answering a DAG run's Human-in-the-loop task through the api-server's REST API, as the Required
    Actions page does: waits until the task is parked in `awaiting_input`, reads what it asks (`detail`),
    then sends `answer` and `params_input`. Runs beside `dag.test()`, which keeps the run alive until then.

    If the task never asks within `timeout` seconds, the person marks it failed (so `dag.test()` returns) and
    `error` says so.
    """

    def __init__(self, api: str, dag_id: str, run_id: str, *, answer: str, params_input: dict | None = None,
                 task_id: str = "approve", timeout: float = 120):
        super().__init__(daemon=True)
        self.api, self.answer, self.params_input, self.timeout = api, answer, params_input or {}, timeout
        self.task_url = f"{api}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
        self.detail: dict | None = None
        self.error: str | None = None

    def request(self, method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers, method=method),
                                    timeout=10) as response:
            return json.loads(response.read() or b"null")

    def run(self) -> None:
        token = self.request("POST", f"{self.api}/auth/token", {"username": USER, "password": PASSWORD})["access_token"]
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", self.task_url, token=token)["state"] == "awaiting_input":
                    break
            except urllib.error.HTTPError as exc:
                if exc.code != 404:  # 404: the run or its task instance is not created yet
                    raise
            time.sleep(0.5)
        else:
            self.error = f"nobody was asked within {self.timeout} s: {self.task_url}"
            self.request("PATCH", self.task_url, {"new_state": "failed"}, token=token)
            return
        self.detail = self.request("GET", f"{self.task_url}/-1/hitlDetails", token=token)
        self.request("PATCH", f"{self.task_url}/-1/hitlDetails",
                     {"chosen_options": [self.answer], "params_input": self.params_input}, token=token)


def run_answered(dag, person_args: dict, api: str, when, **test_args):
    """`dag.test()` for the logical date `when`, with a Person answering its Human-in-the-loop task through
    `api`; returns the DAG run and the Person (with what it was asked)."""
    person = Person(api, dag.dag_id, f"manual__{when.isoformat()}", **person_args)
    person.start()
    run = dag.test(logical_date=when, run_after=when, **test_args)
    person.join(timeout=30)
    assert person.error is None, person.error
    return run, person
