"""Both themes (``theme = "dark" | "light"``, ``?theme=``) meet WCAG AA contrast for every
state, computed from the computed styles of every visible text (its colour, alpha and
opacities over the stack of backgrounds behind it) on a wall of every kind and a wall of
every state, online and offline, at 1920x1080, 3840x2160 and 390x844; the screenshots go to
/tmp/kinds-shots/ (and test-artifacts/) to be looked at."""

from __future__ import annotations

import pytest

from tests.browser import SOCKET_FAILED
from tests.browser.kinds_wall import (
    MIXED_STREAMS,
    by_stream,
    contrast_checked,
    fill_mixed,
    layout_problems,
    mixed_wall,
    put,
    running_server,
    settled,
    shoot,
    streams_toml,
)
from tests.support import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

STATE_STREAMS = ["fine", "hot", "fire", "quiet", "never", "svc", "load"]
CONFIG = streams_toml(MIXED_STREAMS + STATE_STREAMS) + """
[streams.broken]
source = "sql"
url = "sqlite:////nonexistent/dashstream/missing.db"
query = "SELECT 1 AS variable"
interval = 1

[dashboards.states]
title = "Every state"
[[dashboards.states.tiles]]
stream = "fine"
label = "Live"
[[dashboards.states.tiles]]
stream = "hot"
label = "Warn"
warn = 50
crit = 90
[[dashboards.states.tiles]]
stream = "fire"
label = "Crit"
crit = 10
[[dashboards.states.tiles]]
stream = "quiet"
label = "Stale"
stale_after = 1
[[dashboards.states.tiles]]
stream = "broken"
label = "Source down"
[[dashboards.states.tiles]]
stream = "never"
label = "Waiting"
[[dashboards.states.tiles]]
kind = "status"
stream = "svc"
label = "Unknown status"
ok = ["up"]
[[dashboards.states.tiles]]
kind = "gauge"
stream = "load"
label = "Load"
max = 10
warn = 3
crit = 5
""" + mixed_wall("mixed", timezone="Europe/Berlin")
STATES = {"fine": "live", "hot": "warn", "fire": "crit", "quiet": "stale", "broken": "source-down",
          "never": "waiting", "svc": "warn", "load": "crit"}
VIEWPORTS = {"1920x1080": (1920, 1080), "3840x2160": (3840, 2160), "390x844": (390, 844)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("themes"), CONFIG) as server:
        fill_mixed(server)
        for stream, value in [("fine", 12), ("hot", 61.5), ("fire", 42), ("quiet", 7), ("svc", "maintenance"),
                              ("load", 7.5)]:
            put(server, stream, value)
        yield server


def check_and_shoot(page, name: str) -> None:
    """At each viewport: no overflow, every text AA against its background, a screenshot."""
    for viewport, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        settled(page)
        assert layout_problems(page) == [], (name, viewport)
        checked = contrast_checked(page)
        assert len(checked) > 20, checked   # the check saw the tiles' texts
        failures = [r for r in checked if r["ratio"] < r["needs"]]
        assert not failures, (name, viewport, failures)
        shoot(page, f"{name}-{viewport}")


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_every_kind_and_every_state_meets_aa_contrast(server, page, problems, theme):
    page.goto(f"{server.http}/d/mixed?theme={theme}")
    wait_until(lambda: len(t := by_stream(page)) == 7 and all(x["state"] in (None, "live", "warn") for x in t.values())
               and t["customers"]["rows"] and t["latency"]["points"] >= 5, 5, message="the mixed wall")
    assert page.evaluate("document.documentElement.dataset.theme") == theme
    check_and_shoot(page, f"{theme}-every-kind")

    page.goto(f"{server.http}/d/states?theme={theme}")
    def every_state():
        shown = by_stream(page)
        return {name: tile["state"] for name, tile in shown.items()} == STATES and shown

    seen = wait_until(every_state, 8, message="every state")
    # State is never colour alone: each tile says its state in words.
    assert all(tile["cue"] == tile["state"].replace("-", " ") for tile in seen.values()), seen
    assert seen["broken"]["detail"].startswith("source offline since ")
    check_and_shoot(page, f"{theme}-every-state")

    problems.allow(SOCKET_FAILED)
    page.context.set_offline(True)
    page.evaluate("window.__lastSocket.close()")
    wait_until(lambda: all(t["state"] == "offline" for t in by_stream(page).values() if t["stream"]), 5,
               message="every tile offline")
    check_and_shoot(page, f"{theme}-offline")
    page.context.set_offline(False)
