"""What the server gives a page on connect, against the real server: each stream's
``stale_after``/``history``/clock (the ``stream`` control message), history on load
(``?history=N`` on /ws/NAME, /ws?streams= and /sse/NAME), the default stream's first value at
once, ``/dashboard.json`` without ``[dashboard]``, and a bare value published."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from httpx_sse import connect_sse
from websockets.sync.client import connect

from tests.support import http_get, publish, scaled

pytestmark = pytest.mark.timeout(60)

TOKEN = "feed-token"
CONFIG = """
[streams.sales]
source = "publish"
stale_after = 600

[streams.ticks]
source = "publish"
history = 20
"""


@pytest.fixture
def feeds(start_server, tmp_path):
    path = tmp_path / "feeds.toml"
    path.write_text(CONFIG)
    return start_server("--config", str(path), "--publish-token", TOKEN)


def put(server, stream, value):
    status, answer = publish(server.http, stream, {"variable": value}, TOKEN)
    assert status == 200, answer


def messages(ws, count: int, timeout: float = 3.0) -> list[dict]:
    return [json.loads(ws.recv(timeout=scaled(timeout))) for _ in range(count)]


def test_a_control_client_learns_each_streams_cadence_before_its_values(feeds):
    put(feeds, "sales", 1)
    before = time.time()
    with connect(feeds.ws + "/ws?streams=sales,ticks&control=1") as ws:
        first, value, second = messages(ws, 3)
    assert {key: first[key] for key in ("control", "stream", "stale_after", "history")} == {
        "control": "stream", "stream": "sales", "stale_after": 600, "history": 100}
    assert before - 1 <= first["now"] <= time.time() + 1
    assert (value["stream"], value["variable"]) == ("sales", 1)
    assert (second["control"], second["stream"], second["stale_after"], second["history"]) == (
        "stream", "ticks", None, 20)


def test_a_plain_client_gets_no_control_message(feeds):
    put(feeds, "sales", 7)
    with connect(feeds.ws + "/ws/sales") as ws:
        assert messages(ws, 1)[0]["variable"] == 7


@pytest.mark.parametrize("path", ["/ws/ticks?history=100", "/ws?streams=ticks&history=100"])
def test_history_on_load_brings_the_recent_values_bounded_by_the_streams_history(feeds, path):
    for value in range(30):
        put(feeds, "ticks", value)
    with connect(feeds.ws + path) as ws:
        got = messages(ws, 20)
        assert [m["variable"] for m in got] == list(range(10, 30))
        assert [m["seq"] for m in got] == list(range(11, 31)) and not any("gap" in m for m in got)
        put(feeds, "ticks", 99)
        assert messages(ws, 1)[0]["seq"] == 31  # then live, nothing twice


def test_history_asks_for_as_many_as_it_names(feeds):
    for value in range(5):
        put(feeds, "sales", value)
    with connect(feeds.ws + "/ws/sales?history=3") as ws:
        assert [m["variable"] for m in messages(ws, 3)] == [2, 3, 4]


def test_a_resume_with_history_from_a_lost_epoch_gets_the_history_and_the_gap(feeds):
    for value in range(4):
        put(feeds, "sales", value)
    with connect(feeds.ws + "/ws/sales?history=100&seq=3&epoch=gone") as ws:
        got = messages(ws, 4)
    assert [m["variable"] for m in got] == [0, 1, 2, 3] and got[0]["gap"] is True


def test_a_bad_history_is_refused_before_the_upgrade(feeds):
    status, _, body = http_get(feeds.http + "/sse/sales?history=zero")
    assert status == 400 and b"history= takes how many recent entries" in body
    with pytest.raises(Exception) as refused:
        connect(feeds.ws + "/ws/sales?history=-1")
    assert "400" in str(refused.value)


def test_sse_history_on_load(feeds):
    for value in range(12):
        put(feeds, "sales", value)
    got = []
    with httpx.Client(timeout=scaled(5)) as client:
        with connect_sse(client, "GET", feeds.http + "/sse/sales?history=100&control=1") as source:
            for sse in source.iter_sse():
                if sse.data:
                    got.append((sse.event, json.loads(sse.data)))
                if len(got) == 13:
                    break
    assert got[0][0] == "control" and got[0][1]["stale_after"] == 600
    assert [data["variable"] for _, data in got[1:]] == list(range(12))


def test_the_default_stream_sends_its_first_value_at_once(start_server):
    server = start_server("--min-wait", "5", "--max-wait", "6")
    started = time.monotonic()
    with connect(server.ws + "/") as ws:
        message = json.loads(ws.recv(timeout=scaled(2)))
    assert "variable" in message and time.monotonic() - started < scaled(2)


def test_dashboard_json_without_a_dashboard_is_a_200_with_no_tiles(start_server):
    server = start_server()
    status, headers, body = http_get(server.http + "/dashboard.json")
    assert status == 200 and json.loads(body) == {"name": "default", "title": "dashstream", "columns": None,
                                                  "locale": None, "timezone": None, "theme": "dark", "tiles": []}
    assert "404" not in server.output()


@pytest.mark.parametrize("body, value", [(b"42", 42), (b"-1.5", -1.5), (b'"all good"', "all good")])
def test_publish_takes_a_bare_number_or_string_as_the_variable(feeds, body, value):
    with connect(feeds.ws + "/ws/sales") as ws:
        status, answer = publish(feeds.http, "sales", body, TOKEN)
        assert status == 200, answer
        got = messages(ws, 1)[-1]
        while got.get("variable") != value:
            got = messages(ws, 1)[-1]
        assert got["variable"] == value


@pytest.mark.parametrize("body, kind", [(b"true", "a boolean"), (b"null", "null"), (b"[1]", "an array")])
def test_publish_still_refuses_other_bare_values(feeds, body, kind):
    status, answer = publish(feeds.http, "sales", body, TOKEN)
    assert (status, answer.decode().strip()) == (400, f"body must be a JSON object, number or string, got {kind}")
