"""The sql source as a producer, under eventlet: SQLite files and a real PostgreSQL."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.services import PostgresServer
from tests.support import free_port, scaled

pytestmark = pytest.mark.timeout(90)


# --- SQLite ----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER, unit TEXT)")
        connection.execute("INSERT INTO counters VALUES ('signups', 10, 'people')")
    return path


def sqlite_run(path, sql: str, *params) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(sql, params)
    connection.close()


def test_sqlite_a_changed_row_is_published_within_the_interval_and_an_unchanged_one_is_not(sqlite_db, run_sources):
    source = run_sources({"signups": {
        "source": "sql", "url": f"sqlite://{sqlite_db}", "interval": 0.2,
        "query": "SELECT value AS variable, unit FROM counters WHERE name = 'signups'"}})
    source.wait_value(lambda fields: fields == {"variable": 10, "unit": "people"})
    assert source.state() == "up"
    changed = time.monotonic()
    sqlite_run(sqlite_db, "UPDATE counters SET value = 11 WHERE name = 'signups'")
    value = source.wait_value(lambda fields: fields["variable"] == 11, timeout=2)
    # The runner stamps events with CLOCK_MONOTONIC, which on Linux is one clock for every process.
    assert value["t"] - changed < scaled(0.2) + 0.5
    # Ten more runs of the query, the row unchanged: nothing more is published.
    time.sleep(scaled(2.0))
    assert [fields["variable"] for fields in source.values()] == [10, 11]


def test_sqlite_rows_publishes_the_first_n_rows_as_one_message_and_again_when_a_row_changes(sqlite_db,
                                                                                           run_sources):
    for name, value in (("orders", 7), ("visits", 90), ("refunds", 1), ("carts", 15), ("trials", 4), ("tickets", 2)):
        sqlite_run(sqlite_db, "INSERT INTO counters VALUES (?, ?, NULL)", name, value)
    source = run_sources({"top": {
        "source": "sql", "url": f"sqlite://{sqlite_db}", "interval": 0.2, "rows": 5,
        "query": "SELECT name, value FROM counters ORDER BY value DESC, name"}})
    first = source.wait_value(lambda fields: fields.get("variable") == 5)["fields"]
    assert first == {"variable": 5, "rows": [
        {"name": "visits", "value": 90}, {"name": "carts", "value": 15}, {"name": "signups", "value": 10},
        {"name": "orders", "value": 7}, {"name": "trials", "value": 4}]}
    sqlite_run(sqlite_db, "UPDATE counters SET value = 8 WHERE name = 'orders'")
    changed = source.wait_value(lambda fields: fields["rows"][3] == {"name": "orders", "value": 8}, timeout=2)["fields"]
    assert changed["variable"] == 5 and len(changed["rows"]) == 5
    time.sleep(scaled(1.0))  # five more runs, nothing changed: nothing more is published
    assert len(source.values()) == 2
    sqlite_run(sqlite_db, "DELETE FROM counters")
    source.wait_value(lambda fields: fields.get("variable") == 0 and fields.get("rows") == [], timeout=2)
    assert source.state() == "up"


def test_sqlite_zero_rows_is_down_with_the_reason_and_a_row_brings_it_up(sqlite_db, run_sources):
    source = run_sources({"signups": {
        "source": "sql", "url": f"sqlite://{sqlite_db}", "interval": 0.1,
        "query": "SELECT value AS variable FROM counters WHERE name = 'orders'"}})
    down = source.wait_state("down", after=1)
    assert down["reason"] == "the query returned no rows"
    assert source.values() == []
    sqlite_run(sqlite_db, "INSERT INTO counters VALUES ('orders', 3, NULL)")
    source.wait_value(lambda fields: fields == {"variable": 3})
    assert source.state() == "up"


def test_sqlite_a_query_error_is_down_with_the_databases_message_and_recovers(tmp_path, run_sources):
    path = tmp_path / "app.db"
    sqlite_run(path, "CREATE TABLE other (x)")
    source = run_sources({"signups": {"source": "sql", "url": f"sqlite://{path}", "interval": 0.1,
                                      "query": "SELECT count(*) AS variable FROM signups"}})
    down = source.wait_state("down", after=1)
    assert down["reason"] == "no such table: signups"
    sqlite_run(path, "CREATE TABLE signups (x)")
    source.wait_value(lambda fields: fields == {"variable": 0}, timeout=scaled(5))


def test_sqlite_a_missing_file_is_down_and_is_not_created(tmp_path, run_sources):
    path = tmp_path / "typo.db"
    source = run_sources({"s": {"source": "sql", "url": f"sqlite://{path}", "query": "SELECT 1 AS variable"}})
    down = source.wait_state("down", after=1)
    assert "unable to open database file" in down["reason"]
    assert not path.exists()


def test_sqlite_a_row_without_variable_is_down_saying_so(sqlite_db, run_sources):
    source = run_sources({"s": {"source": "sql", "url": f"sqlite://{sqlite_db}", "interval": 0.1,
                                "query": "SELECT value FROM counters"}})
    down = source.wait_state("down", after=1)
    assert "no 'variable'" in down["reason"]


@pytest.mark.alone  # a green ticker's largest gap, 0.3 s: judged with nothing beside it
def test_sqlite_a_slow_query_does_not_stall_the_hub(sqlite_db, run_sources):
    # A recursive count that keeps SQLite's C code busy for about a second per run.
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
            "SELECT count(*) AS variable FROM n")
    source = run_sources({"slow": {"source": "sql", "url": f"sqlite://{sqlite_db}", "query": slow,
                                   "interval": 0.05}}, ticker=0.05)
    first = source.wait_value(lambda fields: fields == {"variable": 3000000}, timeout=30)
    assert source.max_tick_gap(since=first["t"], span=2.0) < scaled(0.3)  # two more slow runs meanwhile


# --- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def counters(postgres):
    postgres.execute("DROP TABLE IF EXISTS counters")
    postgres.execute("CREATE TABLE counters (name text PRIMARY KEY, value numeric, at timestamptz DEFAULT now())")
    postgres.execute("INSERT INTO counters (name, value) VALUES ('orders', 10)")
    return postgres


QUERY = "SELECT value AS variable, name FROM counters WHERE name = 'orders'"


def test_postgres_a_changed_row_is_published_within_the_interval_and_an_unchanged_one_is_not(counters, run_sources):
    source = run_sources({"orders": {"source": "sql", "url": counters.url, "interval": 0.3, "query": QUERY}})
    source.wait_value(lambda fields: fields == {"variable": 10, "name": "orders"})  # numeric → a JSON number
    changed = time.monotonic()
    counters.execute("UPDATE counters SET value = 12.5 WHERE name = 'orders'")
    value = source.wait_value(lambda fields: fields["variable"] == 12.5, timeout=3)
    assert value["t"] - changed < scaled(0.3) + 0.5
    time.sleep(scaled(1.5))
    assert [fields["variable"] for fields in source.values()] == [10, 12.5]


def test_postgres_listen_runs_the_query_at_once_on_notify(counters, run_sources):
    # A long interval: only the NOTIFY can explain a quick update.
    source = run_sources({"orders": {"source": "sql", "url": counters.url, "interval": 60, "query": QUERY,
                                     "listen": "orders_changed"}})
    source.wait_value(lambda fields: fields["variable"] == 10)
    source.wait_for(lambda: counters.backends("dashstream") == 2, message="query and LISTEN connections")
    changed = time.monotonic()
    counters.execute("UPDATE counters SET value = 11 WHERE name = 'orders'; NOTIFY orders_changed")
    value = source.wait_value(lambda fields: fields["variable"] == 11, timeout=3)
    assert value["t"] - changed < 1.0
    # A trigger that notifies, as the README shows.
    counters.execute("""
        CREATE OR REPLACE FUNCTION notify_orders() RETURNS trigger AS $$
        BEGIN PERFORM pg_notify('orders_changed', ''); RETURN NULL; END $$ LANGUAGE plpgsql;
        CREATE TRIGGER orders_notify AFTER INSERT OR UPDATE OR DELETE ON counters
            FOR EACH STATEMENT EXECUTE FUNCTION notify_orders();""")
    counters.execute("UPDATE counters SET value = 12 WHERE name = 'orders'")
    source.wait_value(lambda fields: fields["variable"] == 12, timeout=1)


def test_postgres_terminated_backends_are_down_then_up_and_nothing_changed_meanwhile_is_lost(counters, run_sources):
    source = run_sources({"orders": {"source": "sql", "url": counters.url, "interval": 60, "query": QUERY,
                                     "listen": "orders_changed"}})
    source.wait_value(lambda fields: fields["variable"] == 10)
    source.wait_for(lambda: counters.backends("dashstream") == 2, message="query and LISTEN connections")
    seen = len(source.events("health"))
    assert counters.terminate_backends() >= 2
    down = source.wait_state("down", after=seen, timeout=3)
    assert "terminat" in down["reason"] or "closed" in down["reason"], down
    # Changed (and notified) while the listener is away: the query after the reconnect finds it.
    counters.execute("UPDATE counters SET value = 13 WHERE name = 'orders'; NOTIFY orders_changed")
    source.wait_state("up", after=seen, timeout=5)
    source.wait_value(lambda fields: fields["variable"] == 13, timeout=3)
    # LISTEN is back too.
    source.wait_for(lambda: counters.backends("dashstream") == 2, message="connections again")
    counters.execute("UPDATE counters SET value = 14 WHERE name = 'orders'; NOTIFY orders_changed")
    source.wait_value(lambda fields: fields["variable"] == 14, timeout=2)


def test_postgres_a_full_restart_is_down_then_up(run_sources):
    server = PostgresServer().start()
    try:
        server.execute("CREATE TABLE t (v int)")
        server.execute("INSERT INTO t VALUES (1)")
        source = run_sources({"t": {"source": "sql", "url": server.url, "interval": 0.2,
                                    "query": "SELECT v AS variable FROM t"}})
        source.wait_value(lambda fields: fields == {"variable": 1})
        seen = len(source.events("health"))
        server.stop()
        down = source.wait_state("down", after=seen, timeout=5)
        assert down["reason"]
        server.start()
        server.execute("UPDATE t SET v = 2")
        source.wait_state("up", after=seen, timeout=scaled(35))
        source.wait_value(lambda fields: fields == {"variable": 2}, timeout=5)
    finally:
        server.cleanup()


def test_postgres_a_query_error_is_down_with_the_databases_message(counters, run_sources):
    source = run_sources({"bad": {"source": "sql", "url": counters.url, "interval": 0.2,
                                  "query": "SELECT count(*) AS variable FROM no_such_table"}})
    down = source.wait_state("down", after=1)
    assert 'relation "no_such_table" does not exist' in down["reason"]


@pytest.mark.alone  # a green ticker's largest gap, 0.3 s: judged with nothing beside it
def test_postgres_a_slow_query_does_not_delay_a_green_ticker(counters, run_sources):
    source = run_sources({"slow": {"source": "sql", "url": counters.url, "interval": 0.1,
                                   "query": "SELECT 1 AS variable, pg_sleep(2) IS NULL AS slept"}}, ticker=0.05)
    source.wait_state("up")
    started = source.events("health")[-1]["t"]
    value = source.wait_value(lambda fields: fields["variable"] == 1, timeout=10)
    assert value["t"] - started >= 1.9  # the query really took its two seconds...
    assert source.max_tick_gap(since=started, span=2.0) < scaled(0.3)  # ...and the hub never waited for it


def test_postgres_three_concurrent_sleeps_of_one_second_take_about_one_second(counters, run_sources):
    query = "SELECT 1 AS variable, pg_sleep(1) IS NULL AS slept"
    source = run_sources({name: {"source": "sql", "url": counters.url, "interval": 30, "query": query}
                          for name in ("a", "b", "c")})
    for name in "abc":
        source.wait_value(lambda fields: True, stream=name, timeout=10)
    ups = [next(event["t"] for event in source.events("health", name) if event["state"] == "up") for name in "abc"]
    values = [source.events("value", name)[0]["t"] for name in "abc"]
    assert max(values) - min(ups) < 1.6, (ups, values)  # serialized, it would be 3 s or more


def test_postgres_a_password_in_the_url_is_never_logged(run_sources):
    closed = free_port()
    source = run_sources({"s": {"source": "sql", "url": f"postgresql://dash:hunter2secret@127.0.0.1:{closed}/db",
                                "query": "SELECT 1 AS variable"}})
    down = source.wait_state("down", after=1)
    source.wait_for(lambda: "failed" in source.stderr(), message="a failure logged")
    log = source.stop()
    assert "hunter2secret" not in log and "hunter2secret" not in down["reason"]
    assert "postgresql://dash:***@127.0.0.1" in log
