"""One client, whatever its transport: non-blocking writes, the slow-subscriber policy, close.

A ``Session`` owns a non-blocking socket (plain or TLS) taken over from the HTTP server after
the upgrade; no green thread is parked for it. The fan-out writes to it directly:

* **fast path**: nothing is pending, so ``write`` calls ``send()`` once; a socket that takes
  the whole frame costs nothing more;
* **slow path**: a socket that could not take a frame gets a queue of pending frames and a
  writability watch, and is watched by the server-wide ``Watchdog`` until it catches up.
  A partly sent frame always finishes before the next frame's first byte, so frames never
  interleave. A TLS write that wants to be retried is retried with the very same buffer
  (OpenSSL's rule). Past ``queue_size`` pending data messages the oldest are dropped (a
  dashboard wants the latest value) and the next one sent carries ``"gap": true``.

How far behind a subscriber is decides when it is closed, not whether it drained once: a
subscriber whose queue has not emptied for ``slow_timeout`` seconds is closed with 1008
``subscriber too slow`` (counted), before the ``write_timeout`` (no progress at all for that
long: the socket is dropped, the client sees 1006) in the common case.

How far behind is also judged by the messages' ``ts``, wherever the bytes wait: a reader a
little slower than its stream keeps taking bytes, so our queue empties now and then, while
the kernel's send buffer fills with ever older messages (9.2 s behind after 60 s, never
closed). So a plain socket's session keeps a few marks ``[offset, time]`` of the data bytes
it handed to the kernel (one per ``lag_interval``): the time a message began to wait for
this reader, its ``ts`` if it waited in our queue (or when the session fell behind, if later:
a value old by nature, a last value or a backplane catching up, is no lag of the reader's),
else when it was handed. The watchdog's lag sweep asks the kernel how much it still holds
(``SIOCOUTQ``: not yet taken by the peer's TCP stack); the oldest message still there
waiting for more than ``slow_timeout`` is the slow policy (1008), for WebSocket and SSE
alike. What the client's own receive buffer holds is beyond the server's sight (bounded by
that buffer). TLS sessions (whose kernel bytes
are records, not our bytes) are judged by the queue as before.

Every deadline (write, slow, close handshake, a frame left unfinished) is judged by the one
``Watchdog`` clock from stamps kept here, never by a timer per send.

``WebSocketSession`` reads in a hub callback, feeding ``protocol.FrameReader``;
``sse.SSESession`` is the second transport.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import logging
import socket
import ssl
import struct
import termios
import time
from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Protocol

from dashstream import runtime
from dashstream.messages import ControlMessage
from dashstream.protocol.frames import CLOSE_ABNORMAL, CLOSE_POLICY

if TYPE_CHECKING:  # pragma: no cover
    from dashstream.messages import Entry

logger = logging.getLogger("dashstream.connection")

OPEN, CLOSING, CLOSED = "open", "closing", "closed"
MSG_MORE = getattr(socket, "MSG_MORE", 0)  # Linux: hold the bytes for what follows (here: the FIN)

# "The socket cannot take more now": plain sockets raise BlockingIOError, TLS sockets ask
# to be called again when the socket is writable (or, renegotiating, readable).
WOULD_BLOCK = (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError)
# Errors that only mean "the peer went away"; anything else is logged as a bug.
PEER_GONE_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ESHUTDOWN, errno.EBADF, errno.ENOTCONN,
                    errno.ETIMEDOUT}


class Subscribed(Protocol):
    """What a session needs of one of its subscriptions (``streams.fanout.Subscription``
    implements it and keeps the resume bookkeeping; the session only calls back)."""

    multi: bool  # the connection carries several streams: frames name the stream

    @property
    def stream_name(self) -> str:
        """The stream's name, for the session's log lines."""

    def missed(self) -> None:
        """A message of this stream was dropped with none queued to carry the gap signal."""

    def count_dropped(self) -> None: ...

    def count_slow_closed(self) -> None: ...

    def cancel(self) -> None:
        """Leave the stream (the session ends)."""


def peer_gone(error: BaseException) -> bool:
    return isinstance(error, (ConnectionError, TimeoutError, ssl.SSLEOFError, ssl.SSLZeroReturnError)) \
        or getattr(error, "errno", None) in PEER_GONE_ERRNOS


class SessionContext:
    """What every session shares: limits, the watchdog, the keepalive, the clock and the
    server's bookkeeping. One object for all, so a session costs a pointer for them."""

    def __init__(self, *, queue_size: int = 100, slow_timeout: float = 5.0, write_timeout: float = 10.0,
                 close_timeout: float = 1.0, frame_timeout: float = 10.0,
                 max_pending_bytes: int = 1 << 20, watchdog=None, keepalive=None, heartbeat=None,
                 clock: Callable[[], float] = runtime.monotonic, wall_clock: Callable[[], float] = time.time,
                 io=runtime,
                 on_closed: Callable[["Session"], None] | None = None, metrics=None):
        self.queue_size = queue_size
        self.slow_timeout = slow_timeout
        self.write_timeout = write_timeout
        self.close_timeout = close_timeout
        self.frame_timeout = frame_timeout
        # Pending bytes above which a session stops reading (an echo or ping flood from a
        # client that does not read our answers cannot make us buffer without bound).
        self.max_pending_bytes = max_pending_bytes
        self.watchdog = watchdog
        self.keepalive = keepalive  # WebSocket pings
        self.heartbeat = heartbeat  # SSE comment lines
        self.clock = clock
        self.wall_clock = wall_clock  # the clock of an entry's ts
        self.io = io  # watch_read / watch_write / unwatch / unwatch_closing: the hub's, or a test's fake
        self.on_closed = on_closed
        self.metrics = metrics


class _NoTicks:
    """The watchdog's clock for a session without one (tests): never ticks, so a session
    marks once (and _mark, finding no watchdog, keeps nothing)."""

    ticks = 0
    wall = 0.0


_NO_TICKS = _NoTicks()


class Session:
    """The transport-independent half: the write engine, subscriptions, close and teardown."""

    __slots__ = ("sock", "ctx", "peer", "path", "control", "state", "opened", "sent", "dropped",
                 "close_code", "close_reason", "subscriptions", "on_end", "keepalive", "next_ping", "ping_sent_at",
                 "last_pong", "_pending", "_pending_data", "_pending_bytes", "_head_sent", "_behind_since",
                 "_progress_at", "_write_watch", "_closing_since", "_close_sent_at", "_close_when_flushed",
                 "_watched", "_dropping_since", "_last_drop", "peer_done", "_stream_names", "_handed", "_marks",
                 "_mark_tick", "_ticks",
                 "__weakref__")

    kind = "session"
    expects_pong = False

    def __init__(self, sock, ctx: SessionContext, *, peer: str, path: str, control: bool = False):
        self.sock = sock
        self.ctx = ctx
        self.peer = peer
        self.path = path
        self.control = control  # the client asked for control messages
        self.state = OPEN
        self.opened = ctx.clock()
        self.sent = 0
        self.dropped = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self.subscriptions: list["Subscribed"] = []
        self._stream_names: tuple[str, ...] = ()  # kept past the unsubscribe, for the close line
        self.on_end: list[Callable[[], None]] = []  # e.g. stop a private producer
        # Keepalive (pings or heartbeats) and its stamps (see keepalive.py).
        self.keepalive = None
        self.next_ping: float | None = None
        self.ping_sent_at: float | None = None
        self.last_pong: float | None = None
        # The slow path; all None/0 while the socket keeps up.
        self._pending: deque | None = None
        self._pending_data = 0  # pending data messages (the droppable ones)
        self._pending_bytes = 0
        self._head_sent = 0  # bytes of the first pending frame already sent
        self._behind_since: float | None = None
        self._progress_at = 0.0
        self._write_watch = None
        self._closing_since: float | None = None
        self._close_sent_at: float | None = None
        self._close_when_flushed = False
        self._watched = False
        # Drops that keep coming (each within slow_timeout of the last) since this time.
        self._dropping_since: float | None = None
        self._last_drop = 0.0
        self.peer_done = False  # the peer's close frame or EOF was read: nothing more will come
        # The lag by ts (module docstring): bytes handed to the kernel so far (None: not
        # judged that way, a TLS socket), and the marks (offset, first, newest: _mark) of the
        # data handed since the last sweep found everything taken (None or empty: nothing to judge).
        self._handed: int | None = None if isinstance(sock, ssl.SSLSocket) else 0
        self._marks: deque | None = None
        self._mark_tick = -1  # the watchdog tick of the last mark (write: one per tick)
        # The watchdog itself (its ticks and wall), kept here: write() reads it per delivery.
        self._ticks = ctx.watchdog if ctx.watchdog is not None else _NO_TICKS

    # --- what the fan-out calls -------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.state == CLOSED

    def send_entry(self, entry: "Entry", subscription: "Subscribed", gap: bool = False) -> None:
        if self.state is OPEN:
            self.write(self.frame_for(entry, subscription.multi, gap), subscription, entry)

    def send_backlog(self, entries: list, subscription: "Subscribed", gap: bool = False) -> None:
        """A resume's backlog as one write, the gap signal (``gap``) on its first message; it
        is never dropped (it is what the client asked for), so the queue limit cannot silently
        lose part of it."""
        if self.state is not OPEN or not entries:
            return
        frames = [self.frame_for(entry, subscription.multi, gap and index == 0)
                  for index, entry in enumerate(entries)]
        self.write(b"".join(frames), count=len(frames))

    def send_control(self, message: "ControlMessage") -> None:
        """A control message (reload, source state): for clients that asked; never dropped."""
        if self.state is OPEN and self.control:
            self.write(self.control_bytes(message))

    def control_bytes(self, message: "ControlMessage") -> bytes:
        raise NotImplementedError

    def frame_for(self, entry: "Entry", multi: bool, gap: bool) -> bytes:
        raise NotImplementedError

    # --- the write engine ---------------------------------------------------------------------
    # A pending item is [bytes, subscription or None, entry or a tag]. Items with a
    # subscription are data messages: droppable while behind. Others (control frames, pongs,
    # a resume's backlog, the close frame) are always sent.

    def write(self, data: bytes, subscription: "Subscribed | None" = None, tag: Any = None,
              count: int = 1, last: bool = False) -> None:
        """Send complete frames now, or queue them behind what is pending. ``last``: the
        socket is closed right after if this goes out whole (a plain socket's kernel may
        then send it with the FIN, in one segment: ``MSG_MORE``)."""
        if self.state is CLOSED:
            return
        self.sent += count
        if self._pending is not None:
            self._queue(data, subscription, tag)
            return
        try:
            sent = self.sock.send(data, MSG_MORE) if last and self._handed is not None else self.sock.send(data)
        except WOULD_BLOCK:
            sent = 0
        except OSError as error:
            self._lost(error)
            return
        handed = self._handed
        if handed is not None:
            self._handed = handed + sent
            # Handed now: from here on, any wait is the reader's. One mark per watchdog
            # tick, at the tick's wall time (Watchdog.wall): no clock read per delivery, and
            # the fewest attribute reads (this runs once per subscriber per message).
            ticks = self._ticks
            if ticks.ticks != self._mark_tick and subscription is not None and sent:
                self._mark_tick = ticks.ticks
                self._mark(ticks.wall, handed)
        if sent == len(data):
            if tag is _CLOSE_FRAME:
                self._close_sent_at = self.ctx.clock()
            return
        self._begin_pending([data, subscription, tag], sent)

    def _mark(self, ts: float, offset: int) -> None:
        """A data message's first bytes go to the kernel at ``offset``, waiting since
        ``ts`` (wall clock): a mark (offset, first, newest) per lag_interval.

        The marks are kept flat, three numbers a mark, in one deque that outlives the sweeps
        that empty it: a busy subscriber makes a mark a second, and as a list each was one
        more object for the garbage collector to move and traverse before it was trimmed."""
        marks = self._marks
        if marks:
            if ts - marks[-2] < self.ctx.watchdog.lag_interval:
                marks[-1] = ts
            else:
                marks.extend((offset, ts, ts))
            return
        watchdog = self.ctx.watchdog
        if watchdog is not None:  # nothing to judge so far: the sweep takes this session (again)
            if marks is None:
                self._marks = marks = deque()
            marks.extend((offset, ts, ts))
            watchdog.track_lag(self)

    def check_lag(self, now: float) -> bool:
        """The watchdog's lag sweep: close (1008) a subscriber whose oldest message still in
        the kernel's send buffer is more than slow_timeout old. Returns whether to stay on
        the sweep (something handed may still be there)."""
        marks = self._marks
        if self.state is not OPEN:
            self._marks = None
            return False
        if not marks:
            return False
        # The oldest mark's newest time is the most this subscriber can be behind: while that
        # is within slow_timeout, no answer of the kernel's could close it, so it is not
        # asked. (Asked every sweep, the ioctl was half a system call per message of a
        # private walk at 2 msg/s; now it is about one per slow_timeout per busy subscriber.
        # The marks it would have trimmed wait for the next ioctl: one per lag_interval.)
        if self.ctx.wall_clock() - marks[2] <= self.ctx.slow_timeout:
            return True
        try:
            queued = struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        except (OSError, ValueError):  # closed under us, or a socket the kernel cannot say this of
            self._marks = None
            return False
        taken = self._handed - queued
        if taken >= self._handed and self._pending is None:
            marks.clear()  # all taken: the next data message starts anew
            return False
        while len(marks) > 3 and marks[3] <= taken:  # the next mark's offset: the oldest is read
            marks.popleft()
            marks.popleft()
            marks.popleft()
        # Marks are wall-clock times (as ts), ``now`` the watchdog's monotonic clock; the
        # oldest group's newest time, so the lag is never overstated.
        behind = self.ctx.wall_clock() - marks[2]
        if behind > self.ctx.slow_timeout:
            self._slow(behind)
            return False
        return True

    def _begin_pending(self, item: list, sent: int) -> None:
        now = self.ctx.clock()
        self._pending = deque((item,))
        self._pending_data = 1 if item[1] is not None else 0
        self._pending_bytes = len(item[0]) - sent
        self._head_sent = sent
        self._behind_since = now
        self._progress_at = now
        self._write_watch = self.ctx.io.watch_write(self.sock.fileno(), self._on_writable)
        self._watch()

    def _queue(self, data: bytes, subscription, tag) -> None:
        self._pending.append([data, subscription, tag])
        self._pending_bytes += len(data)
        if subscription is not None:
            self._pending_data += 1
            if self._pending_data > self.ctx.queue_size:
                self._drop_oldest()
            if self.state is OPEN and self._too_slow(self.ctx.clock()):
                self._slow()
                return
        self._pause_if_flooded()

    def _drop_oldest(self) -> None:
        pending = self._pending
        # Never the first frame: it may be partly sent, or (TLS) promised to OpenSSL.
        for index in range(1, len(pending)):
            data, subscription, _ = pending[index]
            if subscription is None:
                continue
            del pending[index]
            self._pending_data -= 1
            self._pending_bytes -= len(data)
            self.dropped += 1
            subscription.count_dropped()
            if self.ctx.metrics is not None:
                self.ctx.metrics.dropped()
            self._note_drop()
            # The next queued message of that stream tells the client it missed one.
            for later in itertools.islice(pending, index, None):  # never the started first frame
                if later[1] is subscription and later[2] is not None:
                    replaced = self.frame_for(later[2], subscription.multi, True)
                    self._pending_bytes += len(replaced) - len(later[0])
                    later[0] = replaced
                    break
            else:
                subscription.missed()  # nothing queued: the next live one carries it
            return

    def _note_drop(self) -> None:
        """A screen that catches up in bursts but drops messages in every burst is as far
        behind as one that never catches up: drops that keep coming for slow_timeout count
        as slow too."""
        now = self.ctx.clock()
        if self._dropping_since is None or now - self._last_drop > self.ctx.slow_timeout:
            self._dropping_since = now
        self._last_drop = now

    def _on_writable(self, _fileno: int) -> None:
        try:
            self._flush()
        except Exception:  # a bug in one session must not take the hub down
            logger.exception("write failed peer=%s path=%s", self.peer, self.path, extra=self.log_fields())
            self._teardown()

    def _flush(self) -> None:
        pending = self._pending
        sock = self.sock
        while pending:
            item = pending[0]
            data = item[0]
            offset = self._head_sent
            chunk = data if not offset else memoryview(data)[offset:]
            try:
                sent = sock.send(chunk)
            except WOULD_BLOCK:
                return
            except OSError as error:
                self._lost(error)
                return
            now = self.ctx.clock()
            self._progress_at = now
            self._pending_bytes -= sent
            if self._handed is not None:
                if not offset and item[1] is not None and sent:
                    # Waiting since its ts, or since this session fell behind if it came later
                    # (a value old by nature, such as a backplane catching up, is no lag of ours).
                    wall = self.ctx.wall_clock()
                    self._mark(max(item[2].ts, wall - (now - self._behind_since)), self._handed)
                self._handed += sent
            if sent < len(chunk):
                self._head_sent = offset + sent
                return
            pending.popleft()
            self._head_sent = 0
            if item[1] is not None:
                self._pending_data -= 1
            if item[2] is _CLOSE_FRAME:
                self._close_sent_at = now
        self._end_pending()

    def _end_pending(self) -> None:
        self.ctx.io.unwatch(self._write_watch)
        self._write_watch = None
        self._pending = None
        self._pending_data = self._pending_bytes = self._head_sent = 0
        self._behind_since = None
        self._resume_reading()
        if self._close_when_flushed:
            self._teardown()
            return
        self._watch()

    def _pause_if_flooded(self) -> None:
        if self._pending_bytes > self.ctx.max_pending_bytes:
            self._pause_reading()

    def _pause_reading(self) -> None:
        """Transports that read override this (stop reading until the backlog drains)."""

    def _resume_reading(self) -> None:
        pass

    # --- deadlines (called by the Watchdog) ------------------------------------------------

    def _watch(self) -> None:
        """Be on the watchdog's list exactly while some deadline applies."""
        wanted = self._needs_watch()
        if wanted != self._watched and self.ctx.watchdog is not None:
            if wanted:
                self.ctx.watchdog.watch(self)
            else:
                self.ctx.watchdog.unwatch(self)
            self._watched = wanted

    def _needs_watch(self) -> bool:
        return self.state is not CLOSED and (self._pending is not None or self.state is CLOSING)

    def check_deadlines(self, now: float) -> None:
        ctx = self.ctx
        if self.state is CLOSING:
            started = self._close_sent_at or self._closing_since
            if now - started > ctx.close_timeout:
                self._teardown()  # no close frame from the peer in time (or ours never left)
                return
        if self._pending is not None:
            if now - self._progress_at > ctx.write_timeout:
                self._write_timed_out()
                return
            if self.state is OPEN and self._too_slow(now):
                self._slow()

    def _too_slow(self, now: float) -> bool:
        """Behind (something pending) without a break for slow_timeout, or dropping
        messages again and again for that long."""
        limit = self.ctx.slow_timeout
        if self._behind_since is not None and now - self._behind_since > limit:
            return True
        return self._dropping_since is not None and now - self._last_drop <= limit \
            and now - self._dropping_since > limit

    def _write_timed_out(self) -> None:
        logger.warning("write timeout peer=%s path=%s: nothing could be written for %ss; connection dropped",
                    self.peer, self.path, self.ctx.write_timeout, extra=self.log_fields())
        if self.ctx.metrics is not None:
            self.ctx.metrics.write_timeout()
        self.close_code, self.close_reason = CLOSE_ABNORMAL, "write timeout"
        self._teardown()

    def _slow(self, behind: float | None = None) -> None:
        """``behind``: judged by ts (check_lag); else since the queue or the drops began."""
        if behind is None:
            started = min(filter(None, (self._behind_since, self._dropping_since)))
            behind = self.ctx.clock() - started
            how = "behind for"
        else:
            how = "oldest unread message"
        logger.warning("slow subscriber peer=%s path=%s: %s %.1fs, %d message(s) dropped; closing 1008",
                    self.peer, self.path, how, behind, self.dropped,
                    extra=self.log_fields(behind_s=round(behind, 3), dropped=self.dropped, code=CLOSE_POLICY))
        for subscription in self.subscriptions:
            subscription.count_slow_closed()
        if self.ctx.metrics is not None:
            self.ctx.metrics.slow_closed()
        self.close(CLOSE_POLICY, "subscriber too slow")

    # --- closing -----------------------------------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Start closing from our side: stop data, send the transport's goodbye, and end the
        connection when the peer answers, when it is flushed, or at the close deadline."""
        if self.state is not OPEN:
            return
        self.state = CLOSING
        self.close_code, self.close_reason = code, reason
        self._closing_since = self.ctx.clock()
        self._unsubscribe()
        self._drop_pending_data()
        self._send_goodbye(code, reason)
        self._watch()

    def _send_goodbye(self, code: int, reason: str) -> None:
        """The transport's last words (a WebSocket close frame); SSE has none: it ends."""
        self._close_when_flushed = True
        if self._pending is None:
            self._teardown()

    def _drop_pending_data(self) -> None:
        """Data messages not yet started are pointless once we close: only the first frame
        (maybe partly sent) and control frames stay."""
        pending = self._pending
        if not pending:
            return
        kept = deque([pending[0]])
        for item in list(pending)[1:]:
            if item[1] is None:
                kept.append(item)
            else:
                self._pending_bytes -= len(item[0])
        for item in kept:
            item[1] = None  # the first frame must finish; nothing is droppable any more
        self._pending = kept
        self._pending_data = 0

    def log_fields(self, **more) -> dict:
        """This connection's log fields (``extra=``): JSON keys with ``--log-format json``,
        while the text format keeps saying them in the message. ``stream`` is the stream's
        name, or the names comma-separated for a connection that carries several."""
        names = tuple(subscription.stream_name for subscription in self.subscriptions) or self._stream_names
        fields = {"peer": self.peer, "path": self.path}
        if names:
            fields["stream"] = ",".join(names)
        fields.update(more)
        return fields

    def _unsubscribe(self) -> None:
        self._stream_names = self._stream_names or tuple(s.stream_name for s in self.subscriptions)
        for subscription in self.subscriptions:
            subscription.cancel()
        self.subscriptions = []
        for stop in self.on_end:
            stop()
        self.on_end = []

    def _lost(self, error: BaseException) -> None:
        """The socket failed under us: the peer is gone (or a real error, logged)."""
        if not peer_gone(error):
            logger.error("socket error peer=%s path=%s: %r", self.peer, self.path, error, extra=self.log_fields())
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        self._teardown()

    def _teardown(self) -> None:
        """The end, whatever the cause; runs once."""
        if self.state is CLOSED:
            return
        if self.close_code is None:
            self.close_code = CLOSE_ABNORMAL
        self._unsubscribe()
        self.state = CLOSED
        self._stop_reading()
        self.ctx.io.unwatch_closing(self._write_watch)  # the socket is closed below
        self._write_watch = None
        if self._watched and self.ctx.watchdog is not None:
            self.ctx.watchdog.unwatch(self)
            self._watched = False
        if self.keepalive is not None:
            self.keepalive.discard(self)
            self.keepalive = None
        self._pending = None
        _close_socket(self.sock, drain=not self.peer_done)
        if self.ctx.on_closed is not None:
            self.ctx.on_closed(self)

    def _stop_reading(self) -> None:
        pass

    def _recv(self) -> int:
        """Read what the kernel has into the shared buffer: the byte count, 0 at EOF, or -1
        when there is nothing now or the socket failed (then the session has ended)."""
        try:
            return self.sock.recv_into(runtime.RECV_BUFFER)
        except WOULD_BLOCK:
            return -1
        except OSError as error:
            self._lost(error)
            return -1

    def abort(self) -> None:
        """Drop the connection now (shutdown, after the close deadline)."""
        self._teardown()

    # --- keepalive ---------------------------------------------------------------------------

    def ping(self) -> None:
        """Send a keepalive ping (or, for SSE, a heartbeat comment); frames never split."""


_CLOSE_FRAME = "close-frame"  # the tag of our close frame among pending items


def _close_socket(sock, drain: bool) -> None:
    """Close without a reset. ``drain``: the peer may have sent bytes we never read, and
    unread bytes make the kernel answer the close with RST, which can destroy our last frames
    before the client reads them; so read (and drop) what is there first. A peer whose close
    frame or EOF we saw has nothing left unread. Whatever the kernel still holds for the peer
    is delivered after we let go (close sends FIN after it, no shutdown needed)."""
    if drain:
        try:
            for _ in range(4):
                if not sock.recv_into(runtime.RECV_BUFFER):
                    break
        except (OSError, ValueError):
            pass
    try:
        sock.close()
    except OSError:
        pass


def describe_peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return f"[{host}]:{address[1]}" if ":" in str(host) else f"{host}:{address[1]}"
    return str(address)
