"""One WebSocket client: a reader beside a sender, and a clean end either way.

The reader (the WSGI handler's own green thread) sits in ``ws.wait()``. That is where
eventlet answers pings and the peer's close frame, so a client's close is answered at
once. The sender is a green thread that drains this client's subscription and writes
frames. Whichever side ends first ends the other:

* peer closes or vanishes → ``wait`` returns None or raises → the subscription is closed
  (the private producer stops with it) and the sender is killed;
* the server closes (shutdown, slow subscriber) → the subscription is closed so the
  sender stops after its current frame, our close frame goes out, and the reader waits
  up to ``close_timeout`` for the peer's close frame before the socket is dropped;
* a send blocked longer than ``write_timeout`` (the peer stopped reading) drops the socket
  (``DashWebSocket._send``), which wakes the reader, and the same teardown follows;
* a peer that stops answering pings is closed by the server-wide ``Keepalive``.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import Callable

import eventlet
import eventlet.event
import eventlet.greenthread

from dashstream.hub import Envelope, Subscription
from dashstream.websocket import CLOSE_INTERNAL, PING_FRAME, DashWebSocket, text_frame

log = logging.getLogger("dashstream.connection")

# Errors that only mean "the peer went away"; anything else is a bug worth a traceback.
PEER_GONE = (ConnectionError, BrokenPipeError, TimeoutError)
PEER_GONE_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ESHUTDOWN, errno.EBADF, errno.ENOTCONN}


def _peer_gone(error: BaseException) -> bool:
    return isinstance(error, PEER_GONE) or getattr(error, "errno", None) in PEER_GONE_ERRNOS


class Connection:
    """A connected client and its loops. ``serve`` returns when the connection is over."""

    def __init__(self, ws: DashWebSocket, peer: str, path: str, *, close_timeout: float = 1.0,
                 write_timeout: float | None = None, keepalive: "Keepalive | None" = None,
                 on_message: Callable[["Connection", object], None] | None = None, control: bool = False):
        self.ws = ws
        self.ws.write_timeout = write_timeout
        # Whether the client asked for control messages (``control=1``): only such
        # clients may receive a message without ``variable``.
        self.control = control
        self.peer = peer
        self.path = path
        self.close_timeout = close_timeout
        self.sent = 0
        self.close_code: int | None = None
        self.close_reason = ""
        self._keepalive = keepalive
        self._on_message = on_message
        self._subscription: Subscription | None = None
        self._sender: eventlet.greenthread.GreenThread | None = None
        self._opened = time.monotonic()
        self._done = eventlet.event.Event()

    # --- the two loops ------------------------------------------------------------

    def serve(self, subscription: Subscription | None = None) -> None:
        self._subscription = subscription
        log.info("open peer=%s path=%s", self.peer, self.path)
        if subscription is not None:
            self._sender = eventlet.spawn(self._send_loop, subscription)
        if self._keepalive is not None:
            self._keepalive.add(self)
        try:
            self._read_loop()
        finally:
            if self._keepalive is not None:
                self._keepalive.discard(self)
            if subscription is not None:
                subscription.close()
            if self._sender is not None:
                self._sender.kill()
            if self.ws.write_timed_out:
                self.close_code, self.close_reason = 1006, "write timeout"  # nothing more could be sent
                log.warning("write timeout peer=%s path=%s: a send stayed blocked over %ss; "
                            "connection dropped", self.peer, self.path, self.ws.write_timeout)
            self._done.send()
            log.info("close peer=%s path=%s duration=%.1fs sent=%d code=%s%s", self.peer, self.path,
                     time.monotonic() - self._opened, self.sent, self.close_code or "-",
                     f" reason={self.close_reason!r}" if self.close_reason else "")

    def _read_loop(self) -> None:
        while True:
            try:
                message = self.ws.wait()
            except Exception as error:  # noqa: BLE001 - classified just below
                if not _peer_gone(error):
                    log.error("read failed peer=%s path=%s: %r", self.peer, self.path, error)
                self.close_code = self.close_code or 1006
                return
            if message is None:
                if self.ws.failure is not None:
                    # The frame layer failed the connection (bad frame, bad UTF-8, too big):
                    # one line, no traceback.
                    code, reason = self.ws.failure
                    log.warning("protocol error peer=%s path=%s code=%d: %s", self.peer, self.path, code, reason)
                    self.close_code = self.close_code or code
                if self.close_code is None:
                    self.close_code = self._peer_close_code()
                return
            if self._on_message is not None:
                try:
                    self._on_message(self, message)
                except Exception as error:  # noqa: BLE001 - an echo reply to a vanished peer
                    if not _peer_gone(error):
                        log.error("reply failed peer=%s path=%s: %r", self.peer, self.path, error)
                    self.close_code = self.close_code or 1006
                    self.ws.abort()
                    return

    def _send_loop(self, subscription: Subscription) -> None:
        try:
            while True:
                envelope = subscription.get()
                if envelope is None:
                    return
                self.send(envelope)
        except Exception as error:  # noqa: BLE001 - classified just below
            if not _peer_gone(error):
                log.error("send failed peer=%s path=%s: %r", self.peer, self.path, error)
            # The reader is still blocked in wait(); dropping the socket releases it.
            self.ws.abort()

    def push(self, envelope: Envelope) -> None:
        """Queue a one-off message (a control message) behind what this client is owed."""
        if self._subscription is not None:
            self._subscription.push(envelope)

    def send(self, envelope: Envelope) -> None:
        if self.ws.compressed:
            # Per-connection compression state: this frame cannot be shared.
            self.ws.send(envelope.text)
        else:
            self.ws.send_frame(envelope.wire(text_frame))
        self.sent += 1

    # --- server-initiated close -----------------------------------------------------

    def close(self, code: int, reason: str) -> None:
        """Close from our side and complete the handshake, or drop the socket after
        ``close_timeout``. Safe to call from any green thread; returns when done."""
        if self._done.ready():
            return
        self.close_code, self.close_reason = code, reason
        if self._subscription is not None:
            self._subscription.close()  # the sender finishes its current frame and stops
        try:
            with eventlet.Timeout(self.close_timeout):
                self.ws.start_close(code, reason)
        except eventlet.Timeout:
            pass  # our close frame could not even be written: the peer is not reading
        self._done.wait(self.close_timeout)
        if not self._done.ready():
            self.ws.abort()  # no close frame from the peer in time

    def ping(self) -> None:
        """Send one keepalive ping. Runs in a short-lived green thread of its own: it may
        wait for the send lock behind a frame in progress (so it never splits one), and
        that wait and the write are bounded by the write timeout."""
        if self.close_code is not None or self.ws.websocket_closed:
            return  # no frame may follow our close frame
        try:
            self.ws.send_frame(PING_FRAME)
        except Exception as error:  # noqa: BLE001 - classified just below
            if not _peer_gone(error):
                log.error("ping failed peer=%s path=%s: %r", self.peer, self.path, error)

    def close_soon(self, code: int, reason: str) -> None:
        """``close`` in a green thread of its own, for callers that must not block."""
        eventlet.spawn(self.close, code, reason)

    def _peer_close_code(self) -> int | None:
        data = self.ws._remote_close_data
        if data is None:
            return 1006
        if len(data) >= 2:
            return int.from_bytes(data[:2], "big")
        return 1005


class _PingState:
    __slots__ = ("next_ping", "awaiting_since")

    def __init__(self, next_ping: float):
        self.next_ping = next_ping
        self.awaiting_since: float | None = None  # when the unanswered ping was sent


class Keepalive:
    """Pings every open connection every ``interval`` seconds and closes (1011 "keepalive
    ping timeout", websockets' convention) any that has not answered within ``timeout``.

    One green thread for the whole server, not one per connection: a sleeping green
    thread per client costs a greenlet, its saved stack and a hub timer, times 10,000,
    to do a few microseconds of bookkeeping every 20 s. The ticker itself never writes to a
    socket (a blocking send in a loop over clients would let one stall them all): each
    ping and each close runs in a short-lived green thread (``spawn_n``, no result
    object), and a blocked ping ends at the write timeout. Each connection's schedule
    starts when it opens, so pings spread out the way connections arrived. The ticker
    wakes every tenth of the shorter period, so pings and timeouts are late by at most
    that; it runs only while connections exist.
    """

    def __init__(self, interval: float, timeout: float, *,
                 clock: Callable[[], float] = time.monotonic,
                 spawn: Callable[..., object] = eventlet.spawn_n):
        if interval <= 0 or timeout <= 0:
            raise ValueError(f"need interval > 0 and timeout > 0, got {interval}, {timeout}")
        self.interval = interval
        self.timeout = timeout
        self.resolution = min(interval, timeout) / 10
        self._clock = clock  # must be the clock of DashWebSocket.last_pong
        self._spawn = spawn
        self._states: dict[Connection, _PingState] = {}
        self._running = False

    def add(self, connection: Connection) -> None:
        self._states[connection] = _PingState(self._clock() + self.interval)
        if not self._running:
            self._running = True
            self._spawn(self._run)

    def discard(self, connection: Connection) -> None:
        self._states.pop(connection, None)

    @property
    def tracked(self) -> int:
        """Connections being pinged now."""
        return len(self._states)

    def _run(self) -> None:
        try:
            while self._states:
                eventlet.sleep(self.resolution)
                try:
                    self.tick()
                except Exception:  # noqa: BLE001 - the keepalive must outlive a bug in one pass
                    log.exception("keepalive pass failed")
        finally:
            # No green switch between the emptiness check and here, so an ``add`` cannot
            # slip in between and find a ticker that is about to end.
            self._running = False

    def tick(self) -> None:
        """One pass: note pongs, close peers past the timeout, ping the ones due."""
        now = self._clock()
        for connection, state in list(self._states.items()):
            if state.awaiting_since is not None:
                pong = connection.ws.last_pong
                if pong is not None and pong >= state.awaiting_since:
                    state.awaiting_since = None
                elif now - state.awaiting_since >= self.timeout:
                    self._states.pop(connection, None)
                    log.warning("keepalive ping timeout peer=%s path=%s: no pong within %ss",
                                connection.peer, connection.path, self.timeout)
                    self._spawn(connection.close, CLOSE_INTERNAL, "keepalive ping timeout")
                    continue
                else:
                    continue  # one ping outstanding at a time, as websockets does
            if now >= state.next_ping:
                state.awaiting_since = now
                state.next_ping = now + self.interval
                self._spawn(connection.ping)
