"""Helpers for the end-to-end source tests (tests/services/test_sources_end_to_end.py,
tests/services/test_source_down_on_page.py): real ``python server.py`` with a config file,
real services, real WebSocket clients.

* ``Recorder``: a websocket-client subscriber on its own thread that keeps every message with
  the wall-clock time it arrived. As a *watcher* (a plain subscriber of the server's shared
  ticker) it proves that an outage of one source stalls nobody else: ``check_flow`` asserts no
  hole in the numbering, one epoch (the server was never restarted), values still arriving,
  no control message (it did not ask for them), and no pause longer than a bound, measured
  both on arrival and on the server's ``ts``. As a *control client* (``control=1``) it
  collects source states.
* ``readme_block``: a fenced block of README.md, so the tests run the README's examples
  verbatim and a wrong example fails here.
* ``streams_info`` / ``readyz``: the HTTP views of the same states.
"""

from __future__ import annotations

import json
import re
import threading
import time

import websocket  # websocket-client

from tests.support import ROOT, http_get, scaled, wait_until

# The streams every e2e server has beside the ones under test: a shared ticker for the
# watcher (a fixed rate makes a stall measurable) and a shared random walk.
TICK_RATE = 10.0
WATCHED = f"""
[streams.tick]
source = "ticker"
rate = {TICK_RATE}

[streams.walk]
source = "random-walk"
shared = true
min_wait = 0.05
max_wait = 0.15
"""


class Recorder:
    """Every message of one WebSocket, with its arrival time (``time.time()``, the clock the
    server stamps ``ts`` with: same machine)."""

    def __init__(self, url: str):
        self.url = url
        self.ws = websocket.create_connection(url, timeout=scaled(5))
        self.ws.settimeout(None)  # a quiet control client is not an error
        self.messages: list[tuple[float, dict]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                text = self.ws.recv()
                self.messages.append((time.time(), json.loads(text)))
        except BaseException as error:  # noqa: BLE001 - reported by the checks
            if not self._stop.is_set():
                self.error = error

    # --- what arrived ---

    def all(self) -> list[dict]:
        return [message for _, message in list(self.messages)]

    def data(self, stream: str | None = None) -> list[dict]:
        return [m for m in self.all() if "variable" in m and (stream is None or m.get("stream") == stream)]

    def controls(self, stream: str | None = None) -> list[dict]:
        return [m for m in self.all() if "variable" not in m and m.get("control") == "source"
                and (stream is None or m.get("stream") == stream)]

    def wait_state(self, stream: str, state: str, after: int = 0, timeout: float = 5.0) -> dict:
        """The first source message of ``stream`` with ``state`` among those after the first ``after``."""
        def found():
            assert self.error is None, f"control client failed: {self.error!r}"
            return next((m for m in self.controls(stream)[after:] if m["state"] == state), None)

        try:
            return wait_until(found, timeout, message=f"{stream} {state} on the control client")
        except AssertionError as error:
            raise AssertionError(f"{error}; control messages: {self.controls()}") from None

    def wait_value(self, predicate, stream: str | None = None, timeout: float = 5.0) -> tuple[float, dict]:
        """(arrival time, message) of the first data message that ``predicate`` accepts."""
        def found():
            assert self.error is None, f"client failed: {self.error!r}"
            return next(((arrived, m) for arrived, m in list(self.messages)
                         if "variable" in m and (stream is None or m.get("stream") == stream) and predicate(m)),
                        None)

        try:
            return wait_until(found, timeout, message=f"a value of {stream or self.url}")
        except AssertionError as error:
            raise AssertionError(f"{error}; data so far: {self.data(stream)[-10:]}") from None

    # --- the watcher's promise ---

    def pauses(self, since: float | None = None) -> tuple[float, float, float]:
        """(longest pause between arrivals, longest pause between ``ts``, worst ``arrival - ts``)
        over the messages that arrived after ``since``."""
        timed = [(arrived, m["ts"]) for arrived, m in list(self.messages)
                 if "variable" in m and (since is None or arrived >= since)]
        assert len(timed) >= 2, f"too few messages to measure: {timed}"
        arrivals = max(later[0] - earlier[0] for earlier, later in zip(timed, timed[1:]))
        stamps = max(later[1] - earlier[1] for earlier, later in zip(timed, timed[1:]))
        return arrivals, stamps, max(arrived - ts for arrived, ts in timed)

    def check_flow(self, more: int = 3, max_pause: float = 1.5) -> None:
        """Values still arrive (``more`` new ones), with no hole, one epoch, no control
        message, and no pause over ``max_pause`` seconds since the watcher connected."""
        seen = len(self.messages)
        wait_until(lambda: self.error is not None or len(self.messages) >= seen + more, timeout=5,
                   message=f"{more} more messages for the watcher")
        assert self.error is None, f"the watcher failed: {self.error!r}"
        messages = self.all()
        assert all("variable" in m and "control" not in m for m in messages), \
            [m for m in messages if "variable" not in m or "control" in m]
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"a hole in the watcher's stream: {seqs}"
        assert len({m["epoch"] for m in messages}) == 1, "the stream's epoch changed: the server restarted"
        assert not any(m.get("gap") for m in messages)
        arrivals, stamps, _ = self.pauses()
        assert arrivals < scaled(max_pause) and stamps < scaled(max_pause), \
            f"the watcher stalled: {arrivals:.2f} s between arrivals, {stamps:.2f} s between ts"

    def close(self) -> None:
        """Leave abruptly (see StreamWatcher.close in tests/support.py)."""
        self._stop.set()
        try:
            self.ws.abort()
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._thread.join(scaled(5))
        self.ws.shutdown()


def streams_info(server) -> dict[str, dict]:
    status, _, body = http_get(server.http + "/streams")
    assert status == 200, (status, body)
    return {stream["name"]: stream for stream in json.loads(body)["streams"]}


def readyz(server) -> tuple[int, dict]:
    status, _, body = http_get(server.http + "/readyz")
    return status, json.loads(body)


def wait_stream(server, name: str, predicate, timeout: float = 5.0, message: str = "") -> dict:
    """Poll /streams until ``name``'s entry satisfies ``predicate``; that entry."""
    try:
        return wait_until(lambda: (lambda info: info if predicate(info) else None)(streams_info(server)[name]),
                          timeout, message=message or f"/streams for {name}")
    except AssertionError as error:
        raise AssertionError(f"{error}; now: {streams_info(server)[name]}") from None


def readme_block(language: str, containing: str) -> str:
    """The body of the README's one fenced ``language`` block that contains ``containing``."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(rf"^```{re.escape(language)}\n(.*?)^```$", readme, flags=re.S | re.M)
    found = [block for block in blocks if containing in block]
    assert len(found) == 1, f"README.md has {len(found)} ```{language} blocks with {containing!r}"
    return found[0]


def clock(ts: float) -> str:
    """HH:MM as the page shows a ``since`` (the browser runs in this machine's time zone)."""
    return time.strftime("%H:%M", time.localtime(ts))
