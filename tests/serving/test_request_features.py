"""The service's plain-Python feature building (`serving.features.build`, through `FeatureReader`) against the
pandas path training uses (`sources.read_source` then `features.make_xy`), row by row, on the real tables and on a
table of every column type PostgreSQL hands back."""
from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest
from real_data import real_data_dir
from spec_factory import write_spec
from sqlalchemy import text

from ratchet import settings
from ratchet.exceptions import DataError, PredictError
from ratchet.modeling import features, sources
from ratchet.serving.rows import FeatureReader

WEATHER = ["dew_point", "temperature", "pressure", "wind_speed_max", "snow_hours", "rain_hours", "wind_direction"]
CLASSIFIER = [{"class": "sklearn.ensemble.HistGradientBoostingClassifier"}]
REAL_MODELS = {  # model -> (file, source): the conformance models' sources
    "peyton": ("peyton_manning_daily", {"target": "log_views", "target_lags": [1, 7]}),
    "pm25": ("beijing_pm25_daily", {"target": "pm25", "features": WEATHER, "categorical": ["wind_direction"],
                                    "target_lags": [1]}),
    "aqi": ("beijing_pm25_daily", {"target": "aqi_band", "features": WEATHER, "categorical": ["wind_direction"],
                                   "target_lags": [1, 2]}),
    "msft": ("msft_daily", {"target": "close", "features": [], "target_lags": [1, 2, 5], "lags_by": "rows"}),
    "melbourne": ("melbourne_temperature_daily", {"target": "min_temp", "target_lags": [1, 7]}),
}


@pytest.fixture(scope="module")
def real_tables(database_url):
    """The real tables as they are (no date shift: nothing here depends on today), once for the module."""
    engine = settings.make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA IF NOT EXISTS features_real"))
            for file in {file for file, _ in REAL_MODELS.values()}:
                pd.read_csv(real_data_dir() / f"{file}.csv", parse_dates=["day"]).to_sql(
                    file, conn, schema="features_real", index=False, if_exists="replace")
                conn.execute(text(f"CREATE INDEX ON features_real.{file} (day)"))  # as a live table has
    finally:
        engine.dispose()


def _spec(folder, name: str):
    file, source = REAL_MODELS[name]
    task = {"task": "classification", "estimators": CLASSIFIER} if name == "aqi" else {}
    return write_spec(folder, name=name, table=f"features_real.{file}", source={"time_column": "day", **source}, **task)


def _trained(spec) -> tuple[pd.DataFrame, list[str], dict[pd.Timestamp, int]]:
    """Training's input for the whole table, its model columns, and each trained day's position."""
    X, _, times = features.make_xy(spec, sources.read_source(spec))
    return X, [c for c in X.columns if features.is_model_input(c)], {t: i for i, t in enumerate(times)}


@pytest.mark.parametrize("name", list(REAL_MODELS))
@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_every_row_of_a_real_table_gets_the_features_training_built(registry, real_tables, tmp_path, name):
    """By id: each trained day's features equal training's row; a day with a target that training left out
    (its lags are unknown) is refused; a day without a target (never trained) is answered when its lags exist."""
    file, source = REAL_MODELS[name]
    spec = _spec(tmp_path, name)
    X, columns, trained = _trained(spec)
    raw = pd.read_sql(text(f"SELECT day, {source['target']} AS y FROM features_real.{file} ORDER BY day"),
                      registry.engine)
    reader = FeatureReader(os.environ["RATCHET_DATABASE_URL"])
    got, positions, counts = [], [], {"refused": 0, "untrained answered": 0}
    try:
        for day, target in zip(raw["day"], raw["y"], strict=True):
            at = day.to_pydatetime()
            if day in trained:
                row = reader.by_id(spec, at).X
                assert list(row.columns) == list(X.columns), name
                got.append(row[columns].iloc[0].tolist())
                positions.append(trained[day])
            elif pd.notna(target):
                with pytest.raises(PredictError, match="cannot compute target lags"):
                    reader.by_id(spec, at)
                counts["refused"] += 1
            else:
                try:
                    reader.by_id(spec, at)
                    counts["untrained answered"] += 1
                except PredictError:
                    counts["refused"] += 1
    finally:
        reader.dispose()
    assert len(got) == len(X), counts
    pd.testing.assert_frame_equal(pd.DataFrame(got, columns=columns), X.iloc[positions][columns].reset_index(drop=True),
                                  check_dtype=False, obj=name)
    assert counts["refused"] >= 1, counts  # the first day never has lags


@pytest.mark.parametrize("name", ["pm25", "aqi", "msft"])
def test_posted_rows_get_the_features_training_built(registry, real_tables, tmp_path, name):
    """The POST route's path: 40 consecutive source rows sent with their targets, in reverse order, get training's
    features, the first from the source's history and the later ones from earlier rows of the request."""
    file, source = REAL_MODELS[name]
    spec = _spec(tmp_path, name)
    X, columns, trained = _trained(spec)
    frame = sources.read_source(spec)
    window = frame[frame["day"].isin(list(trained))].iloc[-40:]
    records = [{**{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()},
                "day": row["day"].isoformat()} for row in window.to_dict("records")][::-1]
    reader = FeatureReader(os.environ["RATCHET_DATABASE_URL"])
    try:
        got, times, _ = reader.of_records(spec, records)
    finally:
        reader.dispose()
    assert times == [dt.datetime.fromisoformat(r["day"]) for r in records]
    expected = X.iloc[[trained[pd.Timestamp(t)] for t in times]][columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(got[columns], expected, check_dtype=False)


def _typed_table(registry) -> None:
    """A table with the column types PostgreSQL returns as Python objects pandas converts: a date key, a
    numeric (Decimal) and a boolean feature, a text category with empty values, an integer category with one empty
    value (so pandas reads the whole column as floats), NULL targets."""
    rng = np.random.default_rng(5)
    with registry.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS features_typed"))
        conn.execute(text("CREATE TABLE features_typed (day date, amount numeric(8, 2), flag boolean, colour text, "
                          "shop integer, y double precision)"))
        for i in range(60):
            conn.execute(text("INSERT INTO features_typed VALUES (:d, :a, :f, :c, :s, :y)"), {
                "d": dt.date(2024, 3, 1) + dt.timedelta(days=i + (i > 30)), "a": round(float(rng.normal(50, 9)), 2),
                "f": bool(i % 3), "c": None if i % 7 == 0 else ["red", "blue", "green"][i % 3],
                "s": None if i == 50 else i % 4,
                "y": None if i in (12, 40) else float(rng.normal())})


@pytest.mark.parametrize("lags_by", ["days", "rows"])
def test_every_column_type_is_converted_as_training_converts_it(registry, tmp_path, lags_by):
    _typed_table(registry)
    spec = write_spec(tmp_path, name="typed", table="features_typed", source={
        "time_column": "day", "target": "y", "features": ["amount", "flag", "colour", "shop"],
        "categorical": ["colour", "shop"], "target_lags": [1, 2], "lags_by": lags_by})
    X, columns, trained = _trained(spec)
    reader = FeatureReader(os.environ["RATCHET_DATABASE_URL"])
    try:
        for day, position in trained.items():
            got = reader.by_id(spec, day.to_pydatetime()).X
            pd.testing.assert_frame_equal(got[columns], X.iloc[[position]][columns].reset_index(drop=True),
                                          check_dtype=False)
        assert set(X["colour"]) == {"red", "blue", "green", "<missing>"}
        assert set(X["shop"]) == {"0", "1", "2", "3", "<missing>"}  # whole numbers as such, though read as floats
    finally:
        reader.dispose()


def test_the_source_checks_still_hold_on_a_window(registry, tmp_path):
    _typed_table(registry)
    reader = FeatureReader(os.environ["RATCHET_DATABASE_URL"])
    after_null = dt.datetime(2024, 3, 14)  # the day after the NULL target of 2024-03-13
    try:
        strict = write_spec(tmp_path, name="typed", table="features_typed", source={
            "time_column": "day", "target": "y", "features": ["amount"], "target_lags": [1],
            "missing_target": "error"})
        with pytest.raises(DataError, match="target 'y' has a missing value .* 2024-03-13 .*missing_target: error"):
            reader.by_id(strict, after_null)
        text_feature = write_spec(tmp_path, name="typed", table="features_typed", source={
            "time_column": "day", "target": "y", "features": ["colour"], "target_lags": [1]})
        with pytest.raises(DataError, match="feature 'colour' is not numeric"):
            reader.by_id(text_feature, after_null + dt.timedelta(days=2))
        with registry.engine.begin() as conn:
            conn.execute(text("INSERT INTO features_typed (day, amount, y) VALUES ('2024-03-20', 1, 1)"))
        with pytest.raises(DataError, match="duplicate timestamps in 'day', first 2024-03-20"):
            reader.by_id(strict, dt.datetime(2024, 3, 20))
    finally:
        reader.dispose()


def test_posted_rows_with_one_time_twice_are_refused_naming_both(registry, tmp_path):
    _typed_table(registry)
    spec = write_spec(tmp_path, name="typed", table="features_typed", source={
        "time_column": "day", "target": "y", "features": ["amount"], "target_lags": [1]})
    reader = FeatureReader(os.environ["RATCHET_DATABASE_URL"])
    rows = [{"day": "2024-04-10", "amount": 1.0}, {"day": "2024-04-11", "amount": 2.0},
            {"day": "2024-04-10T00:00:00Z", "amount": 3.0}]
    try:
        with pytest.raises(PredictError, match=r"rows\[2\]\.day: 2024-04-10T00:00:00 repeats rows\[0\]"):
            reader.of_records(spec, rows)
    finally:
        reader.dispose()
