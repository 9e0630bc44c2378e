"""SQL rows and query runs without a server (producer/sql.py, producer/values.py): the
deadline, cancelling, the payload limit, NULL variables, duplicate columns."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from producer.base import DOWN, UP, Health, Rejected
from producer.sql import DEFAULT_TIMEOUT, QueryTimeout, SqliteRun, SqlSource
from producer.values import MAX_PAYLOAD_BYTES, NullVariable, TooLarge, check_row_value, duplicate_column

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS variable FROM c"


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "app.db"
    sqlite3.connect(path).close()
    return str(path)


def test_a_runaway_query_ends_at_its_deadline(database):
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="did not finish within 0.3 s"):
        SqliteRun(database, RUNAWAY, 0.3)()
    assert time.monotonic() - started < 2


def test_cancel_from_another_thread_ends_the_query(database):
    run = SqliteRun(database, RUNAWAY, 60)
    threading.Timer(0.2, run.cancel).start()
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="interrupted"):
        run()
    assert time.monotonic() - started < 2


def test_a_quick_query_is_untouched(database):
    assert SqliteRun(database, "SELECT 1 AS variable, 'x' AS unit", 1)() == (["variable", "unit"], (1, "x"))


def test_the_timeout_key_has_a_stated_default():
    key = {key.name: key for key in SqlSource.keys}["timeout"]
    assert key.default == DEFAULT_TIMEOUT == 10.0


def rows(names, row):
    source = SqlSource(url="sqlite:///x.db", query="SELECT 1")
    return list(source._row(names, row))


def test_row_rules():
    assert rows(["variable"], (1,)) == [Health(UP), {"variable": 1}]
    (down,) = rows(["variable", "variable"], (1, 2))
    assert down.state == DOWN and "two columns named 'variable'" in down.reason
    assert rows(["variable"], (None,)) == [Health(UP), Rejected("'variable' is NULL")]
    up, rejected = rows(["variable", "blob"], (1, "x" * 120_000))
    assert up == Health(UP) and isinstance(rejected, Rejected) and "over the 65536-byte limit" in rejected.reason


def test_the_payload_limit_is_on_the_encoded_message():
    check_row_value({"variable": 1, "blob": "x" * (MAX_PAYLOAD_BYTES - 40)})
    with pytest.raises(TooLarge):
        check_row_value({"variable": 1, "blob": "é" * (MAX_PAYLOAD_BYTES // 2 + 10)})  # 2 bytes each in UTF-8
    with pytest.raises(NullVariable):
        check_row_value({"variable": None})
    assert duplicate_column(["a", "b", "a"]) == "a" and duplicate_column(["a", "b"]) is None


# --- rows = N: the first N rows as one message (a list tile) ------------------------------------


def many(names, fetched, count=5):
    source = SqlSource(url="sqlite:///x.db", query="SELECT 1", rows=count)
    return source, list(source._row(names, fetched))


def test_rows_are_one_message_with_their_count_as_the_variable():
    source, events = many(["name", "total"], [("acme", 12.5), ("globex", 3)])
    assert events == [Health(UP), {"variable": 2, "rows": [{"name": "acme", "total": 12.5},
                                                          {"name": "globex", "total": 3}]}]
    assert list(source._row(["name", "total"], [("acme", 12.5), ("globex", 3)])) == [Health(UP)]  # unchanged
    assert list(source._row(["name", "total"], [("acme", 13), ("globex", 3)]))[1]["rows"][0]["total"] == 13


def test_zero_rows_are_an_empty_list_not_an_outage():
    assert many(["name"], [])[1] == [Health(UP), {"variable": 0, "rows": []}]


def test_rows_need_no_variable_column_and_may_hold_null_and_database_types():
    import decimal

    events = many(["name", "variable", "amount"], [("a", None, decimal.Decimal("2.50"))])[1]
    assert events[1] == {"variable": 1, "rows": [{"name": "a", "variable": None, "amount": 2.5}]}


def test_rows_with_two_columns_of_one_name_or_a_type_json_lacks_are_down():
    (down,) = many(["a", "a"], [(1, 2)])[1]
    assert down == Health(DOWN, "unusable rows: two columns named 'a'")
    (down,) = many(["a"], [(b"\x00",)])[1]
    assert down == Health(DOWN, "unusable rows: column 'a' has a bytes value, which JSON cannot carry")


def test_the_payload_limit_is_on_the_whole_message():
    row = ("x" * 20_000,)
    up, rejected = many(["blob"], [row, row, row, row])[1]
    assert up == Health(UP)
    assert rejected == Rejected("4 rows are 80071 bytes as JSON, over the 65536-byte limit of one message "
                                "(fewer rows or columns)")
    assert many(["blob"], [row, row, row])[1][1]["variable"] == 3  # 60 KB: within


def test_sqlite_run_fetches_at_most_n_rows(database):
    query = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c LIMIT 20) SELECT x AS n FROM c"
    assert SqliteRun(database, query, 1, rows=3)() == (["n"], [(1,), (2,), (3,)])
    assert SqliteRun(database, query, 1)() == (["n"], (1,))


@pytest.mark.parametrize("value", [0, 101, True, 2.0, "5"])
def test_rows_is_an_integer_from_1_to_100(value):
    check = {key.name: key for key in SqlSource.keys}["rows"].check
    with pytest.raises(ValueError):
        check(value)
    assert check(1) == 1 and check(100) == 100
