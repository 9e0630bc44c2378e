"""permessage-deflate (RFC 7692): negotiating the extension and compressing with zlib.

Off unless the server runs with ``--compression``: a compressed frame depends on one
connection's compression state, so it cannot be shared between subscribers (every message
is compressed once per subscriber), and each connection holds zlib state (~300 KiB with the
default window). ``negotiate`` never raises: an offer it cannot honour (an unknown or
repeated parameter, a window size that is not 8-15, a value where none belongs) is declined,
and the handshake goes on without compression, as RFC 7692 section 5 allows.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

from dashstream.protocol.frames import CLOSE_TOO_BIG, Violation

logger = logging.getLogger("dashstream.http")

EXTENSION = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: removed from the end of every compressed message


@dataclass(frozen=True)
class DeflateParams:
    """What was agreed: window sizes and whether each side resets its context per message."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    def response(self) -> str:
        """The ``Sec-WebSocket-Extensions`` value that accepts the offer."""
        parts = [EXTENSION]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.server_max_window_bits != 15:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.client_max_window_bits != 15:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts)


def _window_bits(value: str | None, *, required: bool) -> int:
    if value is None:
        if required:
            raise ValueError("needs a value")
        return 15
    value = value.strip('"')
    # RFC 7692 7.1.2.1: 1*DIGIT, 8 to 15, no leading zero. zlib cannot compress with an
    # 8-bit raw window, so 8 is read as 9 (a 9-bit window is what zlib uses for 8 anyway).
    if not value.isdigit() or value.startswith("0") or not 8 <= int(value) <= 15:
        raise ValueError(f"window bits must be 8-15, got {value!r}")
    return max(9, int(value))


def _parse_offer(params: list[tuple[str, str | None]]) -> DeflateParams:
    seen: dict[str, str | None] = {}
    for name, value in params:
        if name in seen:
            raise ValueError(f"{name} given twice")
        seen[name] = value
    known = {"server_no_context_takeover", "client_no_context_takeover",
             "server_max_window_bits", "client_max_window_bits"}
    unknown = set(seen) - known
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]}")
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in seen and seen[flag] is not None:
            raise ValueError(f"{flag} takes no value")
    server_bits = _window_bits(seen["server_max_window_bits"], required=True) \
        if "server_max_window_bits" in seen else 15
    # A client offering client_max_window_bits (with or without a value) lets us choose;
    # we keep its value or the full window. Without the offer the client uses 15.
    client_bits = _window_bits(seen["client_max_window_bits"], required=False) \
        if "client_max_window_bits" in seen else 15
    return DeflateParams("server_no_context_takeover" in seen, "client_no_context_takeover" in seen,
                         server_bits, client_bits)


def parse_extensions(header: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """``Sec-WebSocket-Extensions`` -> [(name, [(param, value or None)])] (RFC 6455 9.1)."""
    offers = []
    for item in header.split(","):
        name, *raw_params = [part.strip() for part in item.split(";")]
        if not name:
            continue
        params = []
        for raw in raw_params:
            key, equals, value = raw.partition("=")
            params.append((key.strip().lower(), value.strip() if equals else None))
        offers.append((name.lower(), params))
    return offers


def negotiate(header: str | None) -> DeflateParams | None:
    """The first acceptable permessage-deflate offer, or None (no compression)."""
    if not header:
        return None
    for name, params in parse_extensions(header):
        if name != EXTENSION:
            continue
        try:
            return _parse_offer(params)
        except ValueError as error:
            logger.debug("permessage-deflate offer declined: %s", error)
            continue  # a later, valid offer may still be taken
    return None


class Inflater:
    """Decompresses the client's messages, never producing more than the caller allows."""

    __slots__ = ("_bits", "_reset", "_zlib")

    def __init__(self, params: DeflateParams):
        self._bits = params.client_max_window_bits
        self._reset = params.client_no_context_takeover
        self._zlib = zlib.decompressobj(wbits=-self._bits)

    def decompress(self, data: bytes, limit: int) -> bytes:
        """Up to ``limit`` + 1 bytes (one more than allowed tells the caller it is too big)."""
        # max_length 0 would mean "no limit" to zlib, hence the + 1 on a limit of 0 too.
        out = self._zlib.decompress(data, max(limit, 0) + 1)
        if self._zlib.unconsumed_tail:
            raise Violation(CLOSE_TOO_BIG, "message too big after decompression")
        return out

    def finish(self, limit: int) -> bytes:
        out = self.decompress(_TAIL, limit)
        if self._reset:
            self._zlib = zlib.decompressobj(wbits=-self._bits)
        return out


class Deflater:
    """Compresses this connection's messages (one compressor per connection)."""

    __slots__ = ("_bits", "_reset", "_zlib")

    def __init__(self, params: DeflateParams):
        self._bits = params.server_max_window_bits
        self._reset = params.server_no_context_takeover
        self._zlib = zlib.compressobj(wbits=-self._bits)

    def compress(self, data: bytes) -> bytes:
        out = self._zlib.compress(data) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
        if self._reset:
            self._zlib = zlib.compressobj(wbits=-self._bits)
        return out[:-4] if out.endswith(_TAIL) else out
