"""The state file's rules without I/O: which file is ours, what its rows mean, what a batch
writes, and how the writer thread gathers a batch and reports its health.

``state_store.py`` is the I/O around these (SQLite, the lock, the OS thread and its queue);
split the way websockets splits its protocol from its connections, so that every decision
about the file is a function of values, tested without a file or a thread. What a loaded
stream is worth (its epoch kept or not) is ``durable.py``'s ``restore``, beside the log's
resume rule.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from dashstream.messages import Entry

# PRAGMA application_id: "DSHS", so that a file is recognised as ours or as foreign without
# guessing from its tables. PRAGMA user_version: the schema; a newer one is refused.
APPLICATION_ID = 0x44534853
SCHEMA = 1
# The first 16 bytes of every SQLite database file; the application id is at offset 68.
SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100


@dataclass
class StoredStream:
    """One stream as the file holds it (entries oldest first, as read: not yet trusted)."""

    name: str
    epoch: str
    seq: int
    kept: int
    dirty: bool
    entries: list[Entry] = field(default_factory=list)
    alias_epoch: str | None = None
    alias_seq: int | None = None


def reason(error: BaseException) -> str:
    """An error as the one line says it: an OS error's own words, without its errno."""
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)


# --- which file it is ----------------------------------------------------------------------------


def header_is_ours(header: bytes) -> bool:
    """SQLite's 100-byte header says a dashstream state file: its magic and our application
    id. (Read when SQLite itself cannot read the file: ours but damaged, or not ours.)"""
    return (len(header) == HEADER_SIZE and header.startswith(SQLITE_MAGIC)
            and int.from_bytes(header[68:72], "big") == APPLICATION_ID)


def file_kind(application_id: int, version: int, tables: int) -> str:
    """``new`` (an empty database: create the schema), ``foreign`` (another program's),
    ``newer`` (a schema this dashstream cannot read) or ``ours``."""
    if application_id == 0 and version == 0 and tables == 0:
        return "new"
    if application_id != APPLICATION_ID:
        return "foreign"
    if version > SCHEMA:
        return "newer"
    return "ours"


def aside_name(name: str, when: time.struct_time) -> str:
    """The name a damaged file is moved to beside itself (the time it was found damaged)."""
    return f"{name}.damaged-{time.strftime('%Y%m%dT%H%M%S', when)}"


# --- rows ------------------------------------------------------------------------------------------


def stored_streams(stream_rows: Iterable[tuple], entry_rows: Iterable[tuple]) -> list[StoredStream]:
    """The ``streams`` rows (name, epoch, seq, kept, dirty, alias_epoch, alias_seq) and the
    ``entries`` rows (stream, seq, ts, body; oldest first) as streams. Entries of a stream
    without its row are left out: ``drop_except`` removes them as unknown."""
    streams = {}
    for name, epoch, seq, kept, dirty, alias_epoch, alias_seq in stream_rows:
        streams[name] = StoredStream(name, epoch, seq, kept, bool(dirty), [], alias_epoch, alias_seq)
    for name, seq, ts, body in entry_rows:
        stream = streams.get(name)
        if stream is not None:
            stream.entries.append(Entry(name, seq, ts, stream.epoch, body))
    return list(streams.values())


def forgotten(known: Iterable[str], keep: Iterable[str]) -> list[str]:
    """The streams the file knows that the config no longer has, sorted (as logged)."""
    return sorted(set(known) - set(keep))


def entry_rows(name: str, entries: Iterable[Entry]) -> list[tuple[str, int, float, str]]:
    """The ``entries`` rows of these entries: (stream, seq, ts, body)."""
    return [(name, entry.seq, entry.ts, entry.body) for entry in entries]


def replacement_row(name: str, epoch: str, seq: int, kept: int,
                    alias: tuple[str, int] | None) -> tuple[str, str, int, int, str | None, int | None]:
    """The ``streams`` row of a stream rewritten at start: (name, epoch, seq, kept,
    alias_epoch, alias_seq), the alias columns empty without one."""
    alias_epoch, alias_seq = alias or (None, None)
    return name, epoch, seq, kept, alias_epoch, alias_seq


@dataclass(frozen=True)
class StreamWrite:
    """What one stream's part of a batch does to the file, in this order."""

    name: str
    rows: list[tuple[str, int, float, str]]  # entries rows inserted (or replaced)
    restart_below: int | None  # rows with a lower seq go: the batch starts the history
    trim_through: int  # rows up to this seq go: beyond the history the stream keeps
    numbering: tuple[str, str, int, int]  # the streams row: (name, epoch, seq, kept), clean


def batch_writes(pending: Mapping[str, deque[Entry]], kept: Mapping[str, int],
                 stored_last: Mapping[str, int]) -> list[StreamWrite]:
    """Each stream's part of one batch. ``pending``: each stream's new entries, oldest
    first; ``kept``: each stream's history size (all the batch's entries for one not
    tracked); ``stored_last``: the last seq the file holds for each stream."""
    writes = []
    for name, entries in pending.items():
        first, last = entries[0], entries[-1]
        limit = kept.get(name, len(entries))
        # A batch that does not follow what the file holds (a new stream, or older entries
        # let go while writes failed) starts the history: the file keeps its rows contiguous.
        follows = stored_last.get(name) == first.seq - 1
        writes.append(StreamWrite(name, entry_rows(name, entries), None if follows else first.seq,
                                  last.seq - limit, (name, last.epoch, last.seq, limit)))
    return writes


def last_written(pending: Mapping[str, deque[Entry]]) -> dict[str, int]:
    """After a batch is written: the last seq the file holds for each of its streams."""
    return {name: entries[-1].seq for name, entries in pending.items()}


# --- the writer thread's batch and health ---------------------------------------------------------


class WriteHealth:
    """What the writer thread reports; plain attributes, read by the hub (one writer)."""

    def __init__(self):
        self.failing: str | None = None  # the last write error while writes fail, else None
        self.failing_since: float | None = None
        self.errors = 0  # failed writes (a batch or a dirty mark), ever
        self.flushes = 0  # batches written
        self.lost = 0  # entries given up at exit because the file could not take them

    def failed(self, error: BaseException, now: float) -> None:
        """A write did not happen (``now``: the wall clock, for /readyz's ``since``)."""
        self.errors += 1
        if self.failing is None:
            self.failing_since = now
        self.failing = str(error) or type(error).__name__

    def flushed(self) -> None:
        """A batch of entries was written: the file takes writes again."""
        self.flushes += 1
        self.failing = None
        self.failing_since = None


STOP = object()  # queued by close(): write everything and end the thread


class ScreenAssignment:
    """A named screen's assignment (its JSON), queued for the file."""

    __slots__ = ("name", "body")

    def __init__(self, name: str, body: str):
        self.name = name
        self.body = body


class Batch:
    """What the writer thread holds between two writes: each stream's unwritten entries (at
    most its last ``history``: all that a restart can use), the newest assignment of each
    screen, the streams already marked dirty, and when the batch is due."""

    def __init__(self, kept: Mapping[str, int], flush_interval: float):
        self._kept = kept
        self.flush_interval = flush_interval
        self.entries: dict[str, deque[Entry]] = {}
        self.screens: dict[str, str] = {}  # screen name -> its JSON
        self.marked: set[str] = set()  # streams marked dirty since their last write
        self.deadline: float | None = None  # None: nothing unwritten
        self.stopping = False

    def add(self, item: object) -> None:
        """One queued item: an entry, a screen's assignment, or ``STOP``."""
        if item is STOP:
            self.stopping = True
        elif isinstance(item, ScreenAssignment):
            self.screens[item.name] = item.body
        else:
            entries = self.entries.get(item.stream)
            if entries is None:
                # A stream not tracked keeps its last entry (its last value) only.
                entries = self.entries[item.stream] = deque(maxlen=self._kept.get(item.stream, 1))
            entries.append(item)

    def empty(self) -> bool:
        return not (self.entries or self.screens)

    def open(self, now: float) -> None:
        """The batch is due ``flush_interval`` after its first item came."""
        if self.deadline is None and not self.empty():
            self.deadline = now + self.flush_interval

    def wait(self, now: float) -> float:
        """How long the thread may sleep before the open batch is due."""
        return max(0.0, self.deadline - now)

    def to_mark(self, failing: bool) -> set[str]:
        """The streams to mark dirty now: those with unwritten entries not marked yet. None
        when stopping (the batch is written at once) or while writes fail (the mark would
        fail as well; the batch's retry comes an interval later)."""
        if self.stopping or failing:
            return set()
        return self.entries.keys() - self.marked

    def due(self, now: float) -> bool:
        return self.stopping or (self.deadline is not None and now >= self.deadline)

    def entries_written(self) -> None:
        self.entries.clear()
        self.marked.clear()

    def rearm(self, now: float) -> None:
        """After a write: what failed to be written is retried an interval later."""
        self.deadline = None if self.empty() else now + self.flush_interval

    def lost(self) -> int:
        """The entries still unwritten (at exit: given up)."""
        return sum(len(entries) for entries in self.entries.values())
