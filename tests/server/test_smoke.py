"""The server's main paths in one short test, the one tests/other_pythons.sh runs on every
supported Python the machine has (beside the unit tests): the page, a WebSocket stream, a
publish reaching a subscriber, Server-Sent Events and /metrics."""

from __future__ import annotations

import json
import sys
import urllib.request

import pytest
import websocket  # websocket-client

from tests.support import ROOT, http_get, publish, scaled

pytestmark = pytest.mark.timeout(60)

TOKEN = "smoke"


def test_page_stream_publish_sse_and_metrics(start_server):
    server = start_server("--stream", "sales=publish", "--publish-token", TOKEN)
    status, headers, body = http_get(server.http + "/")
    assert status == 200 and body == (ROOT / "index.html").read_bytes()

    walk = websocket.create_connection(server.ws + "/", timeout=scaled(5))
    try:
        first, second = json.loads(walk.recv()), json.loads(walk.recv())
        assert second["seq"] == first["seq"] + 1 and isinstance(first["variable"], int)
    finally:
        walk.close()

    screen = websocket.create_connection(server.ws + "/ws/sales", timeout=scaled(5))
    events = urllib.request.urlopen(server.http + "/sse/sales", timeout=scaled(5))
    try:
        assert events.headers["Content-Type"].startswith("text/event-stream")
        assert publish(server.http, "sales", {"variable": 42}, TOKEN)[0] == 200
        assert json.loads(screen.recv())["variable"] == 42
        while not (line := events.readline()).startswith(b"data: "):
            assert line, "the event stream ended"
        assert json.loads(line[6:])["variable"] == 42
    finally:
        screen.close()
        events.close()

    status, headers, body = http_get(server.http + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b'dashstream_stream_last_seq{stream="sales"} 1.0' in body
    print(f"smoke test passed on Python {sys.version.split()[0]}")
