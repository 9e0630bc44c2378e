"""One WebSocket client: a reader beside a sender, and a clean end either way.

The reader (the WSGI handler's own green thread) sits in ``ws.wait()``. That is where
eventlet answers pings and the peer's close frame, so a client's close is answered at
once. The sender is a green thread that drains this client's subscription and writes
frames. Whichever side ends first ends the other:

* peer closes or vanishes → ``wait`` returns None or raises → the subscription is closed
  (the private producer stops with it) and the sender is killed;
* the server closes (shutdown, slow subscriber) → the subscription is closed so the
  sender stops after its current frame, our close frame goes out, and the reader waits
  up to ``close_timeout`` for the peer's close frame before the socket is dropped.
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
from dashstream.websocket import DashWebSocket, text_frame

log = logging.getLogger("dashstream.connection")

# Errors that only mean "the peer went away"; anything else is a bug worth a traceback.
PEER_GONE = (ConnectionError, BrokenPipeError, TimeoutError)
PEER_GONE_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ESHUTDOWN, errno.EBADF, errno.ENOTCONN}


def _peer_gone(error: BaseException) -> bool:
    return isinstance(error, PEER_GONE) or getattr(error, "errno", None) in PEER_GONE_ERRNOS


class Connection:
    """A connected client and its loops. ``serve`` returns when the connection is over."""

    def __init__(self, ws: DashWebSocket, peer: str, path: str, *, close_timeout: float = 1.0,
                 on_message: Callable[["Connection", object], None] | None = None):
        self.ws = ws
        self.peer = peer
        self.path = path
        self.close_timeout = close_timeout
        self.sent = 0
        self.close_code: int | None = None
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
        try:
            self._read_loop()
        finally:
            if subscription is not None:
                subscription.close()
            if self._sender is not None:
                self._sender.kill()
            self._done.send()
            log.info("close peer=%s path=%s duration=%.1fs sent=%d code=%s", self.peer, self.path,
                     time.monotonic() - self._opened, self.sent, self.close_code or "-")

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
                self._on_message(self, message)

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
        self.close_code = code
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
