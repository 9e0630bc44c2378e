"""Named screens over several instances through a real redis-server (--backplane): a POST
/screens/NAME on one instance switches the screen's sessions on every instance within a
second, /screens.json lists the connections of the whole fleet, an instance that starts later
knows the assignment, and a reload re-reads every instance's file."""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from tests.fleet import TOKEN, Fleet, ready
from tests.support import http_request, scaled, wait_until

pytestmark = pytest.mark.timeout(120)

CONFIG = """
[streams.orders]
source = "publish"

[dashboards.ops]
title = "Ops"
[[dashboards.ops.tiles]]
stream = "orders"

[dashboards.sales]
title = "Sales"
[[dashboards.sales.tiles]]
kind = "clock"

[playlists.lobby]
dashboards = ["ops", "sales"]
every = 10

[screens.lobby]
playlist = "lobby"
"""


@pytest.fixture
def fleet(tmp_path):
    path = tmp_path / "walls.toml"
    path.write_text(CONFIG)
    made = Fleet("--config", str(path))
    made.config_path = path
    try:
        yield made.start()
    finally:
        made.stop()


def get_json(instance, path: str) -> dict:
    status, _, body = http_request(instance.http + path)
    assert status == 200, body
    return json.loads(body)


def post(instance, path: str, body: dict) -> tuple[int, bytes]:
    status, _, answer = http_request(instance.http + path, "POST", json.dumps(body).encode(),
                                     {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    return status, answer


def screen(instance):
    return connect(instance.ws + "/ws?streams=orders&control=1&screen=lobby")


def test_a_switch_on_one_instance_reaches_the_screens_on_every_instance_within_a_second(fleet):
    first, second = fleet.instances
    with screen(first) as here, screen(second) as there:
        for ws in (here, there):
            assert json.loads(ws.recv(timeout=scaled(3)))["control"] == "stream"
        # /screens.json on either instance lists both connections (presence, written every 2 s).
        for instance in (first, second):
            wait_until(lambda instance=instance: len(get_json(instance, "/screens.json")["screens"][0]["connected"])
                       == 2, timeout=scaled(8), message="both screens in the fleet's presence")
        listed = get_json(second, "/screens.json")["screens"][0]
        assert sorted(row["instance"] for row in listed["connected"]) == sorted(
            get_json(instance, "/healthz")["instance"] for instance in (first, second))
        assert {row["address"] for row in listed["connected"]} == {"127.0.0.1"}
        posted = time.monotonic()
        status, answer = post(first, "/screens/lobby", {"dashboard": "sales"})
        assert status == 200, answer
        since = json.loads(answer)["since"]
        for ws in (here, there):
            assert json.loads(ws.recv(timeout=scaled(1))) == {"control": "screen", "screen": "lobby",
                                                               "dashboard": "sales"}
        assert time.monotonic() - posted < 1.0
        for instance in (first, second):
            assert get_json(instance, "/screens/lobby.json") == {"name": "lobby", "dashboard": "sales"}
            lobby = get_json(instance, "/screens.json")["screens"][0]
            assert (lobby["dashboard"], lobby["since"]) == ("sales", since)
        # Steered from the other instance, back to the playlist: told once on each (no echo).
        assert post(second, "/screens/lobby", {"playlist": "lobby"})[0] == 200
        for ws in (here, there):
            assert json.loads(ws.recv(timeout=scaled(1))) == {"control": "screen", "screen": "lobby",
                                                               "playlist": "lobby"}
        assert post(first, "/screens/lobby", {"dashboard": "ops"})[0] == 200
        for ws in (here, there):
            assert json.loads(ws.recv(timeout=scaled(1)))["dashboard"] == "ops"  # not a second 'playlist'
    # An instance started now reads the assignment from Redis.
    late = fleet.launch()
    fleet.instances.append(late)
    wait_until(lambda: ready(late), timeout=10, message="the late instance ready")
    assert get_json(late, "/screens/lobby.json") == {"name": "lobby", "dashboard": "ops"}
    for instance in (first, second):
        wait_until(lambda instance=instance: get_json(instance, "/screens.json")["screens"][0]["connected"] == [],
                   timeout=scaled(8), message="the closed screens gone from presence")


def test_a_reload_on_one_instance_rereads_the_walls_on_every_instance(fleet):
    first, second = fleet.instances
    fleet.config_path.write_text(CONFIG.replace('title = "Sales"', 'title = "Sales EU"'))
    with screen(second) as there:
        there.recv(timeout=scaled(3))
        status, answer = post(first, "/reload", {})
        assert status == 200, answer
        assert json.loads(there.recv(timeout=scaled(2))) == {"control": "reload"}
    for instance in (first, second):
        assert get_json(instance, "/dashboard.json?dashboard=sales")["title"] == "Sales EU"
