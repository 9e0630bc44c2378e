"""Run one stream's source forever: values out, failures turned into a state, retries.

A screen on a wall must say when its data source is gone (and that it is the source, not the
network) and must recover by itself when the source returns. The supervisor does that for
one stream:

* it runs ``source.events()`` (see ``producer/base.py``) and hands each value to
  ``on_value(fields)``;
* it keeps the source's state: ``up``, ``down`` (with a reason) or ``stale`` (up, but no
  value for ``stale_after`` seconds), with the wall-clock time it entered it, and reports
  every change to ``on_health(state, reason, since)``;
* a source that raises is ``down`` with the exception's text (passwords scrubbed), is closed,
  and runs again after a capped, fully jittered exponential backoff: the first retry within
  ``first`` (1 s), each window twice the last, at most ``cap`` (30 s), forever. The backoff
  starts again from the first window once a run has produced a value or stayed up for
  ``stable_after`` seconds;
* a bad payload (``Rejected``, or a value without ``variable``) is counted and passed to
  ``on_rejected(reason)``; its log line is written at most once a minute per supervisor, so a
  chatty broken publisher cannot flood the log. This is the one place a rejected value is
  counted and logged, whichever source it came from.

Every source runs here: a shared stream's (``source_supervisor``, or the Redis backplane's
leased producer, which starts one while it holds the lease) and each client's own random
walk on a private stream (``PrivateStream``: one supervisor per client, ``announce=False``
so a thousand screens do not write a thousand "is up" lines). The hot path, a value from a
running source, is one type check, the field check and the callback: a private walk costs
what its own loop used to.

A source can never hold the hub (``Pacing``, for every shared stream's source). A green read
only switches to the hub when its socket has nothing for it: redis-py's ``get_message`` parses
every message already in its buffer without a read, and eventlet's green ZeroMQ ``recv`` tries
``NOBLOCK`` first and returns at once while messages are queued, so a source fed faster than
it is read never switched at all (every screen froze). So the loop gives the hub a turn
(``sleep(0)``) whenever it has run for ``SLICE`` without one. And a stream takes values from
its source at most ``RATE`` a second (bursts of up to ``BURST`` pass whole): beyond that, or
while the last value is still being published (a Redis backplane's write), the newest value
waits and replaces the one before it (counted by ``on_coalesced``: coalesced, never queued),
and is published as soon as the rate allows. A screen wants the latest value; a backlog of
old ones would only show ever older data as live.

No exception leaves the supervisor: a source's goes into its state, a callback's into the log.
There is always a pause between two runs (at least ``floor``), so a source that fails at once
cannot spin a core.

It knows nothing of eventlet: ``spawn`` (returns a handle with ``kill()``), ``sleep``, the
clocks and the random generator are given, so the tests drive it with fakes and the server
passes eventlet's.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, Mapping

from dashstream.messages import BadFields
from producer import SOURCES
from producer.base import DOWN, STALE, STARTING, UP, Health, Rejected, Source
from producer.urls import scrub
from producer.values import RESERVED_FIELDS, BadValue, check_fields

logger = logging.getLogger("dashstream.supervisor")

# How long a failure's text may be in a state's reason (and a control message).
MAX_REASON = 300
# A rejected value is logged at most this often per stream (seconds).
REJECT_LOG_INTERVAL = 60.0


def describe_error(error: BaseException) -> str:
    """An exception as one line: its message, or its type when it has none."""
    message = " ".join(str(error).split())
    if not message:
        return type(error).__name__
    return message[:MAX_REASON]


class Backoff:
    """Capped exponential backoff with full jitter: the n-th wait in a row (from 0) is
    uniform in [0, min(cap, first * 2**n)), but never under ``floor``. Full jitter spreads
    many streams (or many servers) retrying one database over the whole window, so they do
    not knock on it in the same millisecond."""

    def __init__(self, first: float = 1.0, cap: float = 30.0, floor: float = 0.05,
                 rng: random.Random | None = None) -> None:
        self.first = first
        self.cap = cap
        self.floor = floor
        self.rng = rng or random.Random()
        self.failures = 0

    def window(self) -> float:
        return min(self.cap, self.first * 2 ** self.failures)

    def next_delay(self) -> float:
        window = self.window()
        if window < self.cap:
            # Stop counting at the cap: 2**n would overflow a float after a few days down.
            self.failures += 1
        return max(self.floor, window * self.rng.random())

    def reset(self) -> None:
        self.failures = 0


# The longest a source's loop runs before it gives the hub a turn (seconds).
SLICE = 0.002
# Values a stream takes from its source per second, and the burst that passes whole.
RATE = 1000.0
BURST = 100


class Pacing:
    """The hub-turn clock and the rate bucket of one source's loop (see the module docstring)."""

    def __init__(self, monotonic: Callable[[], float], slice_: float = SLICE, rate: float = RATE,
                 burst: int = BURST) -> None:
        self.monotonic = monotonic
        self.slice = slice_
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self._filled = monotonic()
        self.turn = self._filled  # when the loop last gave the hub a turn

    def take(self) -> bool:
        """A value may be published now (one token taken)."""
        now = self.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self._filled) * self.rate)
        self._filled = now
        if self.tokens >= 1.0 - 1e-9:  # a sleep of exactly wait() gets its token, whatever the rounding
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def wait(self) -> float:
        """Seconds until a token is there."""
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def overdue(self) -> bool:
        """The loop has run a whole slice without a hub turn."""
        return self.monotonic() - self.turn >= self.slice

    def turned(self) -> None:
        self.turn = self.monotonic()


class Supervisor:
    """One source, one stream: see the module docstring."""

    _up_at: float | None = None  # this run: when the source said it was up
    _produced = False  # this run: a value came
    _last_failure = ""  # the last failure's reason, logged as a warning once
    _stopping = False

    def __init__(self, name: str, source: Source, *,
                 on_value: Callable[[dict], Any],
                 on_health: Callable[[str, str, float], Any],
                 on_rejected: Callable[[str], Any] | None = None,
                 stale_after: float | None = None,
                 spawn: Callable[[Callable[[], None]], Any],
                 sleep: Callable[[float], None],
                 monotonic: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 backoff: Backoff | None = None,
                 stable_after: float = 30.0,
                 announce: bool = True,
                 paced: bool = False,
                 on_coalesced: Callable[[], Any] | None = None,
                 logger: logging.Logger = logger) -> None:
        self.name = name
        self.source = source
        self.on_value = on_value
        self.on_health = on_health
        self.on_rejected = on_rejected
        self.stale_after = stale_after
        self.spawn = spawn
        self.sleep = sleep
        self.monotonic = monotonic
        self.wall_clock = wall_clock
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self.log = logger
        # Log "up" and "stale" (False: at DEBUG only; failures and rejections are always logged).
        self.announce = announce
        self.state = DOWN
        self.reason = STARTING
        self.since = wall_clock()
        self.rejected = 0
        self.coalesced = 0
        # Pacing (shared streams' sources): None keeps a private walk's loop as it was (it
        # sleeps between values anyway, and a thousand clients must not pay for a bucket).
        self.pacing = Pacing(monotonic) if paced else None
        self.on_coalesced = on_coalesced
        self._pending: dict | None = None  # the newest value waiting for the rate (or a publish)
        self._flusher: Any = None  # the green thread publishing _pending
        self._last_value = monotonic()  # the stale clock: last value, or when it came up
        self._last_reject_log: float | None = None
        self._threads: list[Any] = []

    # --- lifecycle ---

    def start(self) -> None:
        """Report the first state and start the source's loop (and the stale clock)."""
        if self.source.passive:
            self._set(UP, "")
        else:
            self._report()
            self._threads.append(self.spawn(self._run))
        if self.stale_after:
            self._threads.append(self.spawn(self._watch))

    def stop(self) -> None:
        """Stop both loops and release the source's connections."""
        self._stopping = True
        if self._flusher is not None:
            self._threads.append(self._flusher)
        for thread in self._threads:
            try:
                thread.kill()
            except Exception:  # stopping must finish whatever a handle does
                self.log.exception("stream %r: could not stop a source thread", self.name)
        self._threads.clear()
        self._close()

    @property
    def running(self) -> bool:
        """The source's own loop runs (a passive source has none)."""
        return not self.source.passive and bool(self._threads)

    def status(self) -> dict:
        """For /streams and metrics."""
        return {"state": self.state, "reason": self.reason, "since": self.since, "rejected": self.rejected}

    # --- values from outside (a publish stream's POST) ---

    def note_value(self) -> None:
        """A value reached the stream: restart the stale clock, and leave ``stale``/``down``."""
        self._last_value = self.monotonic()
        if self.state != UP:  # up has no reason: nothing else to change on the hot path
            self._set(UP, "")

    # --- the source's loop ---

    def _run(self) -> None:
        while not self._stopping:
            self._up_at = None
            self._produced = False
            try:
                pacing = self.pacing
                for event in self.source.events():
                    if self._stopping:
                        return
                    self._handle(event)
                    if self._stopping:
                        return  # stopped by its own callback (the one client went away): end now
                    if pacing is not None and pacing.overdue():
                        self.sleep(0)  # the hub's turn: see the module docstring
                        pacing.turned()
                raise RuntimeError("the source ended")
            except Exception as error:  # noqa: BLE001 - any failure of a source is a state, not a crash
                if self._stopping:
                    return
                self._failed(error)
            self._close()
            self._pause()

    def _handle(self, event: Any) -> None:
        if type(event) is dict and "variable" in event and RESERVED_FIELDS.isdisjoint(event):
            # The hot path (every value of a running source): a plain dict that passes the
            # field check is taken as it is, without check_fields' copy.
            fields = event
        elif isinstance(event, Mapping):
            try:
                fields = check_fields(event)
            except BadValue as error:
                self._reject(str(error))
                return
        else:
            self._signal(event)
            return
        self._produced = True
        if self.stale_after:
            self._last_value = self.monotonic()  # note_value(), inlined: this runs for every value
        if self.state != UP:
            self._set(UP, "")
        pacing = self.pacing
        if pacing is not None and (self._flusher is not None or not pacing.take()):
            self._coalesce(fields)
            return
        self._publish(fields)

    def _publish(self, fields: dict) -> None:
        try:
            self.on_value(fields)
        except BadFields as error:  # the log could not encode it (a NaN, a value JSON cannot carry)
            self._reject(str(error))
        except Exception:
            self.log.exception("stream %r: %s failed", self.name, getattr(self.on_value, "__name__", "a callback"))

    def _coalesce(self, fields: dict) -> None:
        """Over the rate, or a publish is under way: ``fields`` waits, replacing the value
        that was waiting; the flusher publishes it when the rate allows."""
        if self._pending is not None:
            self.coalesced += 1
            if self.on_coalesced is not None:
                self._call(self.on_coalesced)
        self._pending = fields
        if self._flusher is None:
            self._flusher = self.spawn(self._flush)

    def _flush(self) -> None:
        pacing = self.pacing
        try:
            while self._pending is not None and not self._stopping:
                if not pacing.take():
                    self.sleep(pacing.wait())
                    continue
                fields, self._pending = self._pending, None
                self._publish(fields)
        finally:
            self._flusher = None

    def _signal(self, event: Any) -> None:
        """What a source says besides values: a rejected payload, or its connection's state."""
        if isinstance(event, Rejected):
            self._reject(event.reason)
        elif isinstance(event, Health) and event.state == UP:
            if self._up_at is None:
                self._up_at = self.monotonic()
            if self.state == DOWN:
                # Connected again: the stale clock starts now, not at the last value before the outage.
                self._last_value = self.monotonic()
                self._set(UP, "")
        elif isinstance(event, Health) and event.state == DOWN:
            self._up_at = None
            self._set(DOWN, scrub(event.reason, self.source.secrets))
        else:
            raise TypeError(f"the source yielded {event!r}, not a value, Rejected or Health(up/down)")

    def _failed(self, error: Exception) -> None:
        reason = scrub(describe_error(error), self.source.secrets)
        stable = self._up_at is not None and self.monotonic() - self._up_at >= self.stable_after
        if self._produced or stable:
            self.backoff.reset()
        self._set(DOWN, reason)
        level = logging.DEBUG if reason == self._last_failure else logging.WARNING
        self._last_failure = reason
        self.log.log(level, "stream %r: source %s failed: %s", self.name, self._describe(), reason)

    def _pause(self) -> None:
        delay = self.backoff.next_delay()
        self.log.debug("stream %r: retrying in %.2f s", self.name, delay)
        self.sleep(delay)

    def _close(self) -> None:
        try:
            self.source.close()
        except Exception as error:  # noqa: BLE001 - a failing close must not stop the retries
            self.log.warning("stream %r: closing source %s failed: %s", self.name, self._describe(),
                             scrub(describe_error(error), self.source.secrets))

    # --- the stale clock ---

    def _watch(self) -> None:
        while not self._stopping:
            self.sleep(self.check_stale())

    def check_stale(self) -> float:
        """Mark the stream stale if it is up and has been silent for ``stale_after``;
        returns how long to wait before looking again."""
        if self.state != UP:
            return self.stale_after
        silent = self.monotonic() - self._last_value
        if silent >= self.stale_after:
            self._set(STALE, f"no new value for {self.stale_after:g} s")
            return self.stale_after
        return max(self.stale_after - silent, self.backoff.floor)

    # --- state and callbacks ---

    def _set(self, state: str, reason: str) -> None:
        if (state, reason) == (self.state, self.reason):
            return
        previous = self.state
        if state != previous:
            self.since = self.wall_clock()
        self.state, self.reason = state, reason
        if state == UP:
            self._last_failure = ""
            self.log.log(logging.INFO if self.announce else logging.DEBUG,
                         "stream %r: source %s is up", self.name, self._describe())
        elif state == STALE:
            self.log.log(logging.WARNING if self.announce else logging.DEBUG,
                         "stream %r: source %s is stale: %s", self.name, self._describe(), reason)
        self._report()

    def _report(self) -> None:
        self._call(self.on_health, self.state, self.reason, self.since)

    def _reject(self, reason: str) -> None:
        self.rejected += 1
        now = self.monotonic()
        if self._last_reject_log is None or now - self._last_reject_log >= REJECT_LOG_INTERVAL:
            self._last_reject_log = now
            self.log.warning("stream %r: rejected a value (%d so far; logged at most once a minute): %s",
                             self.name, self.rejected, reason)
        if self.on_rejected is not None:
            self._call(self.on_rejected, reason)

    def _call(self, callback: Callable[..., Any], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # the stream's bug must not stop the source
            self.log.exception("stream %r: %s failed", self.name, getattr(callback, "__name__", "a callback"))

    def _describe(self) -> str:
        try:
            return self.source.describe()
        except Exception:  # noqa: BLE001 - only for a log line
            return type(self.source).__name__


def source_supervisor(spec: Any, stream: Any, spawn=None, sleep=None, *, source: Source | None = None,
                      on_value: Callable[[dict], Any] | None = None,
                      on_health: Callable[[str, str, float], Any] | None = None) -> Supervisor:
    """The supervisor that feeds the shared ``stream`` from ``spec``'s source (or ``source``,
    made by the caller: a leased producer continues a counter), its values to ``on_value``
    and its states to ``on_health`` (default: the stream's); with eventlet's spawn and sleep
    from ``runtime`` unless given (imported here, so the class above stays testable without
    eventlet)."""
    from dashstream import runtime

    if source is None:
        source = SOURCES[spec.source](**spec.options)
    return Supervisor(
        spec.name, source,
        on_value=on_value or stream.publish_from_source,
        on_health=on_health or (lambda state, reason, since: stream.set_health(state, reason, since)),
        on_rejected=stream.count_rejected,
        on_coalesced=stream.count_coalesced, paced=True,
        stale_after=spec.stale_after,
        spawn=spawn or runtime.spawn, sleep=sleep or runtime.sleep)
