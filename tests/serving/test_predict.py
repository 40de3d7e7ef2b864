"""`ratchet predict`: the champion stored in PostgreSQL predicts exactly as in now-tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.modeling import artifacts, features, months, sources
from ratchet.serving import predict
from ratchet.serving.routing import Estimators

TABLE = "predict_source"


@pytest.fixture
def champion(registry, tmp_path, monkeypatch):
    """A model over a real source table, with a fitted Ridge registered and made champion."""
    rng = np.random.default_rng(3)
    days = pd.date_range("2024-01-01", periods=120, freq="D")
    frame = pd.DataFrame({"ts": days, "x1": rng.normal(size=120), "x2": rng.normal(size=120)})
    frame["y"] = 10 + 3 * frame["x1"] - frame["x2"] + np.sin(np.arange(120) / 7) + rng.normal(scale=0.1, size=120)
    with registry.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
    frame.to_sql(TABLE, registry.engine, index=False)
    folder = tmp_path / "models"
    folder.mkdir()
    spec = write_spec(folder, name="demand", table=TABLE, owner="tests",
                      source={"time_column": "ts", "features": ["x1", "x2"], "target_lags": [1, 7]})
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(folder))
    registry.sync_model(spec)
    source = sources.read_source(spec)
    X, y, _ = features.make_xy(spec, source)
    estimator = features.make_estimator(spec, spec.estimators[0], {"alpha": 0.3}).fit(X, y)
    art = artifacts.dump(estimator)
    version = registry.register_version(
        "demand", run_id="r1", trial_index=None, estimator_class="sklearn.linear_model.Ridge",
        hyperparameters={"alpha": 0.3}, artifact=art.data, artifact_sha256=art.sha256, artifact_format=art.format,
        dataset_fingerprint=months.dataset_fingerprint(source), features=list(X.columns), target="y",
        package_versions={}, author="tests", fit_seconds=0.1, size_bytes=art.size_bytes,
        contract=spec.source.contract(["x1", "x2"], "day"), spec_snapshot=spec.raw)
    registry.record_promotion("demand", version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="fixture", gates=[], run_id="p", expected_previous_version=None)
    return spec, source, estimator


def test_rows_with_history_predict_like_the_now_test(registry, champion):
    spec, source, estimator = champion
    X, _, times = features.make_xy(spec, source)
    expected = estimator.predict(X.tail(10))
    result = predict.predict_frame(registry, spec, source.tail(10).astype({"ts": str}))  # as read from a CSV
    assert list(result.columns) == ["ts", "prediction", "version"]
    assert (result["version"] == 1).all()
    np.testing.assert_array_equal(result["prediction"].to_numpy(), expected)
    np.testing.assert_array_equal(result["ts"].to_numpy(), times.tail(10).to_numpy())


def test_next_day_without_target_uses_the_source_history(registry, champion):
    spec, source, estimator = champion
    new = pd.DataFrame({"ts": [source["ts"].iloc[-1] + pd.Timedelta(days=1)], "x1": [0.5], "x2": [-1.0]})
    X, _, _ = features.make_xy(spec, pd.concat([source, new.assign(y=0.0)], ignore_index=True))
    assert X.iloc[-1]["target_lag_1"] == source["y"].iloc[-1]
    result = predict.predict_frame(registry, spec, new)
    assert result["prediction"].tolist() == estimator.predict(X.tail(1)).tolist()


def test_known_days_sent_without_their_targets_take_them_from_the_source(registry, champion):
    """Two consecutive days the source holds, sent without a target: the second's lag 1 is the first's target,
    which the source has (as GET by id finds it)."""
    spec, source, estimator = champion
    X, _, _ = features.make_xy(spec, source)
    days = source.iloc[[-3, -2]].drop(columns=["y"])
    result = predict.predict_frame(registry, spec, days)
    np.testing.assert_array_equal(result["prediction"].to_numpy(), estimator.predict(X.iloc[[-3, -2]]))


def test_rows_whose_lags_are_unknown_and_missing_columns_are_refused(registry, champion):
    spec, source, _ = champion
    last = source["ts"].iloc[-1]
    two_days = pd.DataFrame({"ts": [last + pd.Timedelta(days=1), last + pd.Timedelta(days=2)],
                             "x1": [0.1, 0.2], "x2": [0.3, 0.4]})
    with pytest.raises(predict.PredictError, match=r"cannot compute target lags .* first at 2024-05-01 00:00:00: the "
                                                   r"target of 2024-04-30 \(lag 1\) is neither in the input nor"):
        predict.predict_frame(registry, spec, two_days)
    with pytest.raises(predict.PredictError, match=r"lacks column\(s\) \['x2'\]"):
        predict.predict_frame(registry, spec, two_days.drop(columns=["x2"]))


def test_the_champion_is_cached_by_version_and_checksum(registry, champion):
    estimators = Estimators(registry)  # the one estimator cache, shared with the REST service
    row, first = predict.champion_estimator(registry, estimators, "demand")
    _, again = predict.champion_estimator(registry, estimators, "demand")
    assert again is first and list(estimators._loaded) == [("demand", 1, row.artifact_sha256)]


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_cli_writes_predictions(registry, champion, tmp_path):
    spec, source, estimator = champion
    X, _, _ = features.make_xy(spec, source)
    source.tail(5).to_csv(tmp_path / "in.csv", index=False)
    cli = Path(sys.executable).parent / "ratchet"
    result = subprocess.run([str(cli), "predict", "demand", "--input", str(tmp_path / "in.csv"),
                             "--output", str(tmp_path / "out.csv")], capture_output=True, text=True,
                            env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(out["prediction"].to_numpy(), estimator.predict(X.tail(5)), rtol=1e-12)

    bad = subprocess.run([str(cli), "predict", "sales", "--input", str(tmp_path / "in.csv")],
                         capture_output=True, text=True, env=os.environ.copy())
    assert bad.returncode != 0 and "unknown model 'sales'; configured models: ['demand']" in bad.stderr
