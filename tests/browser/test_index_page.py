"""The dashboard page (index.html) in a real browser: Debian's chromium driven by Playwright.

The server is the real ``python server.py`` as a subprocess. Where the page must handle
protocol the server does not send yet (control messages, ``gap`` on a named stream, junk),
a small scripted WebSocket server from the ``websockets`` library plays the server's part.

Every test saves a screenshot under ``test-artifacts/`` and fails on any console error,
uncaught exception or unhandled promise rejection (the ``page`` fixture in
tests/conftest.py), except the browser's own "WebSocket connection ... failed" lines a test
declares it expects because it takes the server away on purpose. The wall of tiles is
tested in tests/browser/test_wall_page.py.
"""

from __future__ import annotations

import json
import re
import threading
from urllib.parse import urlsplit

import pytest
from websockets.sync.server import serve

from tests.browser import PAGE_FILE, RECORDER, SOCKET_FAILED, Problems, query, received, sockets
from tests.browser import snapshot as save_snapshot
from tests.support import free_port, http_request, publish, scaled, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(40)]


# --- helpers ----------------------------------------------------------------------------


def text(page, element_id: str) -> str:
    return page.text_content(f"#{element_id}") or ""


def number(page) -> int | None:
    value = text(page, "variable").strip()
    return int(value) if re.fullmatch(r"-?\d+", value) else None


def chart_points(page) -> list[tuple[float, float]]:
    raw = page.get_attribute("#chart-line", "points") or ""
    return [tuple(map(float, pair.split(","))) for pair in raw.split()]


def visible(page, element_id: str) -> bool:
    return page.is_visible(f"#{element_id}")


def snapshot(page, name: str) -> None:
    save_snapshot(page, f"page-{name}")


# --- 1. served page ------------------------------------------------------------------------


def test_served_page_shows_a_number_within_3s_and_it_increases(server, page):
    page.goto(server.http + "/")
    first = wait_until(lambda: number(page) is not None and number(page), 3, message="a number")
    wait_until(lambda: number(page) > first, 4, message="the value to increase")
    assert text(page, "status") == "live"
    assert text(page, "updated").startswith("updated ")
    assert page.get_attribute("#variable", "aria-live") == "polite"
    assert all(page.query_selector(f"#{i}") for i in ("variable", "status", "updated", "chart"))
    # Same host and port as the page, default stream, and the control handshake.
    assert sockets(page)[0] == f"ws://127.0.0.1:{server.port}/?control=1&history=100"


# --- 2. opened from disk -------------------------------------------------------------------


def test_page_from_disk_with_ws_parameter_shows_live_data(server, page):
    page.goto(f"{PAGE_FILE.as_uri()}?ws={server.ws}/")
    first = wait_until(lambda: number(page) is not None and number(page), 3, message="a number")
    wait_until(lambda: number(page) > first, 4, message="the value to increase")
    assert text(page, "status") == "live"
    assert urlsplit(sockets(page)[0]).netloc == f"127.0.0.1:{server.port}"


def test_socket_url_selection(page, problems):
    """From disk → ws://localhost:5000/; ?stream=NAME → /ws/NAME on the chosen host."""
    problems.allow(SOCKET_FAILED)  # nothing needs to answer: only the URLs are checked
    page.goto(PAGE_FILE.as_uri())
    wait_until(lambda: sockets(page), 3, message="a connection attempt")
    assert sockets(page)[0] == "ws://localhost:5000/?control=1&history=100"

    nobody = free_port()  # refuses connections: the page keeps retrying
    page.goto(f"{PAGE_FILE.as_uri()}?ws=ws://127.0.0.1:{nobody}/base%3Fkeep%3D1&stream=sales%20eu")
    wait_until(lambda: sockets(page), 3, message="a connection attempt")
    url = urlsplit(sockets(page)[0])
    assert (url.netloc, url.path) == (f"127.0.0.1:{nobody}", "/ws/sales%20eu")
    assert query(sockets(page)[0]) == {"keep": "1", "control": "1", "history": "100"}  # merged, not replaced
    assert text(page, "stream") == "stream sales eu"
    wait_until(lambda: text(page, "status").startswith("reconnecting"), 3, message="reconnecting")

    page.goto(f"{PAGE_FILE.as_uri()}?ws=not-a-url")
    wait_until(lambda: text(page, "status").startswith("offline"), 3, message="offline on a bad address")


# --- 3. server restart ------------------------------------------------------------------------


@pytest.mark.timeout(90)   # the page's retry window may be 30 s by the time the server is back
def test_server_restart_keeps_value_and_chart_and_recovers_without_reload(start_server, page, problems):
    problems.allow(SOCKET_FAILED)  # the browser logs each refused attempt while the server is down
    server = start_server()
    page.goto(server.http + "/")
    page.evaluate("window.__marker = 'same page'")
    wait_until(lambda: len(received(page)) >= 3, 5, message="three messages")

    assert len(sockets(page)) == 1
    server.proc.kill()
    server.proc.wait()
    wait_until(lambda: text(page, "status").startswith("reconnecting"), 3, message="reconnecting")
    # The first connection succeeded, so the backoff starts again at its 1 s window.
    wait_until(lambda: len(sockets(page)) >= 2, 1.5, message="the first retry within about 1 s")
    last = received(page)[-1]
    points = chart_points(page)
    assert re.fullmatch(r"reconnecting( in \d+ s|…)", text(page, "status"))
    assert number(page) == last["variable"]
    assert len(points) == len(received(page)) >= 3
    snapshot(page, "restart-down")
    # Still there (the time axis moves on, the values stay).
    assert [y for _, y in chart_points(page)] == [y for _, y in points] and number(page) == last["variable"]

    start_server(port=server.port)
    # The page's retry window has doubled with every refused attempt while the server was
    # down, and with full jitter some attempts come early: a 5 s outage can leave a 16 s
    # window (CI saw a wait past 12 s). The cap (30 s) and the handshake bound it.
    wait_until(lambda: text(page, "status") == "live", 35, message="live again")
    back = wait_until(lambda: number(page) is not None and number(page) != last["variable"] and number(page),
                      4, message="a new value")
    wait_until(lambda: number(page) != back, 4, message="the value to move again")
    assert page.evaluate("window.__marker") == "same page"  # no reload
    assert len(chart_points(page)) == min(100, len(received(page)))  # old points kept, new added

    # Resume: the reconnect asked for what it missed ...
    resumed = query(sockets(page)[-1])
    assert resumed == {"control": "1", "history": "100", "seq": str(last["seq"]), "epoch": last["epoch"]}
    # ... and the restarted server (new epoch) could not honour it, so the page shows a gap.
    assert visible(page, "gap") and "gap" in text(page, "gap")
    assert page.locator("#chart-gaps line").count() == 1


def test_offline_while_the_browser_has_no_network_then_back_at_once(start_server, page, problems):
    problems.allow(SOCKET_FAILED)
    server = start_server()
    page.goto(server.http + "/")
    wait_until(lambda: len(received(page)) >= 2, 5, message="two messages")
    page.context.set_offline(True)
    server.proc.kill()
    server.proc.wait()
    wait_until(lambda: text(page, "status") == "offline: no network", 3, message="offline")
    assert page.get_attribute("#status", "data-state") == "offline"
    assert number(page) == received(page)[-1]["variable"]  # the last value stays
    snapshot(page, "offline")
    start_server(port=server.port)
    page.context.set_offline(False)
    # Back online the page connects at once, without waiting out a backoff.
    wait_until(lambda: text(page, "status") == "live", 3, message="live again")


@pytest.mark.parametrize("random,countdowns", [
    (0.999999, [1, 2, 4, 8, 16, 30, 30]),   # the window: doubling from 1 s, capped at 30 s
    (0.5, [1, 1, 2, 4, 8, 15, 15]),         # full jitter: the wait is random x window
])
def test_reconnect_backoff_is_exponential_with_full_jitter_and_a_30s_cap(page, problems, random, countdowns):
    """Playwright's fake clock runs the page's timers; Math.random is pinned so the waits
    are known. Connection attempts are real (refused by a port nobody listens on)."""
    problems.allow(SOCKET_FAILED)
    page.add_init_script(f"Math.random = () => {random};")
    # A paused fake clock: the page's timers fire only when the test moves time on.
    page.clock.install(time=1_800_000_000)
    page.clock.pause_at(1_800_000_001)
    page.goto(f"{PAGE_FILE.as_uri()}?ws=ws://127.0.0.1:{free_port()}/")
    seen = []
    for attempt in range(1, len(countdowns) + 1):
        status = wait_until(lambda: len(sockets(page)) == attempt
                            and re.fullmatch(r"reconnecting in (\d+) s", text(page, "status")),
                            3, message=f"the countdown after attempt {attempt}")
        seen.append(int(status.group(1)))
        page.clock.run_for(seen[-1] * 1000)
    assert seen == countdowns


# --- 4. stale warning ------------------------------------------------------------------------


def test_stale_warning_appears_when_quiet_and_clears_on_the_next_message(start_server, page):
    server = start_server("--min-wait", "4", "--max-wait", "5")
    page.goto(server.http + "/?stale=1")
    # The first value comes at once, the next 4-5 s later; once the value is 1 s old the
    # warning shows (before any value the page says "waiting", which is not stale).
    wait_until(lambda: number(page) is not None, 3, message="the first value")
    first = number(page)
    wait_until(lambda: visible(page, "stale"), 3, message="the stale warning")
    assert number(page) == first
    assert "no new data" in text(page, "stale")
    snapshot(page, "stale-warning")

    wait_until(lambda: number(page) != first, 8, message="the next message")
    # The message and the clearing happen in the same event handler.
    assert not visible(page, "stale")
    assert text(page, "status") == "live"
    # Quiet again: the warning comes back after another second.
    wait_until(lambda: visible(page, "stale"), 3, message="the stale warning again")


# --- 5. chart -----------------------------------------------------------------------------------


def test_chart_has_one_point_per_message_up_to_100(start_server, page):
    server = start_server("--min-wait", "0", "--max-wait", "0.02")
    page.goto(server.http + "/")
    samples = []

    def enough() -> bool:
        count, raw = page.evaluate("[window.__received.filter((d) => 'variable' in JSON.parse(d)).length,"
                                   " document.getElementById('chart-line').getAttribute('points')]")
        samples.append((count, len(raw.split())))
        return count > 130

    wait_until(enough, 10, interval=0.01, message="more than 130 messages")
    assert any(count < 100 for count, _ in samples), samples[:5]  # the filling phase was seen
    # The page draws what came since the last frame in the next one (at most 100 ms later), so
    # a read between a message and its frame sees the chart a few messages behind, never ahead
    # and never past 100 points; most reads find it whole.
    for count, points in samples:
        assert 0 <= min(count, 100) - points <= 10, (count, points)
    exact = sum(points == min(count, 100) for count, points in samples)
    assert exact >= len(samples) // 2, samples

    # Page and recorder read together once a frame has drawn everything received: the chart is
    # exactly the last 100 values (read again if a message came between the frame and the read).
    def drawn():
        return page.evaluate("""() => new Promise((done) => setTimeout(() => requestAnimationFrame(() => done([
            window.__received.filter((d) => 'variable' in JSON.parse(d)),
            document.getElementById('chart-line').getAttribute('points').split(' ').length,
            document.getElementById('chart-max').textContent,
            document.getElementById('chart-min').textContent])), 110))""")

    def whole(read) -> bool:
        data, points, maximum, minimum = read
        last_100 = [json.loads(item)["variable"] for item in data][-100:]
        return (points, maximum, minimum) == (len(last_100), f"max {max(last_100)}", f"min {min(last_100)}")

    reads = []
    wait_until(lambda: reads.append(drawn()) or whole(reads[-1]), 10,
               message="a frame that drew everything received: the chart is exactly the last 100 values")
    # A time axis: the oldest value at the left, in order, the last one held until now (right edge).
    xs = [x for x, _ in chart_points(page)]
    assert xs[0] == 0 and xs[-1] <= 100 and xs == sorted(xs)
    hold = page.get_attribute("#chart-hold", "points").split()
    assert len(hold) == 2 and float(hold[1].split(",")[0]) == 100


# --- 6. no errors --------------------------------------------------------------------------------


def test_no_console_errors_or_unhandled_rejections_during_a_run(server, page, problems, browser):
    page.goto(server.http + "/")
    wait_until(lambda: len(received(page)) >= 3, 5, message="three messages")
    page.set_viewport_size({"width": 390, "height": 844})
    wait_until(lambda: len(received(page)) >= 5, 5, message="two more messages")
    assert page.evaluate("window.__rejections") == []
    assert problems.seen == []

    # The detector is not blind: a rejection and an error on another page are caught.
    probe_problems = Problems()
    probe = browser.new_context()
    try:
        probe.add_init_script(RECORDER)
        other = probe.new_page()
        probe_problems.watch(other)
        other.goto(server.http + "/")
        other.evaluate("() => { Promise.reject(new Error('probe rejection'));"
                       " setTimeout(() => { throw new Error('probe'); }); }")
        # Playwright delivers events while it is called, so the predicate calls it.
        wait_until(lambda: other.evaluate("window.__rejections.length") and len(probe_problems.seen) >= 2,
                   3, message="the probe errors")
    finally:
        probe.close()


# --- 7. kiosk layout, with a screenshot per screen size -------------------------------------------


@pytest.mark.parametrize("width,height", [(360, 640), (1920, 1080), (3840, 2160)])
def test_fills_the_screen_without_scrollbars(start_server, page, width, height):
    # Steps of 10^11: twelve-digit values, the long numbers a wall screen must still fit.
    server = start_server("--min-step", "100000000000", "--max-step", "100000000000")
    page.set_viewport_size({"width": width, "height": height})
    page.goto(server.http + "/")
    wait_until(lambda: len(received(page)) >= 3, 5, message="three messages")
    assert len(text(page, "variable")) == 12
    overflow = page.evaluate("""() => {
        const root = document.documentElement;
        return [root.scrollWidth - root.clientWidth, root.scrollHeight - root.clientHeight];
    }""")
    assert overflow == [0, 0]
    for element_id in ("variable", "status", "updated", "chart", "stream", "chart-min", "chart-max"):
        box = page.locator(f"#{element_id}").bounding_box()
        assert box and box["x"] >= 0 and box["y"] >= 0, element_id
        assert box["x"] + box["width"] <= width + 0.5 and box["y"] + box["height"] <= height + 0.5, element_id
    value = page.locator("#variable").bounding_box()
    # Large type: a long number uses most of the width, a short one a good part of the height.
    assert value["width"] >= 0.6 * width or value["height"] >= 0.25 * height, value
    snapshot(page, f"{width}x{height}")


# --- protocol the server will send: resume gap, control reload, junk -------------------------------


class ScriptedServer:
    """A WebSocket server (the ``websockets`` library) that plays one script per connection
    and records each request's path and query. A script is a list of messages to send
    (dicts as JSON, strings as they are), callables to run in between (e.g. waiting for the
    test), and ``CLOSE`` to end the connection from the server side."""

    CLOSE = object()

    def __init__(self, *scripts):
        self.paths: list[str] = []
        self.scripts = list(scripts)
        self._server = serve(self._handle, "127.0.0.1", 0)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handle(self, connection) -> None:
        self.paths.append(connection.request.path)
        script = self.scripts.pop(0) if self.scripts else []
        for item in script:
            if item is self.CLOSE:
                return  # returning from the handler closes with 1000
            if callable(item):
                item()
            else:
                connection.send(item if isinstance(item, str) else json.dumps(item))
        try:
            for _ in connection:  # hold the connection until the page leaves
                pass
        except Exception:  # noqa: BLE001 - the page went away: this connection is over
            pass

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join(scaled(5))


def test_resume_gap_reload_and_junk_messages(page, problems):
    """Resume query, a flagged gap, unknown and malformed messages, markup as data, and
    {"control": "reload"}: the page reloads itself and starts a fresh connection."""
    problems.allow(SOCKET_FAILED)  # the scripted server stops before the page does
    gap_seen = threading.Event()
    markup = '<img src=x onerror="window.__xss = 1">'
    first = [
        {"variable": 5, "seq": 1, "epoch": "e1"},
        "not json", "[1, 2]", "null", {"control": "something-new"}, {"note": "no variable here"},
        {"variable": 7, "seq": 2, "epoch": "e1"},
        {"variable": markup, "seq": 3, "epoch": "e1"},
        ScriptedServer.CLOSE,
    ]
    second = [
        {"variable": 40, "seq": 9, "epoch": "e1", "gap": True},
        {"variable": 41, "seq": 10, "epoch": "e1"},
        lambda: gap_seen.wait(scaled(10)),
        {"control": "reload"},
    ]
    third = [{"variable": 1, "seq": 1, "epoch": "e2"}]
    with ScriptedServer(first, second, third) as scripted:
        page.goto(f"{PAGE_FILE.as_uri()}?ws=ws://127.0.0.1:{scripted.port}/")
        page.evaluate("window.__marker = 'before reload'")
        wait_until(lambda: number(page) == 41, 5, message="the value after the resume")
        assert len(scripted.paths) == 2
        assert query(scripted.paths[0]) == {"control": "1", "history": "100"}
        assert query(scripted.paths[1]) == {"control": "1", "history": "100", "seq": "3", "epoch": "e1"}
        assert visible(page, "gap") and "gap" in text(page, "gap")
        assert page.locator("#chart-gaps line").count() == 1
        assert len(chart_points(page)) == 4  # 5, 7, 40, 41: the markup value is not plotted
        assert page.evaluate("window.__xss") is None
        snapshot(page, "resume-gap")
        gap_seen.set()

        wait_until(lambda: len(scripted.paths) == 3 and number(page) == 1, 5, message="reload and reconnect")
        assert page.evaluate("window.__marker") is None  # a real reload, a fresh page
        assert query(scripted.paths[2]) == {"control": "1", "history": "100"}
        assert not visible(page, "gap")


def test_markup_in_a_value_is_shown_as_text(page, problems):
    problems.allow(SOCKET_FAILED)  # the scripted server stops before the page does
    markup = '<img src=x onerror="window.__xss = 1">'
    with ScriptedServer([{"variable": markup, "seq": 1, "epoch": "e"}]) as scripted:
        page.goto(f"{PAGE_FILE.as_uri()}?ws=ws://127.0.0.1:{scripted.port}/")
        wait_until(lambda: text(page, "variable") == markup, 5, message="the markup as text")
        assert page.locator("#variable img").count() == 0
        assert page.evaluate("window.__xss") is None


# --- against the real server: token, reload, resume ---------------------------------------------

TOKEN = "page-test-token"


def test_page_passes_its_token_to_the_socket(start_server, page, problems):
    server = start_server(env={"DASHSTREAM_TOKEN": TOKEN})
    page.goto(f"{server.http}/?token={TOKEN}")
    wait_until(lambda: number(page) is not None, 3, message="a number with the token")
    assert query(sockets(page)[0]) == {"control": "1", "history": "100", "token": TOKEN}
    assert text(page, "status") == "live"


def test_page_without_the_token_is_refused_and_says_so(start_server, page, problems):
    problems.allow(SOCKET_FAILED)  # the browser logs the refused handshake (401)
    server = start_server(env={"DASHSTREAM_TOKEN": TOKEN})
    page.goto(server.http + "/")
    wait_until(lambda: text(page, "status").startswith(("reconnecting", "offline")), 5,
               message="the page to report it is not connected")
    assert number(page) is None


def test_reload_from_the_real_server_reloads_the_page(start_server, page):
    server = start_server("--publish-token", TOKEN)
    page.goto(server.http + "/")
    wait_until(lambda: number(page) is not None, 3, message="a number")
    page.evaluate("window.__marker = 'before reload'")
    status, _, body = http_request(server.http + "/reload", "POST", b"", {"Authorization": f"Bearer {TOKEN}"})
    assert (status, json.loads(body)) == (200, {"reloaded": 1})
    wait_until(lambda: page.evaluate("window.__marker") is None, 5, message="the page to reload")
    wait_until(lambda: number(page) is not None, 3, message="a number after the reload")


def test_page_resumes_a_shared_stream_without_gap_or_duplicate(start_server, page):
    server = start_server("--stream", "sales=publish", "--publish-token", TOKEN)
    page.goto(server.http + "/?stream=sales")
    wait_until(lambda: text(page, "status") == "live", 3, message="live")
    for value in (10, 20, 30):
        assert publish(server.http, "sales", {"variable": value}, TOKEN)[0] == 200
    wait_until(lambda: number(page) == 30, 3, message="the third value")
    page.evaluate("window.__lastSocket.close()")  # the network drops; the page reconnects
    for value in (40, 50):
        assert publish(server.http, "sales", {"variable": value}, TOKEN)[0] == 200
    wait_until(lambda: number(page) == 50 and text(page, "status") == "live", 5, message="resumed")
    assert query(sockets(page)[1]) == {"control": "1", "history": "100", "seq": "3",
                                       "epoch": received(page)[0]["epoch"]}
    assert [m["seq"] for m in received(page)] == [1, 2, 3, 4, 5]
    assert [y for _, y in chart_points(page)] and len(chart_points(page)) == 5
    assert not visible(page, "gap")
