
"""What the wall says is true through the Redis backplane, with two instances and a real
redis-server, and over Server-Sent Events: history on load from the Redis stream (a page on
the instance that did not take the publishes), each stream's own ``stale_after``, the value's
age from its ``ts``, every tile offline when its instance dies, and ``/sse/NAME?history=N``.
"""

from __future__ import annotations

import json
import signal
import textwrap
import time

import httpx
import pytest
from httpx_sse import connect_sse

from tests.browser import SOCKET_FAILED
from tests.browser.wall_reading import shoot, single, tiles
from tests.fleet import Fleet, publish, stream_info
from tests.support import scaled, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

CONFIG = textwrap.dedent("""
    [streams.sales]
    source = "publish"
    stale_after = 600

    [streams.ticks]
    source = "publish"
    stale_after = 2

    [streams.history]
    source = "publish"

    [streams.idle]
    source = "publish"

    [dashboard]
    title = "Through Redis"

    [[dashboard.tiles]]
    stream = "sales"

    [[dashboard.tiles]]
    stream = "ticks"

    [[dashboard.tiles]]
    stream = "history"

    [[dashboard.tiles]]
    stream = "idle"
""")


@pytest.fixture
def fleet(tmp_path, after_page):
    path = tmp_path / "wall.toml"
    path.write_text(CONFIG)
    made = Fleet("--config", str(path)).start()
    after_page.append(made.stop)
    return made


def put(instance, stream, value):
    status, _, body = publish(instance, stream, {"variable": value})
    assert status == 200, body


def filled(fleet) -> float:
    """30 values on history, one on sales and ticks, all through instance 0; returns when
    instance 1 has them all."""
    first = fleet.instances[0]
    for value in range(200, 230):
        put(first, "history", value)
    put(first, "sales", 99)
    put(first, "ticks", 5)
    published = time.time()
    other = fleet.instances[1]
    wait_until(lambda: stream_info(other, "history")["last_seq"] == 30 and stream_info(other, "ticks")["last_seq"],
               5, message="the other instance's tail")
    return published


def test_a_page_on_the_other_instance_gets_history_ages_and_staleness_from_redis(fleet, page, problems):
    problems.allow(SOCKET_FAILED)
    published = filled(fleet)
    wait_until(lambda: time.time() - published >= 4, 6, interval=0.1, message="4 s to pass")
    other = fleet.instances[1]
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(other.http + "/")
    seen = wait_until(lambda: (t := tiles(page)) and t["history"]["value"] == "229" and t["sales"]["value"] == "99"
                      and t, 5, message="the tiles' values")
    assert seen["history"]["points"] == 30   # the whole history, from the Redis stream
    assert seen["sales"]["state"] == "live" and 4 <= seen["sales"]["age"] <= 4 + scaled(3)
    assert seen["sales"]["updated"] == f"updated {seen['sales']['age']} s ago"
    assert seen["ticks"]["state"] == "stale"   # stale_after 2, its value 4 s old
    assert seen["idle"]["state"] == "waiting"
    shoot(page, "redis-wall", {"1920x1080": (1920, 1080)})

    # Values published on instance 0 reach this page live.
    put(fleet.instances[0], "history", 230)
    seen = wait_until(lambda: (t := tiles(page)) and t["history"]["value"] == "230" and t, 5, message="live")
    assert seen["history"]["points"] == 31 and seen["history"]["gaps"] == 0

    # The page's instance dies: every tile says so within 2 s.
    other.signal(signal.SIGKILL)
    other.wait()
    wait_until(lambda: all(t["state"] in ("offline", "reconnecting") for t in tiles(page).values()), 2,
               message="every tile offline or reconnecting")


def test_the_single_view_through_redis(fleet, page):
    filled(fleet)
    page.goto(fleet.instances[1].http + "/?stream=history")
    view = wait_until(lambda: (v := single(page))["value"] == "229" and v, 5, message="the single view")
    assert (view["state"], view["points"]) == ("live", 30)


def test_sse_history_on_load_through_redis(fleet):
    filled(fleet)
    got = []
    with httpx.Client(timeout=scaled(5)) as client:
        url = fleet.instances[1].http + "/sse/history?history=100&control=1"
        with connect_sse(client, "GET", url) as source:
            for sse in source.iter_sse():
                if sse.data:
                    got.append((sse.event, json.loads(sse.data)))
                if len(got) == 31:
                    break
    kinds = [event for event, _ in got]
    assert kinds.count("control") == 1 and got[0][1]["control"] == "stream" and got[0][1]["stale_after"] is None
    data = [message for event, message in got if event != "control"]
    assert [m["variable"] for m in data] == list(range(200, 230)) and [m["seq"] for m in data] == list(range(1, 31))
