"""The state file (``dashstream/streams/state_store.py``): checks at open, what a batch
writes and what loading gives back, and the writer thread's batching and failures. A real
SQLite file in a temporary directory; the writer's failures come from a fake store."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
import time
from collections import deque
from pathlib import Path

import pytest

from dashstream import runtime
from dashstream.messages import Entry
from dashstream.streams.state_store import APPLICATION_ID, SCHEMA, StateError, StateStore, StateWriter
from tests.support import wait_until

pytestmark = pytest.mark.timeout(30)


def entries(stream: str, first: int, last: int, epoch: str = "e1") -> deque[Entry]:
    return deque(Entry(stream, seq, 1000.0 + seq, epoch, f'{{"variable":{seq}}}') for seq in range(first, last + 1))


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state.db"


def opened(path) -> tuple[StateStore, dict]:
    store = StateStore(path)
    return store, {stream.name: stream for stream in store.open()}


def test_a_new_file_is_created_marked_as_ours_in_wal_mode(path):
    store, stored = opened(path)
    assert stored == {}
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_empty_file_is_taken_as_new(path):
    path.write_bytes(b"")
    store, stored = opened(path)
    assert stored == {}
    store.close()


def test_a_written_batch_loads_back_with_its_epoch_numbering_and_entries(path):
    store, _ = opened(path)
    store.write({"sales": entries("sales", 1, 5)}, {"sales": 100})
    store.close()
    store, stored = opened(path)
    sales = stored["sales"]
    assert (sales.epoch, sales.seq, sales.kept, sales.dirty) == ("e1", 5, 100, False)
    assert [(e.seq, e.ts, e.epoch, e.body) for e in sales.entries] == [
        (seq, 1000.0 + seq, "e1", f'{{"variable":{seq}}}') for seq in range(1, 6)]
    store.close()


def test_the_history_is_trimmed_to_what_the_stream_keeps(path):
    store, _ = opened(path)
    store.write({"s": entries("s", 1, 8)}, {"s": 3})
    store.write({"s": entries("s", 9, 10)}, {"s": 3})
    store.close()
    store, stored = opened(path)
    assert [e.seq for e in stored["s"].entries] == [8, 9, 10]
    assert (stored["s"].seq, stored["s"].kept) == (10, 3)
    store.close()


def test_a_batch_that_does_not_follow_the_file_starts_the_history_again(path):
    # (While writes failed the writer kept only each stream's last entries.)
    store, _ = opened(path)
    store.write({"s": entries("s", 1, 3)}, {"s": 10})
    store.write({"s": entries("s", 7, 9)}, {"s": 10})
    store.close()
    store, stored = opened(path)
    assert [e.seq for e in stored["s"].entries] == [7, 8, 9]
    store.close()


def test_a_stream_marked_dirty_stays_dirty_until_its_entries_are_written(path):
    store, _ = opened(path)
    store.write({"s": entries("s", 1, 2)}, {"s": 10})
    store.mark_dirty(["s", "not-yet-in-the-file"])
    store.close()
    store, stored = opened(path)
    assert stored["s"].dirty and set(stored) == {"s"}
    store.write({"s": entries("s", 3, 3)}, {"s": 10})
    store.close()
    store, stored = opened(path)
    assert not stored["s"].dirty
    store.close()


def test_streams_no_longer_configured_are_dropped(path):
    store, _ = opened(path)
    store.write({"a": entries("a", 1, 2), "b": entries("b", 1, 2)}, {"a": 10, "b": 10})
    assert store.drop_except(["a", "c"]) == ["b"]
    store.close()
    store, stored = opened(path)
    assert set(stored) == {"a"}
    assert sqlite3.connect(path).execute("SELECT count(*) FROM entries WHERE stream = 'b'").fetchone()[0] == 0
    store.close()


def test_a_stream_rewritten_at_start_goes_on_with_its_next_batch(path):
    store, _ = opened(path)
    store.replace_stream("s", "e2", 4, 10, list(entries("s", 2, 4, "e2")), None)
    store.write({"s": entries("s", 5, 6, "e2")}, {"s": 10})  # follows what was rewritten: nothing lost
    store.close()
    store, stored = opened(path)
    assert [e.seq for e in stored["s"].entries] == [2, 3, 4, 5, 6]
    assert (stored["s"].alias_epoch, stored["s"].alias_seq) == (None, None)
    store.close()


def test_entries_without_their_streams_row_are_dropped_as_unknown(path):
    store, _ = opened(path)
    store.write({"a": entries("a", 1, 2)}, {"a": 10})
    store._conn.execute("INSERT INTO entries (stream, seq, ts, body) VALUES ('orphan', 1, 1.0, '{}')")
    assert store.drop_except(["a"]) == ["orphan"]
    store.close()
    assert sqlite3.connect(path).execute("SELECT DISTINCT stream FROM entries").fetchall() == [("a",)]


def test_a_failed_write_changes_nothing_and_the_store_goes_on(path):
    store, _ = opened(path)
    store.write({"s": entries("s", 1, 2)}, {"s": 10})
    bad = entries("s", 3, 4)
    bad[1].body = None  # NOT NULL: the second row fails after the first was inserted
    # Each failure raises its own error, and the same store writes again at once.
    with pytest.raises(sqlite3.IntegrityError):
        store.write({"s": bad}, {"s": 10})
    store.write_screens({"lobby": "1"})
    with pytest.raises(sqlite3.IntegrityError):
        store.replace_stream("s", "e9", 4, 10, list(bad))
    store.write_screens({"lobby": "2"})
    with pytest.raises(sqlite3.ProgrammingError):  # a name SQLite cannot bind
        store.mark_dirty(["s", object()])
    store.write_screens({"lobby": "3"})
    with pytest.raises(sqlite3.ProgrammingError):
        store.write_screens({"lobby": "4", "desk": object()})
    store.write({"s": entries("s", 3, 3)}, {"s": 10})
    store.close()
    store, stored = opened(path)
    # Nothing of the failed writes: the dirty mark of s, the 4 of lobby, the desk, e9 are not there.
    assert [(e.seq, e.epoch) for e in stored["s"].entries] == [(1, "e1"), (2, "e1"), (3, "e1")]
    assert not stored["s"].dirty and store.screens == {"lobby": "3"}
    store.close()


def test_replace_stream_writes_a_whole_state_with_its_alias(path):
    store, _ = opened(path)
    store.write({"s": entries("s", 1, 4)}, {"s": 10})
    store.mark_dirty(["s"])
    store.replace_stream("s", "e2", 4, 10, list(entries("s", 2, 4, "e2")), ("e1", 4))
    store.close()
    store, stored = opened(path)
    s = stored["s"]
    assert (s.epoch, s.seq, s.dirty, s.alias_epoch, s.alias_seq) == ("e2", 4, False, "e1", 4)
    assert [(e.seq, e.epoch) for e in s.entries] == [(2, "e2"), (3, "e2"), (4, "e2")]
    store.close()


# --- bad files: one line naming the path and what to do ------------------------------------------


def refusal(path) -> str:
    with pytest.raises(StateError) as raised:
        StateStore(path).open()
    return str(raised.value)


def test_a_missing_directory_is_refused(tmp_path):
    path = tmp_path / "nowhere" / "state.db"
    assert refusal(path) == (f"--state {path}: the directory {path.parent} does not exist; "
                             f"create it (mkdir -p {path.parent}) or choose another path")


def test_a_link_into_a_missing_directory_is_refused(tmp_path):
    path = tmp_path / "state.db"
    path.symlink_to(tmp_path / "gone" / "state.db")
    assert refusal(path) == (f"--state {path}: cannot open it for writing (No such file or directory); "
                             "make it writable for this user or choose another path")


def test_a_directory_nobody_can_create_files_in_is_refused():
    path = Path("/proc/dashstream-state.db")  # not even root creates files in /proc
    line = refusal(path)
    start, end = f"--state {path}: cannot write in /proc (", "); make it writable for this user or choose another path"
    assert line.startswith(start) and line.endswith(end)
    assert line[len(start):-len(end)] in {os.strerror(code) for code in errno.errorcode}  # the system's words
    assert not path.exists()


def test_a_directory_is_refused(tmp_path):
    assert refusal(tmp_path) == f"--state {tmp_path}: is a directory; give a file in it, e.g. {tmp_path}/state.db"


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(path):
    path.write_text("name,value\nsales,3\n" * 20)
    assert refusal(path) == (f"--state {path}: not a dashstream state file (file is not a database); "
                             "move it away or choose another path")
    assert path.read_text() == "name,value\nsales,3\n" * 20


def test_another_programs_database_is_refused_and_left_alone(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    assert refusal(path) == (f"--state {path}: not a dashstream state file (another program's SQLite database); "
                             "move it away or choose another path")
    assert path.read_bytes() == before


def test_a_newer_schema_is_refused(path):
    store, _ = opened(path)
    store.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA + 1}")
    conn.close()
    assert refusal(path) == (f"--state {path}: written by a newer dashstream (schema {SCHEMA + 1}, this one reads "
                             f"{SCHEMA}); upgrade dashstream or move the file away")


def test_a_file_in_use_is_refused_until_its_owner_closes_it(path):
    owner, _ = opened(path)
    assert refusal(path) == (f"--state {path}: in use by another dashstream process (the file is locked); "
                             "stop that one or give each instance its own file")
    owner.close()
    second, _ = opened(path)
    second.close()


def a_file_of_many_pages(path) -> bytes:
    store, _ = opened(path)
    for index in range(40):  # enough pages that cutting the file loses some
        store.write({f"s{index}": entries(f"s{index}", 1, 50)}, {f"s{index}": 50})
    store.close()
    return path.read_bytes()


def test_a_damaged_file_is_set_aside_and_a_new_one_started(path):
    data = a_file_of_many_pages(path)
    path.write_bytes(data[: len(data) // 2])
    store, stored = opened(path)
    assert stored == {}
    problem, aside = store.damaged
    assert problem == "database disk image is malformed"  # SQLite's words, logged at start
    assert aside.name.startswith("state.db.damaged-") and aside.read_bytes() == data[: len(data) // 2]
    store.close()
    store, stored = opened(path)  # the new file is a good one
    assert stored == {} and store.damaged is None
    store.close()


@pytest.mark.parametrize("page, said", [
    (3, "*** in database main ***\nPage 4: btreeInitPage() returns error code 11"),  # the check lists it
    (2, "database disk image is malformed"),  # the check itself cannot read the file
])
def test_a_file_whose_pages_sqlite_finds_damaged_is_set_aside(path, page, said):
    """A file SQLite opens, but whose own check (PRAGMA quick_check) finds a page unreadable
    (pages of the 40 streams' entries; the layout is SQLite's, the same for the same writes)."""
    data = bytearray(a_file_of_many_pages(path))
    size = 4096
    data[page * size:(page + 1) * size] = b"\xff" * size
    path.write_bytes(bytes(data))
    store, stored = opened(path)
    problem, aside = store.damaged
    assert stored == {} and problem == said
    assert aside.read_bytes() == bytes(data)
    store.close()


def test_the_file_is_readable_and_writable_by_its_owner_only(path):
    store, _ = opened(path)
    store.write_screens({"lobby": "{}"})  # what screens were shown is nobody else's business
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    store.close()


def test_a_file_marked_ours_without_its_tables_is_refused(path):
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA}")
    conn.close()
    line = f"--state {path}: cannot use it (no such table: streams); move it away or choose another path"
    assert refusal(path) == line
    assert refusal(path) == line  # the refusal let go of the file: not "in use" the second time


def test_a_store_never_opened_or_closed_twice_closes_quietly(path):
    StateStore(path).close()
    store, _ = opened(path)
    store.close()
    store.close()


# --- the writer thread ---------------------------------------------------------------------------


class RecordingStore:
    """The writer's side of a store: records batches; ``fail`` errors make writes fail."""

    def __init__(self):
        self.batches: list[dict[str, list[int]]] = []
        self.marked: list[set[str]] = []
        self.fail: list[Exception] = []
        self.closed = threading.Event()
        self.wrote = threading.Event()
        self.screens: list[dict[str, str]] = []
        self.mark_attempts = 0
        self.write_attempts = 0
        self.unblocked = threading.Event()  # a write waits for it (cleared: a disk that hangs)
        self.unblocked.set()

    def mark_dirty(self, names):
        self.mark_attempts += 1
        if self.fail:
            raise self.fail[0]
        self.marked.append(set(names))

    def write(self, pending, kept):
        self.write_attempts += 1
        self.unblocked.wait()
        if self.fail:
            raise self.fail.pop(0)
        self.batches.append({name: [e.seq for e in batch] for name, batch in pending.items()})
        self.wrote.set()

    def write_screens(self, screens):
        if self.fail:
            raise self.fail.pop(0)
        self.screens.append(dict(screens))
        self.wrote.set()

    def close(self):
        self.closed.set()


def test_the_writer_writes_in_batches_and_everything_on_close():
    store = RecordingStore()
    writer = StateWriter(store, flush_interval=30)  # nothing flushes by time in this test
    writer.track("s", 100)
    writer.start()
    for entry in entries("s", 1, 20):
        writer.put(entry)
    assert writer.close(timeout=10)
    assert store.batches == [{"s": list(range(1, 21))}]
    assert store.marked == [{"s"}] or store.marked == []  # marked dirty at once, unless STOP came first
    assert store.closed.is_set() and writer.health.flushes == 1


def test_the_writer_flushes_by_itself_after_the_interval():
    store = RecordingStore()
    writer = StateWriter(store, flush_interval=0.05)
    writer.track("s", 100)
    writer.start()
    writer.put(next(iter(entries("s", 1, 1))))
    assert store.wrote.wait(5)
    assert store.batches == [{"s": [1]}] and store.marked == [{"s"}]
    assert writer.close(timeout=10)
    assert writer.health.flushes == 1  # a batch, not the dirty mark before it


def test_a_failing_write_is_counted_kept_and_retried_until_it_succeeds():
    store = RecordingStore()
    store.fail = [sqlite3.OperationalError("database or disk is full")] * 3
    writer = StateWriter(store, flush_interval=0.02)
    writer.track("s", 5)
    writer.start()
    for entry in entries("s", 1, 12):
        writer.put(entry)
    assert store.wrote.wait(5)
    assert writer.close(timeout=10)
    # Only the last 5 (the history) are worth keeping while writes fail.
    assert store.batches[0] == {"s": [8, 9, 10, 11, 12]}
    assert writer.health.errors >= 3 and writer.health.failing is None and writer.health.lost == 0


def test_failing_writes_leave_the_health_failing_and_count_what_exit_loses():
    store = RecordingStore()
    store.fail = [OSError(28, "No space left on device")] * 1000
    writer = StateWriter(store, flush_interval=0.01)
    writer.track("s", 3)
    before = time.time()
    writer.start()
    for entry in entries("s", 1, 4):
        writer.put(entry)
    wait_until(lambda: store.write_attempts >= 3, message="the batch retried")
    assert writer.close(timeout=10)
    assert writer.health.failing == "[Errno 28] No space left on device"
    assert before <= writer.health.failing_since <= time.time()  # the wall clock, for /readyz
    assert writer.health.errors >= 1 and writer.health.lost == 3 and store.batches == []
    # The dirty mark failed first; while writes fail only the batch is retried, not the mark.
    assert store.mark_attempts == 1 and writer.health.errors == 1 + store.write_attempts


def test_a_second_stream_is_marked_dirty_at_once_while_the_batch_sleeps():
    """The thread sleeps through a batch, but a stream not yet marked wakes it: a kill now
    must find every stream with unwritten entries marked."""
    store = RecordingStore()
    writer = StateWriter(store, flush_interval=30)
    writer.track("s", 10)
    writer.track("t", 10)
    writer.start()
    writer.put(next(iter(entries("s", 1, 1))))
    wait_until(lambda: store.marked == [{"s"}], message="s marked")
    for entry in entries("s", 2, 50):  # the same stream: nothing to mark, the thread sleeps on
        writer.put(entry)
    writer.put(next(iter(entries("t", 1, 1))))
    wait_until(lambda: store.marked[-1:] == [{"t"}], message="t marked")
    writer.put(next(iter(entries("u", 1, 1))))
    wait_until(lambda: len(store.marked) == 3, message="u marked")
    assert store.marked == [{"s"}, {"t"}, {"u"}]  # each once
    assert store.batches == []  # nothing written before the batch is due...
    assert writer.close(timeout=10)
    assert store.batches == [{"s": list(range(41, 51)), "t": [1], "u": [1]}]  # ...and everything at close


def test_a_stream_that_keeps_no_history_keeps_its_last_value():
    store = RecordingStore()
    writer = StateWriter(store, flush_interval=30)
    writer.track("s", 0)
    writer.track("t", 1)
    writer.start()
    for entry in [*entries("s", 1, 3), *entries("t", 1, 3)]:
        writer.put(entry)
    assert writer.close(timeout=10)
    assert store.batches == [{"s": [3], "t": [3]}]


def test_the_writer_is_a_daemon_thread_named_for_what_it_does():
    """Named in a thread dump; a daemon, so a writer never closed cannot hold the process."""
    writer = StateWriter(RecordingStore(), flush_interval=30)
    writer.start()
    # (the real threading module, which eventlet leaves unpatched for the writer)
    (thread,) = [t for t in runtime.os_threading.enumerate() if t.name == "dashstream-state"]
    assert thread.daemon is True
    assert writer.close(timeout=10)


def test_a_writer_never_started_closes_its_store():
    store = RecordingStore()
    assert StateWriter(store, flush_interval=30).close() is True
    assert store.closed.is_set()


def test_a_write_that_hangs_is_reported_unfinished_after_the_timeout():
    store = RecordingStore()
    store.unblocked.clear()
    writer = StateWriter(store, flush_interval=30)
    writer.track("s", 10)
    writer.start()
    writer.put(next(iter(entries("s", 1, 1))))
    assert writer.close(timeout=0.05) is False  # the disk hangs: shutdown goes on without it
    store.unblocked.set()
    assert store.closed.wait(10) and store.batches == [{"s": [1]}]


# --- named screens' assignments ----------------------------------------------------------------


def test_screens_are_written_and_loaded_back_the_newest_of_each(path):
    store, _ = opened(path)
    assert store.screens == {}
    store.write_screens({"lobby": '{"dashboard": "a", "since": 1.0}', "desk": '{"playlist": "p", "since": 2.0}'})
    store.write_screens({"lobby": '{"dashboard": "b", "since": 3.0}'})
    store.close()
    store, _ = opened(path)
    assert store.screens == {"desk": '{"playlist": "p", "since": 2.0}', "lobby": '{"dashboard": "b", "since": 3.0}'}
    store.close()


def test_a_schema_1_file_from_before_screens_gains_the_table_and_keeps_its_streams(path):
    store, _ = opened(path)
    store.write({"sales": entries("sales", 1, 3)}, {"sales": 100})
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE screens")  # as a file written before screens were kept
    conn.commit()
    conn.close()
    store, stored = opened(path)
    assert store.screens == {} and stored["sales"].seq == 3
    store.write_screens({"lobby": "{}"})
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA == 1
    assert conn.execute("SELECT name, body FROM screens").fetchall() == [("lobby", "{}")]
    conn.close()


def test_the_writer_writes_screens_with_the_next_batch_and_on_close():
    store = RecordingStore()
    writer = StateWriter(store, flush_interval=0.05)
    writer.start()
    writer.put_screen("lobby", "first")
    writer.put_screen("lobby", "second")  # only the newest of a screen matters
    writer.put_screen("desk", "d")
    assert store.wrote.wait(5)
    wait_until(lambda: sum(map(len, store.screens)) == 2, message="both screens written")
    assert {name: body for batch in store.screens for name, body in batch.items()} == {"lobby": "second", "desk": "d"}
    assert store.batches == []  # no entries: no entry batch
    store.fail = [sqlite3.OperationalError("disk I/O error")]  # one failure: kept and retried
    writer.put_screen("lobby", "third")
    wait_until(lambda: store.screens[-1] == {"lobby": "third"}, message="written on the retry")
    assert writer.health.errors == 1 and not store.fail
    assert writer.health.flushes == 0  # screens are not batches of entries
    assert writer.close(timeout=10)
