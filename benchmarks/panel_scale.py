"""Panel scale: retrain and a 12-month back-test of 1,000 daily series x 3 years, and the bytes the back-test stores.

The panel (about 1.0 M rows, generated as in panel_backtest.py: a series starts up to 180 days in) is COPYed into
a PostgreSQL table; then, each in a process of its own so that its peak memory is its own,
`retrain.retrain_model` (a random search of 2 trials x 2 time-ordered CV folds over one
HistGradientBoostingRegressor, then the best refitted on all rows and registered) and `backtest.run_partition`
over the 12 months of 2025 (the version and three baselines: last value, seasonal naive, mean; every contender
refitted each month). Each step's wall time and peak resident memory (VmHWM of the step's process: its ru_maxrss
would include this process's memory at the fork; beside it the peak right after the imports, which every step
pays) are printed against the target: retrain + back-test within an hour on 2 cores.
Native pools run one thread, as each Ratchet task does on this machine (ratchet.threads): the DAG runs a model's
back-test as two month groups side by side, so one process on one core is the slow bound.

Then the back-test's storage: `sum(pg_column_size(t.*))` of the model's `backtest_days` rows, per prediction (a
row of the source predicted by one contender) and per column, and the table's size on disk (each case has its
own database); the same for 50 series x 1 year hourly (`frequency: hour`, lags [1, 24]; 13 months of rows, so
that the 12 back-test months have a month of history before them).

    .venv/bin/python benchmarks/panel_scale.py [--series N]     (target: retrain + back-test <= 3600 s)

Uses RATCHET_BENCH_DATABASE_URL (a server URL; scratch databases are created and dropped), else an
embedded PostgreSQL. `--step` is one step, run in its own process.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass

from panel_backtest import END, ESTIMATOR, FIRST, LAST, generate_panel, load, month_folds, panel_spec, write_table

SERIES = 1000
TARGET_SECONDS = 3600
THREADS = 1
SEARCH = {"n_trials": 2, "cv_folds": 2, "candidates": 1}
SEARCH_SPACE = {"learning_rate": {"loguniform": [0.03, 0.3]}, "max_leaf_nodes": {"randint": [15, 63]}}


@dataclass(frozen=True)
class Case:
    """A panel and its model."""

    name: str  # the model's and its table's
    label: str
    first: dt.date
    freq: str
    time_column: str
    frequency: str
    lags: list[int]
    baselines: list[str]
    stagger_days: int

    def spec(self):
        """The model: 2 trials of a HistGradientBoostingRegressor, one candidate, three baselines."""
        return panel_spec(self.name, self.name, frequency=self.frequency, time_column=self.time_column,
                          lags=self.lags, baselines=self.baselines, search=SEARCH,
                          estimators=[{**ESTIMATOR, "search_space": SEARCH_SPACE}])


CASES = {
    "day": Case("panel_day", "daily, 3 years", FIRST, "D", "day", "day", [1, 7, 28],
                ["last_value", "seasonal_naive_7", "mean"], 180),
    "hour": Case("panel_hour", "hourly, 1 year", dt.date(2024, 12, 1), "h", "hour", "hour", [1, 24],
                 ["last_value", "seasonal_naive_24", "mean"], 14),
}


def peak_mib() -> float:
    """This process's peak resident memory so far (Linux's VmHWM)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def step(name: str, url: str, case: str) -> dict:
    """Run one step in its own process: {seconds, peak_mib, imports_mib, ...}.

    Raises:
        SystemExit: the step failed (its traceback in the message).
    """
    done = subprocess.run([sys.executable, __file__, "--step", name, url, case], capture_output=True, text=True,
                          env={**os.environ, "RATCHET_DATABASE_URL": url})
    if done.returncode != 0:
        raise SystemExit(f"step {name} ({case}) failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_step(name: str, url: str, case: str) -> dict:
    """The step itself (in its own process), native pools at THREADS."""
    from threadpoolctl import threadpool_limits

    from ratchet.evaluation import backtest
    from ratchet.lifecycle import retrain
    from ratchet.registry import Registry

    spec, registry = CASES[case].spec(), Registry(url)
    imports = peak_mib()
    with threadpool_limits(THREADS):
        started = time.perf_counter()
        if name == "retrain":
            registry.sync_model(spec)
            result = {"versions": retrain.retrain_model(registry, spec, run_id="scale", logical_date=END)}
        else:
            result = backtest.run_partition(registry, spec, [str(m) for m in month_folds()], run_id="scale", end=END)
        seconds = time.perf_counter() - started
    registry.dispose()
    return {"seconds": seconds, "peak_mib": peak_mib(), "imports_mib": imports, **result}


def storage(url: str, model: str) -> dict:
    """What the model's back-test stored in backtest_days: rows, predictions, bytes (whole rows and per column),
    and the table's size on disk (the database holds this model alone)."""
    from sqlalchemy import create_engine, text

    from ratchet.registry import db

    engine = create_engine(db.normalize_url(url))
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT count(*), sum(cardinality(times)), sum(pg_column_size(t.*)), sum(pg_column_size(times)), "
            "sum(pg_column_size(series)), sum(pg_column_size(actual)), sum(pg_column_size(predicted)), "
            "pg_total_relation_size('backtest_days') FROM backtest_days t "
            "WHERE model_id = (SELECT id FROM models WHERE name = :name)"), {"name": model}).one()
    engine.dispose()
    return dict(zip(("rows", "predictions", "bytes", "times", "series", "actual", "predicted", "on_disk"), row,
                    strict=True))


def main() -> None:
    from scratch import scratch_databases

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=SERIES, help="daily series (default %(default)s)")
    sizes = {"day": parser.parse_args().series, "hour": 50}
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {THREADS} native thread(s) per "
          f"step, load {load()}", flush=True)
    figures = {}
    with scratch_databases(*CASES, migrated=tuple(CASES)) as urls:
        for key, case in CASES.items():
            frame = generate_panel(sizes[key], case.first, LAST, freq=case.freq, time_column=case.time_column,
                                   stagger_days=case.stagger_days)
            rows, started = len(frame), time.perf_counter()
            write_table(urls[key], case.name, frame)
            del frame
            figures[key] = {"rows": rows, "write": time.perf_counter() - started}
            for name in ("retrain", "backtest"):
                figures[key][name] = step(name, urls[key], key)
                print(f"{case.label}: {name} {figures[key][name]['seconds']:.1f} s; load {load()}", flush=True)
            figures[key]["storage"] = storage(urls[key], case.name)
    for key, case in CASES.items():
        f = figures[key]
        print(f"\n{sizes[key]:,} series, {case.label} ({case.first}..{LAST}, {case.frequency}): {f['rows']:,} rows, "
              f"lags {case.lags}; COPY into PostgreSQL {f['write']:.1f} s")
        print(f"{'step':58} {'wall s':>8} {'peak RSS MiB':>13} {'after imports':>14}")
        for name, what in (("retrain", "retrain_model (2 trials x 2 CV folds, refit, register)"),
                           ("backtest", f"run_partition, 12 months x {1 + len(case.baselines)} contenders")):
            s = f[name]
            print(f"{what:58} {s['seconds']:8.1f} {s['peak_mib']:13.0f} {s['imports_mib']:14.0f}")
        total = f["retrain"]["seconds"] + f["backtest"]["seconds"]
        verdict = "met" if total <= TARGET_SECONDS else "MISSED"
        print(f"{'retrain + back-test':58} {total:8.1f}   target <= {TARGET_SECONDS} s: {verdict}")
        s = f["storage"]
        per = {c: s[c] / s["predictions"] for c in ("bytes", "times", "series", "actual", "predicted")}
        print(f"backtest_days: {s['rows']} rows, {s['predictions']:,} predictions, {s['bytes'] / 2**20:.1f} MiB "
              f"(sum of pg_column_size), table on disk {s['on_disk'] / 2**20:.1f} MiB\n"
              f"  {per['bytes']:.1f} bytes per prediction: times {per['times']:.1f}, series {per['series']:.1f}, "
              f"actual {per['actual']:.1f}, predicted {per['predicted']:.1f}, the rest the row's other columns")
        print(f"  at that rate, a prediction of every row by each of the {s['rows'] // 12} contenders (the whole "
              f"history back-tested): about {per['bytes'] * f['rows'] * (s['rows'] // 12) / 2**20:.0f} MiB")


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    if sys.argv[1:2] == ["--step"]:
        print(json.dumps(run_step(*sys.argv[2:5])))
    else:
        main()
