"""The one place that speaks WebSocket: eventlet's classes, with their unsafe defaults off.

Everything in the server that touches the WebSocket protocol goes through this module:

* ``check_handshake`` answers bad upgrade requests with a specific HTTP status and a
  one-line reason *before* any upgrade (eventlet's ``WebSocketWSGI`` accepts hixie-75/76
  handshakes and answers most mistakes with a bare 400).
* ``WebSocketEndpoint`` (a ``WebSocketWSGI``) performs the RFC 6455 upgrade, negotiates
  permessage-deflate only when the server allows it (eventlet always does; compressed
  frames cannot be shared between subscribers and cost memory per connection), and hands
  a ``DashWebSocket`` to the handler.
* ``DashWebSocket`` (an ``RFC6455WebSocket``) unmasks client data with integer XOR instead
  of eventlet's byte-by-byte loop, sends pre-built frames, bounds every write by a
  timeout, and starts a server close handshake without tearing the socket down before
  the peer answers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import socket
import struct
import time
from typing import Callable

import eventlet
from eventlet import websocket as _eventlet_websocket
from eventlet import wsgi

RFC6455_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"

# Close codes this server sends (documented in README).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutting down
CLOSE_POLICY = 1008  # subscriber too slow
CLOSE_INTERNAL = 1011  # also: keepalive ping timeout (websockets' convention)

# An empty ping: the keepalive only needs *a* pong after it, so one frame serves everyone.
PING_FRAME = b"\x89\x00"


class WriteTimeout(TimeoutError):
    """A send stayed blocked longer than the socket's ``write_timeout``: the peer stopped
    reading. The socket has already been dropped when this is raised."""


class HandshakeError(Exception):
    """A refused upgrade: HTTP status line, a short reason for the body, extra headers."""

    def __init__(self, status: str, reason: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []


def wants_websocket(environ: dict) -> bool:
    """Whether the request asks for a WebSocket at all (so it must not get a page)."""
    return "websocket" in environ.get("HTTP_UPGRADE", "").lower()


def check_handshake(environ: dict) -> None:
    """Raise ``HandshakeError`` unless ``environ`` is a valid RFC 6455 opening handshake."""
    if environ.get("REQUEST_METHOD") != "GET":
        raise HandshakeError("405 Method Not Allowed", "a WebSocket upgrade must use GET",
                             [("Allow", "GET")])
    connection_tokens = {token.strip().lower() for token in environ.get("HTTP_CONNECTION", "").split(",")}
    if "upgrade" not in connection_tokens or environ.get("HTTP_UPGRADE", "").strip().lower() != "websocket":
        raise HandshakeError("400 Bad Request", "a WebSocket upgrade needs 'Connection: Upgrade' "
                             "and 'Upgrade: websocket'")
    if "HTTP_SEC_WEBSOCKET_KEY1" in environ or "HTTP_SEC_WEBSOCKET_VERSION" not in environ:
        raise HandshakeError("400 Bad Request", "hixie-75/76 WebSocket handshakes are not supported; "
                             "use RFC 6455 (Sec-WebSocket-Version: 13)")
    if environ["HTTP_SEC_WEBSOCKET_VERSION"].strip() != SUPPORTED_VERSION:
        raise HandshakeError("426 Upgrade Required", "unsupported Sec-WebSocket-Version; this server speaks 13",
                             [("Sec-WebSocket-Version", SUPPORTED_VERSION)])
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise HandshakeError("400 Bad Request", "Sec-WebSocket-Key must be 16 bytes in base64")


def accept_key(key: str) -> bytes:
    return base64.b64encode(hashlib.sha1(key.encode() + RFC6455_GUID).digest())


def text_frame(text: str) -> bytes:
    """A complete, unmasked, uncompressed server text frame (built once, sent to many)."""
    payload = text.encode("utf-8")
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


def _xor_mask(data: bytes, mask: bytes | tuple, offset: int = 0) -> bytes:
    """RFC 6455 unmasking as one big-integer XOR: orders of magnitude faster than a
    per-byte loop, so one client sending large frames cannot stall the hub."""
    length = len(data)
    if not length:
        return b""
    mask = bytes(mask)
    shift = offset % 4
    mask = mask[shift:] + mask[:shift]
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")


class DashWebSocket(_eventlet_websocket.RFC6455WebSocket):
    """eventlet's RFC 6455 socket with fast unmasking and frame-level send/close helpers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_pong: float | None = None
        # Seconds one write (waiting for the send lock included) may block; None = forever.
        self.write_timeout: float | None = None
        self.write_timed_out = False

    @staticmethod
    def _apply_mask(data, mask, length=None, offset=0):
        if length is not None and length != len(data):
            data = data[:length]
        return _xor_mask(data, mask, offset)

    def _handle_control_frame(self, opcode, data):
        if opcode == 0xA:
            self.last_pong = time.monotonic()
        return super()._handle_control_frame(opcode, data)

    @property
    def compressed(self) -> bool:
        return "permessage-deflate" in self.extensions

    def _send(self, frame: bytes) -> None:
        """Every write passes here (data, echo, pongs, pings, close frames), under the send
        lock so frames never interleave. A write blocked past ``write_timeout`` may have
        left half a frame on the wire, so nothing can follow it: drop the socket, which
        also wakes the reader, and raise ``WriteTimeout``."""
        if self.write_timeout is None:
            return super()._send(frame)
        try:
            with eventlet.Timeout(self.write_timeout) as timer:
                return super()._send(frame)
        except eventlet.Timeout as expired:
            if expired is not timer:
                raise  # an outer caller's timeout, not ours
        self.write_timed_out = True
        self.abort()
        raise WriteTimeout(f"send blocked for more than {self.write_timeout}s")

    def send_frame(self, frame: bytes) -> None:
        """Send bytes that are already a complete frame (shared between subscribers)."""
        self._send(frame)

    def start_close(self, code: int, reason: str = "") -> None:
        """Send our close frame and keep the socket open for the peer's answer
        (eventlet's ``close`` shuts the socket at once, so the handshake never completes).
        The reader sees the peer's close frame and finishes the teardown."""
        self._send_closing_frame(ignore_send_errors=True, close_data=(code, reason[:120]))

    def abort(self) -> None:
        """Drop the TCP connection without further protocol (peer gone or unresponsive)."""
        self.websocket_closed = True
        try:
            self.socket.shutdown(2)
        except OSError:
            pass
        self.socket.close()


class WebSocketEndpoint(_eventlet_websocket.WebSocketWSGI):
    """Upgrade a checked request and run ``handler(ws, environ)`` on it."""

    def __init__(self, handler: Callable[[DashWebSocket, dict], None], *, compression: bool = False,
                 send_buffer: int | None = None,
                 max_frame_length: int = _eventlet_websocket.DEFAULT_MAX_FRAME_LENGTH):
        super().__init__(handler, max_frame_length=max_frame_length)
        self.support_legacy_versions = False
        self.compression = compression
        self.send_buffer = send_buffer

    def __call__(self, environ, start_response):
        try:
            check_handshake(environ)
        except HandshakeError as refused:
            start_response(refused.status, [("Content-Type", "text/plain; charset=utf-8"),
                                            ("Connection", "close"), *refused.headers])
            return [refused.reason.encode() + b"\n"]
        ws = self._upgrade(environ)
        if "eventlet.set_idle" in environ:
            # Lets eventlet's own server shutdown treat the socket as idle, as upstream does.
            environ["eventlet.set_idle"]()
        try:
            self.handler(ws, environ)
        finally:
            if not ws.websocket_closed:
                ws.start_close(CLOSE_NORMAL)
            # An undocumented flag of eventlet.wsgi (used by upstream WebSocketWSGI too):
            # the response was written by hand, so wsgi must not add one.
            wsgi.WSGI_LOCAL.already_handled = True
        return []

    def _upgrade(self, environ) -> DashWebSocket:
        sock = environ["eventlet.input"].get_socket()
        reply = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade",
                 b"Sec-WebSocket-Accept: " + accept_key(environ["HTTP_SEC_WEBSOCKET_KEY"].strip())]
        extensions = {}
        if self.compression:
            offered = self._parse_extension_header(environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS"))
            deflate = self._negotiate_permessage_deflate(offered)
            if deflate is not None:
                extensions["permessage-deflate"] = deflate
                reply.append(b"Sec-WebSocket-Extensions: " + self._format_extension_header(extensions))
        if self.send_buffer:
            # Linux autotunes a socket's send buffer up to megabytes; a fixed size bounds the
            # kernel memory one stuck client can pin and makes it back up into its (bounded)
            # queue within seconds, where the hub notices it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        sock.sendall(b"\r\n".join(reply) + b"\r\n\r\n")
        return DashWebSocket(sock, environ, 13, extensions=extensions, max_frame_length=self.max_frame_length)
