"""A wall survives a server restart with ``--state``: Chromium, a real server stopped with
SIGTERM and started again on the same state file and port.

The open page reconnects and resumes without a gap (same epoch, the next seq); a page
opened after the restart shows the publish tile's last value at once, not "waiting for
data" until the next publish.
"""

from __future__ import annotations

import re
import signal
import textwrap

import pytest

from tests.browser import received, snapshot
from tests.support import publish, scaled, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

TOKEN = "wall-state-token"
CONFIG = textwrap.dedent("""
    [streams.sales]
    source = "publish"

    [streams.orders]
    source = "publish"

    [dashboard]
    title = "Shop"

    [[dashboard.tiles]]
    stream = "sales"
    label = "Sales today"
    unit = "EUR"
    decimals = 2
    chart = false

    [[dashboard.tiles]]
    stream = "orders"
    label = "Orders / min"
""")

TILES = """() => Object.fromEntries([...document.querySelectorAll('[data-tile]')].map((tile) => {
  const field = (name) => tile.querySelector('[data-field="' + name + '"]');
  return [tile.dataset.tile, {value: field('value').textContent, state: field('state').dataset.state,
          gap: field('gap').hidden ? null : field('gap').textContent,
          points: (tile.querySelector('.chart-line').getAttribute('points') || '').split(' ').filter(Boolean).length}];
}))"""


def put(server, stream: str, value) -> None:
    status, answer = publish(server.http, stream, {"variable": value}, TOKEN)
    assert status == 200, answer


def shown(tab) -> dict:
    return tab.evaluate(TILES)


def test_a_wall_shows_the_last_values_after_a_restart(start_server, tmp_path, page, browser, problems):
    config = tmp_path / "wall.toml"
    config.write_text(CONFIG)
    args = ("--config", str(config), "--publish-token", TOKEN, "--state", str(tmp_path / "state.db"))
    server = start_server(*args)
    put(server, "sales", 1234.5)
    for value in range(1, 11):
        put(server, "orders", value)
    page.goto(server.http + "/")
    wait_until(lambda: shown(page)["sales"]["value"] == "1234.50" and shown(page)["orders"]["value"] == "10", 5,
               message="the wall with its values")

    # The server goes away and comes back on the same file and port; the page reconnects.
    problems.allow(re.compile(r"^WebSocket connection to '.*' failed"))
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    restarted = start_server(*args, port=server.port)
    put(restarted, "orders", 11)
    # (Its retries back off with jitter while the server starts: allow a few of them.)
    wait_until(lambda: shown(page)["orders"]["value"] == "11", scaled(30), message="the page back and live")
    orders = [m for m in received(page) if m.get("stream") == "orders" and "variable" in m]
    # The history when the page opened (history on load), then the first after the restart:
    # resumed from seq 10 in the same epoch, nothing twice, nothing missed.
    assert [m["seq"] for m in orders] == list(range(1, 12))
    assert len({m["epoch"] for m in orders}) == 1  # the numbering went on in the same epoch
    assert not any(m.get("gap") for m in received(page))
    tiles = shown(page)
    assert tiles["sales"]["value"] == "1234.50" and tiles["sales"]["gap"] is None
    assert tiles["orders"]["gap"] is None

    # A screen switched on now: the publish tile's value at once, not "waiting for data".
    fresh = browser.new_context(viewport={"width": 1280, "height": 720})
    try:
        other = fresh.new_page()
        other.goto(restarted.http + "/")
        wait_until(lambda: shown(other)["sales"]["value"] == "1234.50", 3, message="the last value on a new screen")
        assert shown(other)["sales"]["state"] == "live"
        # The chart is full at once: the 11 kept values came back from the file.
        chart = other.locator("[data-tile=orders] [data-field=chart]")
        wait_until(lambda: chart.get_attribute("data-points") == "11", scaled(2), message="a full chart")
        snapshot(other, "wall-after-restart")
    finally:
        fresh.close()
