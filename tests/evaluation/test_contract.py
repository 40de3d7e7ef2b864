"""A version keeps its own feature contract: a YAML edit changes what the next search trains, never how an existing
version predicts, back-tests, now-tests or runs its golden cases; a source that can no longer satisfy a contract
is refused naming the column and the version; the migration gives every existing version its contract."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from spec_factory import spec_data, write_spec
from sqlalchemy import create_engine, text

from ratchet.evaluation import backtest
from ratchet.exceptions import DataError, PredictError
from ratchet.lifecycle.monitoring import run_nowtest
from ratchet.lifecycle.retrain import retrain_model
from ratchet.registry import db
from ratchet.serving import predict

pytestmark = pytest.mark.slow  # real searches, real service processes
TABLE = "contract_source"
END = dt.datetime(2024, 7, 1)
TRAINED_UNTIL = END - dt.timedelta(days=14)  # the now-test window of END is after the training data
BEFORE = {"time_column": "ts", "features": ["x1", "x2"], "categorical": ["x2"], "target_lags": [1, 2, 5]}
AFTER = {"time_column": "ts", "features": ["x1"], "categorical": [], "target_lags": [1]}  # a routine experiment


def _source(registry) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    days = pd.date_range("2024-01-01", "2024-06-30", freq="D")
    frame = pd.DataFrame({"ts": days, "x1": rng.normal(size=len(days)), "x2": rng.choice(["a", "b"], len(days))})
    frame["y"] = 10 + 2 * frame["x1"] + (frame["x2"] == "a") * 3 + rng.normal(scale=0.2, size=len(days))
    with registry.engine.begin() as conn:
        frame.to_sql(TABLE, conn, index=False, if_exists="replace")
    return frame


@pytest.fixture
def promoted(registry, tmp_path, monkeypatch):
    """v1 trained (by the real retrain) under BEFORE and promoted; then the YAML is edited to AFTER."""
    _source(registry)
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    data = spec_data("contract", table=TABLE, source=BEFORE, search={"n_trials": 2, "candidates": 1},
                     backtest={"months": 2}, nowtest={"window_days": 14, "min_rows": 10},
                     requirements=[{"metric": "mae", "max": 100.0, "scope": "nowtest"}])
    before = write_spec(tmp_path, data)
    registry.sync_model(before)
    (version,) = retrain_model(registry, before, run_id="r1", logical_date=TRAINED_UNTIL)
    registry.record_promotion("contract", version, kind="initial", outcome="promoted", triggered_by="tests",
                              reason="fixture", gates=[], run_id="p1", expected_previous_version=None)
    after = write_spec(tmp_path, {**data, "source": {**data["source"], **AFTER}})
    registry.sync_model(after)
    return before, after, version


def test_the_version_records_its_contract_yaml_code_and_python(registry, promoted):
    before, _, version = promoted
    row = registry.version("contract", version)
    assert row.contract == {"time_column": "ts", "target": "y", "features": ["x1", "x2"], "categorical": ["x2"],
                            "target_lags": [1, 2, 5], "lags_by": "periods", "missing_target": "drop", "series": [],
                            "frequency": "day"}
    assert row.spec_snapshot["source"]["target_lags"] == [1, 2, 5]
    assert row.code_version.startswith("0.1.0") and row.python_version.count(".") == 2
    assert {"target_lag_5", "target_lag_2", "x2"} <= set(row.features)


def test_a_yaml_edit_leaves_the_champion_predicting_as_before(registry, promoted):
    before, after, _ = promoted
    rows = pd.DataFrame({"ts": ["2024-07-01", "2024-07-02"], "x1": [0.3, -0.4], "x2": ["a", "b"], "y": [11.0, None]})
    answered_before = predict.predict_frame(registry, before, rows)
    answered_after = predict.predict_frame(registry, after, rows)  # today's YAML has lags [1] and no x2
    pd.testing.assert_frame_equal(answered_after, answered_before)


def test_a_yaml_edit_leaves_the_champions_now_test_and_back_test_as_before(registry, promoted):
    before, after, version = promoted
    with_before = run_nowtest(registry, before, run_id="n1", data_interval_end=END, airflow_run_url="u", mail=False)
    with_after = run_nowtest(registry, after, run_id="n2", data_interval_end=END, airflow_run_url="u", mail=False)
    assert with_after.champion.scores == with_before.champion.scores and with_after.champion.scores["mae"] < 2

    months = ["2024-05", "2024-06"]
    backtest.run_partition(registry, before, months, run_id="b1", end=END)
    first = backtest.metric_table(registry, before)[f"v{version}"]
    with registry.engine.begin() as conn:  # forget the results, so the edited YAML's run computes them again
        conn.execute(text("DELETE FROM backtest_days"))
        conn.execute(text("DELETE FROM evaluations WHERE kind = 'backtest'"))
    assert backtest.run_partition(registry, after, months, run_id="b2", end=END)["computed"] > 0
    assert backtest.metric_table(registry, after)[f"v{version}"] == first


def test_new_candidates_train_on_the_edited_yaml(registry, promoted):
    _, after, version = promoted
    (newer,) = retrain_model(registry, after, run_id="r2", logical_date=END)
    assert newer != version
    row = registry.version("contract", newer)
    assert row.contract["target_lags"] == [1] and row.contract["features"] == ["x1"]
    assert "target_lag_5" not in row.features and "x2" not in row.features


def test_a_source_that_dropped_a_contract_column_is_refused_naming_column_and_version(registry, promoted):
    _, after, version = promoted
    with pytest.raises(PredictError, match=rf"input for model 'contract' v{version} lacks column\(s\) \['x2'\]"):
        predict.predict_frame(registry, after, pd.DataFrame({"ts": ["2024-07-01"], "x1": [0.3]}))  # today's YAML
    with registry.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {TABLE} DROP COLUMN x2"))
    rows = pd.DataFrame({"ts": ["2024-07-01"], "x1": [0.3], "x2": ["a"]})
    with pytest.raises(DataError, match=rf"model 'contract' v{version}: missing columns \['x2'\].*v{version} was "
                                        r"trained on them \(its feature contract\)"):
        predict.predict_frame(registry, after, rows)
    with pytest.raises(DataError, match=rf"model 'contract' v{version}: missing columns \['x2'\]"):
        run_nowtest(registry, after, run_id="n3", data_interval_end=END, airflow_run_url="u", mail=False)


def test_the_migration_gives_existing_versions_the_contract_of_their_models_stored_yaml(empty_database):
    db.upgrade(empty_database, "0005")
    spec = spec_data("old", source={"features": ["a", "kind"], "categorical": ["kind"], "target_lags": [7, 1, 7]})
    engine = create_engine(db.normalize_url(empty_database))
    try:
        with engine.begin() as conn:
            model_id = conn.execute(text("INSERT INTO models (name, task, owner, spec) VALUES ('old', 'regression', "
                                         "'t', CAST(:spec AS JSONB)) RETURNING id"),
                                    {"spec": json.dumps(spec)}).scalar_one()
            conn.execute(text(
                "INSERT INTO model_versions (model_id, version, estimator_class, hyperparameters, artifact, "
                "artifact_sha256, artifact_format, dataset_fingerprint, features, target, package_versions, author, "
                "fit_seconds, size_bytes) VALUES (:m, 1, 'sklearn.linear_model.Ridge', '{}', '\\x00', 'x', 'skops', "
                "'f', CAST(:features AS JSONB), 'y', '{}', 't', 0.1, 1)"),
                {"m": model_id, "features": '["a", "kind", "target_lag_1", "target_lag_7", "_baseline_lag_1", '
                                            '"_baseline_lag_7"]'})
        db.upgrade(empty_database)
        with engine.connect() as conn:
            contract, snapshot = conn.execute(text("SELECT contract, spec_snapshot FROM model_versions")).one()
        assert contract == {"time_column": "day", "target": "y", "features": ["a", "kind"], "categorical": ["kind"],
                            "target_lags": [1, 7], "lags_by": "days", "missing_target": "drop"}
        assert snapshot == spec
    finally:
        engine.dispose()
