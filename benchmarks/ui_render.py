"""Server-side render time of the Ratchet pages with long histories, against the 1 s target.

Seeds 10 models × 200 versions × 120 months of back-test evaluations (plus 365 now-test days per
champion) into a scratch database, then times each page through the real FastAPI app (no network).

    .venv/bin/python benchmarks/ui_render.py

Uses RATCHET_BENCH_DATABASE_URL (a server URL; a scratch database is created and dropped), else an
embedded PostgreSQL.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

MODELS, VERSIONS, MONTHS = 10, 200, 120
TARGET_SECONDS = 1.0


def main() -> None:
    warnings.filterwarnings("ignore")
    from fastapi.testclient import TestClient
    from scratch import scratch_databases
    from ui_seed import seed_history

    from ratchet.registry import Registry
    from ratchet.ui.app import create_app

    models_dir = Path(tempfile.mkdtemp(prefix="ratchet-bench-models-"))
    with scratch_databases("ui", migrated=("ui",)) as urls:
        os.environ.update(RATCHET_DATABASE_URL=urls["ui"], RATCHET_MODELS_DIR=str(models_dir))
        registry = Registry(urls["ui"])
        started = time.perf_counter()
        for i in range(MODELS):
            seed_history(registry, models_dir, f"model_{i:02d}", versions=VERSIONS, months=MONTHS,
                         nowtest_days=365, seed=i)
        registry.dispose()
        seconds = time.perf_counter() - started
        print(f"seeded {MODELS} models × {VERSIONS} versions × {MONTHS} months in {seconds:.0f} s")
        client = TestClient(create_app())
        print(f"{'page':34} {'best of 3 (s)':>14} {'target (s)':>11}")
        for path in ("/", "/models/model_00", "/models/model_09"):
            timings = []
            for _ in range(3):
                begin = time.perf_counter()
                response = client.get(path)
                timings.append(time.perf_counter() - begin)
            status = "" if response.status_code == 200 else f"  (HTTP {response.status_code})"
            print(f"{path:34} {min(timings):14.3f} {TARGET_SECONDS:11.1f}{status}")


if __name__ == "__main__":
    main()
