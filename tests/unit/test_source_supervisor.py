"""dashstream.sourcing: a source's supervisor feeding a real SharedStream (no server, no eventlet loop)."""

from __future__ import annotations

import json

import pytest

from dashstream.config.stream_specs import spec_from_table
from dashstream.streams.stream import SharedStream
from dashstream.streams.supervisor import source_supervisor

pytestmark = pytest.mark.timeout(10)


class Handle:
    def __init__(self, function):
        self.function = function

    def kill(self):
        pass


def test_a_supervised_source_feeds_the_stream_its_values_states_and_rejections(monkeypatch, tmp_path):
    import sqlite3

    path = tmp_path / "app.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (v)")
    connection.close()
    spec = spec_from_table("t", {"source": "sql", "url": f"sqlite://{path}", "query": "SELECT v AS variable FROM t",
                                 "stale_after": 5}, "test")
    stream = SharedStream("t", "sql", history=10)
    threads: list[Handle] = []
    supervisor = source_supervisor(spec, stream, spawn=lambda f: threads.append(Handle(f)) or threads[-1],
                                   sleep=lambda seconds: None)
    assert supervisor is not None and supervisor.stale_after == 5.0
    supervisor.start()
    assert (stream.state, stream.reason) == ("down", "starting")
    supervisor._handle({"variable": 1, "unit": "x"})
    assert stream.state == "up" and stream.log.last.seq == 1
    supervisor._handle({"variable": float("nan")})  # the log refuses it: counted, not numbered
    assert stream.stats.rejected == 1 and stream.log.last.seq == 1
    from producer.base import Health, Rejected

    supervisor._handle(Rejected("malformed JSON"))
    assert stream.stats.rejected == 2
    supervisor._handle(Health("down", "the query returned no rows"))
    assert (stream.state, stream.reason) == ("down", "the query returned no rows")
    assert stream.describe()["state"] == "down"
    # The stream's since is the supervisor's: when the state began, kept when only the reason changes.
    went_down = stream.since
    assert went_down == supervisor.since
    supervisor._handle(Health("down", "no such table: t"))
    assert (stream.reason, stream.since) == ("no such table: t", went_down)
    assert json.loads(stream.health_message().text)["since"] == went_down


def test_the_random_walk_runs_under_a_supervisor_too():
    spec = spec_from_table("w", {"source": "random-walk", "shared": True}, "test")
    stream = SharedStream("w", "random-walk")
    supervisor = source_supervisor(spec, stream, spawn=Handle, sleep=lambda seconds: None)
    assert type(supervisor.source).__name__ == "RandomWalk" and supervisor.on_value == stream.publish_from_source
