"""WebSocket frames built and parsed by hand, written from RFC 6455 independently of
``dashstream.protocol``: the unit tests of the frame reader and the tests against a real
server send and check the same bytes."""

from __future__ import annotations

import os
import struct

MAX_MESSAGE_SIZE = 65536  # the default of --max-message-size
# RFC 6455 7.4 and the IANA registry, written out independently of the implementation.
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                     3000, 3999, 4000, 4999]
INVALID_CLOSE_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]


def is_valid_close_code(code: int) -> bool:
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True,
          length: int | None = None, mask: bytes | None = None) -> bytes:
    """One client frame; ``length`` overrides the declared payload length."""
    declared = len(payload) if length is None else length
    header = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if declared < 126:
        header += bytes([mask_bit | declared])
    elif declared < 1 << 16:
        header += bytes([mask_bit | 126]) + struct.pack("!H", declared)
    else:
        header += bytes([mask_bit | 127]) + struct.pack("!Q", declared)
    if not masked:
        return header + payload
    mask = os.urandom(4) if mask is None else mask
    return header + mask + _masked(payload, mask)


def _masked(data: bytes, mask: bytes) -> bytes:
    # reference_mask's result, computed as one integer XOR: building large and many-fragment
    # messages byte by byte would cost the unit tests seconds.
    key = (mask * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(len(data), "little")


def reference_mask(data: bytes, mask: bytes, offset: int = 0) -> bytes:
    """RFC 6455 5.3, literally: byte i XOR mask[i mod 4]."""
    return bytes(byte ^ mask[(offset + i) % 4] for i, byte in enumerate(data))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def parse_frames(data: bytes) -> list[tuple[int, int, bool, bytes]]:
    """Server frames → [(fin_rsv_opcode byte, opcode, masked, payload)]; asserts they are complete."""
    frames = []
    while data:
        assert len(data) >= 2, data
        first, second = data[0], data[1]
        length, at = second & 0x7F, 2
        if length == 126:
            length, at = struct.unpack("!H", data[2:4])[0], 4
        elif length == 127:
            length, at = struct.unpack("!Q", data[2:10])[0], 10
        masked = bool(second & 0x80)
        at += 4 if masked else 0
        assert len(data) >= at + length, "truncated server frame"
        frames.append((first, first & 0xF, masked, data[at:at + length]))
        data = data[at + length:]
    return frames


def text(payload: bytes, **kw) -> bytes:
    return frame(0x1, payload, **kw)


def fragmented(opcode: int, payload: bytes, size: int) -> bytes:
    """One message as client frames of ``size`` payload bytes each: the first carries
    ``opcode``, the rest are continuations, the last has FIN."""
    pieces = [payload[at:at + size] for at in range(0, len(payload), size)] or [b""]
    return b"".join(frame(opcode if index == 0 else 0x0, piece, fin=index == len(pieces) - 1)
                    for index, piece in enumerate(pieces))
