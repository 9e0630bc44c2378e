"""SQL rows and query runs without a server (producer/sql.py): the deadline, cancelling, and
what a row's checks (producer/values.py, tested in test_values.py) make of a row."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from producer.base import DOWN, UP, Health, Rejected
from producer.sql import DEFAULT_TIMEOUT, QueryTimeout, SqliteRun, SqlSource

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

