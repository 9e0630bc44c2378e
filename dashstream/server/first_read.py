"""A connection's first bytes, read before the HTTP reader exists, and the reader and writer
made only when something needs them.

The HTTP protocol (``serve.py``) reads what a new connection has already sent in one
``recv`` (a WebSocket handshake nearly always comes in one segment). When that is a whole
upgrade request it is answered from those bytes, and the socket goes to its session: eventlet's
buffered reader and writer (the writer with a 16 KiB buffer) would have been made, and
closed, for nothing. Any other request is read as before, by a reader that gives those bytes
back first (``Replay``), so the HTTP rules, limits and deadlines see exactly what they saw
before.
"""

from __future__ import annotations

import io
import socket
from typing import Any, Callable


class Replay(socket.SocketIO):
    """A socket's raw reader that first returns ``taken`` (bytes already read from it), then
    raises ``error`` (the error that read met), then reads the socket."""

    def __init__(self, sock: Any, taken: bytes, error: OSError | None = None):
        super().__init__(sock, "rb")
        self._taken = memoryview(taken)
        self._error = error

    def readinto(self, buffer) -> int | None:
        taken = self._taken
        if taken:
            count = min(len(buffer), len(taken))
            buffer[:count] = taken[:count]
            self._taken = taken[count:]
            return count
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return super().readinto(buffer)


def replaying_reader(sock: Any, taken: bytes, error: OSError | None = None,
                     size: int = io.DEFAULT_BUFFER_SIZE) -> io.BufferedReader:
    """``sock.makefile("rb")`` with ``taken`` (and then ``error``) in front."""
    reader = io.BufferedReader(Replay(sock, taken, error), size)
    sock._io_refs += 1  # as makefile counts its files: the socket closes when the last one does
    return reader


class OnDemand:
    """Stands in for a file until it is first used, then makes it with ``open_file()`` and
    passes everything on. Closing or flushing one that was never made does nothing."""

    __slots__ = ("_open", "_file", "_closed")

    def __init__(self, open_file: Callable[[], Any]):
        self._open = open_file
        self._file = None
        self._closed = False

    @property
    def opened(self) -> bool:
        return self._file is not None

    @property
    def closed(self) -> bool:
        return self._file.closed if self._file is not None else self._closed

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        self._closed = True
        if self._file is not None:
            self._file.close()

    def __getattr__(self, name: str):
        if self._file is None:
            if self._closed:
                raise ValueError("I/O operation on closed file")
            self._file = self._open()
        return getattr(self._file, name)
