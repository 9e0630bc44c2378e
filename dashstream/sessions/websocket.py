"""A WebSocket client as a ``Session``: read in a hub callback, framing by ``FrameReader``.

No green thread waits on the socket: when it is readable the hub calls ``_on_readable``,
which takes what the kernel has (one ``recv``, so a flooding client gets one turn per hub
loop like everyone else), feeds it to the reader and acts on the events at once: a ping is
answered, a pong stamped for the keepalive, the peer's close answered and the connection
ended, a broken rule answered with its close code (README, "Close codes").
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Callable

from dashstream.protocol.frames import (
    CLOSE_ABNORMAL,
    CLOSE_INTERNAL,
    CLOSE_POLICY,
    OP_BINARY,
    OP_TEXT,
    PING_FRAME,
    Failure,
    FrameReader,
    Message,
    PeerClose,
    Ping,
    Pong,
    close_frame,
    frame,
    pong_frame,
    text_frame,
)
from dashstream.runtime import RECV_VIEW
from dashstream.sessions.session import _CLOSE_FRAME, CLOSED, CLOSING, OPEN, Session, SessionContext

if TYPE_CHECKING:  # pragma: no cover
    from dashstream.messages import Entry
    from dashstream.protocol.deflate import Deflater

logger = logging.getLogger("dashstream.connection")



class WebSocketSession(Session):
    __slots__ = ("reader", "deflater", "on_message", "_read_watch", "_frame_started", "_paused", "_held")

    kind = "websocket"
    expects_pong = True

    def __init__(self, sock, ctx: SessionContext, *, peer: str, path: str, control: bool = False,
                 reader: FrameReader, deflater: "Deflater | None" = None,
                 on_message: "Callable[[WebSocketSession, Message], None] | None" = None):
        super().__init__(sock, ctx, peer=peer, path=path, control=control)
        self.reader = reader
        self.deflater = deflater
        self.on_message = on_message
        self._read_watch = None
        self._frame_started: float | None = None
        self._paused = False  # flow control: our writes to it are backed up
        self._held = None  # the timer that parses on what the reader's frame budget left

    def start(self, received: bytes = b"") -> None:
        """Begin reading (``received``: bytes the HTTP server had already buffered)."""
        if self.state is CLOSED:
            return  # the 101 found the client gone: its socket is closed, nothing to watch
        self._read_watch = self.ctx.io.watch_read(self.sock.fileno(), self._on_readable)
        if self.ctx.keepalive is not None:
            self.keepalive = self.ctx.keepalive
            self.keepalive.add(self)
        if received:
            self._received(received)

    # --- frames out ---------------------------------------------------------------------------

    def send_entry(self, entry: "Entry", subscription, gap: bool = False) -> None:
        """The fan-out's call, once per subscriber per message: kept short on purpose."""
        if self.state is OPEN:
            if gap or self.deflater is not None:
                self.write(self.frame_for(entry, subscription.multi, gap), subscription, entry)
            else:
                self.write(entry.stream_frame if subscription.multi else entry.frame, subscription, entry)

    def control_bytes(self, message) -> bytes:
        return message.frame

    def frame_for(self, entry: "Entry", multi: bool, gap: bool) -> bytes:
        if self.deflater is None:
            if not gap:
                return entry.stream_frame if multi else entry.frame
            return text_frame(entry.stream_text(True) if multi else entry.gap_text())
        text = entry.stream_text(gap) if multi else (entry.gap_text() if gap else entry.text)
        return self._compressed(OP_TEXT, text.encode("utf-8"))

    def _compressed(self, opcode: int, payload: bytes) -> bytes:
        return frame(opcode, self.deflater.compress(payload), rsv1=True)

    def send_message(self, message: Message) -> None:
        """Echo: the same bytes back, as the same kind of message."""
        if self.state is not OPEN:
            return
        opcode = OP_TEXT if message.text else OP_BINARY
        self.write(self._compressed(opcode, message.data) if self.deflater is not None
                   else frame(opcode, message.data))

    def ping(self) -> None:
        if self.state is OPEN:
            self.write(PING_FRAME, count=0)

    def _send_goodbye(self, code: int, reason: str) -> None:
        if self.ctx.metrics is not None:
            self.ctx.metrics.close_sent(code)
        self.write(close_frame(code, reason), tag=_CLOSE_FRAME, count=0)

    # --- frames in ----------------------------------------------------------------------------

    def _on_readable(self, _fileno: int) -> None:
        self._guarded(self._read)

    def _guarded(self, step) -> None:
        """Run a hub callback's work: a bug in one session must not take the hub down."""
        try:
            step()
        except Exception:
            logger.exception("read failed peer=%s path=%s", self.peer, self.path, extra=self.log_fields())
            self.close_code = self.close_code or CLOSE_INTERNAL
            self._teardown()

    def _read(self) -> None:
        count = self._recv()
        if count < 0:
            return
        if not count:
            self._peer_vanished()
            return
        self._received(RECV_VIEW[:count])  # the reader copies what it keeps
        self._read_tls_pending()

    def _read_tls_pending(self) -> None:
        sock = self.sock
        if self.state is not CLOSED and self._held is None and isinstance(sock, ssl.SSLSocket) and sock.pending():
            # TLS may hold decrypted bytes that no longer show as a readable socket.
            self._read()

    def _received(self, data: bytes) -> None:
        self._handle_all(self.reader.receive(data))

    def _handle_all(self, events: list) -> None:
        for event in events:
            self._handle(event)
            if self.state is CLOSED:
                return
        if self.reader.held:
            self._hold()
        self._track_frame()

    def _hold(self) -> None:
        """The reader's frame budget ran out with frames still buffered: read nothing more
        and parse them in the hub's next pass, after the other ready sockets and the due
        timers (a stream's ticker) have had theirs. Without this, a hundred connections each
        sending 32 KB of 8-byte frames held every timer for 1.5-2.4 s (BENCHMARKS.md)."""
        self._held = self.ctx.io.call_later(0, self._parse_held)
        self._frame_started = None  # our pause, not the client's stall
        self._sync_reading()

    def _parse_held(self) -> None:
        self._held = None
        if self.state is not CLOSED:
            self._guarded(self._parse_on)

    def _parse_on(self) -> None:
        self._handle_all(self.reader.resume())
        if self._held is None and self.state is not CLOSED:
            self._sync_reading()  # all parsed: read again (unless flow control holds it)
            self._read_tls_pending()

    def _handle(self, event) -> None:
        kind = type(event)
        if kind is Pong:
            self.last_pong = self.ctx.clock()
        elif kind is Ping:
            if self.state is OPEN:  # nothing may follow our close frame
                self.write(pong_frame(event.data), count=0)
        elif kind is Message:
            if self.state is OPEN and self.on_message is not None:
                self.on_message(self, event)
        elif kind is PeerClose:
            self._peer_closed(event)
        elif kind is Failure:
            self._failed(event)

    def _peer_closed(self, event: PeerClose) -> None:
        self.peer_done = True
        if self.state is OPEN:
            # The peer starts the close: answer with its own code (RFC 6455 5.5.1), and as
            # the server close the TCP connection once our answer is out.
            self.state = CLOSING
            self.close_code = event.received
            self._closing_since = self.ctx.clock()
            self._unsubscribe()
            self._drop_pending_data()
            self._close_when_flushed = True
            if self.ctx.metrics is not None:
                self.ctx.metrics.close_sent(event.code)
            self.write(close_frame(event.code), tag=_CLOSE_FRAME, count=0, last=True)
            if self._pending is None:
                self._teardown()
            else:
                self._watch()
        else:
            self._teardown()  # the answer to our close: the handshake is complete

    def _failed(self, failure: Failure) -> None:
        logger.warning("protocol error peer=%s path=%s code=%d: %s", self.peer, self.path, failure.code,
                    failure.reason, extra=self.log_fields(code=failure.code))
        if self.state is not OPEN:
            self._teardown()
            return
        self.close(failure.code, failure.reason)
        if failure.peer_closed and self.state is CLOSING:
            self.peer_done = True
            # The peer's own close frame broke the rules: it will not send another, so
            # waiting for one would only make it wait for ours. Close once this is out.
            self._close_when_flushed = True
            if self._pending is None:
                self._teardown()

    def _peer_vanished(self) -> None:
        """EOF without a close frame (or after our close frame, before an answer)."""
        self.peer_done = True
        if self.state is OPEN:
            self.close_code = CLOSE_ABNORMAL
        self._teardown()

    # --- a frame that started must finish ----------------------------------------------------

    def _track_frame(self) -> None:
        if self.state is not OPEN or self._held is not None:
            return
        if self.reader.in_frame:
            if self._frame_started is None:
                self._frame_started = self.ctx.clock()
                self._watch()
        elif self._frame_started is not None:
            self._frame_started = None
            self._watch()

    def _needs_watch(self) -> bool:
        return super()._needs_watch() or (self.state is OPEN and self._frame_started is not None)

    def check_deadlines(self, now: float) -> None:
        if self.state is OPEN and self._frame_started is not None \
                and now - self._frame_started > self.ctx.frame_timeout:
            logger.warning("frame timeout peer=%s path=%s: a frame was not finished within %ss",
                        self.peer, self.path, self.ctx.frame_timeout, extra=self.log_fields())
            self._frame_started = None
            self.close(CLOSE_POLICY, f"frame not finished within {self.ctx.frame_timeout:g}s")
            return
        super().check_deadlines(now)

    # --- flow control -------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._paused:
            self._paused = True
            self._frame_started = None  # our pause, not the client's stall
            self._sync_reading()

    def _resume_reading(self) -> None:
        if self._paused and self.state is not CLOSED:
            self._paused = False
            self._sync_reading()
            self._track_frame()

    def _sync_reading(self) -> None:
        """Watch the socket exactly while neither flow control nor the frame budget holds it."""
        wanted = not self._paused and self._held is None
        if wanted and self._read_watch is None:
            self._read_watch = self.ctx.io.watch_read(self.sock.fileno(), self._on_readable)
        elif not wanted and self._read_watch is not None:
            self.ctx.io.unwatch(self._read_watch)
            self._read_watch = None

    def _stop_reading(self) -> None:
        self.ctx.io.unwatch_closing(self._read_watch)  # the end: the socket is closed next
        self._read_watch = None
        if self._held is not None:
            self._held.cancel()
            self._held = None
