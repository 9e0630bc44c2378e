"""Test helpers for several dashstream instances sharing streams through a real Redis
(``--backplane``): the fleet (one ``RedisServer`` and N ``ServerProcess``es, stopped
together even when a test fails) and a recording WebSocket client on its own thread that,
like the page, can reconnect and resume with the last ``seq`` and ``epoch`` it saw."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import websocket  # websocket-client

from tests.services import RedisServer
from tests.support import ServerProcess, http_get, http_request, scaled, wait_until

TOKEN = "fleet-token"


class Fleet:
    """``redis-server`` and ``count`` instances started with the same ``args`` and
    ``--backplane`` pointing at it."""

    def __init__(self, *args: str, count: int = 2, persist: bool = False):
        self.args = (*args, "--publish-token", TOKEN)
        self.redis = RedisServer(persist=persist)
        self.instances: list[ServerProcess] = []
        self.count = count
        self.retired: list[ServerProcess] = []

    def start(self) -> "Fleet":
        self.redis.start()
        for _ in range(self.count):
            self.instances.append(self.launch())
        for instance in self.instances:
            wait_until(lambda instance=instance: ready(instance), timeout=10, message=f"{instance.port} ready")
        return self

    def launch(self, port: int | None = None) -> ServerProcess:
        return ServerProcess(*self.args, "--backplane", self.redis.url, port=port).start()

    def restart(self, index: int) -> ServerProcess:
        """Stop instance ``index`` (SIGTERM) and start a new one on the same port."""
        old = self.instances[index]
        old.stop()
        self.retired.append(old)
        self.instances[index] = self.launch(port=old.port)
        return self.instances[index]

    def stop(self) -> None:
        for instance in [*self.instances, *self.retired]:
            instance.stop()
            instance.discard_log()
        self.redis.stop()

    def output(self) -> str:
        return "\n".join(f"--- instance {i.port} ---\n{i.output()[-6000:]}" for i in self.instances) + \
            f"\n--- redis ---\n{self.redis.output()}"


def ready(instance: ServerProcess) -> bool:
    return http_get(instance.http + "/readyz", timeout=2)[0] == 200


def streams(instance: ServerProcess) -> dict:
    return json.loads(http_get(instance.http + "/streams", timeout=5)[2])


def stream_info(instance: ServerProcess, name: str) -> dict:
    return next(s for s in streams(instance)["streams"] if s["name"] == name)


def publish(instance: ServerProcess, stream: str, fields: dict) -> tuple[int, dict, bytes]:
    return http_request(f"{instance.http}/publish/{stream}", "POST", json.dumps(fields).encode(),
                        {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Recorder:
    """A WebSocket client on a thread that keeps every message it receives.

    ``urls`` is called for each connection (so a reconnect can go elsewhere); with
    ``reconnect`` it reconnects after a close or error, resuming with ``?seq=&epoch=`` of
    the last data message, as the page does."""

    def __init__(self, urls, reconnect: bool = False, control: bool = False, **options):
        self.urls = urls if callable(urls) else (lambda: urls)
        self.reconnect = reconnect
        self.control = control
        self.options = options
        self.data: list[dict] = []
        self.arrived: list[float] = []  # time.time() at each data message (the clock of ts)
        self.controls: list[dict] = []
        self.closes: list[int | None] = []
        self.connections = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ws: websocket.WebSocket | None = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._opened.wait(scaled(10)):
            raise AssertionError(f"could not connect: {self.error!r}")

    def url(self) -> str:
        query = {}
        if self.control:
            query["control"] = "1"
        if self.data:
            query.update(seq=self.data[-1]["seq"], epoch=self.data[-1]["epoch"])
        base = self.urls()
        return base + ("&" if "?" in base else "?") + urlencode(query) if query else base

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._ws = websocket.create_connection(self.url(), timeout=scaled(10), **self.options)
                self.connections += 1
                self._opened.set()
                while not self._stop.is_set():
                    opcode, payload = self._ws.recv_data(control_frame=True)
                    if opcode == websocket.ABNF.OPCODE_CLOSE:
                        self.closes.append(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None)
                        break
                    if opcode != websocket.ABNF.OPCODE_TEXT:
                        continue
                    message = json.loads(payload)
                    if "variable" in message:
                        self.arrived.append(time.time())  # before data: a reader sees both or neither
                    (self.data if "variable" in message else self.controls).append(message)
            except Exception as error:  # noqa: BLE001 - recorded; a reconnecting client goes on
                if self._stop.is_set():
                    return
                self.error = error
                self.closes.append(None)
            finally:
                if self._ws is not None:
                    self._ws.abort()
                    self._ws.shutdown()
            if not self.reconnect:
                return
            time.sleep(0.05)

    def lags(self, since: float) -> list[float]:
        """Seconds from ``ts`` to arrival of each data message stamped after ``since``, sorted."""
        return sorted(at - m["ts"] for m, at in zip(list(self.data), list(self.arrived)) if m["ts"] > since)

    def seqs(self) -> list[int]:
        return [message["seq"] for message in self.data]

    def wait_data(self, count: int, timeout: float = 10.0) -> list[dict]:
        wait_until(lambda: len(self.data) >= count, timeout, message=f"{count} messages (have {len(self.data)})")
        return self.data

    def wait_control(self, predicate, timeout: float = 10.0) -> dict:
        return wait_until(lambda: next((m for m in self.controls if predicate(m)), None), timeout,
                          message=f"a control message (have {self.controls})")

    def close(self) -> None:
        self._stop.set()
        if self._ws is not None:
            self._ws.abort()
        self._thread.join(scaled(5))
