"""Streams: a name, where its values come from, its log, and this process's subscribers.

* ``SharedStream``: one log and one fan-out; every subscriber sees the same numbered
  values. Values come from a producer run by the server (a shared random walk) or from
  outside (``POST /publish``).
* ``PrivateStream``: every subscriber gets its own producer and its own numbering (the
  tutorial's behaviour, and the default stream at ``/``). The producer's value goes straight
  to its one client: no fan-out, no queue, no second green thread.

A stream also carries its source's health (``up``, ``down`` with a reason, ``stale``):
clients that asked for control messages are told when it changes, and once on connect
while it is not ``up``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable, Mapping

from dashstream import runtime
from dashstream.messages import BadFields, ControlMessage, Entry, encode_fields
from dashstream.streams.fanout import Fanout, Subscription
from dashstream.streams.log import LogUnavailable, MemoryLog, Resume

log = logging.getLogger("dashstream.streams")

ProducerFactory = Callable[[], Iterable[Mapping[str, Any]]]

UP, DOWN, STALE = "up", "down", "stale"


class StreamStats:
    __slots__ = ("published", "dropped", "slow_closed", "rejected")

    def __init__(self):
        self.published = 0
        self.dropped = 0
        self.slow_closed = 0
        self.rejected = 0


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

    def subscribe(self, session, resume: Resume | None = None, multi: bool = False) -> Subscription:
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
                "rejected": self.stats.rejected}


class SharedStream(Stream):
    shared = True

    def __init__(self, name: str, source: str, factory: ProducerFactory | None, *, history: int = 100,
                 clock: Callable[[], float] = time.time, log_factory=None, on_pass=None):
        super().__init__(name, source)
        self.fanout = Fanout(pause=runtime.cooperative_yield, on_pass=on_pass)
        self.log = (log_factory or MemoryLog)(name, history=history, clock=clock, on_entry=self.fanout.deliver)
        self._factory = factory
        self._pump: runtime.GreenThread | None = None
        # Runs the source (retries, health, stale clock: dashstream/supervisor.py); None for
        # a stream that runs its own plain loop (the random walk, which cannot fail).
        self.supervisor = None
        self._rejection_logged = float("-inf")

    def subscribe(self, session, resume: Resume | None = None, multi: bool = False) -> Subscription:
        subscription = Subscription(session, self, multi)
        # Join first, priming: a shared log (redis_log.py) may ask Redis for the backlog and
        # yield meanwhile; live entries wait in ``priming`` and start() sends those the
        # backlog did not have (a MemoryLog answers at once, so nothing waits there).
        subscription.priming = []
        self.fanout.add(subscription)
        session.subscriptions.append(subscription)  # a close while we wait unsubscribes it
        entries, gap = self.log.backlog(resume)
        if resume is not None and not gap and not entries:
            # Up to date: what the client has is where this subscription stands.
            subscription.epoch, subscription.last_seq = resume.epoch, resume.seq
        subscription.backlog(entries, gap)
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
        body = encode_fields(fields)
        self.stats.published += 1
        return self.log.append(body)

    def publish_from_outside(self, fields: Mapping[str, Any]) -> Entry:
        """``POST /publish``: publish, and tell the supervisor a value came (its stale clock)."""
        entry = self.publish(fields)
        if self.supervisor is not None:
            self.supervisor.note_value()
        return entry

    def publish_from_source(self, fields: Mapping[str, Any]) -> Entry | None:
        """A producer's value: the entry, or None when it was rejected or not published."""
        try:
            return self.publish(fields)
        except BadFields as error:
            self.stats.rejected += 1
            now = time.monotonic()
            if now - self._rejection_logged >= 60:  # at most a line a minute: a broken source repeats
                self._rejection_logged = now
                log.warning("stream %r: a value was rejected (%d so far): %s", self.name, self.stats.rejected, error)
        except LogUnavailable as error:
            # The backplane is down or the lease moved: the backplane says so (once) and
            # stops this producer; the value is not numbered.
            log.debug("stream %r: a value was not published: %s", self.name, error.reason)
        return None

    def start(self) -> None:
        if self.supervisor is not None:
            self.supervisor.start()
        elif self._factory is not None and self._pump is None:
            self._pump = runtime.spawn(self._run)

    def _run(self) -> None:
        try:
            for fields in self._factory():
                self.publish_from_source(fields)
        except Exception:  # noqa: BLE001 - a broken producer must not take the server down
            log.exception("producer of stream %r failed", self.name)

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        if self._pump is not None:
            self._pump.kill()
            self._pump = None

    @property
    def producers(self) -> int:
        if self.supervisor is not None:
            return int(self.supervisor.running)
        return int(self._pump is not None and not self._pump.dead)

    def describe(self) -> dict:
        last = self.log.last
        return {**super().describe(), "last_seq": last.seq if last else None,
                "last_ts": last.ts if last else None, "epoch": self.log.epoch}


class _PrivateFeed:
    """One client's own producer, in a green thread that writes to that client directly."""

    __slots__ = ("thread", "stopped")

    def __init__(self):
        self.thread: runtime.GreenThread | None = None
        self.stopped = False

    def run(self, factory: ProducerFactory, log_: MemoryLog, stream: "PrivateStream") -> None:
        on_pass = stream.on_pass
        try:
            for fields in factory():
                if self.stopped:
                    return
                try:
                    entry = log_.append(encode_fields(fields))
                    if on_pass is not None:
                        on_pass(1, entry)
                except BadFields as error:
                    stream.stats.rejected += 1
                    log.warning("stream %r: a value was rejected: %s", stream.name, error)
                if self.stopped:
                    return
        except Exception:  # noqa: BLE001 - a broken producer must not take the server down
            log.exception("producer of stream %r failed", stream.name)

    def stop(self) -> None:
        self.stopped = True
        thread = self.thread
        # The feed may be stopping itself (its write found the client gone): then it just
        # returns after this value; killing our own green thread would cut the teardown short.
        if thread is not None and not thread.dead and thread is not runtime.getcurrent():
            thread.kill()


class PrivateStream(Stream):
    shared = False

    def __init__(self, name: str, source: str, factory: ProducerFactory, *,
                 clock: Callable[[], float] = time.time, on_pass=None):
        super().__init__(name, source)
        self.on_pass = on_pass  # (1, entry) per value: metrics
        self._factory = factory
        self._clock = clock
        self._feeds: dict[Subscription, _PrivateFeed] = {}

    def subscribe(self, session, resume: Resume | None = None, multi: bool = False) -> Subscription:
        subscription = Subscription(session, self, multi)
        # A fresh numbering per client: there is nothing to resume, so a resume gets the gap.
        own_log = MemoryLog(self.name, history=1, clock=self._clock, on_entry=subscription.deliver)
        subscription.backlog(*own_log.backlog(resume))
        feed = _PrivateFeed()
        self._feeds[subscription] = feed
        session.subscriptions.append(subscription)
        feed.thread = runtime.spawn(feed.run, self._factory, own_log, self)
        self._welcome(session)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        feed = self._feeds.pop(subscription, None)
        if feed is not None:
            feed.stop()

    @property
    def subscriber_count(self) -> int:
        return len(self._feeds)

    def _sessions(self) -> Iterable:
        return [subscription.session for subscription in self._feeds]

    def stop(self) -> None:
        for subscription in list(self._feeds):
            self.unsubscribe(subscription)

    @property
    def producers(self) -> int:
        return sum(1 for feed in self._feeds.values() if feed.thread is not None and not feed.thread.dead)

    def describe(self) -> dict:
        return {**super().describe(), "last_seq": None, "last_ts": None}


def streams_from_config(config, on_pass=None, backplane=None, log_factory=None) -> dict[str, Stream]:
    """Running streams for the config's specs (the default stream is always among them).
    ``backplane`` (backplane.py) gives shared streams their log and, through Redis, runs
    their producers under a lease; None: memory, as one process. ``log_factory(spec)``, if
    given, gives their log instead (``--state``: durable.DurableState.log_factory)."""
    if log_factory is None and backplane is not None:
        log_factory = backplane.log_factory
    from dashstream.streams.supervisor import SELF_RUN, source_supervisor
    from producer import SOURCES

    streams: dict[str, Stream] = {}
    for spec in config.streams:
        source_class = SOURCES[spec.source]
        factory = lambda cls=source_class, options=spec.options: cls(**options)  # noqa: E731
        if not spec.shared:
            # A private walk is new for every client: its own loop writes to that client.
            streams[spec.name] = PrivateStream(spec.name, spec.source, factory, on_pass=on_pass)
            continue
        stream = SharedStream(spec.name, spec.source, factory if spec.source in SELF_RUN else None,
                              history=spec.history or config.history, on_pass=on_pass,
                              log_factory=log_factory(spec) if log_factory is not None else None)
        stream.supervisor = source_supervisor(spec, stream)
        if backplane is not None:
            backplane.adopt(spec, stream)
        streams[spec.name] = stream
    return streams
