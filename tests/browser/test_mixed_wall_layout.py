"""A wall that mixes every tile kind, against a real server: nothing overflows its tile at
1920x1080, 3840x2160, 1280x720 and 390x844; at 1920x1080 labels are at least 24 px and
values at least 40 px (measured in the DOM); and on a 2015-class kiosk (4x CPU throttling,
CDP Emulation.setCPUThrottlingRate) the wall is painted within 1 s of the first message."""

from __future__ import annotations

import pytest

from tests.browser.kinds_wall import (
    MIXED_STREAMS,
    fill_mixed,
    layout_problems,
    mixed_wall,
    running_server,
    settled,
    streams_toml,
    tiles,
)
from tests.support import scaled, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

CONFIG = streams_toml(MIXED_STREAMS) + mixed_wall("mixed", timezone="Europe/Berlin")
KINDS = ["number", "gauge", "list", "text", "status", "clock", "chart"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("mixed"), CONFIG) as server:
        fill_mixed(server)
        yield server


def filled(page) -> list[dict]:
    seen = tiles(page)
    ready = (len(seen) == 7 and all(t["value"] not in (None, "", "waiting for data") or t["rows"] for t in seen)
             and [t["kind"] for t in seen] == KINDS)
    return ready and seen


@pytest.mark.parametrize("width, height", [(1920, 1080), (3840, 2160), (1280, 720), (390, 844)])
def test_a_wall_of_every_kind_fits_every_screen(server, page, width, height):
    page.set_viewport_size({"width": width, "height": height})
    page.goto(server.http + "/d/mixed")
    wait_until(lambda: filled(page), 5, message="every tile with its value")
    settled(page)
    assert layout_problems(page) == []
    seen = tiles(page)
    if (width, height) == (1920, 1080):
        small = [(t["kind"], t["labelPx"]) for t in seen if t["labelPx"] < 24]
        assert not small, f"labels under 24 px: {small}"
        rows = [(t["kind"], t["rowPx"]) for t in seen if t["rowPx"] is not None and t["rowPx"] < 24]
        assert not rows, f"list rows under 24 px: {rows}"
        values = [(t["kind"], t["valuePx"]) for t in seen if t["valuePx"] is not None and t["valuePx"] < 40]
        assert not values, f"values under 40 px: {values}"
        assert all(t["valuePx"] is not None for t in seen if t["kind"] != "list")


FIRST_PAINT = """
(() => {
  window.__paint = {};
  const Recorded = window.WebSocket;
  window.WebSocket = class extends Recorded {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener("message", (event) => {
        if (window.__paint.first || !String(event.data).includes('"variable"')) return;
        window.__paint.first = performance.now();
        const check = () => {
          const tiles = [...document.querySelectorAll("[data-tile]")];
          const done = tiles.length && tiles.every((tile) => !tile.querySelector(".value-line[data-empty]")
            && (tile.dataset.kind !== "list" || tile.querySelector("[data-row]")));
          // The frame after the one that has every value is when they are on screen.
          if (done) requestAnimationFrame(() => { window.__paint.painted = performance.now(); });
          else requestAnimationFrame(check);
        };
        requestAnimationFrame(check);
      });
    }
  };
})();
"""


# A latency budget, judged with nothing beside it: in CI, beside three other workers and the other
# Pythons' unit tests, the throttled page lost 1.26 s to the machine rather than to its own work.
@pytest.mark.alone
def test_first_paint_within_1s_of_the_first_message_on_a_4x_slower_cpu(server, browser):
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        context.add_init_script(FIRST_PAINT)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
        page.goto(server.http + "/d/mixed")
        paint = wait_until(lambda: (p := page.evaluate("window.__paint")).get("painted") and p, 10,
                           message="the first paint")
        took = paint["painted"] - paint["first"]
        print(f"first message -> painted wall, 4x CPU throttling: {took:.0f} ms "
              f"(navigation start -> painted: {paint['painted']:.0f} ms)")
        assert took < scaled(1) * 1000, paint
        assert filled(page)
    finally:
        context.close()
