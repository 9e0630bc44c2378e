"""RFC 6455 framing as code without I/O: bytes in -> events, events -> bytes out.

The shape of websockets' ``protocol.py``: a ``FrameReader`` is fed whatever ``recv`` returned
and answers with the events those bytes completed (``Message``, ``Ping``, ``Pong``,
``PeerClose``, ``Failure``); the ``*_frame`` functions build the bytes to send. Nothing here
blocks, sleeps, reads a clock or touches a socket, so every rule is tested by feeding bytes
(tests/unit/test_frames.py), and the one reader serves the WebSocket session's hub callback,
which needs no parked green thread per connection.

We weighed wsproto and websockets' sans-I/O ``Protocol`` and kept our own reader: the
server must hold ~10,000 idle sockets in a few KiB each (a reader object here is a handful
of slots and an empty bytearray; websockets' parser is a suspended generator per socket),
stream sockets validate what clients send without keeping it, and the close codes and
reasons below are pinned by the tests and the README.

Rules enforced, with the close code each violation fails the connection with:

* 1002: RSV bits without a negotiated extension (RSV1 is permessage-deflate's, on a data
  message's first frame only), a reserved opcode, an unmasked client frame, a 64-bit length
  with the top bit set, a fragmented or over-125-byte control frame, a continuation without a
  message or a new data frame inside one, a close payload of one byte, a close code that may
  not be sent, a close reason that is not UTF-8;
* 1007: a text message that is not UTF-8, found as soon as the bytes prove it;
* 1009: a message over ``max_message_size`` (counted across fragments, and after
  decompression), found from a frame header before its payload arrives; a message in more
  than ``max_fragments`` frames (by default ``fragment_limit(max_message_size)``: 4,096,
  or one per 64 bytes of the limit when that is more, so a raised limit admits the
  fragmentation Autobahn's 9.3/9.4 cases use, 4 MiB in 64-byte fragments, while a message
  still cannot be mostly frame headers);
* 1008, on a stream socket (``data_budget``): more data than the budget over the
  connection's life. Nothing reads what a client sends there, and each frame still costs
  a header parse, an unmask and a UTF-8 check, so a client streaming 60 KiB messages into
  a stream socket is closed instead of costing a core; each complete message counts its
  payload plus ``FRAME_COST`` bytes per frame, so empty frames are counted too.

A reader may have a ``frame_budget``: ``receive`` then parses at most that many frame headers
and keeps the rest of the bytes; ``held`` says some are left, and ``resume()`` parses the next
budget's worth. The session reads no more from a held connection and resumes it in the hub's
next pass, so a flood of tiny frames on a hundred connections cannot keep every timer (a
stream's ticker) waiting while all of it is parsed (BENCHMARKS.md, "A flood of unfinished
fragments").

Memory per connection follows what is actually buffered: an unfinished message is one
growing ``bytearray`` (or, on sockets that ignore what clients send, only its size and a
UTF-8 decoder's few pending bytes), never an object per fragment.
"""

from __future__ import annotations

import codecs
import struct
from typing import Protocol

# Opcodes (RFC 6455 5.2).
OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_KNOWN_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))

# Close codes this server sends (README, "Close codes the server sends").
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # server shutting down
CLOSE_PROTOCOL = 1002  # the peer broke RFC 6455
CLOSE_INVALID_DATA = 1007  # a text message that is not UTF-8
CLOSE_POLICY = 1008  # subscriber too slow; a frame not finished in time; data into a stream socket
CLOSE_TOO_BIG = 1009  # a message over --max-message-size
CLOSE_INTERNAL = 1011  # also: keepalive ping timeout (websockets' convention)
# Never sent (RFC 6455 7.4.1 reserves it): what the log and /metrics record for a connection
# that ended without a close handshake (the peer vanished, a write timed out).
CLOSE_ABNORMAL = 1006

_VALID_DEFINED_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))

DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024  # screens send little
# A message in more pieces than this is refused (1009): each frame costs a header parse, and
# nobody splits a 64 KiB message into 2-byte fragments except to waste the server's time.
DEFAULT_MAX_FRAGMENTS = 4096
# Above a 256 KiB --max-message-size, one more fragment per 64 bytes of the limit.
MIN_AVERAGE_FRAGMENT = 64
# What a data frame costs against a stream socket's budget besides its payload.
FRAME_COST = 64
# Data a client may send into a stream socket (which reads none of it) over its life.
STREAM_SOCKET_DATA_BUDGET = 16 * 1024
# Frame headers a session's reader parses per pass of the hub (``frame_budget``): a few tenths of
# a millisecond of tiny frames, while a screen's few messages (one frame each) never come near it.
FRAMES_PER_PASS = 64
MAX_CONTROL_PAYLOAD = 125
# An empty ping: the keepalive needs only *a* pong after it, so one frame serves everyone.
PING_FRAME = b"\x89\x00"


def fragment_limit(max_message_size: int) -> int:
    """The most frames one message may come in, for a given message size limit."""
    return max(DEFAULT_MAX_FRAGMENTS, max_message_size // MIN_AVERAGE_FRAGMENT)


def valid_close_code(code: int) -> bool:
    """Codes a peer may put in a close frame (RFC 6455 7.4 and the IANA registry):
    1004-1006 and 1015 are reserved and must never be sent."""
    return code in _VALID_DEFINED_CLOSE_CODES or 3000 <= code <= 4999


def xor_mask(data: bytes | bytearray, mask: bytes, offset: int = 0) -> bytes:
    """RFC 6455 5.3 unmasking as one big-integer XOR: orders of magnitude faster than a
    per-byte loop, so one client sending large frames cannot stall the server. ``offset``
    is where ``data`` starts within the payload (payloads arrive in pieces)."""
    length = len(data)
    if not length:
        return b""
    shift = offset % 4
    mask = mask[shift:] + mask[:shift]
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(length, "little")


# --- building server frames ---------------------------------------------------------------


def frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """A complete, final, unmasked server frame."""
    length = len(payload)
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


# The headers of final text frames with payloads under 126 bytes (one byte of length): a
# dashboard message is a few dozen bytes, so most text frames are a lookup and one join.
_SHORT_TEXT_HEADERS = tuple(bytes((0x80 | OP_TEXT, length)) for length in range(126))


def text_frame(text: str) -> bytes:
    """A text frame (built once per message and shared by every subscriber)."""
    payload = text.encode("utf-8")
    if len(payload) < 126:
        return _SHORT_TEXT_HEADERS[len(payload)] + payload
    return frame(OP_TEXT, payload)


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; the reason is cut so the payload stays within 125 bytes (and stays
    valid UTF-8: a character is never split)."""
    encoded = reason.encode("utf-8")[:MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore").encode("utf-8")
    return frame(OP_CLOSE, struct.pack("!H", code) + encoded)


def pong_frame(payload: bytes) -> bytes:
    return frame(OP_PONG, payload)


# --- events ---------------------------------------------------------------------------------


class Message:
    """A complete data message. ``data`` is the payload (None on a reader told not to keep
    messages); ``text`` says whether it was a text message (already checked to be UTF-8)."""

    __slots__ = ("text", "data")

    def __init__(self, text: bool, data: bytes | None):
        self.text = text
        self.data = data

    def __eq__(self, other):
        return isinstance(other, Message) and (self.text, self.data) == (other.text, other.data)

    def __repr__(self):
        return f"Message(text={self.text}, data={self.data!r})"


class Ping:
    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data


class Pong:
    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data


class PeerClose:
    """The peer's close frame. ``code`` is what to answer with (RFC 6455 5.5.1: its own code,
    1000 when it gave none); ``received`` is the code it sent (1005: none), for the log."""

    __slots__ = ("code", "received", "reason")

    def __init__(self, code: int, received: int, reason: str):
        self.code = code
        self.received = received
        self.reason = reason


class Failure:
    """The peer broke a rule: fail the connection with ``code`` (RFC 6455 7.1.7).

    ``peer_closed``: the offending frame was the peer's own close frame, so the peer is not
    going to send another one: send ours and close the TCP connection at once (waiting for
    an answer would only make the peer wait for ours)."""

    __slots__ = ("code", "reason", "peer_closed")

    def __init__(self, code: int, reason: str, peer_closed: bool = False):
        self.code = code
        self.reason = reason
        self.peer_closed = peer_closed

    def __repr__(self):
        return f"Failure({self.code}, {self.reason!r}, peer_closed={self.peer_closed})"


class Violation(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Inflater(Protocol):
    """Per-message decompression (permessage-deflate); see ``deflate.py``."""

    def decompress(self, data: bytes, limit: int) -> bytes: ...

    def finish(self, limit: int) -> bytes: ...


# --- reading client frames ---------------------------------------------------------------

def _raw_header(buffer: bytearray) -> tuple[int, int, bytes, int] | None:
    """(opcode, payload length, mask, header size) of a complete header at the start of
    ``buffer``, unchecked; None if the header is not complete yet."""
    if len(buffer) < 2:
        return None
    second = buffer[1]
    length, at = second & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, at = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, at = int.from_bytes(buffer[2:10], "big"), 10
    mask = b""
    if second & 0x80:
        if len(buffer) < at + 4:
            return None
        mask, at = bytes(buffer[at:at + 4]), at + 4
    return buffer[0] & 0xF, length, mask, at


# Reader states.
_HEADER, _PAYLOAD, _DISCARD, _DONE = range(4)


class FrameReader:
    """Client frames -> events. ``receive(data)`` returns the events the bytes completed.

    After a ``Failure`` the reader skips everything up to the peer's close frame (payloads
    are skipped, never unmasked or kept) and then reports it as a ``PeerClose``, so the
    session can finish the close handshake; after a ``PeerClose`` it ignores the rest.
    ``in_frame`` says whether a frame has started and not finished (a frame deadline applies).
    """

    __slots__ = ("max_message_size", "max_fragments", "keep_messages", "inflater", "_buffer", "_state",
                 "_opcode", "_fin", "_mask", "_remaining", "_offset", "_control", "_message_text",
                 "_message_started", "_message", "_message_size", "_wire_size", "_fragments", "_decoder",
                 "_compressed", "data_budget", "_data_spent", "frame_budget", "_frames_left")

    def __init__(self, *, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
                 max_fragments: int | None = None, keep_messages: bool = True,
                 inflater: Inflater | None = None, data_budget: int | None = None,
                 frame_budget: int | None = None):
        if max_message_size < 1:
            raise ValueError("max_message_size must be >= 1")
        if frame_budget is not None and frame_budget < 1:
            raise ValueError("frame_budget must be >= 1")
        self.frame_budget = frame_budget  # None: parse everything received at once
        self._frames_left: int | None = None  # set from frame_budget by each parse
        self.max_message_size = max_message_size
        self.max_fragments = fragment_limit(max_message_size) if max_fragments is None else max_fragments
        self.keep_messages = keep_messages
        self.inflater = inflater
        self.data_budget = data_budget  # None: data is the point (echo); else see the module docstring
        self._data_spent = 0
        self._buffer = bytearray()
        self._state = _HEADER
        self._opcode = 0
        self._fin = True
        self._mask = b""
        self._remaining = 0  # payload bytes of the current frame still to come
        self._offset = 0  # payload bytes of the current frame already seen (mask offset)
        self._control: bytearray | None = None
        self._message_started = False
        self._message_text = False
        self._message: bytearray | None = None
        self._message_size = 0  # bytes after decompression
        self._wire_size = 0  # bytes as sent
        self._fragments = 0
        self._decoder = None
        self._compressed = False

    @property
    def in_frame(self) -> bool:
        """A frame header or payload is partly received (or a violation is being skipped)."""
        return bool(self._buffer) or self._state == _PAYLOAD or (self._state == _DISCARD and self._remaining > 0)

    @property
    def failed(self) -> bool:
        return self._state in (_DISCARD, _DONE)

    @property
    def held(self) -> bool:
        """The frame budget ran out with bytes left to parse: ``resume()`` them before more."""
        return self._frames_left == 0 and bool(self._buffer)

    def receive(self, data: bytes) -> list:
        if self._state == _DONE or not data:
            return []
        self._buffer += data
        return self._run()

    def resume(self) -> list:
        """Parse on after ``held``: the events of the next budget's worth of frames."""
        return self._run() if self.held else []

    def _run(self) -> list:
        events: list = []
        self._frames_left = self.frame_budget
        try:
            self._parse(events)
        except Violation as violation:
            peer_closed = self._opcode == OP_CLOSE and self._state != _DISCARD
            events.append(Failure(violation.code, violation.reason, peer_closed))
            self._reset_message()
            if peer_closed:
                self._state = _DONE
                self._buffer.clear()
            else:
                self._state = _DISCARD
                self._parse(events)  # skip the rest of the bad frame; a close may follow
        return events

    # --- the state machine ---------------------------------------------------------------

    def _parse(self, events: list) -> None:
        buffer = self._buffer
        while True:
            state = self._state
            if state == _PAYLOAD:
                if self._remaining and not buffer:
                    return
                self._payload(events)
            elif self._frames_left == 0:
                return  # the budget is spent: held, if bytes are left
            elif state == _HEADER:
                if not self._header():
                    return
                self._spend_frame()
            elif state == _DISCARD:
                if not self._discard(events):
                    return
                self._spend_frame()
            else:
                return

    def _spend_frame(self) -> None:
        if self._frames_left is not None:
            self._frames_left -= 1

    def _header(self) -> bool:
        """Parse a frame header if it is complete. False: wait for more bytes."""
        buffer = self._buffer
        header = _raw_header(buffer)
        if header is None:
            return False
        opcode, length, mask, at = header
        first = buffer[0]
        del buffer[:at]
        fin, rsv = bool(first & 0x80), first >> 4 & 0x7
        self._opcode, self._fin, self._mask, self._remaining, self._offset = opcode, fin, mask, length, 0
        self._state = _PAYLOAD
        self._check_header(fin, rsv, opcode, length, bool(mask))
        if opcode & 0x8:
            self._control = bytearray()
        else:
            self._start_fragment(opcode, rsv, length)
        return True

    def _check_header(self, fin: bool, rsv: int, opcode: int, length: int, masked: bool) -> None:
        if opcode not in _KNOWN_OPCODES:
            raise Violation(CLOSE_PROTOCOL, f"reserved opcode {opcode:#x}")
        # permessage-deflate (RFC 7692) gives RSV1 a meaning on a data message's first frame only.
        allowed = 0x4 if self.inflater is not None and opcode in (OP_TEXT, OP_BINARY) else 0
        if rsv & ~allowed:
            raise Violation(CLOSE_PROTOCOL, "RSV bits set without a negotiated extension")
        if not masked:
            raise Violation(CLOSE_PROTOCOL, "client frames must be masked")
        if length >> 63:
            raise Violation(CLOSE_PROTOCOL, "payload length with the most significant bit set")
        if opcode & 0x8:
            if not fin:
                raise Violation(CLOSE_PROTOCOL, "fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                raise Violation(CLOSE_PROTOCOL, "control frame payload over 125 bytes")
        elif opcode == OP_CONTINUATION and not self._message_started:
            raise Violation(CLOSE_PROTOCOL, "continuation frame without a message to continue")
        elif opcode != OP_CONTINUATION and self._message_started:
            raise Violation(CLOSE_PROTOCOL, "new data frame inside a fragmented message")

    def _start_fragment(self, opcode: int, rsv: int, length: int) -> None:
        if not self._message_started:
            self._message_started = True
            self._message_text = opcode == OP_TEXT
            self._compressed = bool(rsv & 0x4)
            self._message = bytearray() if self.keep_messages else None
            self._decoder = codecs.getincrementaldecoder("utf-8")() if self._message_text else None
        self._fragments += 1
        if self._fragments > self.max_fragments:
            raise Violation(CLOSE_TOO_BIG, f"message in more than {self.max_fragments} fragments")
        # Found from the header, before any of the payload is read.
        if self._wire_size + length > self.max_message_size:
            raise Violation(CLOSE_TOO_BIG, f"message exceeds {self.max_message_size} bytes")
        self._wire_size += length

    def _payload(self, events: list) -> None:
        buffer = self._buffer
        take = min(self._remaining, len(buffer))
        if take:
            chunk = xor_mask(buffer[:take], self._mask, self._offset)
            del buffer[:take]
            self._offset += take
            self._remaining -= take
            if self._control is not None:
                self._control += chunk
            else:
                self._feed(chunk)
        if self._remaining:
            return
        self._state = _HEADER
        if self._control is not None:
            payload, self._control = bytes(self._control), None
            events.append(self._control_event(payload))
        elif self._fin:
            events.append(self._finish_message())

    def _control_event(self, payload: bytes):
        if self._opcode == OP_PING:
            return Ping(payload)
        if self._opcode == OP_PONG:
            return Pong(payload)
        return self._close_event(payload)

    def _close_event(self, payload: bytes) -> PeerClose:
        self._state = _DONE
        self._buffer.clear()
        if not payload:
            return PeerClose(CLOSE_NORMAL, 1005, "")
        if len(payload) == 1:
            raise Violation(CLOSE_PROTOCOL, "close frame payload of one byte")
        code = int.from_bytes(payload[:2], "big")
        if not valid_close_code(code):
            raise Violation(CLOSE_PROTOCOL, f"invalid close code {code}")
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise Violation(CLOSE_PROTOCOL, "close reason is not valid UTF-8") from None
        return PeerClose(code, code, reason)

    def _feed(self, data: bytes) -> None:
        """One piece of a data message: decompress, count, check UTF-8, keep (if asked)."""
        if self._compressed:
            data = self.inflater.decompress(data, self.max_message_size - self._message_size)
        self._add(data)

    def _add(self, data: bytes) -> None:
        self._message_size += len(data)
        if self._message_size > self.max_message_size:
            raise Violation(CLOSE_TOO_BIG, f"message exceeds {self.max_message_size} bytes")
        if self._decoder is not None:
            try:
                self._decoder.decode(data)
            except UnicodeDecodeError:
                raise Violation(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None
            # CPython's decoder waits for a third byte before rejecting a UTF-16 surrogate
            # (ED A0..BF), though no continuation can make it valid: reject it now.
            pending = self._decoder.getstate()[0]
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                raise Violation(CLOSE_INVALID_DATA, "text message is not valid UTF-8")
        if self._message is not None:
            self._message += data

    def _finish_message(self) -> Message:
        if self._compressed:
            # The tail RFC 7692 strips from every message, and whatever it flushes out.
            self._add(self.inflater.finish(self.max_message_size - self._message_size))
        if self._decoder is not None:
            try:
                # A character cut at a fragment boundary is only wrong at the end.
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise Violation(CLOSE_INVALID_DATA, "text message is not valid UTF-8") from None
        if self.data_budget is not None:
            # Charged when the message is complete, so its own faults (1007, 1009) are found first.
            self._data_spent += self._wire_size + FRAME_COST * self._fragments
            if self._data_spent > self.data_budget:
                raise Violation(CLOSE_POLICY, f"this socket reads no messages; over {self.data_budget} bytes sent")
        message = Message(self._message_text, bytes(self._message) if self._message is not None else None)
        self._reset_message()
        return message

    def _reset_message(self) -> None:
        self._message_started = False
        self._message = None
        self._decoder = None
        self._message_size = self._wire_size = self._fragments = 0
        self._compressed = False

    def _discard(self, events: list) -> bool:
        """After a failure: skip payloads and unchecked headers until the peer's close.
        False: wait for more bytes."""
        buffer = self._buffer
        if self._remaining:
            take = min(self._remaining, len(buffer))
            del buffer[:take]
            self._remaining -= take
            if self._remaining:
                return False
        # The next header, unchecked: a frame is only looked at for whether it is a close.
        header = _raw_header(buffer)
        if header is None:
            return False
        opcode, length, mask, at = header
        if opcode == OP_CLOSE and length <= MAX_CONTROL_PAYLOAD:
            if len(buffer) < at + length:
                return False  # wait for the whole close frame: it says the peer's code
            payload = xor_mask(buffer[at:at + length], mask or b"\0\0\0\0")
            events.append(self._raw_close(payload))
            return False
        del buffer[:at]
        self._remaining = length
        return True

    def _raw_close(self, payload: bytes) -> PeerClose:
        self._state = _DONE
        self._buffer.clear()
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
        return PeerClose(code, code, "")
