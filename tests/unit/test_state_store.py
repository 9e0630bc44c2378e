"""The state file (``dashstream/streams/state_store.py``): checks at open, what a batch
writes and what loading gives back, and the writer thread's batching and failures. A real
SQLite file in a temporary directory; the writer's failures come from a fake store."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque

import pytest

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


def test_a_damaged_file_is_set_aside_and_a_new_one_started(path):
    store, _ = opened(path)
    for index in range(40):  # enough pages that cutting the file loses some
        store.write({f"s{index}": entries(f"s{index}", 1, 50)}, {f"s{index}": 50})
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    store, stored = opened(path)
    assert stored == {}
    problem, aside = store.damaged
    assert aside.name.startswith("state.db.damaged-") and aside.exists()
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

    def mark_dirty(self, names):
        if self.fail:
            raise self.fail[0]
        self.marked.append(set(names))

    def write(self, pending, kept):
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
    writer.start()
    for entry in entries("s", 1, 4):
        writer.put(entry)
    assert writer.close(timeout=10)
    assert writer.health.failing == "[Errno 28] No space left on device"
    assert writer.health.errors >= 1 and writer.health.lost == 3 and store.batches == []


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
    assert store.batches == []  # nothing written before the batch is due...
    assert writer.close(timeout=10)
    assert store.batches == [{"s": list(range(41, 51)), "t": [1]}]  # ...and everything at close


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
    assert writer.close(timeout=10)
