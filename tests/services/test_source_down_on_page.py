"""A source down on the page, end to end: the real server, a real
redis-server (and a SQLite file) under it, and Debian's chromium showing the page.

The test kills the service; the page must say so on that stream only ("source offline since
HH:MM: REASON", the last value kept and dimmed, the connection still "live"), and clear it
when the service is back and values flow. Every test also has a watcher (tests/e2e.py) on the
server's shared ticker that must not stall. tests/browser/test_wall_page.py covers the same page states
against a scripted server; these check that the real server drives them.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.browser import snapshot
from tests.browser.test_wall_page import text, tiles
from tests.e2e import WATCHED, Recorder, clock, readyz, streams_info, wait_stream
from tests.services import RedisServer
from tests.support import scaled, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]


@pytest.fixture
def redis_server(after_page):
    server = RedisServer().start()
    after_page.append(server.stop)
    return server


@pytest.fixture
def watched(start_server, tmp_path, after_page):
    """``watched(TOML)``: a server with the watched streams and these, and a watcher on its ticker."""
    made: list[tuple] = []

    def start(body: str):
        path = tmp_path / "streams.toml"
        path.write_text(WATCHED + body)
        server = start_server("--config", str(path))
        after_page.append(server.stop)  # after the page is closed (tests/conftest.py)
        watcher = Recorder(server.ws + "/ws/tick")
        made.append((server, watcher))
        return server, watcher

    yield start
    for _, watcher in made:
        watcher.close()


def redis_table(redis_server) -> str:
    return f'\n[streams.orders]\nsource = "redis"\nurl = "{redis_server.url}"\nchannel = "orders"\n'


def opacity(page, selector: str) -> float:
    return float(page.eval_on_selector(selector, "e => getComputedStyle(e).opacity"))


def kill_and_wait_down(server, redis_server) -> dict:
    """SIGKILL redis; /streams says down (with its reason and since)."""
    redis_server.kill()
    return wait_stream(server, "orders", lambda s: s["state"] == "down", timeout=3)


def offline_line(server) -> str:
    """What the page must say about the orders source now: the reason may change while it
    is down (the connection closed, then each retry refused), the since does not."""
    info = streams_info(server)["orders"]
    assert info["state"] == "down", info
    return f"source offline since {clock(info['since'])}: {info['reason']}"


def restart_and_publish(server, redis_server, value: int) -> None:
    redis_server.restart()
    wait_stream(server, "orders", lambda s: s["state"] == "up", timeout=scaled(20))
    wait_until(lambda: redis_server.subscribers("orders") == 1, message="resubscribed")
    assert redis_server.publish("orders", str(value)) == 1


def test_single_view_says_source_offline_keeps_the_value_dimmed_and_clears_when_redis_is_back(
        watched, redis_server, page):
    server, watcher = watched(redis_table(redis_server))
    wait_stream(server, "orders", lambda s: s["state"] == "up")
    page.goto(server.http + "/?stream=orders")
    wait_until(lambda: text(page, "status") == "live", 5, message="live")
    redis_server.publish("orders", '{"variable": 41}')
    wait_until(lambda: text(page, "variable") == "41", 3, message="the value")
    assert not page.is_visible("#source")

    kill_and_wait_down(server, redis_server)
    wait_until(lambda: page.is_visible("#source") and text(page, "source") == offline_line(server), 3,
               message="the source line, as /streams has it")
    wait_until(lambda: opacity(page, "#variable") < 0.6, 3, message="the value dimmed")
    assert text(page, "variable") == "41"   # the last value stays
    assert text(page, "status") == "live"   # the connection is fine: only the source is not
    assert readyz(server)[0] == 503
    snapshot(page, "sources-single-down")
    watcher.check_flow()

    restart_and_publish(server, redis_server, 42)
    wait_until(lambda: text(page, "variable") == "42", 3, message="the new value")
    wait_until(lambda: not page.is_visible("#source") and opacity(page, "#variable") == 1, 3,
               message="the source line cleared and the value bright")
    assert readyz(server)[0] == 200
    watcher.check_flow()


def test_on_the_wall_only_the_tile_of_the_killed_source_says_so_and_it_clears(
        watched, redis_server, page, tmp_path):
    db = tmp_path / "app.db"
    connection = sqlite3.connect(db)
    with connection:
        connection.execute("CREATE TABLE counters (value INTEGER)")
        connection.execute("INSERT INTO counters VALUES (250)")
    connection.close()
    server, watcher = watched(redis_table(redis_server) + f"""
[streams.signups]
source = "sql"
url = "sqlite://{db}"
query = "SELECT value AS variable FROM counters"
interval = 0.5

[dashboard]
title = "Sources"

[[dashboard.tiles]]
stream = "tick"
label = "Ticker"

[[dashboard.tiles]]
stream = "orders"
label = "Orders"

[[dashboard.tiles]]
stream = "walk"
label = "Walk"

[[dashboard.tiles]]
stream = "signups"
label = "Sign-ups"
""")
    for name in ("orders", "signups"):
        wait_stream(server, name, lambda s: s["state"] == "up")
    redis_server.publish("orders", "17")
    wait_stream(server, "orders", lambda s: s["last_seq"] == 1)
    page.goto(server.http + "/")
    others = ["tick", "walk", "signups"]
    wait_until(lambda: len(tiles(page)) == 4 and tiles(page)["orders"]["value"] == "17"
               and all(tiles(page)[s]["value"] for s in others), 5, message="four tiles with values")
    assert all(t["state"] == "live" for t in tiles(page).values())
    # Bright once the screen's own fade-in (connecting → live) is over.
    wait_until(lambda: all(t["opacity"] == 1 for t in tiles(page).values()), 3, message="four bright values")

    kill_and_wait_down(server, redis_server)
    wait_until(lambda: (t := tiles(page)["orders"])["state"] == "source-down" and t["detail"] == offline_line(server),
               3, message="the orders tile source-down, as /streams has it")
    seen = tiles(page)
    assert (seen["orders"]["cue"], seen["orders"]["value"]) == ("source down", "17")
    assert seen["orders"]["detail"].startswith("source offline since ")
    wait_until(lambda: tiles(page)["orders"]["opacity"] < 0.6, 3, message="the orders value dimmed")
    # The others stay live, and the live ones keep moving.
    ticks = tiles(page)["tick"]["value"]
    wait_until(lambda: tiles(page)["tick"]["value"] != ticks, 3, message="the ticker tile moving")
    seen = tiles(page)
    assert all(seen[s]["state"] == "live" and seen[s]["detail"] is None for s in others), seen
    assert all(seen[s]["opacity"] == 1 for s in others), seen  # not dimmed: only the orders tile is
    assert text(page, "status") == "live"
    assert streams_info(server)["signups"]["state"] == "up"
    snapshot(page, "sources-wall-down")
    watcher.check_flow()

    restart_and_publish(server, redis_server, 18)
    wait_until(lambda: (t := tiles(page)["orders"])["state"] == "live" and t["value"] == "18"
               and t["detail"] is None, 3, message="the orders tile live again")
    wait_until(lambda: tiles(page)["orders"]["opacity"] == 1, 3, message="the orders value bright")
    assert all(t["state"] == "live" for t in tiles(page).values())
    watcher.check_flow()
