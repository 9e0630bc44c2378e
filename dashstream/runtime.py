"""The one small module that knows eventlet's primitives (besides ``server/serve.py``).

Everything else asks here to spawn a green thread, sleep, yield, watch a file descriptor
or run blocking work in an OS thread, so the parts of the server (protocol, log, fan-out,
sessions, keepalive) stay plain Python that unit tests drive with fakes.

Callbacks registered with ``watch_read``/``watch_write`` run *in the hub's own greenlet*:
they must never block or switch (no green I/O, no sleep, no waiting on an event). That is
the point: a socket that becomes readable costs one function call, not a context switch to
a parked green thread per connection.
"""

from __future__ import annotations

import _imp
import functools
import os
import sys
import time
import warnings
from collections import deque
from typing import Any, Callable

# eventlet is this project's chosen stack (see README); its import-time deprecation banner
# would only repeat that on every start.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

# Names are resolved by the system's resolver in an OS thread (``_resolve_in_threads``), as
# asyncio does, not by eventlet's greendns: greendns loads dnspython at import, and that was
# half of what starting the server cost (monkey_patch then walks every object it loaded for
# locks to green; figures in README, "Behaviour worth knowing"). The system resolver
# also honours nsswitch.conf (/etc/hosts, a container's DNS, mDNS) as every other program on
# the host does. Set before eventlet is imported: it reads this once, at import.
os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")

import eventlet
import eventlet.event
import eventlet.greenthread
import eventlet.hubs
import eventlet.hubs.epolls
import eventlet.hubs.hub
import eventlet.websocket
import eventlet.wsgi
import greenlet
from eventlet import patcher, tpool

_socket_type = patcher.original("socket").socket
_MSG_PEEK = patcher.original("socket").MSG_PEEK


def monkey_patch() -> None:
    """Make sockets, ``time.sleep`` and ``threading`` green everywhere. The entry points
    call it before they import anything else; a driver imported earlier would keep
    blocking sockets (and block the hub)."""
    eventlet.monkey_patch()
    _resolve_in_threads()


# The lookups eventlet's green socket module would give to greendns.
_RESOLVERS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo")


def _resolve_in_threads() -> None:
    """Without greendns the green socket module keeps the system's lookups, which block the
    OS thread and so the hub: every screen would freeze while a Redis or PostgreSQL host
    name resolves (seconds, when a DNS server is down). Run them in tpool's OS threads
    instead, in the stdlib ``socket`` module (redis-py calls ``socket.getaddrinfo``) and in
    eventlet's (its green ``create_connection`` calls its own)."""
    import socket

    import eventlet.green.socket as green_socket

    if os.environ["EVENTLET_NO_GREENDNS"].lower() != "yes":
        return  # greendns chosen after all (EVENTLET_NO_GREENDNS=no): it is green already
    if getattr(socket.getaddrinfo, "in_a_thread", False):
        return  # done already: monkey_patch may be called twice, as eventlet's may
    for name in _RESOLVERS:
        threaded = _in_a_thread(getattr(green_socket, name))
        setattr(socket, name, threaded)
        setattr(green_socket, name, threaded)


def _in_a_thread(lookup: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(lookup)
    def resolve(*args: Any, **kwargs: Any) -> Any:
        if greenlet.getcurrent() is eventlet.hubs.get_hub().greenlet:
            return lookup(*args, **kwargs)  # the hub cannot wait on itself (no caller does this)
        return run_in_thread(functools.partial(lookup, *args, **kwargs))

    resolve.in_a_thread = True
    return resolve


spawn = eventlet.spawn
sleep = eventlet.sleep
Event = eventlet.event.Event
GreenThread = eventlet.greenthread.GreenThread
Timeout = eventlet.Timeout
monotonic = time.monotonic


def run_in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run blocking C work (sqlite3) in a real OS thread; this green thread waits for it.

    ``tpool.execute`` runs ``function`` right here, on the hub's thread, whenever *any*
    thread holds the import lock at that moment (its guard against a deadlock in a nested
    import). A query run that way freezes every screen for its whole duration, so wait,
    yielding, until no import is under way."""
    while _imp.lock_held():
        eventlet.sleep(0.001)
    return tpool.execute(function, *args)

# The upgrade's base class (``edge/upgrade.py``): eventlet's WebSocket handler, the user's stack.
WebSocketWSGI = eventlet.websocket.WebSocketWSGI
# ``time.sleep`` as it was before monkey_patch, for real OS threads (the log writer).
real_sleep = patcher.original("time").sleep

# Real OS threads and their queue, whatever monkey_patch did to ``threading``: logging
# writes from one, so a stalled stderr can never stop the hub.
os_threading = patcher.original("threading")
os_queue = patcher.original("queue")


# One receive buffer for every socket: callbacks run one at a time in the hub's OS thread,
# and what is read is parsed (copied) before the next read. ``sock.recv(65536)`` would
# instead allocate 64 KiB and shrink it for every read, the biggest cost of a handshake.
RECV_BUFFER = bytearray(65536)
RECV_VIEW = memoryview(RECV_BUFFER)


class Workers:
    """Green threads that run short jobs one after another, with ``spawn_n``'s contract: run
    ``function(*args)`` soon in a green thread of its own; if it raises, the traceback is
    printed (the hub's rule for a ``spawn_n`` green thread) and nothing else happens.

    A new greenlet per job (``eventlet.spawn_n``, a request each) costs CPython a frame stack
    of its own: 16 KiB mapped and unmapped again (two system calls) and its pages faulted
    in, every time. A worker that has finished its job waits for the next one instead and
    keeps its stack; at most ``keep`` wait (the most recent first), any more end."""

    def __init__(self, keep: int = 64):
        self.keep = keep
        self._idle: list = []

    @property
    def idle(self) -> int:
        return len(self._idle)

    def spawn_n(self, function: Callable[..., Any], *args: Any) -> None:
        if self._idle:
            eventlet.hubs.get_hub().schedule_call_global(0, self._idle.pop().switch, function, args)
        else:
            eventlet.spawn_n(self._work, function, args)

    def _work(self, function: Callable[..., Any], args: tuple) -> None:
        hub = eventlet.hubs.get_hub()
        me = getcurrent()
        while True:
            try:
                function(*args)
            except Exception:  # noqa: BLE001 - as the hub treats a spawn_n green thread's
                hub.squelch_timer_exception(None, sys.exc_info())
            function = args = None  # nothing of the last job stays alive while idle
            if len(self._idle) >= self.keep:
                return
            self._idle.append(me)
            function, args = hub.switch()  # until spawn_n hands this worker a job


def cooperative_yield() -> None:
    """Let the hub run other work (accepts, reads, timers) in the middle of a long loop."""
    eventlet.sleep(0)


class MillisecondWakeups:
    """Green sleeps that end on the next step of a grid of whole milliseconds at or after
    their deadline, one hub timer per step for every green thread due in it (libuv groups its
    timers by the millisecond the same way).

    Thousands of loops that each sleep a random fraction of a second (the private random
    walks: 5,000 of them wake 10,000 times a second) cost eventlet one ``Timer`` object, a
    push onto and a pop off a heap of thousands of entries, and two Python calls around the
    switch per wake. Here a wake costs a dict lookup and a list append, and the heap holds at
    most one entry per millisecond that someone is due in (at most 1,000 for waits under a
    second). With 5,000 walks and no sockets (``benchmarks/private_walk_cost.py``; BENCHMARKS.md,
    "Private streams: what a wake-up costs"): 18-23 µs of CPU per message against 23-27 µs
    with eventlet.sleep.

    ``step_ms``: the grid, in whole milliseconds (default 1). Every hub wake-up costs about
    40 µs of CPU here whatever it does (eventlet's loop, its timers and the epoll wait, cold
    after the sleep: BENCHMARKS.md, "Private walks: the hub's wake-ups"), so the private walks
    use a coarser grid (``grid_sleep``; streams/stream.py chooses the step, 5 ms for the
    default walk): 200 wake-ups a second at 5,000 walks instead of 1,000.

    A sleep is never shorter than asked and at most about ``step_ms`` longer. Killing a
    sleeping green thread (``GreenThread.kill`` throws into it) takes it off its millisecond.
    """

    def __init__(self, clock: Callable[[], float] | None = None, step_ms: int = 1) -> None:
        self._clock = clock  # None: the hub's own (a test freezes it to choose the millisecond)
        self._per_second = 1000.0 / step_ms  # grid steps a second
        self._step_ms = step_ms
        self._hub: Any = None
        self._due: dict[int, list] = {}  # a grid step in ms (hub clock x 1000, rounded up) -> green threads
        self._waking: deque = deque()  # the threads of the step being woken, not yet run

    def sleep(self, seconds: float) -> None:
        current = _getcurrent()
        hub = self._hub
        # A green thread of the hub these wake-ups serve (its parent; greenlets never cross
        # OS threads) switches straight to the hub, as hub.switch() would after its checks.
        child = hub is not None and current.parent is hub.greenlet
        if not child:
            hub = eventlet.hubs.get_hub()
            if current is hub.greenlet:
                raise RuntimeError("do not call blocking functions from the mainloop")
            if hub is not self._hub:  # first use, or another OS thread's hub: start afresh there
                self._hub, self._due = hub, {}
        now = (self._clock or hub.clock)()
        # The first step of the grid after the deadline (in milliseconds): never early, however
        # it rounds.
        due = (int((now + seconds) * self._per_second) + 1) * self._step_ms
        waiting = self._due.get(due)
        if waiting is None:
            waiting = self._due[due] = []
            hub.schedule_call_global(due / 1000.0 - now, self._wake, due)
        waiting.append(current)
        try:
            # Called in place, not kept in a variable: a bound method held across the sleep
            # would be one more object for the garbage collector per wake.
            if not child:
                hub.switch()  # makes the hub this greenlet's parent first
            elif self._waking:
                # The next green thread due in the millisecond being woken, straight from this
                # one: the hub would only switch to it. One switch a wake instead of two (the
                # hub's frames saved and restored once per millisecond, not once per thread).
                self._waking.popleft().switch()
            else:
                hub.greenlet.switch()
        except BaseException:
            # Woken by an exception (a kill): no longer due. Still on the list only if its
            # millisecond has not come yet.
            if current in self._due.get(due, ()):
                self._due[due].remove(current)
            raise

    def _wake(self, due: int) -> None:
        """The hub's timer for millisecond ``due``: switch to each green thread due in it, in
        the order they went to sleep (each runs until it sleeps or waits again)."""
        # Each thread, once it sleeps again, switches to the next itself (``sleep``); the hub
        # resumes here when one of them switches to it some other way (it waited on
        # something else, it ended, or it raised: greenlet raises that here, in the parent),
        # or when the last one sleeps, and takes whoever is left.
        waking = self._waking = deque(self._due.pop(due, ()))
        while waking:
            try:
                waking.popleft().switch()
            except eventlet.hubs.hub.BaseHub.SYSTEM_EXCEPTIONS:
                raise
            except BaseException:  # noqa: BLE001 - as the hub does for a timer: one failure must not stop the rest
                self._hub.squelch_timer_exception(None, sys.exc_info())


_getcurrent = greenlet.getcurrent
_grids: dict[int, Callable[[float], None]] = {}


def grid_sleep(step_ms: int) -> Callable[[float], None]:
    """The sleep of the private random walks (streams/stream.py) on a grid of ``step_ms``:
    one ``MillisecondWakeups`` per step, shared by every walk that uses it (walks due in
    the same step share its hub timer)."""
    sleep = _grids.get(step_ms)
    if sleep is None:
        sleep = _grids[step_ms] = MillisecondWakeups(step_ms=step_ms).sleep
    return sleep


# The grid of the default walk (waits under 1 s: a 5 ms step, see streams/stream.py).
sleep_on_millisecond = grid_sleep(5)


def call_later(seconds: float, function: Callable[..., Any], *args: Any):
    """Run ``function(*args)`` in the hub after ``seconds``; returns a timer with ``cancel()``
    (a silent connection's deadline: ``server/request_pool.FirstBytes``)."""
    return eventlet.hubs.get_hub().schedule_call_global(seconds, function, *args)


def _noop(*_args: Any) -> None:
    pass


def watch_read(fileno: int, callback: Callable[[int], None]):
    """Call ``callback(fileno)`` from the hub whenever ``fileno`` is readable (level-
    triggered: again on the next loop if data is left). Returns a handle for ``unwatch``."""
    hub = eventlet.hubs.get_hub()
    return hub.add(hub.READ, fileno, callback, _noop, _noop)


def watch_write(fileno: int, callback: Callable[[int], None]):
    hub = eventlet.hubs.get_hub()
    return hub.add(hub.WRITE, fileno, callback, _noop, _noop)


def unwatch_closing(handle) -> None:
    """``unwatch`` for a descriptor that is closed right after. With epoll the kernel drops
    a closed descriptor from the set by itself, so only the hub's table is cleared: one
    ``epoll_ctl`` system call less per connection. (Another hub keeps a set of its own.)"""
    if handle is None:
        return
    hub = eventlet.hubs.get_hub()
    if isinstance(hub, _EpollHub):
        _forget_listener(hub, handle)
    else:
        hub.remove(handle)


_EpollHub = eventlet.hubs.epolls.Hub
_forget_listener = eventlet.hubs.hub.BaseHub.remove  # the table only; epolls.Hub.remove also asks the kernel


def has_bytes(sock) -> bool:
    """Whether an accepted green socket has something to read now (bytes, EOF or an error),
    without taking it: one ``recv(MSG_PEEK)`` on the non-blocking socket underneath. A TLS
    socket (no plain socket underneath to peek at) says False, and is watched instead."""
    raw = getattr(sock, "fd", None)
    if not isinstance(raw, _socket_type):
        return False
    try:
        raw.recv(1, _MSG_PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset or refused: the reader finds out
    return True


def unwatch(handle) -> None:
    """Stop a ``watch_read``/``watch_write``; always before the descriptor is closed (the
    hub would otherwise keep the number, and a new socket reusing it would be confused)."""
    if handle is not None:
        eventlet.hubs.get_hub().remove(handle)


def getcurrent():
    """The running green thread (to tell whether code is stopping itself)."""
    return greenlet.getcurrent()
