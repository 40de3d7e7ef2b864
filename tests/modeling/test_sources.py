"""Data sources against real PostgreSQL (`ratchet.modeling.sources`): reading tables and queries, precise errors."""
from __future__ import annotations

import datetime as dt
import functools

import pandas as pd
import pytest
from source_helpers import sample_frame, write_table
from spec_factory import build_spec

from ratchet.exceptions import DataError
from ratchet.modeling import sources


@pytest.fixture
def table(registry):
    return functools.partial(write_table, registry)


def test_reads_a_table_sorted_and_only_before_end(table):
    frame = sample_frame().sample(frac=1, random_state=1)  # stored in random order; a table is sorted in SQL
    spec = build_spec(name="m", table=table(frame), source={"categorical": ["kind"]})
    rows = sources.read_source(spec, end=dt.datetime(2024, 2, 1, tzinfo=dt.UTC))
    assert len(rows) == 31 and rows["day"].is_monotonic_increasing and rows["day"].max() == pd.Timestamp("2024-01-31")


def test_reads_a_query(table):
    name = table(sample_frame())
    rows = sources.read_source(build_spec(name="m", query=f"SELECT day, y, x FROM {name} WHERE x > 0 ORDER BY day"))
    assert (rows["x"] > 0).all() and list(rows.columns) == ["day", "y", "x"]


@pytest.mark.parametrize("mutate, source, message", [
    (lambda f: f.drop(columns=["x"]), {"features": ["x"]}, r"missing columns \['x'\]; the source has"),
    (lambda f: f, {}, r"feature 'kind' is not numeric .*declare it in source.categorical"),
    (lambda f: f.assign(y=f["y"].where(f.index != 5)), {"categorical": ["kind"], "missing_target": "error"},
     r"target 'y' has 1 missing values \(NaN\), first at 2024-01-06 00:00:00 \(source.missing_target: error"),
    (lambda f: pd.concat([f, f.iloc[[3]]]), {"categorical": ["kind"]},
     r"duplicate timestamps in 'day', first 2024-01-04"),
    (lambda f: f.iloc[0:0], {"categorical": ["kind"]}, r"model 'm': table [\w.]+ returned no rows"),
])
def test_bad_tables_get_precise_errors(table, mutate, source, message):
    spec = build_spec(name="m", table=table(mutate(sample_frame())), source=source)
    with pytest.raises(DataError, match=message):
        sources.read_source(spec)


def test_an_empty_source_names_its_table_or_says_the_query(table):
    name = table(sample_frame().iloc[0:0])
    with pytest.raises(DataError, match=f"^model 'm': table {name} returned no rows$"):
        sources.read_source(build_spec(name="m", table=name, source={"categorical": ["kind"]}))
    with pytest.raises(DataError, match="^model 'm': the query returned no rows$"):
        sources.read_source(build_spec(name="m", query=f"SELECT * FROM {name} ORDER BY day",
                                       source={"categorical": ["kind"]}))


def test_unordered_query_results_are_refused(table):
    name = table(sample_frame())
    spec = build_spec(name="m", query=f"SELECT day, y, x FROM {name} ORDER BY day DESC")
    with pytest.raises(DataError, match="not in order: row 1 .* comes after row 0 .*add ORDER BY"):
        sources.read_source(spec)


def test_a_missing_table_is_named():
    with pytest.raises(DataError, match="cannot read table datatest.nope"):
        sources.read_source(build_spec(name="m", table="datatest.nope"))


def test_too_little_history_names_counts():
    with pytest.raises(DataError, match="too little history for cv: 10 rows, at least 56 needed"):
        sources.require_rows(build_spec(name="m", table="s.t"), sample_frame(10), 56, "cv")


@pytest.mark.parametrize("values", [
    [3.0, float("nan"), 3, 2.5, None],  # whole floats are '3' like integers; NaN and None are the missing category
    ["web", None, "app", "web"],
    [True, 1, False, 0],  # True equals 1 as a key: the column is written value by value
    [1.5, 2.0, float("nan")],
])
def test_category_texts_of_a_column_are_each_values_category_text(values):
    column = pd.Series(values, dtype=object)
    assert sources.category_texts(column).tolist() == [sources.category_text(v) for v in values]
