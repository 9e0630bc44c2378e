"""Server-Sent Events: the second transport, for curl, scripts and ``EventSource``.

``GET /sse/NAME`` answers ``text/event-stream`` and then one record per message::

    id: EPOCH:SEQ
    data: {"variable": 42, "seq": 7, "ts": ..., "epoch": "..."}

(the same JSON as a WebSocket message, serialized once for every SSE subscriber). A client
that reconnects sends the last id it saw as ``Last-Event-ID`` (EventSource does this by
itself), or ``?last_event_id=EPOCH:SEQ`` (a page cannot set headers on its first request),
and gets exactly what it missed, with the WebSocket resume's rules. Control messages, for
clients that asked with ``control=1``, are ``event: control`` records. A comment line every
``--sse-heartbeat`` seconds (15) keeps proxies from closing a quiet stream; ``retry:`` tells EventSource how soon to
come back; ``X-Accel-Buffering: no`` and the no-cache headers keep nginx and caches from
holding records back.

The response has no length and the connection closes when the stream ends (shutdown, a
slow client): an ``SSESession`` is a ``Session`` with the same non-blocking writes,
drop-oldest and slow-client policy as a WebSocket (and the same ``--send-buffer`` clamp,
set by the app); it reads only to notice the client leaving, and ends a client that sends
more than ``INPUT_BUDGET`` bytes after its request (nothing would ever read them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dashstream.messages import sse_record
from dashstream.protocol.frames import CLOSE_ABNORMAL
from dashstream.sessions.session import Session, SessionContext

if TYPE_CHECKING:  # pragma: no cover
    from dashstream.messages import Entry

logger = logging.getLogger("dashstream.connection")

RETRY_MS = 2000  # EventSource's pause before reconnecting after the stream ends
HEARTBEAT = b": keepalive\n\n"


# Bytes an SSE client may send after its request before it is closed: EventSource sends
# nothing, and what comes is read only to be thrown away (nginx closes such a client too).
INPUT_BUDGET = 4096


def response_headers(origin_allowed: str | None = None) -> list[tuple[str, str]]:
    """The stream's headers (also the answer to ``HEAD /sse/NAME``)."""
    headers = [("Content-Type", "text/event-stream; charset=utf-8"), ("Cache-Control", "no-cache, no-store"),
               ("X-Accel-Buffering", "no"), ("Connection", "close")]
    if origin_allowed:
        headers.append(("Access-Control-Allow-Origin", origin_allowed))
    return headers


def response_head(origin_allowed: str | None = None) -> bytes:
    lines = [b"HTTP/1.1 200 OK"] + [f"{name}: {value}".encode("latin-1")
                                    for name, value in response_headers(origin_allowed)]
    return b"\r\n".join(lines) + b"\r\n\r\n" + f"retry: {RETRY_MS}\n\n".encode()


class SSESession(Session):
    __slots__ = ("_read_watch", "_received")

    kind = "sse"
    expects_pong = False  # the heartbeat is a comment: nothing comes back

    def __init__(self, sock, ctx: SessionContext, *, peer: str, path: str, control: bool = False):
        super().__init__(sock, ctx, peer=peer, path=path, control=control)
        self._read_watch = None
        self._received = 0  # bytes the client sent after its request

    def start(self) -> None:
        if self.state == "closed":
            return  # the first write found the client gone (a reset at once): nothing to watch
        self._read_watch = self.ctx.io.watch_read(self.sock.fileno(), self._on_readable)
        if self.ctx.heartbeat is not None:
            self.keepalive = self.ctx.heartbeat
            self.keepalive.add(self)

    def frame_for(self, entry: "Entry", multi: bool, gap: bool) -> bytes:
        if not gap:
            return entry.sse
        text = entry.stream_text(True) if multi else entry.gap_text()
        return sse_record(text, f"{entry.epoch}:{entry.seq}")

    def control_bytes(self, message) -> bytes:
        return message.sse

    def ping(self) -> None:
        if self.state == "open":
            self.write(HEARTBEAT, count=0)

    def _on_readable(self, _fileno: int) -> None:
        """An SSE client sends nothing after its request: bytes are thrown away, at most
        ``INPUT_BUDGET`` of them (then the stream ends); EOF ends it."""
        count = self._recv()
        if not count:
            self.peer_done = True
            if self.close_code is None:
                self.close_code = CLOSE_ABNORMAL  # the log's "the client went away"
            self._teardown()
        elif count > 0:
            self._received += count
            if self._received > INPUT_BUDGET and self.state == "open":
                logger.info("closing peer=%s path=%s: %d bytes sent after the request (at most %d)",
                         self.peer, self.path, self._received, INPUT_BUDGET)
                self.close(1008, f"client sent more than {INPUT_BUDGET} bytes after its request")
                if self.state != "closed":
                    self._teardown()  # nothing is read any more: do not wait for pending bytes

    def _stop_reading(self) -> None:
        self.ctx.io.unwatch_closing(self._read_watch)  # the end: the socket is closed next
        self._read_watch = None
