"""The wall of tiles (the page's side) and the page's handling of source, backplane and
delay states, in a real browser: Debian's chromium driven by Playwright.

The real server does not serve /dashboard.json or /ws?streams= yet, so tests/scripted_wall.py
plays it on one port (the page, the layout, the sockets, per-stream logs with the resume
rule). Every test fails on a console error or an unhandled rejection (tests/conftest.py) and
leaves a screenshot under test-artifacts/.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest

from tests.browser import PAGE_FILE, SOCKET_FAILED, query, received, snapshot, sockets
from tests.scripted_wall import ScriptedWall
from tests.support import scaled, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]


@pytest.fixture
def start_wall(after_page):
    """Start a ScriptedWall; it stops after the page is closed (see tests/conftest.py)."""
    def start(*args, **kwargs) -> ScriptedWall:
        wall = ScriptedWall(*args, **kwargs).start()
        after_page.append(wall.stop)
        return wall

    return start


def spec(stream: str, **settings) -> dict:
    """A tile as /dashboard.json lists it: every key, the server's defaults filled in."""
    return {"stream": stream, "label": stream, "unit": "", "decimals": None, "warn": None, "crit": None,
            "below": False, "chart": True, **settings}


SIX = ["signups", "orders", "revenue", "errors", "latency", "queue"]
OPERATIONS = {"title": "Operations", "columns": None, "tiles": [
    spec("signups", label="Sign-ups today", decimals=0, warn=100, crit=50, below=True),
    spec("orders", label="Orders / min"),
    spec("revenue", label="Revenue", unit="EUR", decimals=2),
    spec("errors", label="Errors", unit="/min", decimals=0, warn=5, crit=10),
    spec("latency", label="p95 latency", unit="ms", decimals=1, warn=250, crit=500),
    spec("queue", label="Queue depth", chart=False),
]}
# A value on each of those tiles that crosses no threshold, and how the tile shows it.
FINE = {"signups": 150, "orders": 150, "revenue": 150, "errors": 1, "latency": 150, "queue": 150}
FINE_SHOWN = {"signups": "150", "orders": "150", "revenue": "150.00", "errors": "1", "latency": "150.0",
              "queue": "150"}

# One read of every tile: what a person sees, and the hooks.
TILES = """() => [...document.querySelectorAll('[data-tile]')].map((tile) => {
  const field = (name) => tile.querySelector('[data-field="' + name + '"]');
  const shown = (name) => (field(name).hidden ? null : field(name).textContent);
  return {
    stream: tile.dataset.tile, state: field('state').dataset.state, tileState: tile.dataset.state,
    cue: field('state').textContent, label: field('label').textContent, value: field('value').textContent,
    unit: field('unit').textContent, updated: field('updated').textContent, detail: shown('detail'),
    gap: shown('gap'), gaps: tile.querySelectorAll('.chart-gaps line').length, chart: !field('chart').hidden,
    points: (tile.querySelector('.chart-line').getAttribute('points') || '').split(' ').filter(Boolean).length,
    opacity: Number(getComputedStyle(tile.querySelector('.value-line')).opacity),
    colour: getComputedStyle(tile.querySelector('.value-line')).color,
    border: getComputedStyle(tile).borderTopColor,
    settled: tile.getAnimations({ subtree: true }).length === 0,
  };
})"""


def tiles(page) -> dict[str, dict]:
    return {tile["stream"]: tile for tile in page.evaluate(TILES)}


def text(page, element_id: str) -> str:
    return page.text_content(f"#{element_id}") or ""


def clock(ts: float) -> str:
    return time.strftime("%H:%M", time.localtime(ts))


def count_sockets(page) -> list[str]:
    """Every WebSocket the page opens, as Playwright sees them (not the page's own recorder)."""
    opened: list[str] = []
    page.on("websocket", lambda socket: opened.append(socket.url))
    return opened


def seqs(page, stream: str) -> list[int]:
    return [m["seq"] for m in received(page) if m.get("stream") == stream and "variable" in m]


# --- the wall: six tiles, one socket ------------------------------------------------------------


def test_six_tiles_show_live_values_within_3s_over_one_websocket(start_wall, page):
    wall = start_wall(SIX, OPERATIONS)
    for stream, value in zip(SIX, [150, 17.125, 1234.5, 2, 87.24, 12]):
        wall.publish(stream, value)   # last values: a new screen gets them at once
    opened = count_sockets(page)
    page.goto(wall.http + "/")
    shown = {"signups": "150", "orders": "17.125", "revenue": "1234.50", "errors": "2",
             "latency": "87.2", "queue": "12"}
    wait_until(lambda: {s: t["value"] for s, t in tiles(page).items()} == shown, 3,
               message="six tiles with their last values")
    # ... and live ones: a value published now is on its tile at once.
    for stream, value in zip(SIX, [151, 18, 99.999, 3, 90, 13]):
        wall.publish(stream, value)
    live = {"signups": "151", "orders": "18", "revenue": "100.00", "errors": "3", "latency": "90.0", "queue": "13"}
    wait_until(lambda: {s: t["value"] for s, t in tiles(page).items()} == live, 3, message="six live values")

    assert len(opened) == 1, opened
    url = urlsplit(opened[0])
    assert (url.netloc, url.path) == (f"127.0.0.1:{wall.port}", "/ws")
    assert query(opened[0]) == {"streams": ",".join(SIX), "control": "1", "history": "100"}
    assert "streams=signups,orders,revenue,errors,latency,queue" in opened[0]   # readable commas

    seen = tiles(page)
    assert list(seen) == SIX   # the dashboard's order
    assert [seen[s]["label"] for s in SIX] == [t["label"] for t in OPERATIONS["tiles"]]
    assert [seen[s]["unit"] for s in SIX] == ["", "", "EUR", "/min", "ms", ""]
    assert all(t["state"] == t["tileState"] == "live" and t["cue"] == "live" for t in seen.values())
    assert all(t["updated"].startswith("updated ") and t["detail"] is None for t in seen.values())
    assert [seen[s]["chart"] for s in SIX] == [True] * 5 + [False]
    assert all(seen[s]["points"] == 2 for s in SIX[:5])
    assert page.locator('[data-tile="signups"] [data-field="max"]').text_content() == "max 151"
    assert page.locator('[data-tile="revenue"] [data-field="min"]').text_content() == "min 100.00"
    # One connection state for the whole screen, and the dashboard's title.
    assert page.locator("#status").count() == 1 and text(page, "status") == "live"
    assert text(page, "title") == "Operations" and page.title() == "Operations"
    assert not page.is_visible("#single") and not page.is_visible("#stale")
    snapshot(page, "tiles-six")


def test_thresholds_change_colour_and_text_cue(start_wall, page):
    layout = {"title": "Thresholds", "columns": 2, "tiles": [
        spec("signups", label="Sign-ups today", decimals=0, warn=100, crit=50, below=True),
        spec("errors", label="Errors", decimals=0, warn=5, crit=10),
    ]}
    wall = start_wall(["signups", "errors"], layout)
    page.goto(wall.http + "/")
    wait_until(lambda: text(page, "status") == "live", 3, message="live")
    looks: dict[str, set] = {}
    steps = [("signups", 150, "live", None), ("signups", 100, "warn", "warning: ≤ 100"),
             ("signups", 80, "warn", "warning: ≤ 100"), ("signups", 50, "crit", "critical: ≤ 50"),
             ("signups", 12, "crit", "critical: ≤ 50"), ("signups", 101, "live", None),
             ("errors", 4, "live", None), ("errors", 5, "warn", "warning: ≥ 5"),
             ("errors", 11, "crit", "critical: ≥ 10"), ("errors", 0, "live", None)]
    for stream, value, state, detail in steps:
        wall.publish(stream, value)
        # Read the colours once the tile's colour transitions have finished.
        tile = wait_until(lambda: (t := tiles(page)[stream])["value"] == str(value) and t["settled"] and t, 3,
                          message=f"{stream} = {value}")
        # The word, not colour alone: the cue says the state, the detail says which bound.
        assert (tile["state"], tile["tileState"], tile["cue"], tile["detail"]) == (state, state, state, detail)
        looks.setdefault(state, set()).add((tile["colour"], tile["border"]))
        if (stream, value) == ("signups", 12):
            snapshot(page, "tiles-crit")
    # Each state has one look, and the three looks differ.
    assert all(len(seen) == 1 for seen in looks.values()), looks
    assert len({look for seen in looks.values() for look in seen}) == 3, looks


def test_source_down_shows_on_its_tile_only_and_clears(start_wall, page):
    wall = start_wall(SIX, OPERATIONS)
    since = time.time() - 120
    for stream in SIX:   # the last values, produced before the orders source went down
        wall.publish(stream, FINE[stream], ts=since - 30)
    # Down before the page connects: the state comes once on connect, and the (older)
    # last value that comes with it must not clear it.
    wall.set_source("orders", "down", "could not connect to the database", since=since)
    page.goto(wall.http + "/")
    wait_until(lambda: {s: t["value"] for s, t in tiles(page).items()} == FINE_SHOWN, 3, message="six values")
    down = f"source offline since {clock(since)}: could not connect to the database"
    wait_until(lambda: tiles(page)["orders"]["state"] == "source-down", 3, message="orders source down")
    seen = tiles(page)
    assert (seen["orders"]["cue"], seen["orders"]["detail"]) == ("source down", down)
    assert seen["orders"]["value"] == FINE_SHOWN["orders"]   # the last value stays, dimmed
    wait_until(lambda: tiles(page)["orders"]["opacity"] < 0.6, 3, message="the value dimmed")
    assert all(seen[s]["state"] == "live" and seen[s]["detail"] is None for s in SIX if s != "orders")
    assert text(page, "status") == "live"   # the connection is fine: only the source is not
    snapshot(page, "tiles-source-down")

    # A message with `variable` is data, even with a `control` field: never a reload.
    page.evaluate("window.__marker = 'same page'")
    wall.publish("signups", 222, control="reload")
    wait_until(lambda: tiles(page)["signups"]["value"] == "222", 3, message="the data message")
    assert page.evaluate("window.__marker") == "same page"

    wall.set_source("orders", "up")
    wait_until(lambda: tiles(page)["orders"]["state"] == "live", 3, message="orders up again")
    wait_until(lambda: (t := tiles(page)["orders"])["detail"] is None and t["opacity"] == 1, 3,
               message="the value bright again")

    # Down again, then values flowing again clear it without an "up".
    wall.set_source("orders", "down", "timeout")
    wait_until(lambda: tiles(page)["orders"]["state"] == "source-down", 3, message="down again")
    wall.publish("orders", 7)
    wait_until(lambda: (t := tiles(page)["orders"])["state"] == "live" and t["value"] == "7", 3,
               message="a new value clears the source state")

    # A source that went quiet (the server's "stale") is a stale tile, in words.
    wall.set_source("errors", "stale", "no value for 60 s", since=since)
    wait_until(lambda: tiles(page)["errors"]["state"] == "stale", 3, message="errors source stale")
    assert tiles(page)["errors"]["detail"] == f"source silent since {clock(since)}: no value for 60 s"
    assert all(tiles(page)[s]["state"] == "live" for s in SIX if s != "errors")


def test_restart_resumes_every_tile_and_marks_a_gap_only_where_resume_failed(start_wall, page, problems):
    problems.allow(SOCKET_FAILED)   # the browser logs each refused attempt while the server is down
    wall = start_wall(SIX, OPERATIONS)
    for round_ in range(3):
        for stream in SIX:
            wall.publish(stream, 10 * round_ + SIX.index(stream))
    opened = count_sockets(page)
    page.goto(wall.http + "/")
    page.evaluate("window.__marker = 'same page'")
    wait_until(lambda: all(seqs(page, s) == [3] for s in SIX), 3, message="the last value of every stream")
    for stream in SIX:
        wall.publish(stream, 100 + SIX.index(stream))
    wait_until(lambda: all(seqs(page, s) == [3, 4] for s in SIX), 3, message="a live value on every stream")
    epochs = {s: wall.logs[s].epoch for s in SIX}

    wall.stop()
    wait_until(lambda: text(page, "status").startswith("reconnecting"), 3, message="reconnecting")
    # While the screen is away: two values on five streams (their logs survive, as a
    # shared log does); the sixth loses its history and starts a new epoch.
    for stream in SIX:
        if stream == "latency":
            wall.forget(stream)
        wall.publish(stream, 200 + SIX.index(stream))
        if stream != "latency":
            wall.publish(stream, 300 + SIX.index(stream))
    wall.start()

    wait_until(lambda: text(page, "status") == "live", 12, message="live again")
    resumed = [s for s in SIX if s != "latency"]
    wait_until(lambda: all(seqs(page, s)[-1] == 6 for s in resumed) and seqs(page, "latency")[-1] == 1, 5,
               message="every tile caught up")
    # Two connections made (attempts refused while it was down do not count), no reload.
    assert len(wall.paths) == 2 and page.evaluate("window.__marker") == "same page"
    assert opened[-1].endswith(wall.paths[-1])
    resume = dict(item.split(":", 1) for item in query(opened[-1])["resume"].split(","))
    assert resume == {s: f"{epochs[s]}:4" for s in SIX}
    assert query(opened[-1])["streams"] == ",".join(SIX)

    seen = tiles(page)
    for stream in resumed:   # exactly once, in order, no gap
        assert seqs(page, stream) == [3, 4, 5, 6], stream
        assert (seen[stream]["gaps"], seen[stream]["gap"]) == (0, None), stream
    assert seen["queue"]["value"] == "305"
    messages = [m for m in received(page) if m.get("stream") == "latency"]
    assert messages[-1]["gap"] is True and seen["latency"]["value"] == "204.0"
    assert seen["latency"]["gaps"] == 1 and seen["latency"]["gap"].startswith("data gap at ")
    snapshot(page, "tiles-restart-gap")


def test_a_quiet_stream_goes_stale_on_its_own_tile(start_wall, page):
    layout = {"title": "Quiet", "columns": None, "tiles": [spec("orders"), spec("signups")]}
    wall = start_wall(["orders", "signups"], layout)
    wall.publish("signups", 1)
    page.goto(wall.http + "/?stale=1")
    wait_until(lambda: tiles(page)["signups"]["value"] == "1", 3, message="the last value")

    def busy_and_quiet():
        wall.publish("orders", time.monotonic())
        seen = tiles(page)
        return seen["signups"]["state"] == "stale" and seen

    seen = wait_until(busy_and_quiet, 4, interval=0.2, message="the quiet tile to go stale")
    assert re.fullmatch(r"no new data for \d+ s", seen["signups"]["detail"])
    assert seen["signups"]["cue"] == "stale"
    assert seen["orders"]["state"] == "live"
    wall.publish("signups", 2)
    wait_until(lambda: tiles(page)["signups"]["state"] == "live", 3, message="fresh again")


@pytest.mark.parametrize("skew", [-3600, 3600])
def test_a_screen_behind_its_stream_says_delayed_whatever_the_clock_skew(start_wall, page, skew):
    """Messages whose ts falls further and further behind: the value shown is old even though
    values keep arriving. The server's clock is an hour off the page's: no false alarm."""
    layout = {"title": "Delay", "columns": None, "tiles": [spec("orders"), spec("signups")]}
    wall = start_wall(["orders", "signups"], layout)
    page.goto(wall.http + "/?stale=3")
    wait_until(lambda: text(page, "status") == "live", 3, message="live")
    count = 0

    def publish_both(lag: float) -> dict:
        nonlocal count
        count += 1
        now = time.time() + skew
        wall.publish("orders", count, ts=now - lag)
        wall.publish("signups", count, ts=now)
        return wait_until(lambda: (t := tiles(page))["orders"]["value"] == str(count) and t, 3,
                          message=f"value {count}")

    started = time.monotonic()
    while time.monotonic() - started < scaled(3):   # on time, past the page's catch-up window
        seen = publish_both(0)
        assert seen["orders"]["state"] == "live", seen["orders"]
    # Lags of 2, 4, 6 ... s, none on the 3 s threshold, where delivery jitter would decide.
    lag = 0
    while True:
        lag += 2
        seen = publish_both(lag)
        if seen["orders"]["state"] != "live" or lag > 8:
            break
    assert seen["orders"]["state"] == "stale", seen["orders"]
    delayed = int(re.fullmatch(r"delayed (\d+) s", seen["orders"]["detail"]).group(1))
    assert (lag, delayed) == (4, 4), (lag, delayed)   # the first lag past 3 s, in words
    assert seen["signups"]["state"] == "live"
    snapshot(page, f"tiles-delayed{skew:+d}")
    assert publish_both(0)["orders"]["state"] == "live"   # back on time: the warning clears


# --- which view the page shows ---------------------------------------------------------------------


def test_ad_hoc_wall_from_disk_with_defaults(start_wall, page, problems):
    problems.allow(SOCKET_FAILED)   # the second page's default address has no server
    wall = start_wall(["a", "b"])
    wall.publish("a", 3.14159)
    wall.publish("b", "n/a")
    opened = count_sockets(page)
    page.goto(f"{PAGE_FILE.as_uri()}?streams=a,b&ws={wall.ws}/")
    wait_until(lambda: [t["value"] for t in tiles(page).values()] == ["3.14159", "n/a"], 3,
               message="two tiles")
    assert opened == [f"ws://127.0.0.1:{wall.port}/ws?streams=a,b&control=1&history=100"]
    seen = tiles(page)
    # Defaults: label = stream name, no unit, no thresholds, chart on, the value's own decimals
    # (the default format groups thousands from 10,000 on, in the browser's locale).
    assert [(t["label"], t["unit"], t["chart"], t["state"]) for t in seen.values()] == \
        [("a", "", True, "live"), ("b", "", True, "live")]
    assert seen["a"]["points"] == 1 and seen["b"]["points"] == 0   # text is shown, not plotted
    wall.publish("a", -1e9)   # far below anything: still no threshold state without thresholds
    wait_until(lambda: tiles(page)["a"]["value"] == "-1,000,000,000", 3, message="a new value")
    assert tiles(page)["a"]["state"] == "live"

    page.goto(f"{PAGE_FILE.as_uri()}?streams=a,b")
    wait_until(lambda: sockets(page), 3, message="a connection attempt")
    assert sockets(page)[0] == "ws://localhost:5000/ws?streams=a,b&control=1&history=100"


def test_served_page_picks_its_view_from_the_parameters_and_dashboard_json(start_wall, page, problems):
    problems.allow(re.compile(r"status of 503"))   # the failing layout, on purpose
    layout = {"title": "Two", "columns": None, "tiles": [spec("orders"), spec("signups")]}
    wall = start_wall(["orders", "signups", "default"], layout)
    for stream in ("orders", "signups", "default"):
        wall.publish(stream, 42)

    page.goto(wall.http + "/?stream=orders")   # today's single view, and no layout asked for
    wait_until(lambda: text(page, "variable") == "42", 3, message="the single view")
    assert wall.layout_requests == 0 and urlsplit(sockets(page)[0]).path == "/ws/orders"
    assert page.is_visible("#single") and not page.is_visible("#wall")

    page.goto(wall.http + "/")                 # a dashboard: the wall
    wait_until(lambda: len(tiles(page)) == 2, 3, message="the wall")
    assert wall.layout_requests == 1

    wall.layout = None                          # 404: the single view of the default stream
    page.goto(wall.http + "/")
    wait_until(lambda: text(page, "variable") == "42", 3, message="the single view")
    assert sockets(page)[0] == f"ws://127.0.0.1:{wall.port}/?control=1&history=100" and not tiles(page)

    wall.layout = {"title": "Empty", "columns": None, "tiles": []}   # no tiles: single view too
    page.goto(wall.http + "/")
    wait_until(lambda: text(page, "variable") == "42", 3, message="the single view")

    # A layout that cannot be read (503 while the server restarts): the single view first,
    # then, once the socket is up, the page asks again and becomes the wall.
    wall.layout = layout
    wall.layout_answers = [(503, '{"error": "starting"}')]
    opened = count_sockets(page)
    before = wall.layout_requests
    page.goto(wall.http + "/")
    wait_until(lambda: len(tiles(page)) == 2 and all(t["value"] == "42" for t in tiles(page).values()), 5,
               message="the wall after the re-check")
    assert wall.layout_requests == before + 3   # 503, the re-check, the reloaded page
    assert urlsplit(opened[0]).path == "/" and urlsplit(opened[-1]).path == "/ws"


def test_more_streams_than_one_socket_takes(start_wall, page):
    names = [f"s{i}" for i in range(1, 19)]
    wall = start_wall(names)
    page.goto(f"{wall.http}/?streams={','.join(names)}&title=Everything")
    wait_until(lambda: text(page, "status") == "live", 3, message="live")
    assert list(tiles(page)) == names[:16]
    assert query(sockets(page)[0])["streams"] == ",".join(names[:16])
    assert text(page, "notice") == "showing 16 of 18 streams: one screen subscribes to at most 16"
    assert text(page, "title") == "Everything"


def test_a_misspelt_stream_name_is_named_on_screen(start_wall, page, problems):
    """The server refuses the whole socket (404 before the upgrade, which the browser does
    not show), so the page asks the server's /streams which names it has."""
    problems.allow(SOCKET_FAILED)   # the refused handshakes, on purpose
    wall = start_wall(["orders", "signups"])
    page.goto(f"{wall.http}/?streams=orders,signup")
    wait_until(lambda: page.is_visible("#notice"), 12, message="the notice")
    assert text(page, "notice") == "this server has no stream named signup"
    assert text(page, "status").startswith("reconnecting") and wall.paths == []


# --- screen-wide states: backplane, reload ---------------------------------------------------------


def test_backplane_line_for_the_whole_screen_and_reload(start_wall, page):
    wall = start_wall(SIX, OPERATIONS)
    for stream in SIX:
        wall.publish(stream, FINE[stream])
    since = time.time() - 60
    wall.set_backplane("down", "redis: connection refused", since=since)
    page.goto(wall.http + "/")
    line = f"server cannot reach its data backplane since {clock(since)}: redis: connection refused"
    wait_until(lambda: page.is_visible("#backplane") and text(page, "backplane") == line, 3,
               message="the backplane line")
    wait_until(lambda: {s: t["value"] for s, t in tiles(page).items()} == FINE_SHOWN, 3, message="six values")
    assert all(t["state"] == "live" for t in tiles(page).values())   # no tile blamed
    snapshot(page, "tiles-backplane-down")
    wall.set_backplane("up")
    wait_until(lambda: not page.is_visible("#backplane"), 3, message="the line to clear")

    page.evaluate("window.__marker = 'before reload'")
    wall.send_raw({"control": "reload"})
    wait_until(lambda: page.evaluate("window.__marker") is None and len(tiles(page)) == 6, 5,
               message="a reloaded wall")
    wait_until(lambda: sockets(page), 3, message="a fresh socket")
    assert "resume" not in query(sockets(page)[0])   # a fresh page starts afresh


# --- the single view shares the engine: source, backplane and delay there too --------------------


def test_single_view_source_and_backplane_states(start_wall, page):
    wall = start_wall(["orders"])
    wall.publish("orders", 5)
    page.goto(f"{PAGE_FILE.as_uri()}?ws={wall.ws}/&stream=orders")
    wait_until(lambda: text(page, "variable") == "5", 3, message="the value")
    since = time.time() - 30
    wall.set_source("orders", "down", "could not connect to the database", since=since)
    wait_until(lambda: page.is_visible("#source"), 3, message="the source line")
    assert text(page, "source") == f"source offline since {clock(since)}: could not connect to the database"
    wait_until(lambda: float(page.eval_on_selector("#variable", "e => getComputedStyle(e).opacity")) < 0.6, 3,
               message="the value dimmed")   # after its fade
    assert text(page, "status") == "live" and text(page, "variable") == "5"
    wall.set_backplane("down", "")
    wait_until(lambda: page.is_visible("#backplane"), 3, message="the backplane line")
    assert text(page, "backplane").startswith("server cannot reach its data backplane since ")
    snapshot(page, "single-source-down")
    wall.publish("orders", 6)   # values flow again
    wait_until(lambda: not page.is_visible("#source") and text(page, "variable") == "6", 3,
               message="the source line to clear")
    wall.set_backplane("up")
    wait_until(lambda: not page.is_visible("#backplane"), 3, message="the backplane line to clear")


def test_single_view_says_delayed_when_ts_falls_behind(start_wall, page):
    wall = start_wall(["orders"])
    page.goto(f"{wall.http}/?stream=orders&stale=3")
    wait_until(lambda: text(page, "status") == "live", 3, message="live")
    skew = 3600   # the server's clock an hour ahead
    count = 0
    started = time.monotonic()
    lag = 0
    while not page.is_visible("#stale"):
        if time.monotonic() - started > scaled(3):
            lag += 2
        assert lag <= 8, "no delay warning"
        count += 1
        wall.publish("orders", count, ts=time.time() + skew - lag)
        wait_until(lambda: text(page, "variable") == str(count), 3, message=f"value {count}")
    assert (lag, text(page, "stale")) == (4, "delayed 4 s")
    snapshot(page, "single-delayed")


# --- layout: 1 to 12 tiles at three screen sizes and a phone ------------------------------------

# Eleven characters each, as shown with the thousands separators of the default format.
VALUES = [123456789, -123456.78, 999999.999, 8888888.8]
LABELS = ["Orders per minute across all EU shops", "Revenue", "p95 latency", "Queue"]
UNITS = ["/min", "EUR", "ms", ""]
DECIMALS = [None, 2, 3, 1]

GEOMETRY = """() => {
  const root = document.documentElement;
  const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  return {
    scroll: [root.scrollWidth - root.clientWidth, root.scrollHeight - root.clientHeight],
    status: box(document.getElementById('status')),
    tiles: [...document.querySelectorAll('[data-tile]')].map((tile) => {
      const fields = {};
      for (const name of ['value', 'unit', 'label', 'state', 'updated', 'chart']) {
        const el = tile.querySelector('[data-field="' + name + '"]');
        if (el.getClientRects().length) fields[name] = box(el);   // an empty unit is not shown
      }
      return { tile: box(tile), fields, value: tile.querySelector('[data-field="value"]').textContent };
    }),
  };
}"""


def inside(inner, outer, slack=0.5) -> bool:
    return (inner[0] >= outer[0] - slack and inner[1] >= outer[1] - slack
            and inner[2] <= outer[2] + slack and inner[3] <= outer[3] + slack)


@pytest.mark.parametrize("width,height", [(1280, 720), (1920, 1080), (3840, 2160), (390, 844)])
def test_one_to_twelve_tiles_fill_the_screen_without_overflow(start_wall, page, width, height):
    names = [f"m{i}" for i in range(1, 13)]
    page.set_viewport_size({"width": width, "height": height})
    wall = start_wall(names)
    for i, name in enumerate(names):
        wall.publish(name, VALUES[i % 4])
    for count in (1, 2, 3, 4, 6, 9, 12):
        wall.layout = {"title": f"{count} tiles", "columns": None, "tiles": [
            spec(name, label=LABELS[i % 4], unit=UNITS[i % 4], decimals=DECIMALS[i % 4])
            for i, name in enumerate(names[:count])]}
        page.goto(wall.http + "/")
        wait_until(lambda: len(tiles(page)) == count and all(len(t["value"]) == 11 for t in tiles(page).values()),
                   3, message=f"{count} tiles with values")
        # Measure (and photograph) what stays on screen: once the values' fade-in is over.
        wait_until(lambda: page.evaluate("document.getAnimations().length === 0"), 3, message="a settled screen")
        shape = page.evaluate(GEOMETRY)
        assert shape["scroll"] == [0, 0], (count, shape["scroll"])
        screen = [0, 0, width, height]
        assert inside(shape["status"], screen)
        for tile in shape["tiles"]:
            assert inside(tile["tile"], screen), (count, tile)
            for name, box in tile["fields"].items():
                assert inside(box, tile["tile"]), (count, name, box, tile["tile"])
            value, own = tile["fields"]["value"], tile["tile"]
            # Large: the value takes a good part of its tile's width or height.
            assert (value[2] - value[0] >= 0.45 * (own[2] - own[0])
                    or value[3] - value[1] >= 0.3 * (own[3] - own[1])), (count, value, own)
        snapshot(page, f"tiles-{width}x{height}-{count}")
