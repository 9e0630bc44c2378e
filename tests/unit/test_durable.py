"""The durable log's rules (``dashstream/streams/durable.py``): what a stream is restored to
from what the file holds, the resume rule with an aliased epoch, the health the hub logs,
and ``open_state`` over a real temporary file (its writer thread written and closed)."""

from __future__ import annotations

import itertools
import logging
from types import SimpleNamespace

import pytest

from dashstream.messages import Entry
from dashstream.streams.durable import NO_STATE, DurableLog, DurableState, open_state, restore
from dashstream.streams.log import MemoryLog, Resume
from dashstream.streams.state_store import StateStore, StoredStream, WriteHealth

pytestmark = pytest.mark.timeout(30)


def stored(seq: int, first: int | None = None, *, kept: int = 100, dirty: bool = False, epoch: str = "e1",
           alias: tuple[str, int] | None = None) -> StoredStream:
    first = max(seq - kept + 1, 1) if first is None else first
    entries = [Entry("s", n, 1000.0 + n, epoch, f'{{"variable":{n}}}') for n in range(first, seq + 1)]
    return StoredStream("s", epoch, seq, kept, dirty, entries, *(alias or (None, None)))


def epochs():
    counter = itertools.count(2)
    return lambda: f"e{next(counter)}"


# --- restore: what the file's numbering is worth ------------------------------------------------


def test_a_stream_not_in_the_file_starts_a_new_numbering():
    restored = restore(None, 100, epochs())
    assert (restored.epoch, restored.seq, restored.entries, restored.alias, restored.changed) == ("e2", 0, [], None,
                                                                                                  False)


def test_a_cleanly_written_stream_keeps_its_epoch_numbering_and_history():
    restored = restore(stored(50), 100, epochs())
    assert (restored.epoch, restored.seq, restored.alias, restored.why_new_epoch) == ("e1", 50, None, None)
    assert [e.seq for e in restored.entries] == list(range(1, 51)) and not restored.changed


def test_a_smaller_history_keeps_the_newest_entries_and_rewrites_the_file():
    restored = restore(stored(50), 10, epochs())
    assert [e.seq for e in restored.entries] == list(range(41, 51)) and restored.epoch == "e1" and restored.changed


def test_a_stream_that_may_have_lost_its_tail_continues_the_numbering_in_a_new_epoch():
    restored = restore(stored(50, dirty=True), 100, epochs())
    assert (restored.epoch, restored.seq, restored.alias) == ("e2", 50, ("e1", 50))
    assert {e.epoch for e in restored.entries} == {"e2"} and [e.seq for e in restored.entries] == list(range(1, 51))
    assert "entries after seq 50 may be lost" in restored.why_new_epoch and restored.changed


@pytest.mark.parametrize("damaged", [
    stored(50, 5),  # rows missing at the start of a history that should reach seq 1
    StoredStream("s", "e1", 50, 100, False, stored(50).entries[:30] + stored(50).entries[31:]),  # a hole
    StoredStream("s", "e1", 60, 100, False, stored(50).entries),  # the numbering says more than the rows hold
])
def test_a_stream_whose_rows_do_not_add_up_starts_a_new_epoch_with_its_newest_value(damaged):
    restored = restore(damaged, 100, epochs())
    newest = damaged.entries[-1]
    assert (restored.epoch, restored.seq, restored.alias) == ("e2", 1, None)
    assert [(e.seq, e.epoch, e.ts, e.body) for e in restored.entries] == [(1, "e2", newest.ts, newest.body)]
    assert "cannot be trusted" in restored.why_new_epoch and restored.changed


def test_a_stream_with_no_rows_left_starts_a_new_empty_epoch():
    restored = restore(StoredStream("s", "e1", 7, 100, False, []), 100, epochs())
    assert (restored.epoch, restored.seq, restored.entries) == ("e2", 0, [])


def test_an_alias_kept_in_the_file_is_kept():
    assert restore(stored(60, alias=("e0", 50)), 100, epochs()).alias == ("e0", 50)


# --- the log: a MemoryLog that queues every entry ----------------------------------------------------


def durable_log(restored, history: int = 100):
    queued, delivered = [], []
    log = DurableLog("s", history=history, clock=lambda: 2000.0, on_entry=delivered.append, restored=restored,
                     put=queued.append)
    return log, queued, delivered


def test_appending_numbers_from_the_stored_seq_delivers_and_queues_for_the_file():
    log, queued, delivered = durable_log(restore(stored(50), 100, epochs()))
    entry = log.append('{"variable":51}')
    assert (entry.seq, entry.epoch) == (51, "e1")
    assert queued == delivered == [entry] and log.last is entry


def test_resume_from_the_stored_history_gets_exactly_the_missed_entries():
    log, _, _ = durable_log(restore(stored(50), 100, epochs()))
    log.append('{"variable":51}')
    entries, gap = log.backlog(Resume(30, "e1"))
    assert [e.seq for e in entries] == list(range(31, 52)) and not gap
    assert log.backlog(None) == ([log.last], False)


def test_the_old_epoch_resumes_without_a_gap_up_to_what_was_stored_and_with_one_past_it():
    log, _, _ = durable_log(restore(stored(50, dirty=True), 100, epochs()))
    log.append('{"variable":51}')
    entries, gap = log.backlog(Resume(30, "e1"))
    assert [(e.seq, e.epoch) for e in entries] == [(n, "e2") for n in range(31, 52)] and not gap
    assert log.backlog(Resume(50, "e1")) == ([log.last], False)
    # The client saw an entry 51 of e1 that was lost: not the same message as e2's 51.
    assert log.backlog(Resume(51, "e1")) == ([log.last], True)
    assert log.backlog(Resume(51, "e2")) == ([], False)


def test_the_resume_rule_is_memory_logs_for_anything_else():
    restored = restore(stored(5, kept=3), 3, epochs())
    log, _, _ = durable_log(restored, history=3)
    memory = MemoryLog("s", history=3, epoch="e1")
    memory.seq = 5
    memory._history.extend(restored.entries)
    for resume in (None, Resume(1, "e1"), Resume(2, "e1"), Resume(4, "e1"), Resume(5, "e1"), Resume(6, "e1"),
                   Resume(3, "other")):
        assert log.backlog(resume) == memory.backlog(resume), resume


# --- health: logged when it starts, once a minute, and when it ends ---------------------------


class FakeWriter:
    flush_interval = 1.0

    def __init__(self):
        self.health = WriteHealth()
        self.closed = False

    def close(self, timeout: float = 10.0) -> bool:
        self.closed = True
        return True


def test_a_write_failure_is_logged_once_a_minute_and_its_end_once(caplog):
    now = [0.0]
    writer = FakeWriter()
    state = DurableState(SimpleNamespace(path="/x/state.db"), writer, {}, schedule=lambda *_: None,
                         clock=lambda: now[0])
    caplog.set_level(logging.DEBUG, logger="dashstream.state")
    assert state.describe() == {"state": "ok", "errors": 0, "flushes": 0}
    writer.health.failing, writer.health.failing_since, writer.health.errors = "database or disk is full", 5.0, 1
    for now[0] in (0.0, 1.0, 30.0, 59.0, 60.0, 61.0):
        state.check()
    assert [r.getMessage() for r in caplog.records] == [
        "state /x/state.db: cannot write (database or disk is full); delivery goes on from memory, the writes are "
        "retried every 1s (1 failed so far)"] * 2
    assert state.describe() == {"state": "degraded", "errors": 1, "flushes": 0, "reason": "database or disk is full",
                                "since": 5.0}
    caplog.clear()
    writer.health.failing = None
    state.check()
    state.check()
    assert [r.getMessage() for r in caplog.records] == ["state /x/state.db: writing again"]
    state.close()
    assert writer.closed


def test_without_state_nothing_is_kept_or_reported():
    assert open_state(SimpleNamespace(state=None)) is NO_STATE
    assert NO_STATE.describe() is None and NO_STATE.log_factory(object()) is None
    NO_STATE.close()


# --- open_state over a real file ---------------------------------------------------------------------


def config(path, *names: str, history: int = 100, private: tuple[str, ...] = ()):
    specs = [SimpleNamespace(name=name, shared=True, history=None) for name in names]
    specs += [SimpleNamespace(name=name, shared=False, history=None) for name in private]
    return SimpleNamespace(state=str(path), state_flush=30.0, streams=specs, history=history)


def run_logs(state, *names: str) -> dict[str, DurableLog]:
    return {name: state.log_factory(SimpleNamespace(name=name))(name, history=100, on_entry=None) for name in names}


def test_open_state_restores_what_a_closed_state_wrote_and_drops_removed_streams(tmp_path, caplog):
    path = tmp_path / "state.db"
    caplog.set_level(logging.INFO, logger="dashstream.state")
    state = open_state(config(path, "a", "b", private=("default",)), schedule=lambda *_: None)
    logs = run_logs(state, "a", "b")
    for n in range(1, 51):
        logs["a"].append(f'{{"variable":{n}}}')
    logs["b"].append('{"variable":"b"}')
    epoch = logs["a"].epoch
    state.close()
    assert not state.writer._thread.is_alive()

    state = open_state(config(path, "a"), schedule=lambda *_: None)
    (a,) = run_logs(state, "a").values()
    assert (a.epoch, a.seq, a.last.body) == (epoch, 50, '{"variable":50}')
    assert a.backlog(Resume(30, epoch)) == (list(a._history)[30:], False)
    assert a.append('{"variable":51}').seq == 51
    state.close()
    assert f"state {path}: dropped 'b' (no longer in the config)" in caplog.messages
    store = StateStore(path)
    assert {stream.name for stream in store.open()} == {"a"}
    store.close()


def test_open_state_refuses_a_file_in_use(tmp_path):
    path = tmp_path / "state.db"
    first = open_state(config(path, "a"), schedule=lambda *_: None)
    with pytest.raises(Exception, match="in use by another dashstream process"):
        open_state(config(path, "a"), schedule=lambda *_: None)
    first.close()
