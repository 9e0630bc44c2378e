"""The one place that speaks WebSocket: eventlet's classes, with their unsafe defaults off.

Everything in the server that touches the WebSocket protocol goes through this module:

* ``check_handshake`` answers bad upgrade requests with a specific HTTP status and a
  one-line reason *before* any upgrade (eventlet's ``WebSocketWSGI`` accepts hixie-75/76
  handshakes and answers most mistakes with a bare 400).
* ``WebSocketEndpoint`` (a ``WebSocketWSGI``) performs the RFC 6455 upgrade, negotiates
  permessage-deflate only when the server allows it (eventlet always does; compressed
  frames cannot be shared between subscribers and cost memory per connection), and hands
  a ``DashWebSocket`` to the handler.
* ``DashWebSocket`` (an ``RFC6455WebSocket``) replaces eventlet's frame reader with a
  strict one (RSV bits, opcodes, masking, fragmentation, control frames, close codes,
  UTF-8 checked per chunk, a message-size limit across fragments), unmasks client data
  with integer XOR instead of eventlet's byte-by-byte loop, sends pre-built frames, bounds
  every write by a timeout, and completes close handshakes (ours and protocol failures)
  before dropping the socket. Every server socket, ``/echo`` and the streams alike, is
  one of these.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import socket
import struct
import time
from typing import Callable

import eventlet
from eventlet import websocket as _eventlet_websocket
from eventlet import wsgi

from dashstream.httputil import HTTPError

RFC6455_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"

# Close codes this server sends (documented in README).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutting down
CLOSE_PROTOCOL = 1002  # the peer broke RFC 6455 (bad frame, bad close code)
CLOSE_INVALID_DATA = 1007  # a text message that is not UTF-8
CLOSE_POLICY = 1008  # subscriber too slow
CLOSE_TOO_BIG = 1009  # a message over --max-message-size
CLOSE_INTERNAL = 1011  # also: keepalive ping timeout (websockets' convention)

# An empty ping: the keepalive only needs *a* pong after it, so one frame serves everyone.
PING_FRAME = b"\x89\x00"


class WriteTimeout(TimeoutError):
    """A send stayed blocked longer than the socket's ``write_timeout``: the peer stopped
    reading. The socket has already been dropped when this is raised."""

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024  # screens send little
_KNOWN_OPCODES = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))
_VALID_DEFINED_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))
# Payloads are read, unmasked and checked in pieces of at most this size.
_READ_CHUNK = 64 * 1024


def _refuse(status: str, reason: str, *headers: tuple[str, str]) -> HTTPError:
    # A refused upgrade closes its connection: the client meant to leave HTTP anyway.
    return HTTPError(status, reason, [("Connection", "close"), *headers])


def wants_websocket(environ: dict) -> bool:
    """Whether the request asks for a WebSocket at all (so it must not get a page)."""
    return "websocket" in environ.get("HTTP_UPGRADE", "").lower()


def check_handshake(environ: dict) -> None:
    """Raise ``HTTPError`` unless ``environ`` is a valid RFC 6455 opening handshake."""
    if environ.get("REQUEST_METHOD") != "GET":
        raise _refuse("405 Method Not Allowed", "a WebSocket upgrade must use GET", ("Allow", "GET"))
    connection_tokens = {token.strip().lower() for token in environ.get("HTTP_CONNECTION", "").split(",")}
    if "upgrade" not in connection_tokens or environ.get("HTTP_UPGRADE", "").strip().lower() != "websocket":
        raise _refuse("400 Bad Request", "a WebSocket upgrade needs 'Connection: Upgrade' "
                      "and 'Upgrade: websocket'")
    if "HTTP_SEC_WEBSOCKET_KEY1" in environ or "HTTP_SEC_WEBSOCKET_VERSION" not in environ:
        raise _refuse("400 Bad Request", "hixie-75/76 WebSocket handshakes are not supported; "
                      "use RFC 6455 (Sec-WebSocket-Version: 13)")
    if environ["HTTP_SEC_WEBSOCKET_VERSION"].strip() != SUPPORTED_VERSION:
        raise _refuse("426 Upgrade Required", "unsupported Sec-WebSocket-Version; this server speaks 13",
                      ("Sec-WebSocket-Version", SUPPORTED_VERSION))
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise _refuse("400 Bad Request", "Sec-WebSocket-Key must be 16 bytes in base64")


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
    """eventlet's RFC 6455 socket with a strict frame reader, fast unmasking and
    frame-level send/close helpers.

    The reader (``_iter_frames`` → ``_read_message``) replaces eventlet's. Any violation
    fails the connection with the RFC's close code: 1002 for a protocol error, 1007 for
    invalid UTF-8 (found per chunk, so a bad first fragment fails before the rest is
    sent), 1009 for a message over ``max_message_size`` counted across fragments (found
    from the frame header, before its payload is read). Failing sends our close frame,
    waits up to ``close_timeout`` for the peer's, then drops the socket; ``wait()`` then
    returns None and ``failure`` says why. Nothing is raised into the handler.
    """

    def __init__(self, sock, environ, version=13, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 close_timeout: float = 1.0, **kwargs):
        kwargs.setdefault("max_frame_length", max_message_size)
        super().__init__(sock, environ, version, **kwargs)
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout
        self.last_pong: float | None = None
        # Seconds one write (waiting for the send lock included) may block; None = forever.
        self.write_timeout: float | None = None
        self.write_timed_out = False
        self.failure: tuple[int, str] | None = None  # (code, reason) when we failed the connection
        self._unread = 0  # payload bytes of the current frame still in the socket

    @staticmethod
    def _apply_mask(data, mask, length=None, offset=0):
        if length is not None and length != len(data):
            data = data[:length]
        return _xor_mask(data, mask, offset)

    @property
    def compressed(self) -> bool:
        return "permessage-deflate" in self.extensions

    def _send(self, frame: bytes) -> None:
        """Every write passes here (data, echo, pongs, pings, close frames), under the send
        lock so frames never interleave. A write blocked past ``write_timeout`` may have
        left half a frame on the wire, so nothing can follow it: drop the socket, which
        also wakes the reader, and raise ``WriteTimeout``."""
        if self.write_timeout is None:
            return self._send_unless_closed(frame)
        try:
            with eventlet.Timeout(self.write_timeout) as timer:
                return self._send_unless_closed(frame)
        except eventlet.Timeout as expired:
            if expired is not timer:
                raise  # an outer caller's timeout, not ours
        self.write_timed_out = True
        self.abort()
        raise WriteTimeout(f"send blocked for more than {self.write_timeout}s")

    def _send_unless_closed(self, frame: bytes) -> None:
        with self._sendlock:
            # RFC 6455 5.5.1: nothing may follow our close frame. Checked under the lock,
            # so a sender that queued behind the close frame drops its data frame.
            if self.websocket_closed:
                return
            self.socket.sendall(frame)
    # --- reading ------------------------------------------------------------------------

    def _iter_frames(self):
        try:
            while True:
                yield self._read_message()
        except ProtocolViolation as violation:
            self._fail(violation.status, violation.message)
        except _eventlet_websocket.ConnectionClosedError:
            return
        except OSError:
            self.abort()  # the peer is gone: no close frame can reach it
            raise
        except Exception:
            # A bug of ours, not the peer's: close with 1011, and let the handler log it.
            self._fail(CLOSE_INTERNAL, "internal error", wait_for_peer=False)
            raise

    def _read_message(self) -> str | bytes:
        """The next complete data message; control frames in between are handled here."""
        message: _IncomingMessage | None = None
        while True:
            # One data frame can keep the socket readable for long: let the other
            # green threads (other clients' senders) run between frames.
            eventlet.sleep(0)
            fin, rsv, opcode, length, mask = self._read_header(in_message=message is not None)
            if opcode & 0x8:
                self._handle_control_frame(opcode, self._read_payload(length, mask))
                continue
            if message is None:
                message = _IncomingMessage(opcode == 0x1, self._get_permessage_deflate_dec(rsv & 0x4),
                                           self.max_message_size)
            if message.wire_size + length > self.max_message_size:
                raise ProtocolViolation(CLOSE_TOO_BIG, f"message exceeds {self.max_message_size} bytes")
            message.wire_size += length
            self._read_payload(length, mask, message.feed)
            if fin:
                return message.finish()

    def _read_raw_header(self) -> tuple[int, int, bytes]:
        """The next frame's first byte, payload length and mask (b"" when unmasked), unchecked."""
        first, second = self._get_bytes(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._get_bytes(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._get_bytes(8))[0]
        mask = self._get_bytes(4) if second & 0x80 else b""
        return first, length, mask

    def _read_header(self, in_message: bool) -> tuple[bool, int, int, int, bytes]:
        """Read a whole frame header, then check it: (fin, rsv, opcode, length, mask).
        Reading it whole first lets a failed connection skip the rejected payload exactly
        while it waits for the peer's close frame."""
        first, length, mask = self._read_raw_header()
        fin, rsv, opcode = bool(first & 0x80), first >> 4 & 0x7, first & 0xF
        self._unread = length
        if opcode not in _KNOWN_OPCODES:
            raise ProtocolViolation(CLOSE_PROTOCOL, f"reserved opcode {opcode:#x}")
        # permessage-deflate (RFC 7692) gives RSV1 a meaning on a message's first frame only.
        allowed_rsv = 0x4 if self.compressed and opcode in (0x1, 0x2) else 0
        if rsv & ~allowed_rsv:
            raise ProtocolViolation(CLOSE_PROTOCOL, "RSV bits set without a negotiated extension")
        if not mask:
            raise ProtocolViolation(CLOSE_PROTOCOL, "client frames must be masked")
        if length >> 63:
            raise ProtocolViolation(CLOSE_PROTOCOL, "payload length with the most significant bit set")
        if opcode & 0x8:
            if not fin:
                raise ProtocolViolation(CLOSE_PROTOCOL, "fragmented control frame")
            if length > 125:
                raise ProtocolViolation(CLOSE_PROTOCOL, "control frame payload over 125 bytes")
        elif opcode == 0 and not in_message:
            raise ProtocolViolation(CLOSE_PROTOCOL, "continuation frame without a message to continue")
        elif opcode and in_message:
            raise ProtocolViolation(CLOSE_PROTOCOL, "new data frame inside a fragmented message")
        return fin, rsv, opcode, length, mask

    def _read_payload(self, length: int, mask: bytes, sink: Callable[[bytes], None] | None = None) -> bytes:
        """Read and unmask ``length`` bytes, chunk by chunk; pass each chunk to ``sink``
        (so a message is checked as it arrives) or return them joined."""
        chunks = []
        self._unread = length
        received = 0
        while received < length:
            chunk = self.socket.recv(min(length - received, _READ_CHUNK))
            if not chunk:
                raise _eventlet_websocket.ConnectionClosedError()
            chunk = _xor_mask(chunk, mask, received)
            received += len(chunk)
            self._unread = length - received
            if sink is None:
                chunks.append(chunk)
            else:
                sink(chunk)
        return b"".join(chunks)

    def _handle_control_frame(self, opcode, data):
        if opcode == 0x8:
            self._remote_close_data = data
            code = _close_code(data)
            # Answer with the peer's code (RFC 6455 5.5.1); then the handshake is complete.
            self.close(close_data=(code, ""))
            raise _eventlet_websocket.ConnectionClosedError()
        if opcode == 0x9:
            if not self.websocket_closed:  # nothing may follow our close frame
                self.send(data, control_code=0xA)
        elif opcode == 0xA:
            self.last_pong = time.monotonic()

    # --- failing and closing ------------------------------------------------------------

    def _fail(self, code: int, reason: str, wait_for_peer: bool = True) -> None:
        """RFC 6455 7.1.7 "Fail the WebSocket Connection": our close frame, then the peer's
        (unless it already sent one or we are not waiting), then drop the socket."""
        self.failure = (code, reason)
        if not self.websocket_closed:
            with eventlet.Timeout(self.close_timeout, False):  # a peer that does not read
                self._send_closing_frame(ignore_send_errors=True, close_data=(code, reason[:120]))
            self.websocket_closed = True
        if wait_for_peer and self._remote_close_data is None:
            with eventlet.Timeout(self.close_timeout, False):
                self._discard_until_close()
        self.abort()

    def _discard_until_close(self) -> None:
        """Skip whatever the peer still sends until its close frame (or EOF, or bytes that
        no longer parse as frames). Payloads are skipped, never unmasked or buffered."""
        try:
            self._skip(self._unread)
            while True:
                eventlet.sleep(0)
                first, length, mask = self._read_raw_header()
                if first & 0xF == 0x8:
                    self._remote_close_data = (b"" if length > 125 else
                                               _xor_mask(self._get_bytes(length), mask or b"\0\0\0\0"))
                    return
                self._skip(length)
        except (_eventlet_websocket.ConnectionClosedError, OSError):
            return

    def _skip(self, length: int) -> None:
        while length > 0:
            chunk = self.socket.recv(min(length, _READ_CHUNK))
            if not chunk:
                raise _eventlet_websocket.ConnectionClosedError()
            length -= len(chunk)

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


class ProtocolViolation(_eventlet_websocket.FailedConnectionError):
    """The peer broke RFC 6455: fail the connection with ``status``."""


def _close_code(data: bytes) -> int:
    """The code of a peer's close frame (1000 if it gave none); raise if the frame is invalid."""
    if not data:
        return CLOSE_NORMAL
    if len(data) == 1:
        raise ProtocolViolation(CLOSE_PROTOCOL, "close frame payload of one byte")
    code = int.from_bytes(data[:2], "big")
    if not valid_close_code(code):
        raise ProtocolViolation(CLOSE_PROTOCOL, f"invalid close code {code}")
    try:
        data[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolViolation(CLOSE_PROTOCOL, "close reason is not valid UTF-8") from None
    return code


def valid_close_code(code: int) -> bool:
    """Codes a peer may put in a close frame (RFC 6455 7.4 and the IANA registry):
    1004-1006 and 1015 are reserved and must never be sent."""
    return code in _VALID_DEFINED_CLOSE_CODES or 3000 <= code <= 4999


class _IncomingMessage:
    """A data message being received: size, decompression and UTF-8 checked per chunk."""

    def __init__(self, text: bool, decompressor, max_size: int):
        self.wire_size = 0  # bytes as sent (compressed if permessage-deflate)
        self.size = 0  # bytes after decompression
        self.max_size = max_size
        self.decompressor = decompressor
        self.decoder = codecs.getincrementaldecoder("utf-8")() if text else None
        self.parts: list = []

    def feed(self, data: bytes) -> None:
        if self.decompressor is not None:
            room = self.max_size - self.size
            data = self.decompressor.decompress(data, room + 1)
            if self.decompressor.unconsumed_tail:
                raise ProtocolViolation(CLOSE_TOO_BIG, f"message exceeds {self.max_size} bytes")
        self.size += len(data)
        if self.size > self.max_size:
            raise ProtocolViolation(CLOSE_TOO_BIG, f"message exceeds {self.max_size} bytes")
        if self.decoder is None:
            self.parts.append(data)
            return
        try:
            self.parts.append(self.decoder.decode(data))
        except UnicodeDecodeError:
            raise ProtocolViolation(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None
        # CPython's decoder waits for a third byte before rejecting a UTF-16 surrogate
        # (ED A0..BF), though no continuation can make it valid: reject it now.
        pending = self.decoder.getstate()[0]
        if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
            raise ProtocolViolation(CLOSE_INVALID_DATA, "text message is not valid UTF-8")

    def finish(self) -> str | bytes:
        if self.decompressor is not None:
            self.feed(b"\x00\x00\xff\xff")  # the tail RFC 7692 strips from every message
        if self.decoder is None:
            return b"".join(self.parts)
        try:
            # A multi-byte character cut at a fragment boundary is only wrong at the end.
            self.parts.append(self.decoder.decode(b"", final=True))
        except UnicodeDecodeError:
            raise ProtocolViolation(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None
        return "".join(self.parts)


class WebSocketEndpoint(_eventlet_websocket.WebSocketWSGI):
    """Upgrade a checked request and run ``handler(ws, environ)`` on it."""

    def __init__(self, handler: Callable[[DashWebSocket, dict], None], *, compression: bool = False,
                 send_buffer: int | None = None,
                 max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE, close_timeout: float = 1.0):
        super().__init__(handler, max_frame_length=max_message_size)
        self.support_legacy_versions = False
        self.compression = compression
        self.send_buffer = send_buffer
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout

    def __call__(self, environ, start_response):
        """Upgrade and serve; a bad handshake raises ``HTTPError`` for the app to answer.

        Unlike upstream, the connection is not marked idle (``eventlet.set_idle``): when
        wsgi.server's accept loop ends it shuts idle sockets down at once, which would cut
        the 1001 close handshake that our own shutdown is doing."""
        check_handshake(environ)
        ws = self._upgrade(environ)
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
        return DashWebSocket(sock, environ, 13, extensions=extensions, max_message_size=self.max_message_size,
                             close_timeout=self.close_timeout)
