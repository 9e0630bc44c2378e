"""Streams: a name, where its values come from, its log, and this process's subscribers.

* ``SharedStream``: one log and one fan-out; every subscriber sees the same numbered
  values. Values come from a source run by a supervisor (a shared random walk, SQL, Redis,
  ZeroMQ, a ticker) or from outside (``POST /publish``). The stream is built with what it
  needs: a log factory (memory, or the backplane's shared log) and a runner factory (the
  plain supervisor, or the backplane's leased producer); nothing is rewired afterwards.
* ``PrivateStream``: every subscriber gets its own source, run by its own supervisor, and
  its own numbering (the tutorial's behaviour, and the default stream at ``/``). The value
  goes straight to its one client: no fan-out, no queue, one green thread per client.

A stream also carries its source's health (``up``, ``down`` with a reason, ``stale``):
clients that asked for control messages are told when it changes, and once on connect
while it is not ``up``.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, Iterable, Mapping

from dashstream import runtime
from dashstream.messages import ControlMessage, Entry, encode_fields
from dashstream.streams.fanout import Fanout, Subscription
from dashstream.streams.log import LogUnavailable, PrivateLog, Resume, memory_log
from dashstream.streams.supervisor import Backoff, Supervisor, source_supervisor
from producer.base import STARTING, UP, Source

logger = logging.getLogger("dashstream.streams")

# A new source for a private client (the spec's class with its options).
SourceFactory = Callable[[], Source]
# What runs a shared stream's source, made once the stream exists: ``runner(stream)`` returns
# an object with start(), stop(), running and note_value() (a Supervisor, or the Redis
# backplane's LeasedProducer), or None for a stream without a source of its own.
RunnerFactory = Callable[["SharedStream"], Any]

# The private supervisors' retry jitter: one generator for all (a Random each would cost
# 2.5 KB and a urandom read per client; a private walk never fails, so it is never drawn from).
_PRIVATE_RNG = random.Random()
# The private walks' steps and waits: one generator for all of them too (a Random each was
# 2.5 KB of state per client, cold at every wake); each walk's values are still independent
# draws.
_WALK_RNG = random.Random()
# A private walk's waits end on a grid (runtime.grid_sleep): at most this share of its longest
# wait late, and never more than GRID_MAX_MS.
GRID_SHARE = 1 / 200
GRID_MAX_MS = 5


def grid_step_ms(longest_wait: float) -> int:
    """The grid step, in whole milliseconds, for walks whose waits are under ``longest_wait``
    seconds: the default walk (waits under 1 s) gets 5 ms, a walk of 10 ms waits 1 ms.
    Every hub wake-up costs about 40 µs of CPU here whatever it wakes, so the step sets how
    many walks share one: at 5,000 walks, 200 wake-ups a second instead of 500 at 2 ms, 1.5-2
    µs less per message (BENCHMARKS.md, "Private walks: a coarser grid"). A wait that ends up
    to 5 ms late is 0.5 % of a 1 s wait's range, below anything a screen shows."""
    return max(1, min(GRID_MAX_MS, int(longest_wait * 1000 * GRID_SHARE)))


class StreamStats:
    __slots__ = ("dropped", "slow_closed", "rejected", "coalesced")

    def __init__(self):
        self.dropped = 0
        self.slow_closed = 0
        self.rejected = 0
        self.coalesced = 0


class Stream:
    """What the transport needs from a stream."""

    name: str
    source: str
    shared: bool

    def __init__(self, name: str, source: str):
        self.name = name
        self.source = source
        self.stats = StreamStats()
        self.state = UP
        self.reason = ""
        self.since = time.time()

    # --- subscribers ----------------------------------------------------------------------

    def subscribe(self, session, resume: Resume | None = None, multi: bool = False,
                  recent: int = 1) -> Subscription:
        """``recent``: entries owed without a resume point (``?history=N``; log.owed)."""
        raise NotImplementedError

    def unsubscribe(self, subscription: Subscription) -> None:
        raise NotImplementedError

    @property
    def subscriber_count(self) -> int:
        raise NotImplementedError

    def count_dropped(self) -> None:
        self.stats.dropped += 1

    def count_slow_closed(self) -> None:
        self.stats.slow_closed += 1

    def count_rejected(self, reason: str = "") -> None:
        """A supervisor rejected a value (it writes the log line): the stream's one counter."""
        self.stats.rejected += 1

    def count_coalesced(self) -> None:
        """A source's value was replaced by a newer one before it could be published (the
        supervisor's pacing): counted, never queued."""
        self.stats.coalesced += 1

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin producing (shared streams); called once when the server starts."""

    def stop(self) -> None:
        """Stop producing; called at shutdown."""

    @property
    def producers(self) -> int:
        """Producer loops running now (health reports it; a leak would show here)."""
        return 0

    # --- source health --------------------------------------------------------------------

    def set_health(self, state: str, reason: str = "", since: float | None = None) -> None:
        """The source is ``up``, ``down`` (why) or ``stale`` (since ``since``, the supervisor's
        clock; default: now); tell the control clients. ``since`` is when the state began: a
        new reason for the same state (a refused retry after a dropped connection) keeps it."""
        if (state, reason) == (self.state, self.reason):
            return
        if since is None:
            since = self.since if state == self.state else time.time()
        self.state, self.reason, self.since = state, reason, since
        message = self.health_message()
        for session in self._sessions():
            session.send_control(message)

    def health_message(self) -> ControlMessage:
        return ControlMessage({"control": "source", "stream": self.name, "state": self.state,
                               "since": self.since, "reason": self.reason})

    def _sessions(self) -> Iterable:
        return ()

    def _welcome(self, session) -> None:
        if self.state != UP and session.control:
            session.send_control(self.health_message())

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source, "shared": self.shared,
                "subscribers": self.subscriber_count, "state": self.state, "reason": self.reason,
                "since": self.since, "dropped": self.stats.dropped, "slow_closed": self.stats.slow_closed,
                "rejected": self.stats.rejected, "coalesced": self.stats.coalesced}


class SharedStream(Stream):
    shared = True

    def __init__(self, name: str, source: str, *, history: int = 100, clock: Callable[[], float] = time.time,
                 log_factory=None, runner: RunnerFactory | None = None, on_pass=None):
        super().__init__(name, source)
        self.fanout = Fanout(pause=runtime.cooperative_yield, on_pass=on_pass)
        # A shared log may find a hole in the numbering (trimmed past what this instance read):
        # the fan-out marks who missed something.
        self.log = (log_factory or memory_log)(name, history=history, clock=clock, on_entry=self.fanout.deliver,
                                               on_hole=self.fanout.mark_missed)
        # Runs the source (retries, health, stale clock: supervisor.py); None: a stream fed
        # only through publish() (tests).
        self.supervisor = runner(self) if runner is not None else None

    def subscribe(self, session, resume: Resume | None = None, multi: bool = False,
                  recent: int = 1) -> Subscription:
        subscription = Subscription(session, self, multi)
        # Join first, priming: a shared log (redis_log.py) may ask Redis for the backlog and
        # yield meanwhile; live entries wait in ``priming`` and start() sends those the
        # backlog did not have (a MemoryLog answers at once, so nothing waits there).
        subscription.priming = []
        self.fanout.add(subscription)
        session.subscriptions.append(subscription)  # a close while we wait unsubscribes it
        entries, gap = self.log.backlog(resume, recent)
        subscription.backlog(entries, gap, resume)
        subscription.start()
        self._welcome(session)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self.fanout.discard(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self.fanout)

    def _sessions(self) -> Iterable:
        return [subscription.session for subscription in self.fanout]

    def publish(self, fields: Mapping[str, Any]) -> Entry:
        """Check and encode first (``BadFields``: nothing is numbered), then number and fan out."""
        return self.log.append(encode_fields(fields))

    def publish_from_outside(self, fields: Mapping[str, Any]) -> Entry:
        """``POST /publish``: publish, and tell the supervisor a value came (its stale clock)."""
        entry = self.publish(fields)
        if self.supervisor is not None:
            self.supervisor.note_value()
        return entry

    def publish_from_source(self, fields: Mapping[str, Any]) -> Entry | None:
        """A supervised source's value: the entry, or None when the log could not take it now.
        A value the log cannot encode raises ``BadFields``: the supervisor counts and logs it."""
        try:
            return self.publish(fields)
        except LogUnavailable as error:
            # The backplane is down or the lease moved: the backplane says so (once) and
            # stops this producer; the value is not numbered.
            logger.debug("stream %r: a value was not published: %s", self.name, error.reason)
        return None

    def start(self) -> None:
        if self.supervisor is not None:
            self.supervisor.start()

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()

    @property
    def producers(self) -> int:
        if self.supervisor is not None:
            return int(self.supervisor.running)
        return 0

    def describe(self) -> dict:
        last = self.log.last
        return {**super().describe(), "last_seq": last.seq if last else None,
                "last_ts": last.ts if last else None, "epoch": self.log.epoch}


class _ClientThread:
    """A private supervisor's green thread: ``kill()`` spares the thread that calls it. A
    client's own source may be what stops it (its write found the client gone, and the
    teardown unsubscribes): killing our own green thread would cut that teardown short, and
    the supervisor ends its loop after this value anyway."""

    __slots__ = ("thread",)

    def __init__(self, function: Callable[[], None]):
        self.thread = runtime.spawn(function)

    def kill(self) -> None:
        if not self.thread.dead and self.thread is not runtime.getcurrent():
            self.thread.kill()


class PrivateStream(Stream):
    shared = False

    def __init__(self, name: str, source: str, factory: SourceFactory, *,
                 clock: Callable[[], float] = time.time, on_delivery=None):
        super().__init__(name, source)
        self.on_delivery = on_delivery  # (entry) per value: metrics.private_delivery
        self._factory = factory
        self._clock = clock
        self._supervisors: dict[Subscription, Supervisor] = {}

    def subscribe(self, session, resume: Resume | None = None, multi: bool = False,
                  recent: int = 1) -> Subscription:
        subscription = Subscription(session, self, multi)
        # A fresh numbering per client: there is nothing to resume, so a resume gets the gap.
        own_log = PrivateLog(self.name, clock=self._clock, on_entry=subscription.deliver,
                             on_delivered=self.on_delivery)
        subscription.backlog(*own_log.backlog(resume))
        supervisor = self._supervisor(own_log, session)
        self._supervisors[subscription] = supervisor
        session.subscriptions.append(subscription)
        supervisor.start()
        self._welcome(session)
        return subscription

    def _supervisor(self, own_log: PrivateLog, session) -> Supervisor:
        """The client's own source under its own supervisor: values into its own log, its
        states to that client alone, rejections into the stream's one counter. No stale
        clock (a private walk never had one): one green thread per client, no timer."""
        return Supervisor(self.name, self._factory(), on_value=own_log.publish, on_health=self._client_health(session),
                          on_rejected=self.count_rejected, spawn=_ClientThread,
                          sleep=runtime.sleep, backoff=Backoff(rng=_PRIVATE_RNG), announce=False)

    def _client_health(self, session) -> Callable[[str, str, float], None]:
        """A private source's state concerns its one client: it hears of a change (a
        control message, if it asked for them), not of the start. It was welcomed with the
        stream's state (up), so a source that comes up is no news either."""
        told = [UP, ""]

        def tell(state: str, reason: str, since: float) -> None:
            if reason == STARTING or [state, reason] == told:
                return
            told[:] = [state, reason]
            session.send_control(ControlMessage({"control": "source", "stream": self.name, "state": state,
                                                 "since": since, "reason": reason}))

        return tell

    def unsubscribe(self, subscription: Subscription) -> None:
        supervisor = self._supervisors.pop(subscription, None)
        if supervisor is not None:
            supervisor.stop()

    @property
    def subscriber_count(self) -> int:
        return len(self._supervisors)

    def _sessions(self) -> Iterable:
        return [subscription.session for subscription in self._supervisors]

    def stop(self) -> None:
        for subscription in list(self._supervisors):
            self.unsubscribe(subscription)

    @property
    def producers(self) -> int:
        return sum(1 for supervisor in self._supervisors.values() if supervisor.running)

    def describe(self) -> dict:
        return {**super().describe(), "last_seq": None, "last_ts": None}


def streams_from_config(config, on_pass=None, backplane=None, durable=None,
                        on_private=None) -> dict[str, Stream]:
    """Running streams for the config's specs (the default stream is always among them).
    ``backplane`` (backplane/) gives shared streams their log and what runs their source
    (through Redis: a producer under a lease); None: memory and the plain supervisor.
    ``durable`` (``--state``: ``durable.DurableState``) gives their log instead: a memory
    log kept in a file (refused with a backplane, where Redis keeps the logs).
    ``on_pass(deliveries, entry)``: a shared stream's fan-out pass; ``on_private(entry)``: a
    private stream's value, handed to its one client (metrics count both)."""
    from producer import SOURCES

    streams: dict[str, Stream] = {}
    for spec in config.streams:
        if not spec.shared:
            # A private walk is new for every client, under a supervisor of its own. Its
            # waits end on a grid (runtime.grid_sleep, grid_step_ms): one hub timer per step
            # for every walk due then, not one per wake (only the random walk can be private,
            # and it takes its sleep and its generator as arguments).
            walk = SOURCES[spec.source]
            longest_wait = walk(**spec.options, rng=_WALK_RNG).max_wait  # the walk's own default if unset
            sleep = runtime.grid_sleep(grid_step_ms(longest_wait))
            factory = lambda cls=walk, options=spec.options, sleep=sleep: cls(  # noqa: E731
                **options, sleep=sleep, rng=_WALK_RNG)
            streams[spec.name] = PrivateStream(spec.name, spec.source, factory, on_delivery=on_private)
            continue
        log_factory = (durable.log_factory(spec) if durable is not None
                       else backplane.log_factory(spec) if backplane is not None else None)
        runner = backplane.runner_factory(spec) if backplane is not None else None
        streams[spec.name] = SharedStream(spec.name, spec.source, history=spec.history or config.history,
                                          on_pass=on_pass, log_factory=log_factory,
                                          runner=runner or plain_runner(spec))
    return streams


def plain_runner(spec) -> RunnerFactory:
    """The runner of a stream served by this process alone: its source under a supervisor."""
    return lambda stream: source_supervisor(spec, stream)
