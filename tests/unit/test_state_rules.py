"""The state file's rules without I/O (``dashstream/streams/state_rules.py``): which file is
ours, rows into streams, what a batch writes and trims, and the writer thread's batch and
health, all with values: no file, no thread."""

from __future__ import annotations

import time
from collections import deque

import pytest

from dashstream.messages import Entry
from dashstream.streams.state_rules import (
    APPLICATION_ID,
    SCHEMA,
    STOP,
    Batch,
    ScreenAssignment,
    StoredStream,
    StreamWrite,
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

pytestmark = pytest.mark.timeout(30)


def entry(stream: str, seq: int, epoch: str = "e1") -> Entry:
    return Entry(stream, seq, 1000.0 + seq, epoch, f'{{"variable":{seq}}}')


def entries(stream: str, first: int, last: int, epoch: str = "e1") -> deque[Entry]:
    return deque(entry(stream, seq, epoch) for seq in range(first, last + 1))


# --- which file it is ----------------------------------------------------------------------------


def header(magic: bytes = b"SQLite format 3\x00", application_id: int = APPLICATION_ID, size: int = 100) -> bytes:
    """An SQLite file header as the first ``size`` bytes of a file (the id at offset 68)."""
    full = magic + bytes(68 - len(magic)) + application_id.to_bytes(4, "big") + bytes(28)
    return full[:size]


def test_a_header_with_sqlites_magic_and_our_application_id_is_ours():
    assert header_is_ours(header())


@pytest.mark.parametrize("other", [
    header(application_id=0),  # an SQLite database of another program (or one never marked)
    header(application_id=APPLICATION_ID + 1),
    header(magic=b"SQLite format 2\x00"),  # not SQLite 3, even with our id where ours would be
    header(size=99),  # a file cut inside its header
    b"",  # an empty file
])
def test_any_other_header_is_not_ours(other):
    assert not header_is_ours(other)


@pytest.mark.parametrize("application_id, version, tables, kind", [
    (0, 0, 0, "new"),  # an empty database (or an empty file): the schema is created
    (0, 0, 1, "foreign"),  # tables but no id: another program's database
    (0, 1, 0, "foreign"),  # a user_version but no id
    (1, 0, 0, "foreign"),
    (APPLICATION_ID + 1, SCHEMA, 2, "foreign"),
    (APPLICATION_ID, SCHEMA, 2, "ours"),
    (APPLICATION_ID, SCHEMA - 1, 2, "ours"),  # an older schema is read
    (APPLICATION_ID, SCHEMA + 1, 2, "newer"),  # a newer one is refused
])
def test_what_a_databases_id_schema_and_tables_make_it(application_id, version, tables, kind):
    assert file_kind(application_id, version, tables) == kind


def test_a_damaged_file_is_set_aside_under_its_name_and_the_time_it_was_found():
    when = time.struct_time((2026, 12, 3, 14, 5, 9, 3, 337, 0))
    assert aside_name("state.db", when) == "state.db.damaged-20261203T140509"


def test_an_error_is_said_in_its_own_words():
    assert reason(OSError(28, "No space left on device")) == "No space left on device"  # without [Errno 28]
    assert reason(OSError("no strerror here")) == "no strerror here"
    assert reason(ValueError("bad value")) == "bad value"


# --- rows ------------------------------------------------------------------------------------------


def flat(stream: StoredStream) -> tuple:
    return (stream.name, stream.epoch, stream.seq, stream.kept, stream.dirty,
            [(e.stream, e.seq, e.ts, e.epoch, e.body) for e in stream.entries], stream.alias_epoch, stream.alias_seq)


def test_rows_load_as_streams_with_their_entries_in_the_streams_epoch():
    streams = stored_streams(
        [("a", "ea", 2, 100, 0, None, None), ("b", "eb", 9, 5, 1, "e0", 7)],
        [("a", 1, 1001.0, "one"), ("a", 2, 1002.0, "two"), ("b", 9, 1009.0, "nine")])
    assert [flat(stream) for stream in streams] == [
        ("a", "ea", 2, 100, False, [("a", 1, 1001.0, "ea", "one"), ("a", 2, 1002.0, "ea", "two")], None, None),
        ("b", "eb", 9, 5, True, [("b", 9, 1009.0, "eb", "nine")], "e0", 7)]
    assert streams[1].dirty is True and streams[0].dirty is False


def test_entries_of_a_stream_without_its_row_are_left_out():
    streams = stored_streams([("a", "ea", 1, 100, 0, None, None)],
                             [("gone", 1, 1.0, "x"), ("a", 1, 1001.0, "one"), ("zzz", 4, 4.0, "y")])
    assert [(s.name, [e.body for e in s.entries]) for s in streams] == [("a", ["one"])]


def test_no_rows_no_streams():
    assert stored_streams([], [("orphan", 1, 1.0, "x")]) == []


def test_the_streams_forgotten_are_the_known_ones_not_kept_sorted():
    assert forgotten(["zeta", "alpha", "kept", "alpha"], ["kept", "new"]) == ["alpha", "zeta"]
    assert forgotten(["kept"], iter(["kept"])) == []


def test_entry_rows_are_stream_seq_ts_body():
    assert entry_rows("s", entries("s", 3, 4)) == [("s", 3, 1003.0, '{"variable":3}'),
                                                   ("s", 4, 1004.0, '{"variable":4}')]


def test_a_replaced_streams_row_holds_its_alias_or_none():
    assert replacement_row("s", "e2", 50, 100, ("e1", 50)) == ("s", "e2", 50, 100, "e1", 50)
    assert replacement_row("s", "e2", 0, 10, None) == ("s", "e2", 0, 10, None, None)


# --- what a batch writes ----------------------------------------------------------------------------


def test_a_batch_that_follows_the_file_adds_its_rows_and_trims_to_the_history():
    (write,) = batch_writes({"s": entries("s", 9, 10)}, {"s": 3}, {"s": 8})
    assert write == StreamWrite("s", entry_rows("s", entries("s", 9, 10)), None, 7, ("s", "e1", 10, 3))


@pytest.mark.parametrize("stored_last", [{}, {"s": 5}, {"s": 7}, {"s": 20}, {"other": 6}])
def test_a_batch_that_does_not_follow_the_file_starts_the_history(stored_last):
    (write,) = batch_writes({"s": entries("s", 7, 9)}, {"s": 10}, stored_last)
    assert (write.restart_below, write.trim_through) == (7, -1)


def test_a_stream_not_tracked_keeps_what_the_batch_holds():
    (write,) = batch_writes({"s": entries("s", 4, 6)}, {}, {"s": 3})
    assert (write.trim_through, write.numbering) == (3, ("s", "e1", 6, 3))


def test_the_numbering_is_the_newest_entrys_epoch_and_seq():
    batch = {"a": deque([entry("a", 1, "old"), entry("a", 2, "new")]), "b": entries("b", 1, 1)}
    writes = batch_writes(batch, {"a": 5, "b": 5}, {"a": 0, "b": 0})
    assert [w.numbering for w in writes] == [("a", "new", 2, 5), ("b", "e1", 1, 5)]
    assert [w.name for w in writes] == ["a", "b"] and [w.restart_below for w in writes] == [None, None]
    assert last_written(batch) == {"a": 2, "b": 1}


# --- the writer's health -----------------------------------------------------------------------------


def test_health_tells_when_writes_started_failing_and_why_until_a_batch_is_written():
    health = WriteHealth()
    assert (health.failing, health.failing_since, health.errors, health.flushes, health.lost) == (None, None, 0, 0, 0)
    health.failed(OSError(28, "No space left on device"), 5.0)
    health.failed(RuntimeError(), 9.0)  # no words of its own: its type
    assert (health.failing, health.failing_since, health.errors) == ("RuntimeError", 5.0, 2)
    health.flushed()
    assert (health.failing, health.failing_since, health.errors, health.flushes) == (None, None, 2, 1)
    health.failed(OSError(5, "Input/output error"), 12.0)
    assert (health.failing, health.failing_since) == ("[Errno 5] Input/output error", 12.0)
    health.flushed()
    assert health.flushes == 2 and health.errors == 3


# --- the writer's batch ------------------------------------------------------------------------------


def test_a_batch_keeps_each_streams_last_history_and_the_newest_of_each_screen():
    batch = Batch({"s": 3, "t": 10}, flush_interval=1.0)
    assert batch.empty() and not batch.stopping
    for item in [*entries("s", 1, 5), entry("t", 1), ScreenAssignment("lobby", "a"), ScreenAssignment("desk", "d"),
                 ScreenAssignment("lobby", "b"), entry("untracked", 1), entry("untracked", 2)]:
        batch.add(item)
    assert {name: [e.seq for e in kept] for name, kept in batch.entries.items()} == {
        "s": [3, 4, 5], "t": [1], "untracked": [2]}  # a stream not tracked: its last value
    assert batch.screens == {"lobby": "b", "desk": "d"} and not batch.empty() and not batch.stopping
    assert batch.lost() == 5
    batch.add(STOP)
    assert batch.stopping


def test_screens_alone_make_a_batch():
    batch = Batch({}, flush_interval=2.0)
    batch.add(ScreenAssignment("lobby", "{}"))
    assert not batch.empty()
    batch.open(10.0)
    assert batch.deadline == 12.0 and batch.lost() == 0


def test_a_batch_is_due_an_interval_after_its_first_item():
    batch = Batch({"s": 10}, flush_interval=2.0)
    batch.open(1.0)
    assert batch.deadline is None and not batch.due(100.0)  # nothing unwritten: never due
    batch.add(entry("s", 1))
    batch.open(10.0)
    batch.add(entry("s", 2))
    batch.open(11.0)  # a later item does not move it
    assert batch.deadline == 12.0
    assert batch.wait(10.5) == 1.5 and batch.wait(12.0) == 0.0 and batch.wait(13.0) == 0.0
    assert not batch.due(11.99) and batch.due(12.0) and batch.due(12.5)


def test_stopping_makes_a_batch_due_at_once():
    batch = Batch({}, flush_interval=30.0)
    batch.add(STOP)
    assert batch.due(0.0)


def test_the_streams_to_mark_dirty_are_the_new_ones_unless_stopping_or_failing():
    batch = Batch({"s": 10, "t": 10}, flush_interval=1.0)
    batch.add(entry("s", 1))
    assert batch.to_mark(failing=False) == {"s"}
    assert batch.to_mark(failing=True) == set()  # the mark would fail as well
    batch.marked |= {"s"}
    batch.add(entry("s", 2))
    batch.add(entry("t", 1))
    assert batch.to_mark(failing=False) == {"t"}
    batch.add(STOP)
    assert batch.to_mark(failing=False) == set()  # written at once instead


def test_after_a_write_what_is_left_is_retried_an_interval_later():
    batch = Batch({"s": 10}, flush_interval=2.0)
    batch.add(entry("s", 1))
    batch.marked.add("s")
    batch.open(0.0)
    batch.rearm(5.0)  # the write failed: everything is still there
    assert batch.deadline == 7.0 and batch.lost() == 1
    batch.entries_written()
    assert batch.entries == {} and batch.marked == set() and batch.lost() == 0
    batch.rearm(8.0)
    assert batch.deadline is None
    batch.add(ScreenAssignment("lobby", "{}"))  # a screen write that failed keeps the batch open
    batch.rearm(9.0)
    assert batch.deadline == 11.0
