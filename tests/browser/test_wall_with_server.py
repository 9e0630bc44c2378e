"""The wall of tiles against the real server: ``[dashboard]`` in the config file,
``GET /dashboard.json``, one ``/ws?streams=`` socket for every tile, in Chromium.

tests/browser/test_wall_page.py covers the page's every state against a scripted server; these tests
check that the real server gives the page what it needs.
"""

from __future__ import annotations

import json
import textwrap

import pytest
import websocket  # websocket-client

from tests.browser import query, received, snapshot
from tests.browser.test_wall_page import count_sockets, seqs, text, tiles
from tests.support import ServerProcess, http_get, publish, scaled, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

TOKEN = "wall-token"
SIX = ["signups", "orders", "revenue", "errors", "latency", "queue"]
CONFIG = "\n".join(f"[streams.{name}]\nsource = \"publish\"\nhistory = {5 if name == 'latency' else 100}\n"
                   for name in SIX) + textwrap.dedent("""
    [dashboard]
    title = "Operations"

    [[dashboard.tiles]]
    stream = "signups"
    label = "Sign-ups today"
    decimals = 0
    warn = 100
    crit = 50
    below = true

    [[dashboard.tiles]]
    stream = "orders"
    label = "Orders / min"

    [[dashboard.tiles]]
    stream = "revenue"
    label = "Revenue"
    unit = "EUR"
    decimals = 2

    [[dashboard.tiles]]
    stream = "errors"
    label = "Errors"
    decimals = 0
    warn = 5
    crit = 10

    [[dashboard.tiles]]
    stream = "latency"
    label = "p95 latency"
    unit = "ms"
    decimals = 1

    [[dashboard.tiles]]
    stream = "queue"
    label = "Queue depth"
    chart = false
""")


@pytest.fixture
def wall_server(start_server, tmp_path, after_page):
    path = tmp_path / "wall.toml"
    path.write_text(CONFIG)
    server = start_server("--config", str(path), "--publish-token", TOKEN)
    after_page.append(server.stop)  # after the page is closed (tests/conftest.py)
    return server


@pytest.fixture(scope="module")
def idle_wall_server(tmp_path_factory):
    """The same server for the tests that only read its layout or are refused before the
    upgrade (they publish nothing and leave no socket): one start, not eight (the module runs
    whole on one worker, tests/conftest.py)."""
    path = tmp_path_factory.mktemp("idle-wall") / "wall.toml"
    path.write_text(CONFIG)
    server = ServerProcess("--config", str(path), "--publish-token", TOKEN).start()
    yield server
    server.stop()
    server.discard_log()


def put(server, stream, value):
    status, answer = publish(server.http, stream, {"variable": value}, TOKEN)
    assert status == 200, answer


def test_dashboard_json_lists_every_tile_with_defaults(idle_wall_server):
    wall_server = idle_wall_server
    status, _, body = http_get(wall_server.http + "/dashboard.json")
    layout = json.loads(body)
    assert status == 200 and layout["title"] == "Operations" and layout["columns"] is None
    assert [tile["stream"] for tile in layout["tiles"]] == SIX
    assert layout["tiles"][1] == {"kind": "number", "stream": "orders", "label": "Orders / min", "alert": False,
                                  "compare": None, "unit": "", "format": "number", "decimals": None,
                                  "currency": None, "warn": None, "crit": None, "below": False, "chart": True}


def test_six_tiles_show_live_values_within_3s_over_one_websocket(wall_server, page):
    for stream, value in zip(SIX, [150, 17.125, 1234.5, 2, 87.24, 12]):
        put(wall_server, stream, value)
    opened = count_sockets(page)
    page.goto(wall_server.http + "/")
    shown = {"signups": "150", "orders": "17.125", "revenue": "1234.50", "errors": "2", "latency": "87.2",
             "queue": "12"}
    wait_until(lambda: {s: t["value"] for s, t in tiles(page).items()} == shown, 3,
               message="six tiles with their last values")
    for stream, value in zip(SIX, [151, 18, 99.999, 3, 90, 13]):
        put(wall_server, stream, value)
    live = {"signups": "151", "orders": "18", "revenue": "100.00", "errors": "3", "latency": "90.0", "queue": "13"}
    wait_until(lambda: {s: t["value"] for s, t in tiles(page).items()} == live, 3, message="six live values")
    assert len(opened) == 1, opened
    assert query(opened[0])["streams"] == ",".join(SIX)
    assert all(t["state"] == "live" for t in tiles(page).values())
    assert all(m.get("stream") in SIX for m in received(page) if "variable" in m)
    assert text(page, "status") == "live" and text(page, "title") == "Operations"
    snapshot(page, "wall-real-six")


def test_thresholds_change_the_tile_state_from_real_publishes(wall_server, page):
    page.goto(wall_server.http + "/")
    wait_until(lambda: text(page, "status") == "live", 3, message="live")
    for stream, value, state in [("signups", 150, "live"), ("signups", 100, "warn"), ("signups", 40, "crit"),
                                 ("errors", 4, "live"), ("errors", 5, "warn"), ("errors", 11, "crit"),
                                 ("signups", 101, "live")]:
        put(wall_server, stream, value)
        tile = wait_until(lambda: (t := tiles(page)[stream])["value"] == str(value) and t, 3,
                          message=f"{stream} = {value}")
        assert (tile["state"], tile["cue"]) == (state, state)


def test_a_stream_that_could_not_be_resumed_shows_its_gap_and_the_others_do_not(wall_server, page, browser):
    """The page loses its socket (offline); meanwhile 'latency' (history 5) gets more than
    it keeps and the others get two values: on reconnect five tiles resume exactly, one
    shows the gap."""
    for stream in SIX:
        put(wall_server, stream, 1)
    page.goto(wall_server.http + "/")
    wait_until(lambda: all(seqs(page, s) == [1] for s in SIX), 3, message="every last value")
    page.context.set_offline(True)
    page.evaluate("window.__lastSocket.close()")
    wait_until(lambda: text(page, "status").startswith("offline"), 5, message="offline")
    for stream in SIX:
        for value in range(2, 12 if stream == "latency" else 4):
            put(wall_server, stream, value)
    page.context.set_offline(False)
    wait_until(lambda: all(seqs(page, s)[-1] == (11 if s == "latency" else 3) for s in SIX), 5,
               message="every tile caught up")
    # The tiles are drawn on the next frame after the messages arrive (a loaded machine can
    # hold that frame back): wait for the drawn gap, then read every tile.
    wait_until(lambda: tiles(page)["latency"]["gap"] is not None, 5, message="the latency tile drawn with its gap")
    seen = tiles(page)
    for stream in SIX:
        if stream == "latency":
            # The gap, then what the stream still keeps (history 5: ?history=100 asks for it all).
            assert seqs(page, stream) == [1, 7, 8, 9, 10, 11] and seen[stream]["gap"] is not None
        else:
            assert seqs(page, stream) == [1, 2, 3], stream
            assert seen[stream]["gap"] is None and seen[stream]["gaps"] == 0, stream
    snapshot(page, "wall-real-gap")


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080), (3840, 2160)])
def test_the_wall_fits_the_screen(wall_server, page, width, height):
    page.set_viewport_size({"width": width, "height": height})
    for stream in SIX:
        put(wall_server, stream, 123456.78)
    page.goto(wall_server.http + "/")
    wait_until(lambda: len(tiles(page)) == 6 and all(t["value"] for t in tiles(page).values()), 3,
               message="six tiles")
    wait_until(lambda: page.evaluate("document.getAnimations().length === 0"), 3, message="a settled screen")
    assert page.evaluate("[document.documentElement.scrollWidth > innerWidth, "
                         "document.documentElement.scrollHeight > innerHeight]") == [False, False]
    for stream in SIX:
        value = page.locator(f'[data-tile="{stream}"] [data-field="value"]').bounding_box()
        tile = page.locator(f'[data-tile="{stream}"]').bounding_box()
        assert value["x"] >= tile["x"] - 0.5 and value["x"] + value["width"] <= tile["x"] + tile["width"] + 0.5
    snapshot(page, f"wall-real-{width}x{height}")


def test_one_socket_for_several_streams_with_resume_per_stream(wall_server):
    for value in range(1, 4):
        put(wall_server, "orders", value)
        put(wall_server, "queue", value)
    epoch = json.loads(http_get(wall_server.http + "/streams")[2])["streams"][1]["epoch"]
    ws = websocket.create_connection(wall_server.ws + f"/ws?streams=orders,queue&resume=orders:{epoch}:1",
                                     timeout=scaled(3))
    got = [json.loads(ws.recv()) for _ in range(3)]
    assert [(m["stream"], m["seq"]) for m in got] == [("orders", 2), ("orders", 3), ("queue", 3)]
    put(wall_server, "queue", 9)
    assert (lambda m: (m["stream"], m["variable"]))(json.loads(ws.recv())) == ("queue", 9)
    ws.close()


@pytest.mark.parametrize("query_string, status", [
    ("streams=orders,nowhere", 404), ("streams=" + ",".join(["orders"] * 2), 400), ("streams=", 400),
    ("streams=" + ",".join(SIX * 3), 400), ("streams=orders&resume=queue:E:1", 400),
    ("streams=orders&resume=orders:E:x", 400), ("", 400)])
def test_bad_multi_stream_requests_are_refused_before_the_upgrade(idle_wall_server, query_string, status):
    wall_server = idle_wall_server
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(wall_server.ws + "/ws?" + query_string, timeout=scaled(3))
    assert refused.value.status_code == status
