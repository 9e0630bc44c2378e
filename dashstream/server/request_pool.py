"""Who gets a green thread to send an HTTP request: bounded overall and per address.

eventlet's ``wsgi.server`` hands every accepted connection to its pool (``custom_pool``)
and, when the pool is full, stops accepting. With a plain ``GreenPool`` a few hundred
sockets that connect and say nothing fill it (each holds its slot until the header
deadline), and a screen or a health probe then waits behind them in the kernel's backlog.

This pool is what waits for a request; WebSockets and SSE streams leave it the moment
they are upgraded (the session owns the socket from then on, see ``serve.py``), so it only
ever holds requests in progress:

* at most ``size`` requests run at once;
* at most ``per_address`` of them from one client address (an IPv6 /64 counts as one),
  so one address cannot take the pool;
* connections over either limit wait (an accepted socket and a list entry, no green
  thread) and are started as slots free up, one address after another in turn, so a
  health probe from a fresh address goes ahead of an attacker's thousandth idle socket;
* at most ``waiting_per_address`` wait per address and ``max_waiting`` in all; beyond that
  a new connection is closed at once (the attacker's own problem, nobody else's).

Before any of that, ``FirstBytes`` keeps a connection that has sent nothing out of the pool
altogether: the listener (``serve.py``) hands it to the pool only once its first bytes are
there, so silent sockets hold no slot and no green thread, only a hub watcher (and one
timer for all their deadlines).
Without it, 64 silent sockets from each of 20 addresses (an office behind NAT does that by
accident with browser preconnects) took the 1,024 slots, and a fresh address's ``/healthz``
waited 4 s behind them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, Callable

from dashstream.edge.admission import client_key


class _Handle:
    """What ``wsgi.server`` links its clean-up to; runs the links when the request ends."""

    __slots__ = ("_links", "done")

    def __init__(self):
        self._links: list = []
        self.done = False

    def link(self, function: Callable, *args: Any) -> None:
        if self.done:
            function(self, *args)
        else:
            self._links.append((function, args))

    def finish(self) -> None:
        self.done = True
        links, self._links = self._links, []
        for function, args in links:
            function(self, *args)


class RequestPool:
    def __init__(self, size: int, per_address: int, *, waiting_per_address: int = 1024,
                 max_waiting: int = 8192, spawn: Callable[..., Any], on_refused: Callable[[str], None] | None = None):
        if size < 1 or per_address < 1:
            raise ValueError("size and per_address must be >= 1")
        self.size = size
        self.per_address = per_address
        self.waiting_per_address = waiting_per_address
        self.max_waiting = max_waiting
        self._spawn = spawn
        self._on_refused = on_refused
        self.running = 0
        self._running_by_address: dict[str, int] = {}
        self._waiting: OrderedDict[str, deque] = OrderedDict()
        self.waiting = 0

    # --- the interface wsgi.server uses ---------------------------------------------------

    def spawn(self, function: Callable, conn_state: list) -> _Handle:
        handle = _Handle()
        peer = conn_state[0]  # (host, port, ...) for TCP
        address = client_key(str(peer[0] if isinstance(peer, tuple) and peer else peer))
        if self._may_start(address):
            self._start(address, function, conn_state, handle)
            return handle
        queue = self._waiting.get(address)
        if self.waiting >= self.max_waiting or (queue is not None and len(queue) >= self.waiting_per_address):
            if self._on_refused is not None:
                self._on_refused(address)
            handle.finish()  # wsgi.server's clean-up closes the socket
            return handle
        if queue is None:
            queue = self._waiting[address] = deque()
        queue.append((function, conn_state, handle))
        self.waiting += 1
        return handle

    def waitall(self) -> None:
        """Requests already running finish on their own; nothing waits for queued ones."""

    # --- bookkeeping ---------------------------------------------------------------------------

    def _may_start(self, address: str) -> bool:
        return self.running < self.size and self._running_by_address.get(address, 0) < self.per_address

    def _start(self, address: str, function: Callable, conn_state: list, handle: _Handle) -> None:
        self.running += 1
        self._running_by_address[address] = self._running_by_address.get(address, 0) + 1

        def run():
            try:
                function(conn_state)
            finally:
                self._finished(address)
                handle.finish()

        self._spawn(run)

    def _finished(self, address: str) -> None:
        self.running -= 1
        left = self._running_by_address[address] - 1
        if left:
            self._running_by_address[address] = left
        else:
            del self._running_by_address[address]
        self._start_waiting()

    def _start_waiting(self) -> None:
        """Fill free slots from the waiting addresses, in turn."""
        for address in list(self._waiting):
            if not self._may_start(address):
                continue
            queue = self._waiting.pop(address)
            function, conn_state, handle = queue.popleft()
            self.waiting -= 1
            if queue:
                self._waiting[address] = queue  # to the back of the line
            self._start(address, function, conn_state, handle)

    def address_load(self, address: str) -> tuple[int, int]:
        """(running, waiting) for one address, for tests and /healthz."""
        key = client_key(address)
        return self._running_by_address.get(key, 0), len(self._waiting.get(key, ()))


class _Silent:
    """One connection waiting in ``FirstBytes`` for its first bytes."""

    __slots__ = ("sock", "address", "key", "fileno", "deadline", "watch")

    def __init__(self, sock: Any, address: Any, key: str, fileno: int, deadline: float):
        self.sock, self.address, self.key, self.fileno, self.deadline = sock, address, key, fileno, deadline
        self.watch: Any = None


class FirstBytes:
    """Accepted connections that have not sent a byte yet: a hub watcher each, and one
    timer for all their deadlines.

    ``add(sock, address)`` passes a socket whose first bytes (or EOF) are already there
    straight to ``on_ready(sock, address)`` (with ``TCP_DEFER_ACCEPT`` nearly every one:
    the kernel hands over a connection once it has spoken); any other is watched, and
    when it turns readable it is passed on and leaves. One silent for ``timeout`` seconds
    is closed (the same rule as ``--header-timeout``). At most ``per_address`` wait per
    client address (an IPv6 /64 counts as one) and ``total`` in all; past that a new
    connection is closed at once. ``io`` is ``dashstream.runtime`` (has_bytes,
    watch_read, unwatch, call_later, monotonic) or a test's fake; callbacks run in the hub
    and never block.

    Every connection gets the same ``timeout``, so deadlines come in the order connections
    do: they wait in one queue, and a single timer, set for the oldest deadline, closes
    what is due and sets itself for the next (no timer per connection)."""

    def __init__(self, on_ready: Callable[[Any, Any], None], *, timeout: float, io: Any,
                 per_address: int = 1024, total: int = 8192):
        self.on_ready = on_ready
        self.timeout = timeout
        self.io = io
        self.per_address = per_address
        self.total = total
        self._by_address: dict[str, int] = {}
        self._by_fileno: dict[int, _Silent] = {}
        self._deadlines: deque[_Silent] = deque()  # oldest first; an entry that left has no sock
        self._sweep: Any = None  # the one timer, while something waits
        self.waiting = 0
        self.closed_silent = 0  # closed for saying nothing within the timeout
        self.refused = 0  # closed at once: too many silent ones already

    def add(self, sock: Any, address: Any, ready: bool | None = None) -> None:
        """``ready``: whether the connection has spoken, when the caller knows already (it
        read its first bytes); None: ask ``io.has_bytes``."""
        key = client_key(str(address[0] if isinstance(address, tuple) and address else address))
        if self.waiting >= self.total or self._by_address.get(key, 0) >= self.per_address:
            self.refused += 1
            _close(sock)
            return
        try:
            fileno = sock.fileno()
        except OSError:
            fileno = -1
        if fileno < 0:
            _close(sock)
            return
        if ready if ready is not None else self.io.has_bytes(sock):
            self.on_ready(sock, address)
            return
        entry = _Silent(sock, address, key, fileno, self.io.monotonic() + self.timeout)
        self.waiting += 1
        self._by_address[key] = self._by_address.get(key, 0) + 1
        self._by_fileno[fileno] = entry
        self._deadlines.append(entry)
        entry.watch = self.io.watch_read(fileno, self._readable)
        if self._sweep is None:
            self._sweep = self.io.call_later(self.timeout, self._expire)

    def _readable(self, fileno: int) -> None:
        entry = self._by_fileno.get(fileno)
        if entry is None:
            return
        sock, address = entry.sock, entry.address
        self._leave(entry)
        self.on_ready(sock, address)

    def _leave(self, entry: _Silent) -> None:
        self.io.unwatch(entry.watch)
        del self._by_fileno[entry.fileno]
        entry.sock = entry.address = entry.watch = None  # its place in the queue is dropped when due
        self.waiting -= 1
        left = self._by_address[entry.key] - 1
        if left:
            self._by_address[entry.key] = left
        else:
            del self._by_address[entry.key]

    def _expire(self) -> None:
        self._sweep = None
        now = self.io.monotonic()
        deadlines = self._deadlines
        while deadlines and (deadlines[0].sock is None or deadlines[0].deadline <= now):
            entry = deadlines.popleft()
            sock = entry.sock
            if sock is None:
                continue  # it spoke in time and left
            self._leave(entry)
            self.closed_silent += 1
            _close(sock)
        if deadlines:
            self._sweep = self.io.call_later(max(0.0, deadlines[0].deadline - now), self._expire)

    def load(self, address: str) -> int:
        return self._by_address.get(client_key(address), 0)


def _close(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass
