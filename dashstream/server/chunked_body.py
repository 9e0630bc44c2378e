"""A chunked request body (RFC 9112 section 7.1) read with bounds, as ``wsgi.input``.

eventlet's ``Input`` reads each chunk-size line with an unbounded ``readline``: one 200 MB
line held 200 MB until the body deadline, and 20,000 trailer lines were read and dropped.
Here every line (chunk size with extensions, the CRLF after the data, a trailer) is at
most ``MAX_LINE`` bytes, a body has at most ``MAX_TRAILERS`` trailer lines, a chunk size is
1 to 16 hex digits and nothing else (``int(x, 16)`` would take ``-5``, ``0x10`` and
``1_0``), and chunk data must end where its size says. A broken body raises ``ChunkError``
(a ``ValueError``, which the JSON body reader answers with ``400`` and a closed connection).
"""

from __future__ import annotations

MAX_LINE = 4096
MAX_TRAILERS = 32
_HEX = frozenset(b"0123456789abcdefABCDEF")


class ChunkError(ValueError):
    """The chunked framing is broken or over a bound; the text says which."""


class ChunkedBody:
    """``read(size)`` over ``rfile`` (a buffered binary file), de-chunked."""

    def __init__(self, rfile, max_line: int = MAX_LINE, max_trailers: int = MAX_TRAILERS):
        self.rfile = rfile
        self.max_line = max_line
        self.max_trailers = max_trailers
        self._left = 0  # data bytes of the current chunk still to read
        self.done = False

    def read(self, size: int | None = -1) -> bytes:
        out = bytearray()
        while not self.done and (size is None or size < 0 or len(out) < size):
            if not self._left:
                self._next_chunk()
                continue
            want = self._left if size is None or size < 0 else min(self._left, size - len(out))
            data = self.rfile.read(want)
            if not data:
                raise ChunkError("the body ended inside a chunk")
            out += data
            self._left -= len(data)
            if not self._left and self._line() not in (b"\r\n", b"\n"):
                raise ChunkError("chunk data longer than its chunk size")
        return bytes(out)

    def _line(self) -> bytes:
        line = self.rfile.readline(self.max_line + 1)
        if len(line) > self.max_line:
            raise ChunkError(f"a chunk line over {self.max_line} bytes")
        if not line.endswith(b"\n"):  # nothing, or a line cut off by the end of the body
            raise ChunkError("the body ended before its last chunk")
        return line

    def _next_chunk(self) -> None:
        size = self._line().rstrip(b"\r\n").partition(b";")[0].strip(b" \t")
        if not 1 <= len(size) <= 16 or not _HEX.issuperset(size):
            raise ChunkError("a chunk size that is not 1 to 16 hexadecimal digits")
        self._left = int(size, 16)
        if not self._left:
            self._trailers()
            self.done = True

    def _trailers(self) -> None:
        for _ in range(self.max_trailers + 1):
            if self._line() in (b"\r\n", b"\n"):
                return
        raise ChunkError(f"more than {self.max_trailers} trailer lines")
