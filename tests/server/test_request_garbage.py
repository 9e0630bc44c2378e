"""A request leaves no cyclic garbage: its protocol, environ, headers and readers are freed
by reference counting the moment it ends (serve.py, ``GuardedHttpProtocol.finish``), so a
stream of handshakes does not keep the cyclic collector busy (BENCHMARKS.md). Measured in a
real server (tests/garbage_probe.py) with real clients."""

from __future__ import annotations

import json
import signal

import pytest
from websockets.sync.client import connect

from tests.server import raw_clients
from tests.support import ROOT, http_get, publish, scaled, wait_until

pytestmark = pytest.mark.timeout(60)

ROUNDS = 40


def read_probe(path, counting: bool) -> dict:
    def written():
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return content if content["counting"] is counting else None

    return wait_until(written, scaled(10), message="the garbage probe's answer")


def refused_upgrade(port: int) -> bytes:
    """The head of the answer to an upgrade to a stream that does not exist: answered in
    HTTP, the socket not handed off (urllib would send ``Connection: close`` instead of
    ``Upgrade``)."""
    with raw_clients.connect(port) as sock:
        sock.sendall(b"GET /ws/nothing-here HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                     b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        head, _ = raw_clients.read_head(sock)
        return head


def test_requests_of_every_kind_leave_nothing_for_the_cyclic_collector(start_server, tmp_path):
    out = tmp_path / "garbage.json"
    server = start_server("--stream", "bench=publish", "--publish-token", "secret",
                          server=ROOT / "tests" / "garbage_probe.py", env={"DASHSTREAM_GARBAGE_FILE": str(out)})

    def one_of_each():
        with connect(server.ws + "/ws/bench") as ws:  # a handshake read from its first bytes
            assert ws.ping().wait(scaled(5))
        assert http_get(server.http + "/")[0] == 200  # the page: the full HTTP reader
        assert http_get(server.http + "/healthz")[0] == 200
        status, answer = publish(server.http, "bench", {"variable": 1}, "secret")
        assert status < 300, (status, answer)
        assert refused_upgrade(server.port).startswith(b"HTTP/1.1 404 ")

    one_of_each()  # first-use caches and lazily made objects are not what is counted
    server.signal(signal.SIGUSR1)
    read_probe(out, counting=True)
    for _ in range(ROUNDS):
        one_of_each()
    server.signal(signal.SIGUSR2)
    kept = read_probe(out, counting=False)["kept"]
    assert "GuardedHttpProtocol" not in kept, sorted(kept.items(), key=lambda item: -item[1])
    assert sum(kept.values()) < ROUNDS, kept  # not one object a request, of any type
