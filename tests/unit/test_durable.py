"""The durable log's rules (``dashstream/streams/durable.py``): what a stream is restored to
from what the file holds, the resume rule with an aliased epoch, the health the hub logs,
and ``open_state`` over a real temporary file (its writer thread written and closed)."""

from __future__ import annotations

import collections
import itertools
import logging
import re
from types import SimpleNamespace

import pytest

from dashstream.messages import Entry
from dashstream.streams.durable import LOG_EVERY, NO_STATE, WATCH_EVERY, DurableLog, DurableState, open_state, restore
from dashstream.streams.log import MemoryLog, Resume
from dashstream.streams.state_store import StateError, StateStore, StoredStream, WriteHealth

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


def test_a_history_of_zero_still_keeps_the_last_value():
    restored = restore(stored(50), 0, epochs())
    assert [e.seq for e in restored.entries] == [50] and restored.seq == 50


def test_a_stream_stored_before_anything_was_published_keeps_its_epoch():
    """seq 0 and no rows: what a stream that started a new epoch at start and then published
    nothing leaves in the file. Its numbering is sound: nothing to distrust."""
    restored = restore(StoredStream("s", "e1", 0, 100, False, []), 100, epochs())
    assert (restored.epoch, restored.seq, restored.entries, restored.why_new_epoch, restored.changed) == (
        "e1", 0, [], None, False)


def test_a_stream_that_may_have_lost_its_tail_continues_the_numbering_in_a_new_epoch():
    restored = restore(stored(50, dirty=True), 100, epochs())
    assert (restored.epoch, restored.seq, restored.alias) == ("e2", 50, ("e1", 50))
    assert [(e.stream, e.seq, e.ts, e.epoch, e.body) for e in restored.entries] == [
        ("s", n, 1000.0 + n, "e2", f'{{"variable":{n}}}') for n in range(1, 51)]  # the same values, renumbered
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
    assert [(e.stream, e.seq, e.epoch, e.ts, e.body) for e in restored.entries] == [
        ("s", 1, "e2", newest.ts, newest.body)]
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
    assert (entry.stream, entry.seq, entry.epoch, entry.ts) == ("s", 51, "e1", 2000.0)  # the log's clock
    assert queued == delivered == [entry] and log.last is entry


def test_a_durable_log_keeps_its_history_size_as_a_memory_log_does():
    log, _, _ = durable_log(restore(stored(2), 3, epochs()), history=3)
    for n in range(3, 8):
        log.append(f'{{"variable":{n}}}')
    missed, gap = log.backlog(Resume(4, "e1"))
    assert [e.seq for e in missed] == [5, 6, 7] and not gap
    assert log.backlog(Resume(3, "e1"))[1]  # one more than it keeps: the gap signal
    assert [e.seq for e in log.backlog(None, recent=2)[0]] == [6, 7]  # ?history=2
    default = DurableLog("s", restored=restore(None, 100, epochs()), put=lambda entry: None)
    for n in range(1, 151):
        default.append("{}")
    assert default.history_size == 100 == MemoryLog("s").history_size


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

    def __init__(self, finishes: bool = True):
        self.health = WriteHealth()
        self.closed = False
        self.closes: list[float] = []
        self.finishes = finishes
        self.tracked: dict[str, int] = {}
        self.screens: list[tuple[str, str]] = []
        self.queued: list[Entry] = []
        self.started = False

    def track(self, stream: str, history: int) -> None:
        self.tracked[stream] = history

    def put(self, entry: Entry) -> None:
        self.queued.append(entry)

    def put_screen(self, name: str, body: str) -> None:
        self.screens.append((name, body))

    def start(self) -> None:
        self.started = True

    def close(self, timeout: float = 10.0) -> bool:
        self.closed = True
        self.closes.append(timeout)
        return self.finishes


class Schedule:
    """``runtime.call_later`` recorded: the test runs what was scheduled."""

    def __init__(self):
        self.calls: list[tuple[float, object]] = []

    def __call__(self, delay, callback):
        self.calls.append((delay, callback))


def fake_state(writer=None, restored=None, screens=None, logger=None) -> tuple[DurableState, Schedule]:
    schedule = Schedule()
    store = SimpleNamespace(path="/x/state.db", screens=screens or {})
    extra = {} if logger is None else {"logger": logger}
    return DurableState(store, writer or FakeWriter(), restored or {}, schedule=schedule, clock=lambda: 0.0,
                        **extra), schedule


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


def test_a_failure_lasting_exactly_a_minute_is_logged_again(caplog):
    now = [0.0]
    writer = FakeWriter()
    state = DurableState(SimpleNamespace(path="/x/state.db"), writer, {}, schedule=lambda *_: None,
                         clock=lambda: now[0])
    caplog.set_level(logging.ERROR, logger="dashstream.state")
    writer.health.failing = "disk I/O error"
    logged = []
    for now[0] in (0.0, LOG_EVERY - 0.5, LOG_EVERY, LOG_EVERY + 0.5, 2 * LOG_EVERY):
        state.check()
        logged.append(len(caplog.records))
    assert logged == [1, 1, 2, 2, 3]


def test_the_hub_looks_at_the_writers_health_every_second_until_closed(caplog):
    writer = FakeWriter()
    state, schedule = fake_state(writer)
    state.start()
    assert writer.started and [delay for delay, _ in schedule.calls] == [WATCH_EVERY]
    caplog.set_level(logging.ERROR, logger="dashstream.state")
    writer.health.failing = "disk I/O error"
    schedule.calls[-1][1]()  # the watch: it looks, logs, and comes back a second later
    assert len(caplog.records) == 1 and "cannot write (disk I/O error)" in caplog.records[0].getMessage()
    assert [delay for delay, _ in schedule.calls] == [WATCH_EVERY, WATCH_EVERY]
    writer.health.failing = None
    state.close()
    schedule.calls[-1][1]()  # once closed it stops coming back
    assert len(schedule.calls) == 2


def test_close_waits_for_the_writer_within_docker_stops_grace_and_only_once(caplog):
    caplog.set_level(logging.DEBUG, logger="dashstream.state")
    writer = FakeWriter()
    state, _ = fake_state(writer)
    state.close()
    state.close()
    assert len(writer.closes) == 1 and 0 < writer.closes[0] <= 5.0  # docker stop gives 10 s in all
    assert caplog.messages == ["state /x/state.db: written and closed"]


def test_close_says_when_the_last_write_did_not_finish(caplog):
    caplog.set_level(logging.DEBUG, logger="dashstream.state")
    state, _ = fake_state(FakeWriter(finishes=False))
    state.close()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "state /x/state.db: the last write did not finish in time; the file keeps what it had")]


def test_close_counts_the_entries_the_file_could_not_take(caplog):
    caplog.set_level(logging.DEBUG, logger="dashstream.state")
    writer = FakeWriter()
    writer.health.lost, writer.health.failing = 7, "database or disk is full"
    state, _ = fake_state(writer, logger=logging.getLogger("dashstream.state"))
    state.check()  # its failure is logged as it starts...
    caplog.clear()
    state.close()  # ...and not again at close, within the minute
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "state /x/state.db: 7 entries could not be written before exit (database or disk is full)")]


def test_screens_are_saved_through_the_writer_and_read_back_from_the_file():
    writer = FakeWriter()
    state, _ = fake_state(writer, screens={"lobby": '{"dashboard": "a"}'})
    saved = state.saved_screens()
    assert saved == {"lobby": '{"dashboard": "a"}'}
    saved["other"] = "{}"  # a copy: the caller's changes are its own
    assert state.saved_screens() == {"lobby": '{"dashboard": "a"}'}
    state.save_screen("desk", '{"playlist": "p"}')
    assert writer.screens == [("desk", '{"playlist": "p"}')]


def test_a_stream_not_restored_at_open_gets_a_new_numbering_and_keeps_it():
    writer = FakeWriter()
    state, _ = fake_state(writer)
    delivered = []
    log = state.log_factory(SimpleNamespace(name="late"))("late", history=3, clock=lambda: 7.0,
                                                            on_entry=delivered.append)
    for n in range(1, 6):
        log.append(f'{{"variable":{n}}}')
    missed, gap = log.backlog(Resume(2, log.epoch))
    assert [e.seq for e in missed] == [3, 4, 5] and not gap and log.backlog(Resume(1, log.epoch))[1]  # history 3
    assert [(e.seq, e.ts) for e in delivered] == [(n, 7.0) for n in range(1, 6)] and writer.queued == delivered
    assert writer.tracked == {"late": 3}
    again = state.log_factory(SimpleNamespace(name="late"))("late", on_entry=None)
    assert again.epoch == log.epoch and again.seq == 0  # the same numbering as decided first
    assert again.history_size == 100


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


def a_damaged_file(path) -> None:
    store = StateStore(path)
    store.open()
    for index in range(40):  # enough pages that cutting the file in half loses some
        name = f"s{index}"
        store.write({name: collections.deque(Entry(name, n, 1.0, "e1", "{}") for n in range(1, 51))}, {name: 50})
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_open_state_sets_a_damaged_file_aside_and_says_so(tmp_path, caplog):
    path = tmp_path / "state.db"
    a_damaged_file(path)
    caplog.set_level(logging.INFO, logger="dashstream.state")
    state = open_state(config(path, "a", "b"), schedule=lambda *_: None)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert re.fullmatch(rf"state {re.escape(str(path))}: the file is damaged \(database disk image is malformed\); "
                        rf"set aside as {re.escape(str(path))}\.damaged-\d{{8}}T\d{{6}}, every stream starts a new "
                        r"epoch", warning), warning
    assert f"state {path}: 2 shared stream(s), 0 restored" in caplog.messages
    state.close()


def test_open_state_rewrites_a_stream_that_lost_its_tail_and_says_why(tmp_path, caplog):
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.open()
    store.write({"a": collections.deque(Entry("a", n, 1000.0 + n, "e1", f'{{"v":{n}}}') for n in range(1, 6))},
                {"a": 100})
    store.mark_dirty(["a"])  # killed before the next batch
    store.close()
    caplog.set_level(logging.INFO, logger="dashstream.state")
    state = open_state(config(path, "a", "b", "c", history=3), schedule=lambda *_: None)
    epoch = state.restored["a"].epoch
    assert epoch != "e1"
    assert caplog.messages[-2:] == [
        f"state {path}: stream 'a': the server stopped before writing everything (entries after seq 5 may be "
        "lost): new epoch continuing the numbering; screens past it get the gap signal",
        f"state {path}: 3 shared stream(s), 1 restored"]
    state.close()
    store = StateStore(path)
    (a,) = store.open()  # as decided at start, before anything was published
    assert (a.epoch, a.seq, a.kept, a.dirty, a.alias_epoch, a.alias_seq) == (epoch, 5, 3, False, "e1", 5)
    assert [(e.seq, e.ts, e.epoch, e.body) for e in a.entries] == [(n, 1000.0 + n, epoch, f'{{"v":{n}}}')
                                                                   for n in (3, 4, 5)]
    store.close()


def test_open_state_names_every_stream_it_drops(tmp_path, caplog):
    path = tmp_path / "state.db"
    state = open_state(config(path, "a", "b", "c"), schedule=lambda *_: None)
    for log in run_logs(state, "a", "b", "c").values():
        log.append("{}")
    state.close()
    caplog.set_level(logging.INFO, logger="dashstream.state")
    open_state(config(path, "b"), schedule=lambda *_: None).close()
    assert f"state {path}: dropped 'a', 'c' (no longer in the config)" in caplog.messages


def test_a_file_that_cannot_take_the_restored_state_is_refused_and_let_go(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.open()
    store.write({"a": collections.deque([Entry("a", 1, 1.0, "e1", "{}")])}, {"a": 100})
    store.mark_dirty(["a"])
    store.close()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(StateStore, "replace_stream", full)
    with pytest.raises(StateError) as raised:
        open_state(config(path, "a"), schedule=lambda *_: None)
    assert str(raised.value) == (f"--state {path}: cannot write it ([Errno 28] No space left on device); free some "
                                 "space or choose another path")
    monkeypatch.undo()
    again = StateStore(path)
    again.open()  # not left locked
    again.close()


def test_open_state_watches_with_the_given_schedule_and_logs_to_the_given_logger(tmp_path, caplog):
    schedule = Schedule()
    caplog.set_level(logging.DEBUG, logger="test.open_state")
    logger = logging.getLogger("test.open_state")
    state = open_state(config(tmp_path / "state.db", "a"), schedule=schedule, logger=logger)
    assert [delay for delay, _ in schedule.calls] == [WATCH_EVERY]
    state.close()
    assert [r.getMessage() for r in caplog.records if r.name == "test.open_state"][-1] == (
        f"state {tmp_path / 'state.db'}: written and closed")
