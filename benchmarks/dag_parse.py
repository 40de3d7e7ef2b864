"""Parse time of each DAG file, in a fresh interpreter, against the 50 ms target.

Each file is imported in its own subprocess after Airflow itself is loaded, so the figure is
what the dag-processor pays for our file, not for importing Airflow. Run: `make benchmarks`
or `.venv/bin/python benchmarks/dag_parse.py`. `airflow dags report` gives Airflow's own view.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"
TARGET_MS = 50.0
PROBE = r"""
import importlib.util, json, sys, time
import airflow.sdk  # Airflow is already loaded in the dag-processor
HEAVY = ("pandas", "sklearn", "sqlalchemy", "numpy", "scipy")
already = {m for m in HEAVY if m in sys.modules}
path = sys.argv[1]
best = float("inf")
for i in range(5):
    for name in [m for m in sys.modules if m.startswith("ratchet")]:
        del sys.modules[name]  # first parse of a file pays for ratchet's light modules too
    spec = importlib.util.spec_from_file_location(f"dagfile_{i}", path)
    module = importlib.util.module_from_spec(spec)
    start = time.perf_counter()
    spec.loader.exec_module(module)
    best = min(best, (time.perf_counter() - start) * 1000)
heavy = sorted(m for m in HEAVY if m in sys.modules and m not in already)
print(json.dumps({"ms": best, "heavy": heavy}))
"""


def main() -> int:
    print(f"{'DAG file':32} {'parse ms':>9} {'target ms':>10}  heavy modules the file adds")
    worst = 0.0
    for path in sorted(DAGS_DIR.glob("*.py")):
        out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        worst = max(worst, result["ms"])
        print(f"{path.name:32} {result['ms']:9.1f} {TARGET_MS:10.0f}  {', '.join(result['heavy']) or '-'}")
    print(f"worst: {worst:.1f} ms (target < {TARGET_MS:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
