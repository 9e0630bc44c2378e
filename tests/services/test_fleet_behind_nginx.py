"""Three dashstream instances sharing their streams through a real Redis, behind Debian's
real nginx balancing round-robin (no stickiness at all: deploy/nginx.conf with three
upstreams and least_conn removed): 200 clients through nginx while one instance is killed
(SIGKILL) or stopped (SIGTERM, 1001) mid-stream, and the page in Chromium through a rolling
restart of every instance."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import ssl
import threading
import time
import urllib.request

import pytest

from tests.fleet import TOKEN, Fleet, stream_info
from tests.nginx import NginxProcess, self_signed_certificate
from tests.support import ARTIFACTS, scaled, wait_until

pytestmark = pytest.mark.timeout(180)

CLIENTS = 200
RATE = 10.0  # publishes a second, through nginx


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def deploy(certificate, request):
    """``deploy(*args)``: Redis, three instances sharing it, nginx round-robin in front; all
    stopped after the test (nginx's logs kept in test-artifacts/)."""
    started: list = []

    def start(*args: str) -> tuple[NginxProcess, Fleet]:
        fleet = Fleet(*args, "--ping-interval", "5", count=3)
        started.append(fleet)
        fleet.start()
        proxy = NginxProcess(tuple(instance.port for instance in fleet.instances), *certificate, round_robin=True)
        started.append(proxy)
        proxy.start()
        return proxy, fleet

    yield start
    for thing in reversed(started):
        if isinstance(thing, NginxProcess):
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / f"nginx-{request.node.name}.log").write_text(thing.output()[-200_000:])
        thing.stop()


def publish_through(proxy: NginxProcess, value: int) -> dict | None:
    request = urllib.request.Request(proxy.https + "/publish/sales", data=json.dumps({"variable": value}).encode(),
                                     method="POST", headers={"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5, context=proxy.ssl_context()) as answer:
            return json.load(answer)
    except OSError:
        return None  # an instance dying under the request: the publisher tries again


class Screens:
    """CLIENTS websockets clients through nginx in one asyncio loop on a thread; each
    reconnects after a close (50-300 ms later, with jitter) and resumes with the last seq
    and epoch it saw, as the page does."""

    def __init__(self, proxy: NginxProcess, count: int):
        self.proxy = proxy
        self.received: list[list[dict]] = [[] for _ in range(count)]
        self.connections = [0] * count
        self.closes: list[list[int | None]] = [[] for _ in range(count)]
        self.failures = 0
        self.done = False
        self.tasks: list[asyncio.Task] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._all(count),), daemon=True)
        self.thread.start()

    async def _all(self, count: int) -> None:
        self.tasks = [asyncio.ensure_future(self._screen(index)) for index in range(count)]
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _screen(self, index: int) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        context = ssl.create_default_context(cafile=str(self.proxy.cert))
        received = self.received[index]
        while not self.done:
            query = f"?seq={received[-1]['seq']}&epoch={received[-1]['epoch']}" if received else ""
            try:
                async with connect(self.proxy.wss + "/ws/sales" + query, ssl=context, open_timeout=10,
                                   close_timeout=2, ping_interval=None, max_queue=None) as ws:
                    self.connections[index] += 1
                    try:
                        async for raw in ws:
                            received.append(json.loads(raw))
                    except ConnectionClosed:
                        pass
                    self.closes[index].append(ws.close_code)
            except (OSError, asyncio.TimeoutError, ConnectionClosed, Exception):  # noqa: BLE001 - retried
                self.failures += 1
            if not self.done:
                await asyncio.sleep(random.uniform(0.05, 0.3))

    def stop(self) -> None:
        self.done = True
        self.loop.call_soon_threadsafe(lambda: [task.cancel() for task in self.tasks])
        self.thread.join(scaled(10))
        self.loop.close()


def run_publisher(proxy: NginxProcess, published: list[dict], stop: threading.Event) -> threading.Thread:
    def run():
        value = 0
        while not stop.is_set():
            answer = publish_through(proxy, value)
            if answer is not None:
                published.append(answer)
                value += 1
            time.sleep(1 / RATE)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_200_screens_through_round_robin_nginx_survive_an_instance_going_without_a_gap(deploy, how):
    proxy, fleet = deploy("--stream", "sales=publish")
    screens = Screens(proxy, CLIENTS)
    published: list[dict] = []
    stop = threading.Event()
    publisher = run_publisher(proxy, published, stop)
    try:
        wait_until(lambda: all(screens.connections), timeout=30, message="every screen connected")
        wait_until(lambda: len(published) >= 10 and all(len(r) >= 5 for r in screens.received), timeout=30,
                   message="every screen receiving")
        # round-robin spread the screens over all three
        spread = [stream_info(instance, "sales")["local_subscribers"] for instance in fleet.instances]
        assert sum(spread) == CLIENTS and min(spread) > 0, spread
        victim = fleet.instances[1]
        victim.signal(how)
        victim.wait(10)
        wait_until(lambda: sum(c >= 2 for c in screens.connections) >= spread[1], timeout=30,
                   message="the victim's screens reconnected")
        time.sleep(scaled(3))  # go on publishing through the two that are left
    finally:
        stop.set()
        publisher.join(10)
    try:
        last = published[-1]["seq"]
        wait_until(lambda: all(r and r[-1]["seq"] == last for r in screens.received), timeout=30,
                   message=f"every screen at seq {last}")
    finally:
        screens.stop()
    epoch = published[0]["epoch"]
    assert {answer["epoch"] for answer in published} == {epoch}
    moved = [index for index, count in enumerate(screens.connections) if count >= 2]
    assert len(moved) >= spread[1], (len(moved), spread)
    for index, received in enumerate(screens.received):
        seqs = [message["seq"] for message in received]
        assert seqs == list(range(seqs[0], last + 1)), f"screen {index}: hole or duplicate in {seqs}"
        assert not any("gap" in message for message in received), f"screen {index} was told of a gap"
        assert {message["epoch"] for message in received} == {epoch}
    if how == signal.SIGTERM:
        codes = {code for index in moved for code in screens.closes[index][:1]}
        assert codes == {1001}, codes  # "server shutting down", through nginx


@pytest.mark.browser
def test_the_page_through_nginx_keeps_moving_without_a_gap_through_a_rolling_restart(deploy):
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS, RECORDER, SOCKET_FAILED

    proxy, fleet = deploy("--stream", "office=random-walk:shared", "--min-wait", "0.1", "--max-wait", "0.3")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 720})
            context.add_init_script(RECORDER)
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and not SOCKET_FAILED.search(m.text)
                    and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(proxy.https + "/?stream=office", wait_until="load")
            page.wait_for_function("document.body.dataset.state === 'live'", timeout=scaled(10) * 1000)
            for index in range(len(fleet.instances)):  # every instance, one after the other
                fleet.restart(index)
                shown = page.text_content("#variable")
                page.wait_for_function(
                    f"document.body.dataset.state === 'live' && "
                    f"document.getElementById('variable').textContent !== {json.dumps(shown)}",
                    timeout=scaled(15) * 1000)
            time.sleep(scaled(1))
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "backplane-rolling-restart.png"))
            assert page.is_hidden("#gap"), page.text_content("#gap")
            assert page.locator("#chart-gaps line").count() == 0
            messages = [json.loads(data) for data in page.evaluate("window.__received")]
            sockets = page.evaluate("window.__sockets")
            context.close()
        finally:
            browser.close()
    assert not problems, problems
    data = [message for message in messages if "variable" in message]
    seqs = [message["seq"] for message in data]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert not any("gap" in message for message in data) and len({m["epoch"] for m in data}) == 1
    assert len(sockets) >= 2  # it did reconnect (to another instance) at least once
    steps = [b["variable"] - a["variable"] for a, b in zip(data, data[1:])]
    assert all(1 <= step <= 10 for step in steps), "the value jumped: not one walk"
