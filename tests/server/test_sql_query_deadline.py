"""SQLite sources cannot freeze the server: a query that never ends is cut at its
``timeout`` (the stream is down with the reason, and retried), a second SQLite stream and
``/healthz`` answer meanwhile, SIGTERM exits within the drain time; rows are held to the
payload limit, a NULL ``variable`` is rejected, two columns of one name are refused."""

from __future__ import annotations

import json
import signal
import sqlite3
import time

import pytest

from tests.support import http_get, scaled, wait_until

pytestmark = pytest.mark.timeout(60)

RUNAWAY = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) AS variable FROM c"


def streams(server) -> dict:
    _, _, body = http_get(server.http + "/streams")
    return {stream["name"]: stream for stream in json.loads(body)["streams"]} if isinstance(
        json.loads(body), dict) else {stream["name"]: stream for stream in json.loads(body)}


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE counters (value INTEGER)")
        connection.execute("INSERT INTO counters VALUES (7)")
    connection.close()
    return path


def config(tmp_path, database, tables: dict) -> str:
    lines = []
    for name, options in tables.items():
        lines.append(f"[streams.{name}]")
        lines.append('source = "sql"')
        lines.append(f'url = "sqlite://{database}"')
        for key, value in options.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path = tmp_path / "streams.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_a_runaway_query_is_cut_at_its_timeout_and_nothing_else_waits(start_server, tmp_path, database):
    path = config(tmp_path, database, {
        "runaway": {"query": RUNAWAY, "timeout": 1.0, "interval": 0.2},
        "fine": {"query": "SELECT value AS variable FROM counters", "interval": 0.1},
    })
    server = start_server("--config", path)
    started = time.monotonic()
    while time.monotonic() - started < scaled(3):
        asked = time.monotonic()
        assert server.health()["status"] == "ok"
        assert time.monotonic() - asked < scaled(0.5), "/healthz waited behind a query"
    wait_until(lambda: streams(server)["fine"]["state"] == "up", message="the second SQLite stream up")
    down = wait_until(lambda: (lambda s: s if s["state"] == "down" and "timeout" in s["reason"] else None)(
        streams(server)["runaway"]), timeout=5, message="the runaway stream down with its timeout")
    assert "did not finish within 1 s" in down["reason"]
    # retried with the backoff: the deadline is met again and again, the server stays free
    wait_until(lambda: server.output().count("did not finish") >= 1, message="the failure logged")
    assert server.health()["status"] == "ok"
    stopping = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait(5) == 0
    assert time.monotonic() - stopping < scaled(3.5), "SIGTERM waited for the query"


def test_sigterm_ends_a_query_in_flight(start_server, tmp_path, database):
    path = config(tmp_path, database, {"runaway": {"query": RUNAWAY, "timeout": 60.0}})
    server = start_server("--config", path)
    wait_until(lambda: streams(server)["runaway"]["reason"] == "starting", message="the query running")
    time.sleep(scaled(0.5))  # let the worker thread be well inside the query
    stopping = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait(5) == 0
    assert time.monotonic() - stopping < scaled(3.5)


def test_rows_over_the_payload_limit_and_null_variables_are_rejected_and_two_columns_refused(
        start_server, tmp_path, database):
    path = config(tmp_path, database, {
        "big": {"query": "SELECT 1 AS variable, printf('%.*c', 120000, 'x') AS blob", "interval": 0.1},
        "empty": {"query": "SELECT NULL AS variable", "interval": 0.1},
        "twice": {"query": "SELECT 1 AS variable, 2 AS variable", "interval": 0.1},
        "fine": {"query": "SELECT value AS variable, printf('%.*c', 1000, 'x') AS blob FROM counters",
                 "interval": 0.1},
    })
    server = start_server("--config", path)
    wait_until(lambda: streams(server)["big"]["rejected"] >= 2, message="the 120 KB row rejected")
    wait_until(lambda: streams(server)["empty"]["rejected"] >= 2, message="the NULL variable rejected")
    twice = wait_until(lambda: (lambda s: s if s["state"] == "down" else None)(streams(server)["twice"]),
                       message="two columns named variable refused")
    assert "two columns named 'variable'" in twice["reason"]
    described = streams(server)
    assert described["big"]["last_seq"] is None and described["empty"]["last_seq"] is None
    assert described["fine"]["last_seq"] == 1
    output = server.output()
    assert " ERROR " not in output and "Traceback" not in output
