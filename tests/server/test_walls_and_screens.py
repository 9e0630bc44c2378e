"""Several walls, playlists and named screens against the real server: /dashboard.json?dashboard=,
/dashboards.json, /d/NAME, /screens/NAME.json, /screens.json, a screen switched by POST
/screens/NAME reaching its WebSocket clients (and only them) within a second, a reload that
re-reads the file, and a publish of a list's rows."""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from tests.support import http_get, http_request, publish, scaled, wait_until

pytestmark = pytest.mark.timeout(60)

TOKEN = "screens-token"
CONFIG = """
[streams.orders]
source = "publish"

[streams.revenue]
source = "publish"

[streams.top]
source = "publish"

[dashboard]
title = "Ops"
timezone = "Europe/Berlin"

[[dashboard.tiles]]
stream = "orders"

[[dashboard.tiles]]
kind = "clock"

[dashboards.sales]
title = "Sales"
locale = "de-DE"
theme = "light"

[[dashboards.sales.tiles]]
stream = "revenue"
currency = "EUR"

[[dashboards.sales.tiles]]
kind = "list"
stream = "top"
columns = ["name", "total"]
limit = 5

[playlists.lobby]
dashboards = ["default", "sales"]
every = 30

[screens.lobby]
playlist = "lobby"

[screens.desk]
dashboard = "sales"
"""


@pytest.fixture
def walls(start_server, tmp_path):
    path = tmp_path / "walls.toml"
    path.write_text(CONFIG)
    server = start_server("--config", str(path), "--publish-token", TOKEN)
    server.config_path = path
    return server


def get_json(server, path: str) -> tuple[int, dict]:
    status, _, body = http_request(server.http + path)
    return status, json.loads(body)


def post(server, path: str, body, token: str | None = TOKEN) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    status, _, answer = http_request(server.http + path, "POST", json.dumps(body).encode(), headers)
    return status, answer


def next_control(ws, timeout: float = 1.0) -> dict:
    """The next control message, past the data messages before it."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if "control" in message:
            return message


def test_each_wall_by_name_and_all_of_them_at_once(walls):
    status, default = get_json(walls, "/dashboard.json")
    assert status == 200 and (default["name"], default["title"], default["timezone"], default["theme"]) == (
        "default", "Ops", "Europe/Berlin", "dark")
    assert [tile["kind"] for tile in default["tiles"]] == ["number", "clock"]
    status, sales = get_json(walls, "/dashboard.json?dashboard=sales")
    assert status == 200 and (sales["name"], sales["locale"], sales["theme"]) == ("sales", "de-DE", "light")
    assert sales["tiles"][1] == {"kind": "list", "stream": "top", "label": "top", "alert": False, "field": "rows",
                                 "columns": ["name", "total"], "limit": 5, "format": "number", "decimals": None,
                                 "currency": None}
    assert get_json(walls, "/dashboard.json?dashboard=hr") == (
        404, {"error": "no dashboard named 'hr'; defined: default, sales"})
    status, every = get_json(walls, "/dashboards.json")
    assert status == 200 and every == {
        "default": "default", "dashboards": {"default": default, "sales": sales},
        "playlists": {"lobby": {"dashboards": ["default", "sales"], "every": 30}},
        "screens": {"lobby": {"playlist": "lobby"}, "desk": {"dashboard": "sales"}}}


def test_d_name_serves_the_page(walls):
    status, headers, page = http_get(walls.http + "/d/sales")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert page == http_get(walls.http + "/")[2]


def test_what_a_screen_shows_and_an_unknown_screen(walls):
    assert get_json(walls, "/screens/lobby.json") == (200, {"name": "lobby", "playlist": "lobby"})
    assert get_json(walls, "/screens/desk.json") == (200, {"name": "desk", "dashboard": "sales"})
    assert get_json(walls, "/screens/hall.json") == (404, {"error": "no screen named 'hall'; configured: lobby, desk"})
    assert http_request(walls.http + "/screens/lobby")[0] == 404


def test_a_screen_switch_reaches_every_session_of_that_screen_within_a_second_and_no_other(walls):
    query = "/ws?streams=orders&control=1&screen="
    with connect(walls.ws + query + "lobby") as tv, connect(walls.ws + query + "lobby") as tv2, \
            connect(walls.ws + query + "desk") as desk, connect(walls.ws + "/ws?streams=orders&control=1") as plain:
        for ws in (tv, tv2, desk, plain):
            assert json.loads(ws.recv(timeout=scaled(3)))["control"] == "stream"  # connected, subscribed
        wait_until(lambda: len(get_json(walls, "/screens.json")[1]["screens"][0]["connected"]) == 2)
        posted = time.monotonic()
        status, answer = post(walls, "/screens/lobby", {"dashboard": "sales"})
        assert status == 200, answer
        assigned = json.loads(answer)
        assert (assigned["name"], assigned["dashboard"]) == ("lobby", "sales")
        assert abs(assigned["since"] - time.time()) < 5
        for ws in (tv, tv2):
            assert json.loads(ws.recv(timeout=scaled(1))) == {"control": "screen", "screen": "lobby",
                                                               "dashboard": "sales"}
        assert time.monotonic() - posted < 1.0
        publish(walls.http, "orders", {"variable": 1}, TOKEN)  # what comes next on the other two is that value
        for ws in (desk, plain):
            assert json.loads(ws.recv(timeout=scaled(3)))["variable"] == 1
        assert get_json(walls, "/screens/lobby.json") == (200, {"name": "lobby", "dashboard": "sales"})
        status, listed = get_json(walls, "/screens.json")
        lobby, desk_entry = listed["screens"]
        assert (lobby["name"], lobby["dashboard"], lobby["since"]) == ("lobby", "sales", assigned["since"])
        assert [(row["address"], row["instance"]) for row in lobby["connected"]] == [("127.0.0.1", None)] * 2
        assert all(time.time() - 30 < row["since"] <= time.time() for row in lobby["connected"])
        assert (desk_entry["name"], desk_entry["dashboard"], len(desk_entry["connected"])) == ("desk", "sales", 1)
        assert get_json(walls, "/dashboards.json")[1]["screens"]["lobby"] == {"dashboard": "sales"}
        # Back to the playlist:
        assert post(walls, "/screens/lobby", {"playlist": "lobby"})[0] == 200
        assert next_control(tv) == {"control": "screen", "screen": "lobby", "playlist": "lobby"}
    wait_until(lambda: all(not screen["connected"] for screen in get_json(walls, "/screens.json")[1]["screens"]))


def test_post_screens_refusals(walls):
    assert post(walls, "/screens/lobby", {"dashboard": "sales"}, token=None)[0] == 401
    assert post(walls, "/screens/lobby", {"dashboard": "sales"}, token="wrong")[0] == 401
    assert post(walls, "/screens/hall", {"dashboard": "sales"}) == (
        404, b"no screen named 'hall'; configured: lobby, desk\n")
    assert post(walls, "/screens/lobby", {"dashboard": "hr"}) == (
        400, b"POST /screens/lobby, key 'dashboard': no dashboard named 'hr'; defined: default, sales\n")
    assert post(walls, "/screens/lobby", {"playlist": "hall"}) == (
        400, b"POST /screens/lobby, key 'playlist': no playlist named 'hall'; defined: lobby\n")
    assert post(walls, "/screens/lobby", {"dashboard": "sales", "playlist": "lobby"}) == (
        400, b"POST /screens/lobby: the body shows exactly one of \"dashboard\" or \"playlist\"\n")
    assert post(walls, "/screens/lobby", [1])[0] == 400
    status, _, _ = http_request(walls.http + "/screens/lobby", "POST", b"{}", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 415
    assert get_json(walls, "/screens/lobby.json") == (200, {"name": "lobby", "playlist": "lobby"})  # unchanged


def test_screen_names_no_config_could_define_are_refused_before_the_upgrade(walls):
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        connect(walls.ws + "/ws?streams=orders&control=1&screen=a%20b").close()
    assert refused.value.response.status_code == 400
    assert b"screen= takes a screen's name" in refused.value.response.body
    with connect(walls.ws + "/ws?streams=orders&control=1&screen=hall") as ws:  # not configured (yet): fine
        assert json.loads(ws.recv(timeout=scaled(3)))["control"] == "stream"


def test_a_reload_rereads_the_walls_and_keeps_valid_assignments(walls):
    assert post(walls, "/screens/lobby", {"dashboard": "sales"})[0] == 200
    since = get_json(walls, "/screens.json")[1]["screens"][0]["since"]
    text = CONFIG.replace('title = "Sales"', 'title = "Sales EU"') + '\n[screens.hall]\ndashboard = "default"\n'
    walls.config_path.write_text(text.replace('[screens.desk]\ndashboard = "sales"',
                                              '[screens.desk]\nplaylist = "lobby"'))
    with connect(walls.ws + "/ws?streams=orders&control=1&screen=lobby") as tv:
        tv.recv(timeout=scaled(3))
        status, answer = post(walls, "/reload", {})
        assert (status, json.loads(answer)) == (200, {"reloaded": 1})
        assert json.loads(tv.recv(timeout=scaled(2))) == {"control": "reload"}
    assert get_json(walls, "/dashboard.json?dashboard=sales")[1]["title"] == "Sales EU"
    screens = {screen["name"]: screen for screen in get_json(walls, "/screens.json")[1]["screens"]}
    assert (screens["lobby"]["dashboard"], screens["lobby"]["since"]) == ("sales", since)  # kept
    assert screens["desk"]["playlist"] == "lobby" and screens["hall"]["dashboard"] == "default"
    # A file with a mistake: 400 naming it, nothing changes.
    walls.config_path.write_text(CONFIG.replace('every = 30', 'every = 1'))
    status, answer = post(walls, "/reload", {})
    assert status == 400
    assert answer.decode() == (f"the config file has a mistake; nothing reloaded: {walls.config_path}: "
                               "[playlists.lobby], key 'every': must be a number of seconds from 5 to 86400, got 1\n")
    assert get_json(walls, "/dashboard.json?dashboard=sales")[1]["title"] == "Sales EU"


def test_a_publish_can_send_a_lists_rows(walls):
    rows = [{"name": "acme", "total": 1234.5}, {"name": "globex", "total": 99}]
    with connect(walls.ws + "/ws?streams=top") as ws:
        status, answer = publish(walls.http, "top", {"variable": 2, "rows": rows}, TOKEN)
        assert status == 200, answer
        message = json.loads(ws.recv(timeout=scaled(3)))
    assert (message["stream"], message["variable"], message["rows"]) == ("top", 2, rows)
