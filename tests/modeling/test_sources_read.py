"""`sources.read_rows` of a table reads it with COPY: the frame must be the one `pd.read_sql` gave (dtypes, NULLs,
None against NaN, Python types of object columns), or the read falls back to `read_sql` itself."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import pandas as pd
import pytest
from spec_factory import build_spec
from sqlalchemy import text

from ratchet import settings
from ratchet.exceptions import DataError
from ratchet.modeling import sources

SCHEMA = "readtest"
COLUMNS = ("day date NOT NULL, i integer, i_n integer, big bigint, s smallint, f double precision, "
           "f_n double precision, r real, n numeric(12, 4), n_n numeric, t text, t_n text, v varchar(20), c char(4), "
           "b boolean, b_n boolean, d date, d_n date, ts timestamp, ts_n timestamp, tz timestamptz, tz_n timestamptz, "
           "no_int integer, no_text text, no_time timestamp, nan_only real, empty text")
ROWS = [  # every type with and without NULLs; text that CSV or COPY's text format would garble
    "('2024-01-01', 1, 1, 9007199254740993, -3, 0.1, 1e-300, 1.1, 1.2345, 2.5, 'a,b', 'x', 'v', 'ab', true, true, "
    "'2020-01-01', '0001-01-01', '2020-01-01 10:00:00.123456', '2020-01-01', '2024-03-31 00:30:00+00', "
    "'2024-01-01 00:00:00+00', NULL, NULL, NULL, 'NaN', '')",
    "('2024-01-02', 2, NULL, NULL, 4, 'NaN', NULL, 'NaN', 'NaN', NULL, E'q\"u\\nline\\ttab\\\\N\\r''', NULL, '', "
    "'a', false, NULL, '2020-02-29', NULL, '2020-01-02', NULL, '2024-03-31 02:30:00+00', NULL, NULL, NULL, NULL, "
    "'NaN', '')",
    "('2024-01-03', -5, 7, -9223372036854775808, 0, 'Infinity', 'NaN', '-Infinity', -0.0001, NULL, '\\N', "
    "E'\\\\N', ' padded ', NULL, true, false, '9999-12-31', '2020-01-01', '1970-01-01 00:00:00.000001', NULL, "
    "'2024-07-01 12:00:00.5+02', NULL, NULL, NULL, NULL, 'NaN', '')",
    "('2024-01-04', 0, 9, 2, NULL, '-Infinity', 3.25, 0, 0, 1e20, 'NULL', 'NaN', 'Zürich 東京', 't', false, true, "
    "'1999-12-31', NULL, '2262-04-11 23:47:16.854775', '2020-01-03', '1677-09-21 00:12:43.145225+00', "
    "'2024-01-02 00:00:00+00', NULL, NULL, NULL, 'NaN', '')",
]


def make_table(url: str, columns: str = COLUMNS, rows: list[str] = ROWS) -> str:
    name = f"{SCHEMA}.t_{uuid.uuid4().hex[:8]}"
    engine = settings.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        conn.execute(text(f"CREATE TABLE {name} ({columns})"))
        if rows:
            conn.exec_driver_sql(f"INSERT INTO {name} VALUES {', '.join(rows)}")
    engine.dispose()
    return name


def read_sql(url: str, table: str, end: dt.datetime | None = None) -> pd.DataFrame:
    """The table as read_rows read it before COPY: `pd.read_sql` of its SELECT, `end` a bound parameter."""
    engine = settings.make_engine(url)
    where, params = (' WHERE "day" < :end', {"end": end}) if end else ("", {})
    with engine.connect() as conn:
        frame = pd.read_sql(text(f'SELECT * FROM {table}{where} ORDER BY "day"'), conn, params=params)
    engine.dispose()
    return frame


def assert_same(frame: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal frames, dtypes and index included, and the same Python type of every value of an object column
    (None is not NaN, a date not a Timestamp)."""
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    for column in expected.select_dtypes(object):
        assert [type(v) for v in frame[column]] == [type(v) for v in expected[column]], column


def copy_only(monkeypatch) -> None:
    """read_rows from here on without read_sql: the COPY read must type every column itself."""
    def refused(*args, **kwargs):
        raise AssertionError("read_sql was used")

    monkeypatch.setattr(sources.pd, "read_sql", refused)


def spec_of(table: str, **source):
    return build_spec(name="m", table=table, source={"target": "f", **source})


def test_every_supported_type_reads_as_read_sql_gave_it(database_url, monkeypatch):
    table = make_table(database_url)
    expected, before = read_sql(database_url, table), read_sql(database_url, table, dt.datetime(2024, 1, 3))
    assert list(expected.dtypes.astype(str)[["i_n", "b_n", "d", "ts", "tz", "no_int"]]) == [
        "float64", "object", "object", "datetime64[ns]", "datetime64[ns, UTC]", "object"]  # what is being matched
    copy_only(monkeypatch)
    assert_same(sources.read_rows(spec_of(table)), expected)
    assert_same(sources.read_rows(spec_of(table), end=dt.datetime(2024, 1, 3, tzinfo=dt.UTC)), before)
    assert sources.read_rows(spec_of(table))["t"][1] == 'q"u\nline\ttab\\N\r\''


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/St_Johns"])
def test_a_time_zone_with_one_offset_reads_with_copy(database_url, zone, monkeypatch):
    url = f"{database_url}?options=-c%20TimeZone%3D{zone}"
    table = make_table(database_url, "day date NOT NULL, f float8, tz timestamptz",
                       ["('2024-01-01', 1, '2024-01-01 00:00:00.25+00')", "('2024-01-02', 2, NULL)"])
    expected = read_sql(url, table)
    copy_only(monkeypatch)
    assert_same(sources.read_rows(spec_of(table), url=url), expected)


@pytest.mark.parametrize("columns, rows", [
    ("day date NOT NULL, f float8, tz timestamptz",  # Paris in winter and in summer: two offsets
     ["('2024-01-01', 1, '2024-01-01 00:00:00+00')", "('2024-01-02', 2, '2024-07-01 00:00:00+00')"]),
    ("day date NOT NULL, f float8, d date", ["('2024-01-01', 1, 'infinity')", "('2024-01-02', 2, NULL)"]),
    ("day date NOT NULL, f float8, ts timestamp", ["('2024-01-01', 1, '1500-01-01')", "('2024-01-02', 2, NULL)"]),
    ("day date NOT NULL, f float8, ts timestamp", ["('2024-01-01', 1, '-infinity')"]),
    ("day date NOT NULL, f float8, j jsonb, u uuid, iv interval, a int[]",
     ["('2024-01-01', 1, '{\"a\": 1}', '00000000-0000-0000-0000-000000000001', '1 day', '{1,2}')",
      "('2024-01-02', 2, NULL, NULL, NULL, NULL)"]),
])
def test_what_copy_cannot_type_is_read_with_read_sql(database_url, columns, rows):
    url = f"{database_url}?options=-c%20TimeZone%3DEurope/Paris"
    table = make_table(database_url, columns, rows)
    assert_same(sources.read_rows(spec_of(table), url=url), read_sql(url, table))


def test_no_rows_read_as_read_sql_gave_them(database_url, monkeypatch):
    table = make_table(database_url, rows=[])
    expected = read_sql(database_url, table)
    copy_only(monkeypatch)
    assert_same(sources.read_rows(spec_of(table)), expected)
    assert_same(sources.read_rows(spec_of(make_table(database_url)), end=dt.datetime(2023, 1, 1)), expected)


def test_a_source_connection_reads_with_copy_too(database_url, monkeypatch):
    table = make_table(database_url)
    expected = read_sql(database_url, table)
    monkeypatch.setenv("AIRFLOW_CONN_RATCHET_READ_TEST", json.dumps(settings.connection_fields(database_url)))
    copy_only(monkeypatch)
    assert_same(sources.read_rows(spec_of(table, conn_id="ratchet_read_test")), expected)


def test_sql_errors_are_data_errors(database_url):
    with pytest.raises(DataError, match=r'^model \'m\': cannot read table readtest.nope: relation "readtest.nope" '
                                        r"does not exist"):
        sources.read_rows(spec_of("readtest.nope"))
    table = make_table(database_url, "when_ date NOT NULL, f float8", [])
    with pytest.raises(DataError, match=f'cannot read table {table}: column "day" does not exist'):
        sources.read_rows(spec_of(table))
