"""A small daily source (day, y, x, kind) and a way to store a frame as a table, for the data-source tests."""
from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
from sqlalchemy import text

SCHEMA = "datatest"


def sample_frame(n: int = 90) -> pd.DataFrame:
    """`n` days from 2024-01-01: a noisy target around 10, a numeric feature and a text category."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"day": pd.date_range("2024-01-01", periods=n), "y": rng.normal(size=n) + 10,
                         "x": rng.normal(size=n), "kind": rng.choice(["a", "b"], n)})


def write_table(registry, frame: pd.DataFrame) -> str:
    """Store `frame` as a new table in the Ratchet database; returns its qualified name."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    with registry.engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        frame.to_sql(name, conn, schema=SCHEMA, index=False)
    return f"{SCHEMA}.{name}"
