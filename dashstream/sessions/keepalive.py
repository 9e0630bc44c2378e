"""Keepalive pings and the one server-wide clock that judges every session's deadlines.

``Keepalive`` pings every session ``interval`` seconds after it opened and after each
ping, one ping outstanding at a time (websockets' scheme), and closes (1011 "keepalive ping
timeout") a session whose last ping has not been answered within ``timeout``. Every session
shares the same interval and timeout, so the schedule is two first-in-first-out queues (due
pings, outstanding pings): a tick costs the sessions that are due, not a scan of all 10,000,
and there is no timer per session.

``Watchdog`` is the ticker: one green thread for the whole server that runs the keepalive
and calls ``check_deadlines(now)`` on the few sessions that have a deadline running (pending
bytes: write and slow timeouts; closing: the close handshake; a frame half received). A
session puts itself on that list while a deadline applies and takes itself off after, so the
fast path (a socket that keeps up) never touches the clock.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable

from dashstream.protocol.frames import CLOSE_INTERNAL

logger = logging.getLogger("dashstream.connection")


class Keepalive:
    def __init__(self, interval: float, timeout: float, *, clock: Callable[[], float], metrics=None):
        if interval <= 0 or timeout <= 0:
            raise ValueError(f"need interval > 0 and timeout > 0, got {interval}, {timeout}")
        self.interval = interval
        self.timeout = timeout
        self.resolution = min(interval, timeout) / 10
        self._clock = clock
        self._metrics = metrics
        self._due: deque = deque()  # sessions in order of next_ping
        self._outstanding: deque = deque()  # (deadline, session, ping_sent_at) in deadline order
        self._tracked = 0

    @property
    def tracked(self) -> int:
        """Sessions being pinged now."""
        return self._tracked

    def add(self, session) -> None:
        session.next_ping = self._clock() + self.interval
        session.ping_sent_at = None
        self._due.append(session)
        self._tracked += 1

    def discard(self, session) -> None:
        """The session ended; its queue entries are dropped lazily when they come up."""
        if session.next_ping is not None:
            session.next_ping = None
            self._tracked -= 1

    def tick(self, now: float) -> None:
        outstanding = self._outstanding
        while outstanding and outstanding[0][0] <= now:
            _, session, sent_at = outstanding.popleft()
            if session.next_ping is None or session.ping_sent_at != sent_at:
                continue  # ended, or a later ping is the one that counts
            pong = session.last_pong
            if pong is not None and pong >= sent_at:
                continue  # answered
            self.discard(session)
            logger.warning("keepalive ping timeout peer=%s path=%s: no pong within %ss",
                        session.peer, session.path, self.timeout, extra={"peer": session.peer, "path": session.path})
            if self._metrics is not None:
                self._metrics.keepalive_timeout()
            session.close(CLOSE_INTERNAL, "keepalive ping timeout")
        due = self._due
        while due and (due[0].next_ping is None or due[0].next_ping <= now):
            session = due.popleft()
            if session.next_ping is None:
                continue  # ended
            sent_at = session.ping_sent_at
            if session.expects_pong and sent_at is not None and (session.last_pong is None
                                                                   or session.last_pong < sent_at):
                # One outstanding at a time: the unanswered ping's deadline decides.
                session.next_ping = now + self.interval
                due.append(session)
                continue
            session.ping()
            session.next_ping = now + self.interval
            due.append(session)
            if session.expects_pong:
                session.ping_sent_at = now
                outstanding.append((now + self.timeout, session, now))


class Watchdog:
    """One ticker for the whole server (see the module docstring)."""

    def __init__(self, *, resolution: float, clock: Callable[[], float], sleep: Callable[[float], None],
                 keepalives: tuple = (), lag_interval: float = 1.0,
                 wall_clock: Callable[[], float] = time.time):
        self.resolution = resolution
        self.keepalives = tuple(keepalive for keepalive in keepalives if keepalive is not None)
        self._clock = clock
        self._sleep = sleep
        self._watched: set = set()
        # The lag sweep (session.check_lag): sessions with data handed to the kernel since
        # they were last found caught up, looked at every lag_interval (one ioctl each).
        self.lag_interval = lag_interval
        self._lagging: set = set()
        self._lag_due = clock() + lag_interval
        # A coarse wall clock for the sessions' lag marks: one read per tick, so a send reads
        # an attribute instead of the clock (a clock read and a call per delivery cost S2
        # about a fifth of its CPU); a mark is at most one tick early, the lag at most one
        # tick overstated.
        self._wall_clock = wall_clock
        self.ticks = 0
        self.wall = wall_clock()
        self.running = True

    @property
    def watched(self) -> int:
        return len(self._watched)

    def watch(self, session) -> None:
        self._watched.add(session)

    def unwatch(self, session) -> None:
        self._watched.discard(session)

    def track_lag(self, session) -> None:
        self._lagging.add(session)

    def tick(self) -> None:
        now = self._clock()
        self.ticks += 1
        self.wall = self._wall_clock()
        for keepalive in self.keepalives:
            keepalive.tick(now)
        for session in list(self._watched):
            session.check_deadlines(now)
        if now >= self._lag_due:
            self._lag_due = now + self.lag_interval
            lagging = self._lagging
            for session in list(lagging):
                if not session.check_lag(now):
                    lagging.discard(session)

    def run(self) -> None:
        while self.running:
            self._sleep(self.resolution)
            try:
                self.tick()
            except Exception:  # the clock must outlive a bug in one pass
                logger.exception("watchdog pass failed")
