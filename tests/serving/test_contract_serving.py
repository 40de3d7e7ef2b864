"""`ratchet serve` answers with the champion's own feature contract: a YAML edit after the promotion leaves every
answer as it was (by id and POST, the cache off), and a source that drops a column the champion reads makes
/healthz say which column and which version."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from serving_helpers import TOKEN, register_trained, replicas, wait_until
from spec_factory import spec_data, write_spec
from sqlalchemy import text

pytestmark = pytest.mark.slow  # real searches, real service processes
TABLE = "serving_contract.source"
DAYS = ["2024-06-01", "2024-06-15", "2024-06-30"]
ROWS = [{"ts": "2024-07-01", "x1": 0.5, "x2": "a", "y": 12.0}, {"ts": "2024-07-02", "x1": -1.0, "x2": "b"}]


def _table(registry) -> None:
    rng = np.random.default_rng(8)
    days = pd.date_range("2024-01-01", "2024-06-30", freq="D")
    frame = pd.DataFrame({"ts": days, "x1": rng.normal(size=len(days)), "x2": rng.choice(["a", "b"], len(days))})
    frame["y"] = 10 + 2 * frame["x1"] + (frame["x2"] == "a") * 3 + rng.normal(scale=0.2, size=len(days))
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS serving_contract"))
        frame.to_sql("source", conn, schema="serving_contract", index=False, if_exists="replace")


def _answers(replica) -> tuple[list[float], list[float]]:
    by_id = [replica.get("/v1/models/contract/predict", params={"at": day}) for day in DAYS]
    posted = replica.post("/v1/models/contract/predict", {"rows": ROWS})
    assert all(r.status_code == 200 for r in by_id) and posted.status_code == 200, [r.text for r in by_id]
    assert not any(r.json()["cached"] for r in by_id)  # built from the source each time: the cache is off
    return [r.json()["prediction"] for r in by_id], [p["prediction"] for p in posted.json()["predictions"]]


def test_a_yaml_edit_leaves_the_champions_answers_and_a_dropped_column_is_named(registry, tmp_path):
    _table(registry)
    data = spec_data("contract", table=TABLE, serving={"cache_ttl_seconds": 0},
                     source={"time_column": "ts", "features": ["x1", "x2"], "categorical": ["x2"],
                             "target_lags": [1, 2, 5]})
    spec = write_spec(tmp_path, data)
    registry.sync_model(spec)
    register_trained(registry, spec, {"alpha": 1.0}, promote=True)
    env = {"RATCHET_MODELS_DIR": str(tmp_path), "RATCHET_API_TOKEN": TOKEN, "RATCHET_PROBE_SECONDS": "60"}
    with replicas(1, env, tmp_path) as (replica,):
        wait_until(replica, lambda r: r.get("/healthz", token=None).json()["models"] == {
            "contract": "champion v1 loaded"})
        before = _answers(replica)

        edited = {**data, "source": {**data["source"], "features": ["x1"], "categorical": [], "target_lags": [1]},
                  "serving": {"cache_ttl_seconds": 0.0001}}
        write_spec(tmp_path, edited)  # a routine experiment; the service notices the folder changed
        wait_until(replica, lambda r: r.get("/v1/models/contract").json()["cache_ttl_seconds"] == 0.0001)
        described = replica.get("/v1/models/contract").json()["source"]
        assert described["target_lags"] == [1, 2, 5] and described["features"] == ["x1", "x2"]  # what v1 reads
        assert _answers(replica) == before

        with registry.engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {TABLE} DROP COLUMN x2"))
        health = replica.get("/healthz", token=None)
        assert health.status_code == 503
        problem = health.json()["models"]["contract"]
        assert problem.startswith("model 'contract': champion v1 cannot predict: model 'contract' v1: missing "
                                  "columns ['x2']"), problem
        assert "v1 was trained on them (its feature contract)" in problem
