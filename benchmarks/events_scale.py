"""Events at scale: 5 million generated events retrained and back-tested over 12 months, against the estimator's own
fit and predict on the same months.

The events (2 years, 2024-2025, timestamps to the second with ties; a unique `event_id` not in time order; 5
numeric features, one with empty values, and 3 text categorical ones; a binary label, about 7% positive, whose
dependence on the amount drifts through the second year) are COPYed into a PostgreSQL table with an index on the
time column. The model is an event model (`source: {frequency: event, id: event_id, categorical: [...]}`, task
classification, the `majority` baseline) with one HistGradientBoostingClassifier (PARAMS: fixed iterations, no
early stopping, so each fit does the same work whatever rows it gets) and a search of 2 trials x 2 CV folds over
its learning rate. Each step runs in a process of its own, so that its peak resident memory (VmHWM) is its own:

- read: `sources.read_source` of every row before END (what every step below starts with);
- retrain: `retrain.retrain_model` (the search, the best refitted on every row, registered);
- back-test: `backtest.run_partition` on the 12 months of 2025 split by `backtest.month_groups` into the DAG's two
  groups, run side by side as the DAG runs them (each on one native thread; `ratchet.threads`), every contender
  (the version and the baseline) refitted on the rows before each month;
- reference: the registered version's own pipeline (`features.make_estimator`, the same class and params) fitted on
  the rows before each month and predicting the month, in one warm process per month group (data in memory, one
  small fit done first), the two side by side like the back-test; nothing else is timed.

A back-test month's time is measured inside `run_partition` (between its per-month checkpoints; the read, checks
and features before the first month and the store after the last are shown apart, and in the "all of it" row), in
wall and in CPU seconds (the process's own: on a machine shared with other work, the like-for-like figure).
Targets: peak memory under 4 GiB, and a back-test month within 2x the reference's fit + predict of that month.

    .venv/bin/python benchmarks/events_scale.py [--events N]     (5,000,000 by default; 200,000 for a quick run)

Uses RATCHET_BENCH_DATABASE_URL (a server URL; a scratch database is created and dropped), else an embedded
PostgreSQL. `--step` is one step, run in its own process (e.g. under `python -m cProfile`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

EVENTS = 5_000_000
FIRST, END = dt.datetime(2024, 1, 1), dt.datetime(2026, 1, 1)  # 2 years of events; the back-test's months are 2025's
MONTHS = 12
GROUPS = 2  # the DAG's month groups of a back-test, run side by side
THREADS = 1  # native threads per step process: two processes side by side use the 2 cores
TABLE = "events"
PARAMS = {"max_iter": 50, "max_leaf_nodes": 31, "early_stopping": False, "random_state": 0}
ESTIMATOR = {"class": "sklearn.ensemble.HistGradientBoostingClassifier", "params": PARAMS,
             "search_space": {"learning_rate": {"loguniform": [0.05, 0.2]}}}
SEARCH = {"n_trials": 2, "cv_folds": 2, "candidates": 1}
NUMERIC = ("amount", "age", "score", "tenure_days", "items")
CATEGORIES = {"channel": ("web", "app", "branch", "partner"),
              "region": ("north", "south", "east", "west", "centre", "coast", "hills", "lakes", "capital",
                         "islands", "plains", "valley"),
              "device": ("desktop", "mobile", "tablet")}
TARGET_MEMORY_MIB = 4096
TARGET_RATIO = 2.0
CHUNK = 250_000  # rows per COPY


def generate_events(n: int, seed: int = 0) -> pd.DataFrame:
    """event_id, created_at (sorted, to the second, ties allowed), the features and `label`: the same rows for the
    same arguments."""
    rng = np.random.default_rng(seed)
    span = int((END - FIRST).total_seconds())
    created = np.datetime64(FIRST, "s") + np.sort(rng.integers(0, span, n)).astype("timedelta64[s]")
    amount = np.round(rng.lognormal(7, 1, n), 2)
    age = rng.integers(18, 80, n)
    score = np.round(rng.normal(600, 80, n), 1)
    tenure = rng.integers(0, 3650, n).astype(float)
    tenure[rng.random(n) < 0.03] = np.nan  # empty values: NULL in the table
    items = rng.poisson(3, n)
    codes = {name: rng.choice(len(values), n, p=_shares(len(values))) for name, values in CATEGORIES.items()}
    drift = np.clip((created - np.datetime64("2025-01-01", "s")) / np.timedelta64(365, "D"), 0, 1)
    logit = (-2.6 + 0.7 * (score - 600) / 80 - (0.3 + 0.5 * drift) * (np.log(amount) - 7) - 0.01 * (age - 45)
             + np.where(np.isnan(tenure), 0.5, -0.0002 * np.nan_to_num(tenure)) + 0.1 * (items - 3)
             + np.array([0.0, 0.3, -0.4, 0.8])[codes["channel"]]
             + np.linspace(-0.3, 0.3, len(CATEGORIES["region"]))[codes["region"]]
             + np.array([0.0, 0.2, -0.1])[codes["device"]])
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame({"event_id": rng.permutation(n) + 1_000_000, "created_at": created.astype("datetime64[ns]"),
                         "amount": amount, "age": age, "score": score, "tenure_days": tenure, "items": items,
                         **{name: np.asarray(values, dtype=object)[codes[name]]
                            for name, values in CATEGORIES.items()},
                         "label": label})


def _shares(k: int) -> np.ndarray:
    """Uneven category shares (the first value the most common)."""
    weights = 1 / np.arange(1, k + 1)
    return weights / weights.sum()


def write_table(url: str, frame: pd.DataFrame) -> None:
    """CREATE TABLE, COPY the rows in by chunks, index the time column and ANALYZE."""
    from ratchet.settings import make_engine

    engine = make_engine(url)
    conn = engine.raw_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {TABLE} (event_id bigint PRIMARY KEY, created_at timestamp NOT NULL, "
                        "amount double precision, age integer, score double precision, tenure_days double precision, "
                        "items integer, channel text, region text, device text, label integer)")
            for start in range(0, len(frame), CHUNK):
                cur.copy_expert(f"COPY {TABLE} FROM STDIN WITH (FORMAT csv)",
                                io.StringIO(frame.iloc[start:start + CHUNK].to_csv(index=False, header=False)))
            cur.execute(f"CREATE INDEX ON {TABLE} (created_at)")
            cur.execute(f"ANALYZE {TABLE}")
        conn.commit()
    finally:
        conn.close()
        engine.dispose()


def events_spec():
    """The event model: one HistGradientBoostingClassifier, 2 trials x 2 CV folds, one candidate, the majority
    baseline, 12 back-test months."""
    from ratchet.specs import parse_spec

    return parse_spec(Path(f"{TABLE}.yaml"), {
        "name": TABLE, "task": "classification", "baselines": ["majority"],
        "source": {"table": TABLE, "time_column": "created_at", "target": "label", "frequency": "event",
                   "id": "event_id", "categorical": list(CATEGORIES)},
        "estimators": [ESTIMATOR], "search": SEARCH, "backtest": {"months": MONTHS}})


def peak_mib() -> float:
    """This process's peak resident memory so far (Linux's VmHWM)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def load() -> str:
    """The 1, 5 and 15 minute load averages: what else the machine was doing."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def steps(url: str, *calls: tuple[str, list[str]]) -> list[dict]:
    """Run steps side by side, each in its own process: their {seconds, peak_mib, imports_mib, ...}.

    Raises:
        SystemExit: a step failed (its traceback in the message).
    """
    env = {**os.environ, "RATCHET_DATABASE_URL": url}
    running = [(name, subprocess.Popen([sys.executable, __file__, "--step", name, url, *months],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
               for name, months in calls]
    results = []
    for name, process in running:
        out, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"step {name} failed:\n{err[-4000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _warm(spec, X: pd.DataFrame, y: pd.Series) -> None:
    """One small fit and predict of the model's pipeline: the process is warm before anything is timed."""
    from ratchet.modeling.features import make_estimator

    estimator = spec.estimators[0]
    small = slice(0, min(len(X), 5000))
    make_estimator(spec, estimator, {}).fit(X.iloc[small], y.iloc[small]).predict(X.iloc[small])


def run_step(name: str, url: str, months: list[str]) -> dict:
    """The step itself (in its own process), native pools at THREADS."""
    from threadpoolctl import threadpool_limits

    from ratchet.evaluation import backtest
    from ratchet.lifecycle import retrain
    from ratchet.modeling import sources
    from ratchet.modeling.features import make_estimator
    from ratchet.modeling.months import month_bounds
    from ratchet.registry import Registry

    spec, registry = events_spec(), Registry(url)
    imports = peak_mib()
    result: dict = {}
    with threadpool_limits(THREADS):
        if name == "read":
            started, cpu = time.perf_counter(), time.process_time()
            rows = len(sources.read_source(spec, end=END))
            result = {"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, "rows": rows}
        elif name == "retrain":
            registry.sync_model(spec)
            started, cpu = time.perf_counter(), time.process_time()
            result = {"versions": retrain.retrain_model(registry, spec, run_id="scale", logical_date=END)}
            result["seconds"], result["cpu"] = time.perf_counter() - started, time.process_time() - cpu
        elif name == "backtest":
            small = sources.read_source(spec, end=FIRST + dt.timedelta(days=7))
            _warm(spec, small[list(NUMERIC) + list(CATEGORIES)], small["label"])
            del small
            marks: list[tuple[float, float]] = []  # (wall, CPU) at the loop's start and each month's end

            def mark() -> None:
                marks.append((time.perf_counter(), time.process_time()))
            contenders, checkpoint = backtest.contenders, backtest.checkpoint
            # the month loop starts once the contenders are known and each month ends at its checkpoint
            backtest.contenders = lambda *a, **k: (mark(), contenders(*a, **k))[1]
            backtest.checkpoint = lambda point: (mark(), checkpoint(point))[1]
            started, cpu = time.perf_counter(), time.process_time()
            counts = backtest.run_partition(registry, spec, months, run_id="scale", end=END)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            wall, used = np.diff([m[0] for m in marks]), np.diff([m[1] for m in marks])
            result = {"seconds": seconds, "cpu": cpu, "prepare": marks[0][0] - started,
                      "store": started + seconds - marks[-1][0], **counts,
                      "months": dict(zip(months, wall.tolist(), strict=True)),
                      "months_cpu": dict(zip(months, used.tolist(), strict=True))}
        else:  # reference
            frame = sources.read_source(spec, end=END)
            X, y = frame[list(NUMERIC) + list(CATEGORIES)], frame["label"]
            times = frame["created_at"].to_numpy()
            del frame
            version = backtest.contenders(registry, spec)[0]
            _warm(spec, X, y)
            result = {"months": {}, "months_cpu": {}, "train_rows": {}, "test_rows": {}}
            for month in months:
                start, stop = np.searchsorted(times, [np.datetime64(b) for b in month_bounds(month)])
                began, cpu = time.perf_counter(), time.process_time()
                model = make_estimator(spec, spec.estimator(version.estimator_class), version.params or {})
                model.fit(X.iloc[:start], y.iloc[:start]).predict(X.iloc[start:stop])
                result["months"][month] = time.perf_counter() - began
                result["months_cpu"][month] = time.process_time() - cpu
                result["train_rows"][month], result["test_rows"][month] = int(start), int(stop - start)
            result["seconds"], result["cpu"] = sum(result["months"].values()), sum(result["months_cpu"].values())
    registry.dispose()
    return {**result, "peak_mib": peak_mib(), "imports_mib": imports}


def main() -> None:
    from scratch import scratch_databases

    from ratchet.evaluation import backtest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS, help="events generated (default %(default)s)")
    n = parser.parse_args().events
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {THREADS} native thread(s) per "
          f"step process, load {load()}", flush=True)
    spec = events_spec()
    with scratch_databases(TABLE, migrated=(TABLE,)) as urls:
        url = urls[TABLE]
        frame = generate_events(n)
        positives = float(frame["label"].mean())
        groups = [g for g in backtest.month_groups(spec, frame, end=END, groups=GROUPS) if g]
        started = time.perf_counter()
        write_table(url, frame)
        write = time.perf_counter() - started
        del frame
        print(f"{n:,} events COPYed in {write:.1f} s; load {load()}", flush=True)
        read, = steps(url, ("read", []))
        print(f"read {read['seconds']:.1f} s, peak {read['peak_mib']:.0f} MiB; load {load()}", flush=True)
        retrain, = steps(url, ("retrain", []))
        print(f"retrain {retrain['seconds']:.1f} s, peak {retrain['peak_mib']:.0f} MiB; load {load()}", flush=True)
        started = time.perf_counter()
        back = steps(url, *(("backtest", g) for g in groups))
        back_wall = time.perf_counter() - started
        print(f"back-test {back_wall:.1f} s, peaks {[round(b['peak_mib']) for b in back]} MiB; load {load()}",
              flush=True)
        started = time.perf_counter()
        reference = steps(url, *(("reference", g) for g in groups))
        reference_wall = time.perf_counter() - started
        print(f"reference {reference_wall:.1f} s; load {load()}", flush=True)

    report(n, positives, write, groups, read, retrain, back, back_wall, reference, reference_wall)


def report(n: int, positives: float, write: float, groups: list[list[str]], read: dict, retrain: dict,
           back: list[dict], back_wall: float, reference: list[dict], reference_wall: float) -> None:
    """The tables: each step's time and peak memory, then each month's back-test against the reference."""
    print(f"\n{n:,} events {FIRST:%Y-%m-%d}..{END - dt.timedelta(days=1):%Y-%m-%d} ({positives:.1%} positive), "
          f"{len(NUMERIC)} numeric + {len(CATEGORIES)} categorical features "
          f"({sum(len(v) for v in CATEGORIES.values())} one-hot columns); COPY into PostgreSQL {write:.1f} s; "
          f"HistGradientBoostingClassifier {PARAMS}")
    print(f"{'step':62} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13} {'after imports':>14}")
    rows = [(f"read_source ({read['rows']:,} rows)", read),
            (f"retrain_model ({SEARCH['n_trials']} trials x {SEARCH['cv_folds']} CV folds, refit, register)", retrain)]
    rows += [(f"run_partition {g[0]}..{g[-1]} (version + majority)", b) for g, b in zip(groups, back, strict=True)]
    rows += [(f"reference {g[0]}..{g[-1]} (make_estimator fit + predict)", r)
             for g, r in zip(groups, reference, strict=True)]
    for what, s in rows:
        print(f"{what:62} {s['seconds']:8.1f} {s['cpu']:8.1f} {s['peak_mib']:13.0f} {s['imports_mib']:14.0f}")
    side = sum(b["peak_mib"] for b in back)
    for what, wall, steps_ in (("back-test", back_wall, back), ("reference", reference_wall, reference)):
        print(f"{what + ', ' + str(len(groups)) + ' groups side by side (wall; sum of peaks)':62} {wall:8.1f} "
              f"{'':8} {sum(s['peak_mib'] for s in steps_):13.0f}")
    largest = max(s["peak_mib"] for _, s in rows[:-len(groups)])
    print(f"peak memory of a Ratchet step: {largest:.0f} MiB; target < {TARGET_MEMORY_MIB} MiB: "
          f"{'met' if largest < TARGET_MEMORY_MIB else 'MISSED'} (the back-test's groups side by side: {side:.0f} MiB)")

    print(f"\n{'month':8} {'train rows':>10} {'month rows':>10} {'back-test':>10} {'reference':>10} {'ratio':>6} "
          f"{'back-test':>10} {'reference':>10} {'ratio':>6}")
    print(f"{'':30} {'wall s':>10} {'wall s':>10} {'':6} {'CPU s':>10} {'CPU s':>10}")
    ratios = {"wall": [], "cpu": []}
    for b, r in zip(back, reference, strict=True):
        for month, seconds in b["months"].items():
            used, ref, ref_used = b["months_cpu"][month], r["months"][month], r["months_cpu"][month]
            ratios["wall"].append(seconds / ref)
            ratios["cpu"].append(used / ref_used)
            print(f"{month:8} {r['train_rows'][month]:10,} {r['test_rows'][month]:10,} {seconds:10.2f} {ref:10.2f} "
                  f"{seconds / ref:6.2f} {used:10.2f} {ref_used:10.2f} {used / ref_used:6.2f}")
    totals = {key: (sum(sum(b[key].values()) for b in back), sum(sum(r[key].values()) for r in reference))
              for key in ("months", "months_cpu")}
    whole = (sum(b["seconds"] for b in back), sum(b["cpu"] for b in back))
    (bw, rw), (bc, rc) = totals["months"], totals["months_cpu"]
    print(f"{'12 months':30} {bw:10.2f} {rw:10.2f} {bw / rw:6.2f} {bc:10.2f} {rc:10.2f} {bc / rc:6.2f}")
    print(f"{'run_partition, all of it':30} {whole[0]:10.2f} {rw:10.2f} {whole[0] / rw:6.2f} {whole[1]:10.2f} "
          f"{rc:10.2f} {whole[1] / rc:6.2f}")
    for g, b in zip(groups, back, strict=True):
        print(f"  run_partition {g[0]}..{g[-1]}: {b['prepare']:.1f} s before the first month (read, checks, "
              f"features), {b['store']:.1f} s after the last (store); {b['computed']} computed, {b['skipped']} skipped")
    for key, what in (("wall", "wall"), ("cpu", "CPU")):
        worst = max(ratios[key])
        amortised = (whole[0] / rw) if key == "wall" else (whole[1] / rc)
        print(f"a back-test month within {TARGET_RATIO}x the reference ({what}): worst month {worst:.2f}x "
              f"{'met' if worst <= TARGET_RATIO else 'MISSED'}; run_partition / reference (read and store included) "
              f"{amortised:.2f}x {'met' if amortised <= TARGET_RATIO else 'MISSED'}")


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    if sys.argv[1:2] == ["--step"]:
        print(json.dumps(run_step(sys.argv[2], sys.argv[3], sys.argv[4:])))
    else:
        main()
