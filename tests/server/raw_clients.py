"""Raw clients for server tests that attack: bytes written by hand, answers read by hand.

Kept here (not imported from another test module) so the tests that use them do not
depend on where other test files live; the frames they send are built by tests/ws_frames.py."""

from __future__ import annotations

import base64
import os
import socket
import struct

from tests.support import scaled


def connect(port: int, source: str | None = None, timeout: float = 5.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(scaled(timeout))
    if source is not None:
        sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(status line and headers, bytes after them)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"closed before the head ended: {buffer!r}")
        buffer += chunk
    head, rest = buffer.split(b"\r\n\r\n", 1)
    return head, rest


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset counts as the end)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


class RawWebSocket:
    """A handshake by hand, then frames written and read by hand."""

    def __init__(self, port: int, path: str, extra: str = "", source: str | None = None):
        self.sock = connect(port, source)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
        head, self.buffer = read_head(self.sock)
        self.status = status_of(head)
        self.head = head

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the TCP connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def read_frame(self) -> tuple[int, bytes]:
        first, second = self._take(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._take(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._take(8))[0]
        return first & 0xF, self._take(length)

    def read_until_close(self) -> tuple[int, bytes]:
        """Skip data frames; (close code, reason)."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                return struct.unpack("!H", payload[:2])[0], payload[2:]

    def close(self) -> None:
        self.sock.close()
