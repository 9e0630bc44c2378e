"""Fan-out: this process's subscribers of one stream, and the pass that hands them an entry.

The pass writes the one shared frame to each subscriber's socket without blocking and
without switching to a green thread per subscriber (``Session.write``): a socket that
takes the whole frame costs one loop iteration and one ``send()``; only a socket that
cannot take it keeps pending bytes and is watched until it catches up (the slow-subscriber
policy lives there). A pass over thousands of subscribers yields to the hub every
``yield_every`` writes so handshakes, pings and reads are not starved by one big publish.

While a pass is yielded, a new entry can arrive (another publisher, the next tick): it is
queued and the running pass delivers it next, so every subscriber sees entries in log
order. A subscriber that joined during a pass already got its backlog from the log; the
per-subscription ``(epoch, seq)`` check skips what it already has, so joining mid-pass
neither duplicates nor skips a message.

The resume bookkeeping (``epoch``, ``last_seq``, whether the next message carries the gap
signal) is the Subscription's alone: the session hands it frames and calls back its narrow
interface (``missed``, ``count_dropped``, ``count_slow_closed``, ``cancel``; the session's
side is ``sessions.session.Subscribed``), so sessions/ never imports streams/.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from dashstream.messages import Entry
    from dashstream.sessions.session import Session
    from dashstream.streams.log import Resume

YIELD_EVERY = 256


class Subscription:
    """One session's interest in one stream: what it has had, and how it wants frames.

    ``multi``: the session carries several streams, so frames name the stream.
    While ``priming`` is a list, live entries wait in it (a backlog is being fetched from a
    log that has to ask another server); ``start()`` sends them after the backlog.
    """

    __slots__ = ("session", "stream", "multi", "epoch", "last_seq", "gap", "priming")

    def __init__(self, session: "Session", stream, multi: bool = False):
        self.session = session
        self.stream = stream
        self.multi = multi
        self.epoch: str | None = None
        self.last_seq = 0
        self.gap = False  # the next entry must carry the gap signal
        self.priming: list | None = None

    @property
    def stream_name(self) -> str:
        return self.stream.name

    def deliver(self, entry: "Entry") -> None:
        if entry.epoch == self.epoch:
            if entry.seq <= self.last_seq:
                return  # already sent (the backlog had it)
        elif self.epoch is not None:
            self.gap = True  # the log's numbering restarted under us
        if self.priming is not None:
            self.priming.append(entry)
            return
        self.epoch = entry.epoch
        self.last_seq = entry.seq
        if self.gap:
            self.gap = False
            self.session.send_entry(entry, self, gap=True)
        else:
            self.session.send_entry(entry, self)

    def backlog(self, entries: list, gap: bool, resume: "Resume | None" = None) -> None:
        """Send what the log says this subscriber is owed; ``gap``: data was missed. With
        nothing owed to a resume that was honoured, the client is up to date: what it has
        is where this subscription stands."""
        if entries:
            last = entries[-1]
            self.epoch, self.last_seq, self.gap = last.epoch, last.seq, False
            self.session.send_backlog(entries, self, gap)
            return
        self.gap = gap
        if resume is not None and not gap:
            self.epoch, self.last_seq = resume.epoch, resume.seq

    def missed_before(self, entry: "Entry") -> None:
        """``entry`` follows a hole in the log's numbering: if this subscriber, on that epoch,
        had not reached the entry just before it, its next message carries the gap signal
        (one whose backlog already went past the hole is left alone)."""
        if self.epoch == entry.epoch and self.last_seq < entry.seq - 1:
            self.gap = True

    # --- what the session calls back ---

    def missed(self) -> None:
        """The session dropped one of this stream's messages with none queued behind it to
        carry the news: the next live message carries the gap signal."""
        self.gap = True

    def count_dropped(self) -> None:
        self.stream.count_dropped()

    def count_slow_closed(self) -> None:
        self.stream.count_slow_closed()

    def cancel(self) -> None:
        """The session ends: leave the stream."""
        self.stream.unsubscribe(self)

    def start(self) -> None:
        """Leave priming: send the live entries that arrived while the backlog was fetched."""
        waiting, self.priming = self.priming, None
        for entry in waiting or ():
            self.deliver(entry)


class Fanout:
    def __init__(self, *, yield_every: int = YIELD_EVERY, pause: Callable[[], None] | None = None,
                 on_pass: Callable[[int, "Entry"], None] | None = None):
        self._subscriptions: dict[Subscription, None] = {}  # insertion-ordered set
        self._queue: deque = deque()
        self._busy = False
        self._yield_every = yield_every
        self._pause = pause
        self._on_pass = on_pass  # (deliveries, entry): metrics, counted once per pass

    def __len__(self) -> int:
        return len(self._subscriptions)

    def __iter__(self):
        return iter(list(self._subscriptions))

    def add(self, subscription: Subscription) -> None:
        self._subscriptions[subscription] = None

    def discard(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription, None)

    def mark_missed(self, entry: "Entry") -> None:
        """A shared log found a hole before ``entry`` (trimmed past what this instance had
        read): every subscriber that had not reached it gets the gap signal."""
        for subscription in self._subscriptions:
            subscription.missed_before(entry)

    def deliver(self, entry: "Entry") -> None:
        self._queue.append(entry)
        if self._busy:
            return  # the pass in progress (yielded to the hub) takes it next, in order
        self._busy = True
        try:
            while self._queue:
                self._pass(self._queue.popleft())
        finally:
            self._busy = False

    def _pass(self, entry: "Entry") -> None:
        subscriptions = list(self._subscriptions)
        step, pause = self._yield_every, self._pause
        for start in range(0, len(subscriptions), step):
            if start and pause is not None:
                pause()
            for subscription in subscriptions[start:start + step]:
                subscription.deliver(entry)
        if self._on_pass is not None:
            self._on_pass(len(subscriptions), entry)
