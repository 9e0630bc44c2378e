"""The durable state's file: SQLite from the standard library, and the OS thread that writes it.

``--state PATH`` keeps each shared stream's numbering (epoch, last ``seq``) and its last
``history`` entries in one SQLite file in WAL mode. This module is all of its I/O, kept thin:
what the I/O decides (which file is ours, rows into streams, what a batch writes, when the
writer's batch is due, its health) is ``state_rules.py``, without I/O and tested alone.

* ``StateStore``: opening the file (the checks that make a bad start exit 2 with one line:
  a missing or read-only directory, a file that is not ours or is newer, a file another
  process holds: an exclusive ``flock`` on the database itself), loading what it holds,
  the rewrites done at start, and the writes of a batch. It never decides what a loaded
  stream is worth: ``durable.py`` does (the resume rules live beside ``MemoryLog``'s).
* ``StateWriter``: a real OS thread (``runtime.os_threading``, not a green thread and not
  the hub) that takes entries from a queue and writes them in batches, at most every
  ``flush_interval`` seconds, so no disk write ever happens in the publish pass. The
  hub's side is ``put`` (one non-blocking ``SimpleQueue.put``). It never logs (a logging
  lock taken from a foreign OS thread can stall eventlet's hub); it records what happened
  in ``WriteHealth``, which the hub reads and logs (``durable.DurableState``).

``sqlite3`` is imported here, at module import, on purpose: importing a C extension from
inside an OS thread while eventlet's hub runs can deadlock on the import lock.

The file also keeps what each named screen shows (``screens``: the assignment a ``POST
/screens/NAME`` made, as JSON), queued through the same writer and written with the next
batch. That table came after schema 1 and is created when missing (``CREATE TABLE IF NOT
EXISTS`` at open): a schema-1 file gains it, and an older dashstream that opens the file
ignores it, so the schema number did not change.

Each stream's row says whether entries may have been handed out that the file does not
hold yet (``dirty``): the writer marks a stream dirty as soon as an entry for it arrives
(one small commit, off the hub) and clears it with the batch that holds them. A stream
found dirty at start may have lost its unflushed tail (SIGKILL, power cut).
"""

from __future__ import annotations

import errno
import fcntl
import os
import sqlite3
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterable

from dashstream import runtime
from dashstream.messages import Entry
from dashstream.streams.state_rules import (
    APPLICATION_ID,
    HEADER_SIZE,
    SCHEMA,
    STOP,
    Batch,
    ScreenAssignment,
    StoredStream,
    WriteHealth,
    aside_name,
    batch_writes,
    entry_rows,
    file_kind,
    forgotten,
    header_is_ours,
    last_written,
    reason,
    replacement_row,
    stored_streams,
)

__all__ = ["APPLICATION_ID", "SCHEMA", "StateError", "StateStore", "StateWriter", "StoredStream", "WriteHealth"]

_SCHEMA_SQL = (
    # kept: the history size the entries were trimmed to (rows missing are told from a
    # smaller history). dirty: entries may exist that this file does not hold.
    # alias_epoch/alias_seq: an earlier epoch whose numbering this one continues up to
    # alias_seq (a stream found dirty at start; see durable.py).
    "CREATE TABLE streams (name TEXT PRIMARY KEY, epoch TEXT NOT NULL, seq INTEGER NOT NULL, "
    "kept INTEGER NOT NULL, dirty INTEGER NOT NULL DEFAULT 0, alias_epoch TEXT, alias_seq INTEGER)",
    "CREATE TABLE entries (stream TEXT NOT NULL, seq INTEGER NOT NULL, ts REAL NOT NULL, body TEXT NOT NULL, "
    "PRIMARY KEY (stream, seq)) WITHOUT ROWID",
)
# What each named screen shows (its JSON: {"dashboard"|"playlist": NAME, "since": T}).
_SCREENS_SQL = "CREATE TABLE IF NOT EXISTS screens (name TEXT PRIMARY KEY, body TEXT NOT NULL)"


class StateError(Exception):
    """The state file cannot be used: one line naming the path and what to do (exit 2)."""


class StateStore:
    """The open, locked state file. Used by one thread at a time: the hub at start, then
    only the writer thread."""

    def __init__(self, path: str | os.PathLike, *, synchronous: str = "FULL"):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._synchronous = synchronous
        # The last seq the file holds for each stream, to keep its rows contiguous.
        self._stored_last: dict[str, int] = {}
        self.screens: dict[str, str] = {}  # as loaded at open: screen name -> its JSON

    # --- opening ------------------------------------------------------------------------------

    def open(self) -> list[StoredStream]:
        """Check, lock and open the file (creating it if new); what it holds. Raises
        ``StateError`` with the line to print. A damaged file (truncated: SQLite cannot read
        all of it) is set aside beside it and a new one started: its streams start new
        epochs, as any stream whose numbering cannot be trusted."""
        self._check_directory()
        self._lock()
        try:
            damage = self._connect() or self._damage()
            if damage is not None:
                aside = self._set_aside()
                self.damaged = (damage, aside)
                self._lock()
                self._connect()
            else:
                self.damaged = None
            self._prepare()
            stored = self._load()
            self.screens = dict(self._conn.execute("SELECT name, body FROM screens ORDER BY name"))
        except sqlite3.Error as error:
            self.close()
            raise StateError(f"--state {self.path}: cannot use it ({error}); move it away or choose another path") \
                from None
        except StateError:
            self.close()
            raise
        self._stored_last = {stream.name: stream.seq for stream in stored}
        return stored

    def _check_directory(self) -> None:
        directory = self.path.parent
        if self.path.is_dir():
            raise StateError(f"--state {self.path}: is a directory; give a file in it, e.g. {self.path / 'state.db'}")
        if not directory.is_dir():
            raise StateError(f"--state {self.path}: the directory {directory} does not exist; "
                             f"create it (mkdir -p {directory}) or choose another path")
        try:
            # WAL mode creates PATH-wal and PATH-shm beside the file: the directory itself
            # must be writable, not only the file (root ignores modes: try, don't ask).
            with tempfile.TemporaryFile(dir=directory, prefix=".dashstream-probe-"):
                pass
        except OSError as error:
            raise StateError(f"--state {self.path}: cannot write in {directory} ({reason(error)}); "
                             "make it writable for this user or choose another path") from None

    def _lock(self) -> None:
        try:
            # 0o600: what screens were shown is nobody else's business (SQLite gives PATH-wal
            # and PATH-shm the file's mode).
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise StateError(f"--state {self.path}: cannot open it for writing ({reason(error)}); "
                             "make it writable for this user or choose another path") from None
        try:
            # flock, not SQLite's own POSIX locks (those only last for a transaction, and any
            # close of the file in this process would drop them): held until close().
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StateError(f"--state {self.path}: in use by another dashstream process (the file is locked); "
                                 "stop that one or give each instance its own file") from None
            raise StateError(f"--state {self.path}: cannot lock it ({reason(error)})") from None
        self._lock_fd = fd

    def _connect(self) -> str | None:
        """Open the database and check it is ours; a damaged file of ours: what is wrong."""
        # isolation_level=None: transactions are explicit (BEGIN ... COMMIT) below.
        # check_same_thread=False: opened by the hub at start, then written by the writer thread.
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=5)
        conn = self._conn
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as error:
            if self._header_says_ours():
                return str(error)  # ours, but SQLite cannot read it (cut short): set aside
            raise StateError(f"--state {self.path}: not a dashstream state file ({error}); "
                             "move it away or choose another path") from None
        kind = file_kind(application_id, version, tables)
        if kind == "new":
            self._create()
        elif kind == "foreign":
            raise StateError(f"--state {self.path}: not a dashstream state file (another program's SQLite "
                             "database); move it away or choose another path")
        elif kind == "newer":
            raise StateError(f"--state {self.path}: written by a newer dashstream (schema {version}, this one "
                             f"reads {SCHEMA}); upgrade dashstream or move the file away")
        return None

    def _header_says_ours(self) -> bool:
        with open(self.path, "rb") as file:
            return header_is_ours(file.read(HEADER_SIZE))

    def _create(self) -> None:
        conn = self._conn
        # Before the first table: freed pages can be given back (removed streams, at start).
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA_SQL:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA}")
        conn.execute("COMMIT")

    def _damage(self) -> str | None:
        try:
            rows = self._conn.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as error:
            return str(error)
        problems = [row[0] for row in rows if row[0] != "ok"]
        return problems[0] if problems else None

    def _set_aside(self) -> Path:
        """Move a damaged file (and its WAL) to PATH.damaged-TIMESTAMP and unlock it."""
        self._conn.close()
        self._conn = None
        aside = self.path.with_name(aside_name(self.path.name, time.localtime()))
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.path) + suffix)
            if source.exists():
                source.rename(str(aside) + suffix)
        os.close(self._lock_fd)
        self._lock_fd = None
        return aside

    def _prepare(self) -> None:
        conn = self._conn
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise StateError(f"--state {self.path}: SQLite cannot use WAL mode there ({mode}); "
                             "choose a path on a local file system")
        # FULL: a commit is on disk (the WAL fsynced) before the writer goes on, so a power
        # cut loses at most what was not committed yet, as SIGKILL does.
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        # The WAL is truncated back to this after each checkpoint (it would keep its peak size).
        conn.execute("PRAGMA journal_size_limit = 1048576")
        conn.execute(_SCREENS_SQL)  # a schema-1 file written before screens were kept gains it

    def _load(self) -> list[StoredStream]:
        conn = self._conn
        return stored_streams(
            conn.execute("SELECT name, epoch, seq, kept, dirty, alias_epoch, alias_seq FROM streams ORDER BY name"),
            conn.execute("SELECT stream, seq, ts, body FROM entries ORDER BY stream, seq"))

    # --- at start, on the hub, before serving ---------------------------------------------------

    def drop_except(self, keep: Iterable[str]) -> list[str]:
        """Forget every stream not in ``keep`` (removed from the config); their names."""
        conn = self._conn
        known = [row[0] for row in conn.execute("SELECT name FROM streams UNION SELECT DISTINCT stream FROM entries")]
        dropped = forgotten(known, keep)
        if dropped:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("DELETE FROM streams WHERE name = ?", [(name,) for name in dropped])
            conn.executemany("DELETE FROM entries WHERE stream = ?", [(name,) for name in dropped])
            conn.execute("COMMIT")
            conn.execute("PRAGMA incremental_vacuum")  # the file shrinks by what they held
            for name in dropped:
                self._stored_last.pop(name, None)
        return dropped

    def replace_stream(self, name: str, epoch: str, seq: int, kept: int, entries: list[Entry],
                       alias: tuple[str, int] | None = None) -> None:
        """Write one stream's whole state as decided at start (a new epoch, trimmed history)."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM entries WHERE stream = ?", (name,))
            conn.executemany("INSERT INTO entries (stream, seq, ts, body) VALUES (?, ?, ?, ?)",
                             entry_rows(name, entries))
            conn.execute("INSERT OR REPLACE INTO streams (name, epoch, seq, kept, dirty, alias_epoch, alias_seq) "
                         "VALUES (?, ?, ?, ?, 0, ?, ?)", replacement_row(name, epoch, seq, kept, alias))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._stored_last[name] = seq

    # --- the writer thread's -------------------------------------------------------------------

    def mark_dirty(self, names: Iterable[str]) -> None:
        """Entries of these streams are out that the file does not hold yet."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("UPDATE streams SET dirty = 1 WHERE name = ? AND dirty = 0", [(n,) for n in names])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def write(self, pending: dict[str, deque[Entry]], kept: dict[str, int]) -> None:
        """One transaction: each stream's new entries, its numbering, the history trimmed
        to ``kept``; the streams are clean again. Nothing changes if it raises."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stream in batch_writes(pending, kept, self._stored_last):
                conn.executemany("INSERT OR REPLACE INTO entries (stream, seq, ts, body) VALUES (?, ?, ?, ?)",
                                 stream.rows)
                if stream.restart_below is not None:
                    conn.execute("DELETE FROM entries WHERE stream = ? AND seq < ?",
                                 (stream.name, stream.restart_below))
                conn.execute("DELETE FROM entries WHERE stream = ? AND seq <= ?", (stream.name, stream.trim_through))
                conn.execute("INSERT INTO streams (name, epoch, seq, kept, dirty) VALUES (?, ?, ?, ?, 0) "
                             "ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq, "
                             "kept = excluded.kept, dirty = 0", stream.numbering)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # no transaction left to roll back (SQLite ended it on the error)
            raise
        self._stored_last.update(last_written(pending))

    def write_screens(self, screens: dict[str, str]) -> None:
        """What these screens show now (name -> JSON), in one transaction."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT OR REPLACE INTO screens (name, body) VALUES (?, ?)", list(screens.items()))
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def close(self) -> None:
        """Close the database (the last connection checkpoints the WAL into the file) and
        release the lock."""
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


# --- the writer ----------------------------------------------------------------------------------


class StateWriter:
    """Writes what the logs queue, in batches, from a real OS thread.

    The thread does not wake for every entry: a stream at a thousand messages a second
    would hand the GIL back and forth a thousand times a second, a cost the publish pass
    would pay. It wakes for the first entry after a write (and then sleeps until the batch
    is due) and for the first entry of each other stream meanwhile, which must be marked
    dirty at once (see the module docstring): ``_announced`` is the streams it was woken
    for since the last write.
    """

    def __init__(self, store: StateStore, flush_interval: float, *, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.flush_interval = flush_interval
        self.health = WriteHealth()
        self._clock = clock
        self._queue = runtime.os_queue.SimpleQueue()
        self._kept: dict[str, int] = {}
        self._wake = runtime.os_threading.Event()
        self._announced: set[str] = set()
        self._thread = None

    def track(self, stream: str, history: int) -> None:
        """``stream``'s entries will come; keep its last ``history`` (before ``start``)."""
        self._kept[stream] = max(history, 1)

    def put(self, entry: Entry) -> None:
        """From the publish pass: never blocks (an unbounded queue; the thread takes it)."""
        self._queue.put(entry)
        if entry.stream not in self._announced:
            self._announced.add(entry.stream)
            self._wake.set()

    def put_screen(self, name: str, body: str) -> None:
        """A screen's new assignment (its JSON), written with the next batch; never blocks."""
        self._queue.put(ScreenAssignment(name, body))

    def start(self) -> None:
        self._thread = runtime.os_threading.Thread(target=self.run, name="dashstream-state", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> bool:
        """Write everything queued, close the file; whether it finished within ``timeout``."""
        if self._thread is None:
            self.store.close()
            return True
        self._queue.put(STOP)
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def run(self) -> None:
        """The thread: batch until the oldest unwritten entry is ``flush_interval`` old,
        write, repeat; a failed write keeps the batch (each stream's last ``history``
        entries, all that matters) and is retried an interval later."""
        batch = Batch(self._kept, self.flush_interval)
        while True:
            if batch.deadline is None:
                self._take(self._queue.get(), batch)  # nothing unwritten: sleep until something comes
            else:
                # A batch is open: sleep until it is due, unless a stream not yet marked
                # dirty (or STOP) comes first.
                self._wake.wait(batch.wait(self._clock()))
                self._wake.clear()
                self._take(None, batch)
            batch.open(self._clock())
            fresh = batch.to_mark(self.health.failing is not None)
            if fresh and self._attempt(self.store.mark_dirty, fresh):
                batch.marked |= fresh
            if batch.due(self._clock()):
                self._take(None, batch)  # this batch: all that is out
                if batch.screens and self._attempt(self.store.write_screens, dict(batch.screens)):
                    batch.screens.clear()
                if not batch.entries or self._attempt(self.store.write, batch.entries, self._kept, flush=True):
                    batch.entries_written()
                    # (An entry queued since the last _take is still in the queue: with no
                    # deadline the next get() takes it at once and its stream is marked.)
                    self._announced.clear()
                batch.rearm(self._clock())
                if batch.stopping:
                    self.health.lost = batch.lost()
                    self.store.close()
                    return

    def _take(self, item, batch: Batch) -> None:
        """``item`` (None: none) and whatever else is queued now, into ``batch``."""
        empty = runtime.os_queue.Empty
        while True:
            if item is not None:
                batch.add(item)
            try:
                item = self._queue.get_nowait()
            except empty:
                return

    def _attempt(self, write: Callable, *args, flush: bool = False) -> bool:
        try:
            write(*args)
        except Exception as error:  # noqa: BLE001 - any failure is a write that did not happen; the thread goes on
            self.health.failed(error, time.time())
            return False
        if flush:
            self.health.flushed()
        return True
