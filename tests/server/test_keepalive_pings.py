"""Keepalive pings and the write timeout, end to end: a real ``python server.py`` with short
intervals, and clients that answer pings (``websockets`` does, in its background thread),
stop answering them (a raw socket that reads every frame but never sends a pong:
websocket-client has no switch for that, it always answers inside ``recv``), or stop
reading altogether. ``Keepalive``'s schedule with a fake clock is tests/unit/test_keepalive.py.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time

import pytest
from websockets.sync.client import connect

from tests.support import assert_refused_option, scaled, wait_until

pytestmark = pytest.mark.timeout(60)

# Short periods so the suite stays fast; the margins below are multiples of them.
FAST_KEEPALIVE = ("--ping-interval", "0.3", "--ping-timeout", "0.5")

HANDSHAKE = (b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


class RawClient:
    """A WebSocket client on a bare socket: it does exactly what the test says, no more
    (in particular it never answers a ping by itself)."""

    def __init__(self, port: int, path: str = "/", *, rcvbuf: int | None = None, mss: int | None = None):
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss is not None:
            # The server's send buffer autotunes in multiples of the MSS we advertise; on
            # loopback (64 KiB MSS) it grows to ~1.5 MB, which takes ~25 s of the default
            # stream to fill. A small MSS keeps it to tens of KB.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        self.sock.settimeout(scaled(5))
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(HANDSHAKE % path.encode())
        self._buffer = b""
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            assert chunk, "server closed during the handshake"
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _exactly(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def read_frame(self, timeout: float) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next server frame; None when the server closed TCP."""
        self.sock.settimeout(scaled(timeout))
        header = self._exactly(2)
        if header is None:
            return None
        first, second = header
        assert not second & 0x80, "server frames are never masked"
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exactly(8))[0]
        payload = self._exactly(length) if length else b""
        return first & 0x0F, payload

    def send_frame(self, opcode: int, payload: bytes = b"") -> None:
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        assert len(payload) < 126
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        self.sock.close()


# --- options the server refuses ------------------------------------------------------------


@pytest.mark.parametrize("args, env, named", [
    (["--ping-interval", "-1"], {}, "--ping-interval"),
    (["--ping-interval", "often"], {}, "--ping-interval"),
    (["--ping-timeout", "0"], {}, "--ping-timeout"),
    (["--ping-timeout", "nan"], {}, "--ping-timeout"),
    (["--write-timeout", "0"], {}, "--write-timeout"),
    (["--write-timeout", "-2"], {}, "--write-timeout"),
    (["--write-timeout", "inf"], {}, "--write-timeout"),
    ([], {"DASHSTREAM_PING_TIMEOUT": "0"}, "DASHSTREAM_PING_TIMEOUT"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_bad_keepalive_values_exit_2_naming_the_option(args, env, named):
    assert_refused_option(args, named, env)


# --- end to end: keepalive ---------------------------------------------------------------


def test_client_that_stops_answering_pings_is_closed_1011_and_cleaned_up(start_server):
    server = start_server(*FAST_KEEPALIVE, "--close-timeout", "0.5")
    client = RawClient(server.port, "/")
    opened = time.monotonic()
    health = wait_until(server.health, message="health")
    assert (health["connections"], health["producers"]) == (1, 1)
    pings, close = 0, None
    while (frame := client.read_frame(timeout=5)) is not None:  # read everything, answer nothing
        opcode, payload = frame
        pings += opcode == OP_PING
        if opcode == OP_CLOSE:
            close = (struct.unpack("!H", payload[:2])[0], payload[2:].decode())
            closed_at = time.monotonic()
    dropped_at = time.monotonic()
    client.close()
    assert pings == 1  # one ping outstanding at a time
    assert close == (1011, "keepalive ping timeout")
    # Ping after 0.3 s, unanswered for 0.5 s: about 0.8 s (the ticker adds at most 0.03 s per step).
    assert 0.7 <= closed_at - opened <= scaled(3)
    # We never answered the close frame, so the server dropped TCP after --close-timeout
    # (0.5 s; the lower bound leaves room for this process being descheduled).
    assert 0.25 <= dropped_at - closed_at <= scaled(3)
    wait_until(lambda: server.health()["connections"] == 0, message="connections back to 0")
    wait_until(lambda: server.health()["producers"] == 0, message="producers back to 0")
    wait_until(lambda: "code=1011 reason='keepalive ping timeout'" in server.output(), message="close line")
    wait_until(lambda: "keepalive ping timeout peer=127.0.0.1:" in server.output(), message="the timeout line")
    assert "Traceback" not in server.output()


def test_idle_clients_that_answer_pings_stay_connected(start_server):
    server = start_server(*FAST_KEEPALIVE)
    # ping_interval=None: the client sends no pings of its own, so nothing flows from it
    # but the pongs its background thread sends.
    with connect(server.ws + "/echo", ping_interval=None) as echo, \
            connect(server.ws + "/", ping_interval=None) as stream:
        wait_until(lambda: server.health()["connections"] == 2, message="2 connections")
        idle_until = time.monotonic() + scaled(2.5)  # five ping timeouts
        wait_until(lambda: time.monotonic() >= idle_until, timeout=5, interval=0.1, message="idle period")
        assert server.health()["connections"] == 2
        echo.send("still here")
        assert echo.recv(timeout=scaled(2)) == "still here"
        # The stream kept flowing through the idle period; read what queued up, then more.
        seqs = []
        while (message := stream.recv(timeout=scaled(2))) and len(seqs) < 8:
            seqs.append(json.loads(message)["seq"])
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert "keepalive ping timeout" not in server.output()


def test_server_pings_at_the_interval_between_whole_frames(start_server):
    # A fast stream, so pings compete with data frames for the socket: every frame must
    # still parse (a ping inside a data frame would break the framing or the JSON).
    server = start_server(*FAST_KEEPALIVE, "--min-wait", "0", "--max-wait", "0.002")
    client = RawClient(server.port, "/")
    arrivals, seqs = [], []
    window = scaled(2.2)
    deadline = time.monotonic() + window
    try:
        while time.monotonic() < deadline:
            frame = client.read_frame(timeout=1)
            assert frame is not None, "server closed a connection that answers its pings"
            opcode, payload = frame
            if opcode == OP_PING:
                arrivals.append(time.monotonic())
                client.send_frame(OP_PONG, payload)
            else:
                assert opcode == OP_TEXT, frame
                seqs.append(json.loads(payload)["seq"])
    finally:
        client.close()
    assert len(seqs) > 100 and seqs == list(range(1, len(seqs) + 1))
    gaps = sorted(b - a for a, b in zip(arrivals, arrivals[1:]))
    # 0.3 s apart, up to one ticker step (0.03 s) late: about 7 in 2.2 s. The bounds
    # leave room for a busy machine (and this reader's own jitter), and would fail at no
    # pings, at a ping per ticker step (0.03 s) or at pings that do not wait for the pong.
    assert window / 0.3 * 0.5 <= len(arrivals) <= window / 0.3 + 1, arrivals
    assert gaps[len(gaps) // 2] >= 0.25 and gaps[0] >= 0.1, gaps


def test_ping_interval_zero_sends_no_pings(start_server):
    server = start_server("--ping-interval", "0", "--ping-timeout", "0.2")
    client = RawClient(server.port, "/echo")
    try:
        with pytest.raises(socket.timeout):
            client.read_frame(timeout=1.0)  # no frame at all, and the silent client stays
        assert server.health()["connections"] == 1
    finally:
        client.close()


# --- end to end: write timeout -----------------------------------------------------------


def test_client_that_stops_reading_is_dropped_after_the_write_timeout_others_unaffected(start_server):
    server = start_server("--write-timeout", "1", "--min-wait", "0", "--max-wait", "0.001")
    seqs: list[int] = []
    healthy_error: list[BaseException] = []
    stop = threading.Event()

    def read_healthy():
        try:
            with connect(server.ws + "/", compression=None) as ws:
                while not stop.is_set():
                    seqs.append(json.loads(ws.recv(timeout=scaled(3)))["seq"])
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            healthy_error.append(error)

    reader = threading.Thread(target=read_healthy, daemon=True)
    reader.start()
    wait_until(lambda: len(seqs) > 10, message="healthy client receiving")
    stalled = RawClient(server.port, "/", rcvbuf=1024, mss=536)  # and never reads
    connected = time.monotonic()
    wait_until(lambda: "write timeout peer=" in server.output(), timeout=15, interval=0.05,
               message="write timeout in the log")
    dropped = time.monotonic() - connected
    wait_until(lambda: server.health()["connections"] == 1, message="only the healthy client left")
    wait_until(lambda: server.health()["producers"] == 1, message="only the healthy producer left")
    received = len(seqs)
    wait_until(lambda: len(seqs) > received + 50, message="healthy client still receiving")
    stop.set()
    reader.join(scaled(5))
    assert not healthy_error, healthy_error
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no repeat
    # Buffers fill within a second or so at this rate; then a blocked second.
    assert 1.0 <= dropped <= scaled(10), dropped
    # The server dropped the socket: after what is buffered, EOF or a reset.
    stalled.sock.settimeout(scaled(5))
    try:
        while stalled.sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    stalled.close()
    wait_until(lambda: "code=1006 reason='write timeout'" in server.output(), message="the write timeout line")
    assert "Traceback" not in server.output()


def test_echo_client_that_stops_reading_is_dropped_after_the_write_timeout(start_server):
    """The reader's own writes (echo replies, pongs) are bounded too: one depth for all sends."""
    server = start_server("--write-timeout", "1", "--ping-interval", "0")
    client = RawClient(server.port, "/echo", rcvbuf=1024, mss=536)
    client.sock.settimeout(scaled(0.5))
    message = os.urandom(16 * 1024)
    mask = os.urandom(4)
    frame = bytes([0x82, 0xFE]) + struct.pack("!H", len(message)) + mask + bytes(
        byte ^ mask[i % 4] for i, byte in enumerate(message))
    started = time.monotonic()
    try:
        while time.monotonic() - started < scaled(15) and "write timeout" not in server.output():
            try:
                client.sock.sendall(frame)  # never read the echoes
            except socket.timeout:
                pass  # the server stopped reading too: it is blocked writing to us
    except (ConnectionResetError, BrokenPipeError):
        pass  # dropped by the server
    wait_until(lambda: "write timeout peer=" in server.output() and "path=/echo" in server.output(),
               message="write timeout on /echo")
    wait_until(lambda: server.health()["connections"] == 0, message="connections back to 0")
    client.close()
    assert "Traceback" not in server.output()
