"""A stream's log: numbering (``seq``), ``epoch``, history, last value, and the resume rule.

The Log is the half of a stream that decides *what* each client is owed; the Fanout
(``fanout.py``) is the half that hands it to this process's subscribers. ``MemoryLog`` is the
default, one process; a Redis log keeps the same three things in Redis so several instances
share them. Both call ``on_entry`` for every entry that reaches the log, so delivery takes
the same path whichever log is behind it.

The entries themselves (``messages.Entry``) are encoded once per form, whoever holds them.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from dashstream.messages import Entry, encode_fields

# Streams one subscriber may follow on one connection (``/ws?streams=``; a wall's tiles).
MAX_STREAMS = 16


class LogUnavailable(Exception):
    """The log cannot take an entry now (a shared log whose backplane is down, or a producer
    that no longer holds its stream's lease): nothing was numbered, except after a timeout,
    when it cannot be known (the reason says so). ``retry_after``: seconds a publisher
    should wait (an HTTP 503's ``Retry-After``)."""

    def __init__(self, reason: str, retry_after: int = 2):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def new_epoch() -> str:
    """A token that changes whenever a stream's numbering restarts (e.g. a server restart)."""
    return secrets.token_hex(6)


@dataclass(frozen=True)
class Resume:
    """What a reconnecting client saw last on one stream."""

    seq: int
    epoch: str


class MemoryLog:
    """One stream's numbering and history in this process.

    Everything runs in one OS thread and nothing here yields to another green thread, so
    ``append`` and ``backlog`` are atomic with respect to each other: a subscriber that
    takes its backlog and then joins the fan-out meets the live messages exactly.
    """

    def __init__(self, stream: str, *, history: int = 100, clock: Callable[[], float] = time.time,
                 epoch: str | None = None, on_entry: Callable[[Entry], None] | None = None):
        self.stream = stream
        self.epoch = epoch or new_epoch()
        self.seq = 0
        self.on_entry = on_entry
        self._clock = clock
        self._history: deque[Entry] = deque(maxlen=max(history, 1))

    @property
    def history_size(self) -> int:
        return self._history.maxlen

    @property
    def last(self) -> Entry | None:
        return self._history[-1] if self._history else None

    def append(self, body: str) -> Entry:
        """Number and stamp a message (``body`` from ``encode_fields``) and deliver it."""
        self.seq += 1
        entry = Entry(self.stream, self.seq, self._clock(), self.epoch, body)
        self._history.append(entry)
        if self.on_entry is not None:
            self.on_entry(entry)
        return entry

    def backlog(self, resume: Resume | None, recent: int = 1) -> tuple[list[Entry], bool]:
        """What a new subscriber is owed, and whether it must be told it missed data;
        ``recent``: how many of the newest entries a subscriber without a resume point
        wants (``?history=N``: a chart full on first paint)."""
        return owed(self._history, self.seq, self.epoch, resume, recent)


class PrivateLog:
    """One client's numbering on a private stream: ``seq`` from 1 under an epoch of its own,
    and no history. Nobody else reads it, and a reconnect is a new walk under a new epoch,
    so a resume is only ever owed the gap signal (``owed`` with nothing kept), exactly what
    a fresh ``MemoryLog`` would answer. Keeping the last entry, as a MemoryLog does, kept
    every message alive for the half second until the next: long enough for the garbage
    collector to count it, move it to an older generation and traverse it there
    (BENCHMARKS.md, "Private streams: what a wake-up costs")."""

    history_size = 0
    last = None

    def __init__(self, stream: str, *, clock: Callable[[], float] = time.time,
                 on_entry: Callable[[Entry], None],
                 on_delivered: Callable[[Entry], None] | None = None):
        self.stream = stream
        self.epoch = new_epoch()
        self.seq = 0
        self.on_entry = on_entry
        self.on_delivered = on_delivered  # (entry) after it was handed over: the metrics' count
        self._clock = clock

    def publish(self, fields: Mapping[str, Any]) -> Entry:
        """A private source's value (the supervisor's ``on_value``): checked and encoded
        before it is numbered (``BadFields``: no seq taken), numbered, stamped, delivered and
        counted. It takes the fields rather than an encoded body (a shared log's ``append``)
        so that no closure sits between the supervisor and it: this runs for every private
        message, and that call was 0.3-0.5 µs of a 10-11 µs message
        (``benchmarks/private_walk_cost.py``, 5,000 walks)."""
        body = encode_fields(fields)
        self.seq += 1
        entry = Entry(self.stream, self.seq, self._clock(), self.epoch, body)
        self.on_entry(entry)
        if self.on_delivered is not None:
            self.on_delivered(entry)
        return entry

    def backlog(self, resume: Resume | None, recent: int = 1) -> tuple[list[Entry], bool]:
        return owed((), self.seq, self.epoch, resume, recent)


def memory_log(stream: str, *, history: int = 100, clock: Callable[[], float] = time.time,
               on_entry: Callable[[Entry], None] | None = None,
               on_hole: Callable[[Entry], None] | None = None) -> MemoryLog:
    """A shared stream's default log factory. ``on_hole`` is never called: a memory log
    numbers what it keeps, so its numbering has no hole (a shared log's may)."""
    return MemoryLog(stream, history=history, clock=clock, on_entry=on_entry)


def owed(history: Iterable[Entry] | deque, last_seq: int, epoch: str,
         resume: Resume | None, recent: int = 1) -> tuple[list[Entry], bool]:
    """The resume rule, for any log that can list its recent entries.

    * no resume: the last ``recent`` entries (default 1: the last value, so the screen shows
      something at once; a chart asks for more with ``?history=N``), as many as the log has;
    * same epoch, a seq the log has reached, and history reaching back: exactly the missed
      entries (none if the client is up to date);
    * anything else (another epoch, a seq from the future, history too short): the latest
      ``recent`` entries with the gap signal on the first, or, with nothing published yet,
      the gap rides on the first live message.
    """
    history = history if isinstance(history, deque) else deque(history)
    if resume is not None and resume.epoch == epoch and 0 <= resume.seq <= last_seq:
        missed = last_seq - resume.seq
        if missed == 0:
            return [], False
        if missed <= len(history):
            return list(history)[-missed:], False
    newest = list(history)[-max(recent, 1):] if recent > 1 else ([history[-1]] if history else [])
    return newest, resume is not None
