"""A reader a little slower than its stream is handled by the slow policy once it lags by
more than ``--slow-timeout``, judged by the messages' ``ts``, for WebSocket and SSE alike.

The reader (a raw socket with a small receive buffer) keeps reading, at 75 % of the
stream's byte rate, so the server's queue empties now and then while the kernel's send
buffer (``--send-buffer``) fills with ever older messages: before, such a reader was 8 s
behind after 30 s and never closed. Now it is closed (1008 ``subscriber too slow``) while
the newest message it read is a little more than ``--slow-timeout`` old: the margin is what
its own receive buffer holds (out of the server's sight) plus the lag sweep's step.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest

from tests.support import scaled, wait_until

pytestmark = pytest.mark.timeout(90)

SLOW_TIMEOUT = 1.0
RATE = 50.0  # messages a second, some 75 bytes each: about 3.7 KB/s
READ_FRACTION = 0.75
LIMIT = 30.0  # seconds the reader goes on for at most


def lagging_reader(port: int, path: str) -> dict:
    """Connect with a 4 KiB receive buffer, read freely for 2 s to learn the stream's byte
    rate, then at READ_FRACTION of it; returns how it ended and the lag (now - ts) of the
    last messages read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(0.5)
    sock.connect(("127.0.0.1", port))
    sse = path.startswith("/sse")
    if sse:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    else:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += sock.recv(4096)
    buffer = buffer.split(b"\r\n\r\n", 1)[1]
    lags: list[tuple[float, float]] = []
    start = last = time.monotonic()
    received, rate, budget, ended = 0, None, 0.0, None
    while ended is None and time.monotonic() - start < LIMIT:
        now = time.monotonic()
        if rate is None and now - start >= 2.0:
            rate = received / (now - start)
        want = 65536
        if rate is not None:
            budget += (now - last) * rate * READ_FRACTION
            if budget < 256:
                last = now
                time.sleep(0.01)
                continue
            want = int(budget)
        last = now
        try:
            data = sock.recv(min(want, 65536))
        except socket.timeout:
            continue
        if not data:
            ended = "eof"
            break
        received += len(data)
        if rate is not None:
            budget -= len(data)
        buffer += data
        while True:
            if sse:
                if b"\n\n" not in buffer:
                    break
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.split(b"\n"):
                    if line.startswith(b"data:"):
                        lags.append((time.monotonic() - start, time.time() - json.loads(line[5:])["ts"]))
                continue
            if len(buffer) < 2 or len(buffer) < 2 + (buffer[1] & 0x7F):
                break  # (frames here are under 126 bytes)
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            payload, buffer = buffer[2:2 + length], buffer[2 + length:]
            if opcode == 0x8:
                ended = f"close {struct.unpack('!H', payload[:2])[0]} {payload[2:].decode()}"
                break
            if opcode == 0x1:  # (a ping is not answered: the test ends before --ping-timeout)
                lags.append((time.monotonic() - start, time.time() - json.loads(payload)["ts"]))
    sock.close()
    return {"ended": ended, "at": round(time.monotonic() - start, 1), "rate": rate,
            "last_lags": [round(lag, 2) for _, lag in lags[-3:]]}


@pytest.fixture
def lagging_server(start_server, tmp_path):
    path = tmp_path / "streams.toml"
    path.write_text(f'[streams.tick]\nsource = "ticker"\nrate = {RATE}\n')
    return start_server("--config", str(path), "--slow-timeout", str(SLOW_TIMEOUT), "--send-buffer", "16384")


@pytest.mark.parametrize("path", ["/ws/tick", "/sse/tick"])
def test_a_reader_slightly_slower_than_its_stream_is_closed_once_it_lags_by_the_slow_timeout(lagging_server, path):
    result = lagging_reader(lagging_server.port, path)
    expected = "close 1008 subscriber too slow" if path.startswith("/ws") else "eof"
    assert result["ended"] == expected, result
    # Closed while the newest message it read was a little more than --slow-timeout old
    # (its own 4 KiB receive buffer is about 1 s of this stream; the sweep steps 0.25 s).
    assert max(result["last_lags"]) < SLOW_TIMEOUT + scaled(2.5), result
    wait_until(lambda: f"path={path}: oldest unread message" in lagging_server.output(),
               message="the slow line, judged by ts")
    assert "code=1008 reason='subscriber too slow'" in lagging_server.output()
