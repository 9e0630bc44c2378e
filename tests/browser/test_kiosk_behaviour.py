"""What the page does for a screen nobody touches, in Chromium against a real server: the
pointer hides after 5 s without movement and comes back when the mouse moves, a screen wake
lock is asked for (and asked again when the page is visible after being hidden), ``?shift=1``
moves the layout a few pixels once an hour against burn-in, and an ``alert = true`` tile
pulses for 10 s on entering crit, then stays red, with a tone under ``?sound=1``.

Hours and seconds pass on Playwright's fake clock (``page.clock``), installed before the page
loads; the WebSocket and the server stay real."""

from __future__ import annotations

import pytest

from tests.browser.kinds_wall import by_stream, put, running_server, streams_toml
from tests.support import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

CONFIG = streams_toml(["load", "quiet"]) + """
[dashboard]
title = "Kiosk"
[[dashboard.tiles]]
stream = "load"
warn = 5
crit = 10
alert = true
[[dashboard.tiles]]
stream = "quiet"
"""

# Stands in for the browser's screen wake lock (headless Chromium has no screen to keep on):
# records each request and can release the lock as the browser does when the page is hidden.
WAKE_LOCK = """
(() => {
  window.__wakeRequests = [];
  const sentinel = () => {
    const target = new EventTarget();
    target.released = false;
    target.release = async () => { target.released = true; target.dispatchEvent(new Event('release')); };
    return target;
  };
  Object.defineProperty(navigator, 'wakeLock', { configurable: true, value: {
    request: async (type) => { window.__wakeRequests.push(type); return (window.__lastLock = sentinel()); },
  } });
})();
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("kiosk"), CONFIG) as server:
        put(server, "load", 1)
        put(server, "quiet", 1)
        yield server


def open_wall(page, server, query: str = "") -> None:
    page.clock.install()
    page.goto(f"{server.http}/{query}")
    wait_until(lambda: page.evaluate("document.body.dataset.link") == "live", 5, message="the wall live")


def cursor(page) -> dict:
    return page.evaluate("""() => ({hidden: document.documentElement.dataset.cursor || null,
                                    style: getComputedStyle(document.querySelector('.tile')).cursor})""")


def test_the_pointer_hides_after_five_quiet_seconds_and_comes_back_when_the_mouse_moves(server, page):
    open_wall(page, server)
    page.mouse.move(200, 200)
    page.clock.run_for(4000)
    assert cursor(page) == {"hidden": None, "style": "auto"}
    page.clock.run_for(1500)
    assert cursor(page) == {"hidden": "hidden", "style": "none"}
    page.mouse.move(300, 260)
    assert cursor(page)["hidden"] is None and cursor(page)["style"] != "none"
    page.clock.run_for(5500)
    assert cursor(page)["hidden"] == "hidden"


def test_a_screen_wake_lock_is_held_and_asked_for_again_after_the_page_was_hidden(server, page):
    page.add_init_script(WAKE_LOCK)
    open_wall(page, server)
    wait_until(lambda: page.evaluate("document.body.dataset.wakeLock") == "on", 5, message="the lock held")
    assert page.evaluate("window.__wakeRequests") == ["screen"]
    # The browser releases the lock when the page is hidden; the page asks again once visible.
    page.evaluate("window.__lastLock.release()")
    wait_until(lambda: page.evaluate("document.body.dataset.wakeLock") == "released", 5, message="released")
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    wait_until(lambda: page.evaluate("document.body.dataset.wakeLock") == "on", 5, message="the lock again")
    assert page.evaluate("window.__wakeRequests") == ["screen", "screen"]


def test_shift_moves_the_layout_a_few_pixels_once_an_hour(server, page):
    open_wall(page, server, "?shift=1")
    assert page.evaluate("document.body.dataset.shift") == "0,0"
    # fast_forward, not run_for: run_for fired every 1 s timer of four hours (14,000 renders,
    # 11 s of CPU); a jump fires each due timer once, so the hourly interval fires once an hour
    # jumped, and one that fired more often than hourly would show at 59 minutes all the same.
    page.clock.fast_forward(59 * 60 * 1000)
    assert page.evaluate("document.body.dataset.shift") == "0,0"
    seen = []
    for _ in range(3):
        page.clock.fast_forward(60 * 60 * 1000)
        seen.append(page.evaluate("""() => [document.body.dataset.shift,
            getComputedStyle(document.querySelector('.screen')).transform]"""))
    shifts = [shift for shift, _ in seen]
    assert len(set(shifts)) == 3 and "0,0" not in shifts, seen
    for shift, transform in seen:
        x, y = (int(part) for part in shift.split(","))
        assert max(abs(x), abs(y)) <= 5  # a few pixels: never enough to push a tile off screen
        assert transform == f"matrix(1, 0, 0, 1, {x}, {y})", seen


def test_an_alert_tile_pulses_ten_seconds_on_entering_crit_then_stays_red_and_plays_a_tone(server, page):
    put(server, "load", 1)
    open_wall(page, server, "?sound=1")
    assert by_stream(page)["load"]["alert"] is None
    put(server, "load", 12)
    wait_until(lambda: by_stream(page)["load"]["alert"] == "pulse", 5, message="the pulse")
    load = by_stream(page)["load"]
    assert load["state"] == "crit" and load["level"] == "crit"
    assert page.evaluate("getComputedStyle(document.querySelector('[data-tile=load]')).animationName") != "none"
    assert page.evaluate("document.body.dataset.tones") == "1"
    assert by_stream(page)["quiet"]["alert"] is None  # a tile without alert = true never pulses
    page.clock.run_for(10_500)
    load = by_stream(page)["load"]
    assert (load["alert"], load["state"]) == ("on", "crit")  # the pulse is over, the tile stays red
    put(server, "load", 12.5)  # still crit: no new pulse, no new tone
    wait_until(lambda: by_stream(page)["load"]["value"] == "12.5", 5, message="the next crit value")
    assert by_stream(page)["load"]["alert"] == "on" and page.evaluate("document.body.dataset.tones") == "1"
    put(server, "load", 1)  # out of crit: the alert ends; the next crit pulses again
    wait_until(lambda: by_stream(page)["load"]["alert"] is None, 5, message="the alert over")
    put(server, "load", 11)
    wait_until(lambda: by_stream(page)["load"]["alert"] == "pulse", 5, message="a second pulse")
    assert page.evaluate("document.body.dataset.tones") == "2"
