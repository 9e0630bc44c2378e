"""Several walls on one server, in Chromium against a real server: a wall by name
(``?dashboard=``, ``/d/NAME``), a playlist rotating walls on ONE WebSocket (the handshakes
counted by Playwright, the page and the server), a reload that keeps the playlist, a named
screen steered by ``POST /screens/NAME`` within 1 s, an unknown name's notice, ``?theme=``."""

# ruff: noqa: E501 (the JavaScript read in the page is kept as one would write it there)
from __future__ import annotations

import json
import re
import time

import pytest

from tests.browser import query, sockets
from tests.browser.kinds_wall import TOKEN, by_stream, post_screen, put, running_server, streams_toml
from tests.support import http_get, http_request, scaled, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

EVERY = 5   # the shortest rotation the config takes
CONFIG = streams_toml(["orders", "cpu", "revenue", "visitors"]) + f"""
[dashboard]
title = "Default wall"
[[dashboard.tiles]]
stream = "visitors"

[dashboards.ops]
title = "Operations"
[[dashboards.ops.tiles]]
stream = "orders"
[[dashboards.ops.tiles]]
kind = "gauge"
stream = "cpu"
max = 100

[dashboards.sales]
title = "Sales"
theme = "light"
[[dashboards.sales.tiles]]
stream = "revenue"
currency = "EUR"
[[dashboards.sales.tiles]]
kind = "clock"

[playlists.lobby]
dashboards = ["ops", "sales"]
every = {EVERY}

[screens.lobby]
dashboard = "ops"

[screens.hall]
playlist = "lobby"
"""
NOT_FOUND = re.compile(r"^Failed to load resource: the server responded with a status of 404")

# Every change of the wall on screen, with the page's clock: the switch times.
WATCH_WALLS = """() => {
  window.__walls = [[document.body.dataset.wall || null, performance.now()]];
  new MutationObserver(() => {
    const wall = document.body.dataset.wall || null;
    if (wall !== window.__walls[window.__walls.length - 1][0]) window.__walls.push([wall, performance.now()]);
  }).observe(document.body, { attributes: true, attributeFilter: ['data-wall'] });
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("walls"), CONFIG) as server:
        for stream, value in [("orders", 42), ("cpu", 12), ("revenue", 1234567.89), ("visitors", 7)]:
            put(server, stream, value)
        yield server


def wall_of(page) -> dict:
    return page.evaluate("""() => ({ wall: document.body.dataset.wall || null, title: document.getElementById('title').textContent,
      theme: document.documentElement.dataset.theme || null, link: document.body.dataset.link,
      notice: document.getElementById('layout-notice').hidden ? null : document.getElementById('layout-notice').textContent,
      progress: document.getElementById('progress').hidden ? null : document.getElementById('progress').dataset.left,
      next: document.getElementById('progress').dataset.next || null,
      kinds: [...document.querySelectorAll('main.wall:not([hidden]) .tile')].map((t) => t.dataset.kind) })""")


def websockets_open(server) -> float:
    _, _, body = http_get(server.http + "/metrics")
    match = re.search(r'^dashstream_connections\{transport="websocket"\} (\S+)$', body.decode(), re.M)
    return float(match.group(1))


@pytest.mark.parametrize("path", ["/?dashboard=sales", "/d/sales"])
def test_a_wall_by_name(server, page, path):
    page.goto(server.http + path)
    shown = wait_until(lambda: (w := wall_of(page))["link"] == "live" and w, 5, message="the sales wall")
    assert (shown["wall"], shown["title"], shown["theme"], shown["kinds"]) == ("sales", "Sales", "light",
                                                                                ["number", "clock"])
    assert shown["progress"] is None and shown["notice"] is None
    wait_until(lambda: by_stream(page)["revenue"]["value"] == "€1,234,567.89", 3, message="revenue")
    assert query(sockets(page)[0])["streams"] == "revenue"


def test_an_unknown_wall_or_screen_says_so_and_shows_the_default_wall(server, page, problems):
    problems.allow(NOT_FOUND)
    page.goto(server.http + "/d/nope")
    shown = wait_until(lambda: (w := wall_of(page))["notice"] and w["link"] == "live" and w, 5, message="a notice")
    assert shown["notice"] == "no dashboard named 'nope'; defined: default, ops, sales — showing the default wall"
    assert (shown["wall"], shown["title"]) == ("default", "Default wall")
    page.goto(server.http + "/?screen=nowhere")
    shown = wait_until(lambda: (w := wall_of(page))["notice"] and w["link"] == "live" and w, 5, message="a notice")
    assert shown["notice"] == "no screen named 'nowhere'; configured: lobby, hall — showing the default wall"
    assert (shown["wall"], shown["title"]) == ("default", "Default wall")


def test_a_playlist_rotates_within_1s_of_every_on_one_websocket_and_a_reload_keeps_it(server, page):
    opened = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    page.goto(server.http + "/?playlist=lobby")
    shown = wait_until(lambda: (w := wall_of(page))["link"] == "live" and w, 5, message="the playlist live")
    assert (shown["wall"], shown["next"]) == ("ops", "sales") and shown["progress"] is not None
    # Watched once the first wall is up: watched at once after goto, the page may not yet have
    # set body[data-wall], and the first wall then counted as a switch from none.
    page.evaluate(WATCH_WALLS)
    # Two switches: ops -> sales -> ops, each `every` after the one before.
    switches = wait_until(lambda: len(w := page.evaluate("window.__walls")) >= 3 and w, EVERY * 2 + 3,
                          interval=0.1, message="two switches")
    (_, first), (second_wall, second), (third_wall, third) = switches[:3]
    assert (second_wall, third_wall) == ("sales", "ops")
    assert abs((third - second) / 1000 - EVERY) < 1, switches
    started = page.evaluate("window.__walls[0][1]")   # the first wall was already up when watched
    assert second - started <= EVERY * 1000 + 1000, switches
    # The sales wall's values were there at once (its stream is on the same socket).
    assert page.evaluate("document.querySelector('[data-tile=revenue] [data-field=value]').textContent") \
        == "€1,234,567.89"
    # ONE handshake for the playlist's union of streams, seen by Playwright, by the page, by the server.
    assert len(opened) == 1, opened
    assert sockets(page) == opened
    assert query(opened[0])["streams"] == "orders,cpu,revenue"
    assert websockets_open(server) == 1

    status, _, body = http_request(server.http + "/reload", "POST", b"", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    # (Playwright hands over its events during its own calls: the predicate makes one.)
    wait_until(lambda: sockets(page) and len(opened) == 2, 5, message="the reloaded page's socket")
    shown = wait_until(lambda: (w := wall_of(page))["link"] == "live" and w, 5, message="live again")
    assert page.url.endswith("/?playlist=lobby") and shown["progress"] is not None
    assert query(opened[1])["streams"] == "orders,cpu,revenue"
    page.evaluate(WATCH_WALLS)
    wait_until(lambda: len(page.evaluate("window.__walls")) >= 2, EVERY + 2, interval=0.1,
               message="the playlist rotating after the reload")


def test_a_named_screen_switches_within_1s_of_its_post(server, page):
    page.goto(server.http + "/?screen=lobby")
    shown = wait_until(lambda: (w := wall_of(page))["link"] == "live" and w, 5, message="the screen's wall")
    assert shown["wall"] == "ops" and query(sockets(page)[0])["screen"] == "lobby"
    listed = json.loads(http_get(server.http + "/screens.json")[2])["screens"]
    assert [len(s["connected"]) for s in listed if s["name"] == "lobby"] == [1]

    page.evaluate(WATCH_WALLS)
    posted = time.monotonic()
    assert post_screen(server, "lobby", {"dashboard": "sales"})["dashboard"] == "sales"
    wait_until(lambda: wall_of(page)["wall"] == "sales", 2, message="the screen on sales")
    took = time.monotonic() - posted
    assert took < scaled(1), took
    shown = wall_of(page)
    assert (shown["title"], shown["theme"], shown["kinds"]) == ("Sales", "light", ["number", "clock"])
    wait_until(lambda: by_stream(page)["revenue"]["value"] == "€1,234,567.89", 3, message="sales' values")

    posted = time.monotonic()
    post_screen(server, "lobby", {"playlist": "lobby"})
    wait_until(lambda: (w := wall_of(page))["progress"] is not None and w["wall"] == "ops", 2,
               message="the screen on the playlist")
    assert time.monotonic() - posted < scaled(1)
    # The page reloaded by hand shows the assignment the server keeps.
    page.reload()
    shown = wait_until(lambda: (w := wall_of(page))["link"] == "live" and w, 5, message="after a reload")
    assert shown["wall"] == "ops" and shown["progress"] is not None
    post_screen(server, "lobby", {"dashboard": "ops"})   # as configured, for the other tests


def test_theme_and_time_zone_from_the_query_win_over_the_walls(server, page):
    page.goto(server.http + "/d/sales?theme=dark&tz=Pacific/Auckland")
    shown = wait_until(lambda: (w := wall_of(page))["link"] == "live" and w, 5, message="the wall")
    assert shown["theme"] == "dark"
    assert page.evaluate("document.querySelector('[data-kind=clock]').dataset.tz") == "Pacific/Auckland"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.goto(server.http + "/d/sales")
    wait_until(lambda: wall_of(page)["link"] == "live", 5, message="the wall")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != background
