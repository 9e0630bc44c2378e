"""The hub: one stream's messages → history, last value, and a bounded queue per subscriber.

Fan-out follows the shape websockets' broadcast guide arrives at: the publisher never
touches a socket. It numbers a message, serializes it once into an ``Envelope`` and
appends that same object to every subscriber's queue; each subscriber's own sender loop
drains its queue. A slow subscriber therefore only fills its own queue: when the queue
is full the oldest unsent message is dropped (a dashboard wants the latest value), and
a subscriber that stays behind longer than ``slow_timeout`` is reported through its
``on_slow`` callback so the transport can close it.

Only stdlib ``threading`` primitives are used: under the server they are eventlet's
green versions (``monkey_patch`` runs first); in unit tests they are real threads.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

# Fields the hub owns; a producer or publisher cannot set them.
RESERVED_FIELDS = frozenset({"seq", "ts", "epoch", "gap"})


def compact_json(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def new_epoch() -> str:
    """A token that changes whenever a stream's numbering restarts (e.g. a server restart)."""
    return secrets.token_hex(6)


class Envelope:
    """One message as it goes out: serialized once, shared by every subscriber.

    ``wire(build)`` caches the transport's encoding (the WebSocket frame) on first use,
    so a broadcast builds one frame however many subscribers send it.
    """

    __slots__ = ("message", "seq", "text", "_wire")

    def __init__(self, message: Mapping[str, Any], dumps: Callable[[Mapping[str, Any]], str] = compact_json):
        self.message = message
        self.seq: int | None = message.get("seq")  # None for control messages
        self.text: str = dumps(message)
        self._wire: bytes | None = None

    def wire(self, build: Callable[[str], bytes]) -> bytes:
        if self._wire is None:
            self._wire = build(self.text)
        return self._wire


@dataclass(frozen=True)
class Resume:
    """What a reconnecting client saw last."""

    seq: int
    epoch: str


@dataclass
class HubStats:
    published: int = 0
    dropped: int = 0
    slow_closed: int = 0


class Subscription:
    """One subscriber's bounded queue; ``get`` blocks its sender loop until a message or close."""

    def __init__(
        self,
        hub: "Hub",
        capacity: int,
        slow_timeout: float,
        on_slow: Callable[["Subscription"], None] | None,
        clock: Callable[[], float],
    ) -> None:
        self.hub = hub
        self.capacity = capacity
        self.slow_timeout = slow_timeout
        self.dropped = 0
        self._on_slow = on_slow
        self._clock = clock
        self._items: deque[Envelope] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._closed = False
        self._behind_since: float | None = None
        self._flag_gap = False

    # --- hub side (never blocks) -------------------------------------------------

    def _prefill(self, backlog: Iterable[Envelope], gap: bool) -> None:
        """Messages owed at subscribe time; bypasses the capacity check (resume sends them all)."""
        self._items.extend(backlog)
        self._flag_gap = gap

    def _put(self, envelope: Envelope) -> Callable[["Subscription"], None] | None:
        """Queue ``envelope``; returns the ``on_slow`` callback once this subscriber has been
        behind for too long (the hub calls it after releasing its lock)."""
        with self._ready:
            if self._closed:
                return None
            while len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
                self.hub.stats.dropped += 1
                if self._behind_since is None:
                    self._behind_since = self._clock()
            self._items.append(envelope)
            self._ready.notify()
            if (self._on_slow is not None and self._behind_since is not None
                    and self._clock() - self._behind_since > self.slow_timeout):
                on_slow, self._on_slow = self._on_slow, None  # report once
                return on_slow
        return None

    # --- subscriber side -------------------------------------------------------

    def get(self, timeout: float | None = None) -> Envelope | None:
        """The next message, or None once closed (or when ``timeout`` passes with nothing)."""
        with self._ready:
            if not self._items and not self._closed:
                self._ready.wait(timeout)
            if not self._items:
                return None
            envelope = self._items.popleft()
            if not self._items:
                self._behind_since = None  # caught up
            gap, self._flag_gap = self._flag_gap, False
        if gap:
            # The only per-subscriber serialization: this client asked to resume from a
            # point the history cannot reach, so its first message carries the gap signal.
            return Envelope({**envelope.message, "gap": True})
        return envelope

    def push(self, envelope: Envelope) -> None:
        """A one-off message for this subscriber only (a control message), after what is queued."""
        with self._ready:
            if not self._closed:
                self._items.append(envelope)
                self._ready.notify()

    def close(self) -> None:
        """Stop delivery: ``get`` returns None from now on. Idempotent."""
        with self._ready:
            self._closed = True
            self._items.clear()
            self._ready.notify_all()
        self.hub.unsubscribe(self)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        return len(self._items)


class Hub:
    """One stream's numbering, history and subscribers."""

    def __init__(
        self,
        name: str,
        *,
        history_size: int = 100,
        queue_size: int = 100,
        slow_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        dumps: Callable[[Mapping[str, Any]], str] = compact_json,
        epoch: str | None = None,
        on_idle: Callable[["Hub"], None] | None = None,
        stats: HubStats | None = None,
    ) -> None:
        self.name = name
        self._on_idle = on_idle
        self.epoch = epoch or new_epoch()
        self.queue_size = queue_size
        self.slow_timeout = slow_timeout
        self.stats = stats or HubStats()  # private streams pass one for all their hubs
        self._clock = clock
        self._dumps = dumps
        self._seq = 0
        self._history: deque[Envelope] = deque(maxlen=max(history_size, 1))
        self._subscribers: set[Subscription] = set()
        # Publish and subscribe take the same lock, so a new subscriber's backlog and
        # its first live message meet exactly: no duplicate, no hole.
        self._lock = threading.Lock()

    @property
    def last(self) -> Envelope | None:
        return self._history[-1] if self._history else None

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, fields: Mapping[str, Any]) -> Envelope:
        """Number, stamp and serialize ``fields`` once, then queue it for every subscriber."""
        with self._lock:
            self._seq += 1
            message = {**fields, "seq": self._seq, "ts": self._clock(), "epoch": self.epoch}
            envelope = Envelope(message, self._dumps)
            self._history.append(envelope)
            self.stats.published += 1
            # Delivery stays under the lock so concurrent publishers cannot reorder
            # messages; _put never blocks, so the lock is held only briefly.
            laggards = []
            for subscription in self._subscribers:
                on_slow = subscription._put(envelope)
                if on_slow is not None:
                    laggards.append((on_slow, subscription))
        for on_slow, subscription in laggards:
            self.stats.slow_closed += 1
            on_slow(subscription)
        return envelope

    def subscribe(
        self,
        resume: Resume | None = None,
        on_slow: Callable[[Subscription], None] | None = None,
    ) -> Subscription:
        subscription = Subscription(self, self.queue_size, self.slow_timeout, on_slow, self._clock)
        with self._lock:
            backlog, gap = self._backlog(resume)
            subscription._prefill(backlog, gap)
            self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            was_member = subscription in self._subscribers
            self._subscribers.discard(subscription)
            idle = was_member and not self._subscribers
        if idle and self._on_idle is not None:
            self._on_idle(self)

    def _backlog(self, resume: Resume | None) -> tuple[list[Envelope], bool]:
        """What a new subscriber is owed, and whether it must be told it missed data."""
        if resume is None:
            # Last value on connect: the screen shows something at once.
            return ([self._history[-1]] if self._history else []), False
        if resume.epoch == self.epoch and 0 <= resume.seq <= self._seq:
            missed = self._seq - resume.seq
            if missed == 0:
                return [], False
            if missed <= len(self._history):
                return list(self._history)[-missed:], False
        # Another numbering (server restarted) or history too short: gap, then the latest.
        # With nothing published yet the first live message carries the gap signal.
        return ([self._history[-1]] if self._history else []), True
