"""The floor of the serving stack, arm (d) of benchmarks/serving.py: a bare FastAPI app under uvicorn.

It answers GET /predict with the champion's fitted estimator (loaded once, through Ratchet's safe artifact
loader) predicting one prepared row: no database, no cache, no lags, no log, no token. Whatever Ratchet's
service spends above this per request is its own work.

    RATCHET_BENCH_ARTIFACT=estimator.skops RATCHET_BENCH_SHA256=<hex> RATCHET_BENCH_ROW=row.json \
        uvicorn serving_floor_app:app --app-dir benchmarks

row.json holds one row in pandas' split orientation ({"columns": [...], "data": [[...]]}).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
from fastapi import FastAPI

from ratchet.modeling import artifacts

ESTIMATOR = artifacts.load(Path(os.environ["RATCHET_BENCH_ARTIFACT"]).read_bytes(), os.environ["RATCHET_BENCH_SHA256"])
ROW = pd.DataFrame(**json.loads(Path(os.environ["RATCHET_BENCH_ROW"]).read_text()))

app = FastAPI(title="serving floor")


@app.get("/predict")
async def predict() -> dict[str, float]:
    """The estimator's prediction for the prepared row (on the event loop: no thread hop, the lowest cost)."""
    return {"prediction": float(ESTIMATOR.predict(ROW)[0])}
