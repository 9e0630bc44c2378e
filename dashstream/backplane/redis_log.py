"""A stream's log kept in Redis, so that every instance shares one numbering, epoch and history.

``RedisLog`` has ``MemoryLog``'s interface (``append``, ``last``, ``backlog``, ``epoch``,
``seq``, ``history_size``, ``on_entry``) and is what ``SharedStream`` gets when the server
runs with ``--backplane redis://...``. It is two things:

* **the shared log, in Redis** (written by ``append``, read by ``backlog`` when needed,
  through a *store*: ``dashstream.backplane.redis.RedisBackplane``). One atomic Lua script
  numbers and appends (see there); ``append`` does **not** deliver: every instance's tail
  (XREAD BLOCK on the logs, the publishing instance's own included) hands each new entry
  to ``receive``, which calls ``on_entry``, so delivery has one path whoever published.
* **this instance's mirror of it**, kept by the tail: the epoch, the last ``seq`` and the
  last ``history`` entries as read, in order, without holes. The mirror answers the common
  questions without a round trip to Redis: the last value for a new screen, and the
  backlog of a screen that resumes from a point the tail has already passed (a deploy's
  thousands of reconnecting screens cost Redis nothing). The mirror spans as much as
  Redis keeps (both hold ``history`` entries), so a resume it cannot honour Redis could not
  either. Only a resume *ahead* of the mirror (the client saw entries on another instance
  that this tail has not read yet) or from an unknown epoch asks Redis, atomically.

Nothing in this module does I/O itself or knows redis-py: the store does, so the rules here
are tested with a fake store (``tests/unit/test_redis_log.py``).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable, Protocol

from dashstream.messages import Entry
from dashstream.streams.log import LogUnavailable, Resume, owed


class LogStore(Protocol):
    """What a ``RedisLog`` needs from the backplane (``RedisBackplane`` implements it)."""

    def append(self, log: "RedisLog", body: str, ts: float) -> tuple[int, str]:
        """Number and store ``body``: ``(seq, epoch)``; raises ``LogUnavailable``."""

    def read(self, log: "RedisLog", after: int | None) -> tuple[str | None, int, Entry | None, list[Entry]]:
        """Atomically: the stream's epoch and seq in Redis, its newest entry, and the entries
        after seq ``after`` (at most the history; none asked for when ``after`` is None);
        raises ``LogUnavailable``."""


class RedisLog:
    """One stream's shared log; see the module docstring."""

    remote = True  # its backlog may ask another server (streams.py primes the subscription)

    def __init__(self, stream: str, *, history: int = 100, clock: Callable[[], float] = time.time,
                 on_entry: Callable[[Entry], None] | None = None,
                 on_hole: Callable[[Entry], None] | None = None, store: LogStore, fenced: bool = False):
        self.stream = stream
        self.on_entry = on_entry
        # Called with the entry after a hole or a restart of the numbering, before it is
        # delivered (the stream's fan-out marks the subscribers that missed something).
        self.on_hole = on_hole
        # The stream's producer runs under a lease: Redis refuses its appends unless this
        # instance holds the lease at that moment (fencing; see redis.py).
        self.fenced = fenced
        self.store = store
        self._clock = clock
        self._recent: deque[Entry] = deque(maxlen=max(history, 1))
        self.epoch: str | None = None
        self.seq = 0
        self.synced = False  # the mirror has been loaded from Redis at least once

    @property
    def history_size(self) -> int:
        return self._recent.maxlen

    @property
    def last(self) -> Entry | None:
        return self._recent[-1] if self._recent else None

    # --- writing (any instance) -------------------------------------------------------------

    def append(self, body: str) -> Entry:
        """Number and store a message; its delivery comes back through the tail. Raises
        ``LogUnavailable`` (nothing numbered, or at least nothing acknowledged)."""
        ts = self._clock()
        seq, epoch = self.store.append(self, body, ts)
        return Entry(self.stream, seq, ts, epoch, body)

    # --- reading: what a new subscriber is owed ---------------------------------------------

    def backlog(self, resume: Resume | None, recent: int = 1) -> tuple[list[Entry], bool]:
        """The resume rule (``log.owed``) over the mirror when it can answer, else over what
        Redis holds. May yield to other green threads (the Redis read). ``recent`` > 1
        (``?history=N``) without a mirror reads the whole Redis stream: it holds at most
        ``history`` entries, so that is the newest ones."""
        if self._mirror_answers(resume):
            return owed(self._recent, self.seq, self.epoch, resume, recent)
        after_seq = resume.seq if resume is not None else (0 if recent > 1 else None)
        try:
            epoch, seq, newest, after = self.store.read(self, after_seq)
        except LogUnavailable:
            return self._without_redis(resume)
        if resume is not None and recent > 1 and not (resume.epoch == epoch and 0 <= resume.seq <= seq):
            try:  # the resume cannot be honoured: what the chart needs, from the start of Redis's log
                epoch, seq, newest, after = self.store.read(self, 0)
            except LogUnavailable:
                return self._without_redis(resume)
        history = after or ([newest] if newest is not None else [])
        return owed(history, seq, epoch, resume, recent)

    def _mirror_answers(self, resume: Resume | None) -> bool:
        if not self.synced:
            return False
        if resume is None:
            return True  # the newest entry the tail has read: the next live one follows it
        return resume.epoch == self.epoch and resume.seq <= self.seq

    def _without_redis(self, resume: Resume | None) -> tuple[list[Entry], bool]:
        """Redis cannot be asked (the backplane is down): the best honest answer. (A resume
        the mirror could answer never gets here.)"""
        latest = [self.last] if self._recent else []
        if resume is None:
            return latest, False
        if resume.epoch == self.epoch:
            # The client saw entries this tail has not read yet: nothing is owed now, and the
            # tail brings what follows when it catches up (streams.py positions the
            # subscription at the client's seq, so nothing is sent twice).
            return [], False
        return latest, True

    # --- the tail's side: keeping the mirror ----------------------------------------------------

    def resync(self, epoch: str | None, seq: int, recent: list[Entry]) -> int:
        """After a (re)connect to Redis, or word that the numbering restarted: what Redis holds
        now (its epoch and seq, its newest entries oldest first). Returns the seq to tail
        from.

        Same epoch, not behind us: the tail goes on from our last seq (XREAD brings what we
        missed; ``receive`` finds a hole if Redis trimmed past it). Anything else (first
        load, another epoch, the stream gone): the mirror is replaced, and subscribers get
        what Redis holds of that numbering, in order: every entry is news to them (those of
        an older epoch get the gap signal with the first; screens that joined while Redis
        was away or the stream was empty get all of it, the last value at least)."""
        self.synced = True
        # (Before the first load the mirror's epoch is None, so the first load replaces it.)
        if epoch is not None and epoch == self.epoch and seq >= self.seq:
            return self.seq
        self.epoch, self.seq = epoch, seq
        self._recent.clear()
        self._recent.extend(recent)
        for index, entry in enumerate(recent):
            self._deliver(entry, hole=index == 0)
        return self.seq

    def receive(self, entry: Entry) -> None:
        """The tail read ``entry`` (log order). Delivers it unless the mirror has it."""
        if entry.epoch != self.epoch:
            # The numbering restarted between two reads (or, from no epoch, the stream's
            # first entry: nothing was missed then).
            hole = self.epoch is not None
            self.epoch = entry.epoch
            self._recent.clear()
        elif entry.seq <= self.seq:
            return  # already there (a resync loaded it)
        else:
            hole = entry.seq != self.seq + 1
            if hole:
                self._recent.clear()  # the mirror stays contiguous: owed() counts back from seq
        self.seq = entry.seq
        self._recent.append(entry)
        self._deliver(entry, hole)

    def _deliver(self, entry: Entry, hole: bool) -> None:
        if hole and self.on_hole is not None:
            self.on_hole(entry)
        if self.on_entry is not None:
            self.on_entry(entry)


def fresh_part(entries: list[Entry], max_lag: float) -> list[Entry]:
    """What an instance that fell behind still delivers of one read: the entries within
    ``max_lag`` seconds of the newest (their own ``ts``, all from the producer's clock, so
    skew between instances does not matter). A single process that cannot keep up slows its
    producer (a tick is skipped, nothing is numbered); through Redis the producer runs on
    at its pace, so a slow instance drops the stale part instead of showing every screen
    values seconds old, and its subscribers get the gap signal (``receive`` sees the hole),
    as a slow screen does when its queue overflows."""
    if not entries:
        return entries
    newest = entries[-1].ts
    return [entry for entry in entries if newest - entry.ts <= max_lag]


# --- how an entry is kept in a Redis Stream -------------------------------------------------------
# The entry id is the seq ("42-0"); the fields: b = the publisher's fields (compact JSON),
# t = ts (repr of the float, so every instance builds the same text), e = the epoch.


def entry_fields(body: str, ts: float, epoch: str) -> dict[str, str]:
    return {"b": body, "t": repr(ts), "e": epoch}


def entry_from_redis(stream: str, entry_id: bytes | str, fields: dict) -> Entry:
    """An Entry from one XREAD/XRANGE item (bytes from redis-py without decoding)."""
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    seq = int(entry_id.partition("-")[0])
    return Entry(stream, seq, float(_text(fields[b"t"])), _text(fields[b"e"]), _text(fields[b"b"]))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
