"""Unit tests of RedisLog (dashstream/redis_log.py) with a fake store: the mirror the tail
keeps, when it answers a backlog alone and when Redis is asked, the epoch re-read after a
reconnect, holes, and a subscription joining while the backlog read yields. The real Redis
is in tests/services/test_backplane_fleet.py."""

from __future__ import annotations

import json

import pytest

from dashstream.backplane.redis_log import RedisLog, entry_fields, entry_from_redis, fresh_part
from dashstream.messages import Entry, encode_fields
from dashstream.streams.fanout import Fanout
from dashstream.streams.log import LogUnavailable, Resume
from dashstream.streams.stream import SharedStream
from tests.fake_log_store import Clock, FakeStore

pytestmark = pytest.mark.timeout(20)


class Tail:
    """The tail's side for one log: XREAD from the cursor, then receive()."""

    def __init__(self, store: FakeStore, log: RedisLog) -> None:
        self.store, self.log = store, log
        self.cursor = 0

    def sync(self) -> None:
        self.cursor = self.store.sync(self.log)

    def read(self) -> None:
        for entry in [e for e in self.store.entries if e.seq > self.cursor]:
            self.cursor = entry.seq
            self.log.receive(self.store.copy(entry))


def make(history: int = 5, store: FakeStore | None = None):
    store = store or FakeStore()
    delivered: list[Entry] = []
    holes: list[Entry] = []
    log = RedisLog("s", history=history, clock=Clock(), on_entry=delivered.append, store=store)
    log.on_hole = holes.append
    tail = Tail(store, log)
    tail.sync()
    return store, log, tail, delivered, holes


def publish(log: RedisLog, *values) -> list[Entry]:
    return [log.append(encode_fields({"variable": value})) for value in values]


def seqs(entries) -> list[int]:
    return [entry.seq for entry in entries]


# --- appending and the tail -----------------------------------------------------------------------


def test_a_new_log_knows_nothing_until_the_tail_loads_it():
    store = FakeStore()
    log = RedisLog("s", history=5, store=store)
    assert (log.epoch, log.seq, log.last, log.synced, log.fenced) == (None, 0, None, False, False)
    assert RedisLog("s", store=store, fenced=True).fenced is True


def test_append_numbers_in_redis_but_only_the_tail_delivers():
    store, log, tail, delivered, _ = make()
    appended = publish(log, 1, 2)
    assert seqs(appended) == [1, 2] and appended[0].epoch == "E1" and delivered == []
    assert appended[0].stream == "s" and [e.ts for e in appended] == [1000.25, 1000.5]
    tail.read()
    assert seqs(delivered) == [1, 2] and log.seq == 2 and log.last.seq == 2 and log.epoch == "E1"
    # every instance builds the same text from what Redis keeps
    assert [e.text for e in delivered] == [e.text for e in appended]


def test_an_unavailable_store_numbers_nothing():
    store, log, tail, delivered, _ = make()
    store.down = True
    with pytest.raises(LogUnavailable):
        publish(log, 1)
    assert store.seq == 0 and log.seq == 0


def test_receive_skips_what_the_mirror_has_and_finds_holes():
    store, log, tail, delivered, holes = make(history=3)
    publish(log, 1, 2)
    tail.read()
    log.receive(store.copy(store.entries[0]))  # again: ignored
    log.receive(store.copy(store.entries[1]))  # the last one again, too
    assert seqs(delivered) == [1, 2] and holes == [] and seqs(log.backlog(Resume(0, "E1"))[0]) == [1, 2]
    publish(log, 3, 4, 5, 6, 7)  # Redis trimmed 3 and 4 before this tail read them
    tail.read()
    assert seqs(delivered) == [1, 2, 5, 6, 7] and seqs(holes) == [5]
    # the mirror stays contiguous: it holds only what follows the hole
    assert log.backlog(Resume(3, "E1")) == ([log.last], True) and store.reads == 0
    assert seqs(log.backlog(Resume(4, "E1"))[0]) == [5, 6, 7]


def test_a_new_epoch_read_by_the_tail_restarts_the_mirror():
    store, log, tail, delivered, holes = make()
    publish(log, 1, 2, 3)
    tail.read()
    store.lose_everything()
    publish(log, 10)
    tail.cursor = 0
    tail.read()
    assert log.epoch == "E2" and log.seq == 1 and seqs(holes) == [1] and delivered[-1].epoch == "E2"
    assert log.backlog(None) == ([delivered[-1]], False)


# --- resync: after a (re)connect the epoch is read again ----------------------------------------------


def test_resync_with_the_same_epoch_goes_on_from_our_last_seq():
    store, log, tail, delivered, holes = make()
    publish(log, 1, 2)
    tail.read()
    publish(log, 3, 4)  # published while this tail was disconnected
    assert log.resync(store.epoch, 2, list(store.entries[:2])) == 2  # nothing new: nothing happens
    assert seqs(delivered) == [1, 2] and holes == []
    assert log.resync(store.epoch, store.seq, list(store.entries)) == 2
    assert seqs(delivered) == [1, 2]  # XREAD from 2 brings 3 and 4, once
    tail.cursor = 2
    tail.read()
    assert seqs(delivered) == [1, 2, 3, 4] and holes == []


def test_resync_after_redis_lost_the_stream_restarts_from_nothing():
    store, log, tail, delivered, holes = make()
    publish(log, 1, 2, 3)
    tail.read()
    store.lose_everything()
    # reconnected: no epoch in Redis now. The old cursor (3) would skip seq 1..3 of the
    # numbering that starts next; the resync says to tail from 0.
    assert log.resync(None, 0, []) == 0
    assert log.epoch is None and log.seq == 0 and log.last is None and seqs(delivered) == [1, 2, 3]
    tail.cursor = 0
    publish(log, 7)
    tail.read()
    assert delivered[-1].seq == 1 and delivered[-1].epoch == "E2"


def test_resync_into_a_new_epoch_delivers_its_newest_entry_after_the_hole_signal():
    store, log, tail, delivered, holes = make()
    publish(log, 1, 2, 3)
    tail.read()
    store.lose_everything()
    publish(log, 5, 6)  # the new numbering started before this tail came back
    assert log.resync(store.epoch, store.seq, [store.copy(e) for e in store.entries]) == 2
    # every entry of the new numbering, in order; the first after the hole signal
    assert log.epoch == "E2" and seqs(holes) == [1] and seqs(delivered) == [1, 2, 3, 1, 2]
    assert {e.epoch for e in delivered[3:]} == {"E2"}
    assert seqs(log.backlog(Resume(1, "E2"))[0]) == [2]


def test_resync_with_a_seq_behind_ours_is_a_restart_too():
    store, log, tail, delivered, holes = make()
    publish(log, 1, 2, 3)
    tail.read()
    assert log.resync("E1", 1, [store.copy(store.entries[0])]) == 1
    assert log.seq == 1 and seqs(holes) == [1] and seqs(delivered) == [1, 2, 3, 1]


def test_a_screen_that_joined_an_empty_stream_gets_every_entry_of_its_first_numbering():
    """The tail learns of the first entries by a resync (e.g. the epoch notice came first):
    a screen that joined while the stream was empty must not miss any of them silently."""
    store = FakeStore()
    stream, tail = shared(store)
    session = FakeSession()
    stream.subscribe(session, None)
    for value in range(3):
        stream.publish({"variable": value})
    stream.log.resync(store.epoch, store.seq, [store.copy(e) for e in store.entries])
    assert session.received == [(1, False), (2, False), (3, False)]


def test_the_first_load_gives_waiting_screens_the_last_value():
    store = FakeStore()
    delivered: list[Entry] = []
    log = RedisLog("s", history=5, clock=Clock(), on_entry=delivered.append, store=store)
    log.append(encode_fields({"variable": 1}))
    assert not log.synced
    assert Tail(store, log).log.resync(store.epoch, store.seq, list(store.entries)) == 1
    assert seqs(delivered) == [1] and log.synced


# --- backlog: the mirror when it can, Redis when it must ---------------------------------------------


def test_the_mirror_answers_last_value_and_resumes_it_has_passed_without_asking_redis():
    store, log, tail, _, _ = make(history=5)
    publish(log, *range(8))
    tail.read()
    assert log.backlog(None) == ([log.last], False)
    assert seqs(log.backlog(Resume(5, "E1"))[0]) == [6, 7, 8]
    assert log.backlog(Resume(8, "E1")) == ([], False)
    assert log.backlog(Resume(2, "E1")) == ([log.last], True)  # older than history: Redis has no more
    assert store.reads == 0


def test_a_client_ahead_of_this_tail_is_answered_from_redis_exactly():
    store, log, tail, _, _ = make(history=5)
    publish(log, 1, 2)
    tail.read()
    publish(log, 3, 4, 5)  # seen by the client on another instance; this tail has not read them yet
    entries, gap = log.backlog(Resume(4, "E1"))
    assert (seqs(entries), gap, store.reads) == ([5], False, 1)
    assert log.backlog(Resume(5, "E1")) == ([], False)
    assert log.backlog(Resume(50, "E1"))[1] is True  # a seq from the future: gap


def test_another_epoch_asks_redis_which_may_know_it():
    store, log, tail, _, _ = make()
    publish(log, 1)
    tail.read()
    store.lose_everything()
    publish(log, 2, 3)  # E2, not read by this tail yet
    entries, gap = log.backlog(Resume(1, "E2"))
    assert (seqs(entries), gap) == ([2], False) and store.reads == 1
    entries, gap = log.backlog(Resume(1, "nope"))
    assert (seqs(entries), gap) == ([2], True)


def test_without_redis_a_client_ahead_waits_for_the_tail_and_others_get_the_mirror():
    store, log, tail, _, _ = make()
    publish(log, 1, 2)
    tail.read()
    store.down = True
    assert log.backlog(Resume(7, "E1")) == ([], False)  # the tail brings 8.. once it can
    assert log.backlog(Resume(1, "other")) == ([log.last], True)
    assert log.backlog(None) == ([log.last], False)  # the mirror, no Redis needed


def test_before_the_first_load_redis_is_asked_and_its_absence_means_nothing_yet():
    store = FakeStore()
    log = RedisLog("s", history=5, clock=Clock(), on_entry=lambda e: None, store=store)
    log.append(encode_fields({"variable": 1}))
    assert seqs(log.backlog(None)[0]) == [1] and store.reads == 1
    assert seqs(log.backlog(Resume(0, "E1"))[0]) == [1]
    assert store.asked_after == [None, 0]  # no range asked for without a resume
    store.down = True
    assert log.backlog(None) == ([], False)
    assert log.backlog(Resume(1, "E1")) == ([], True)


def test_before_the_first_load_an_empty_redis_owes_nothing():
    store = FakeStore()
    log = RedisLog("s", history=5, store=store)
    assert log.backlog(None) == ([], False)
    assert log.backlog(Resume(3, "E9")) == ([], True)


def test_without_redis_a_stream_never_loaded_owes_nothing_but_a_resume_gets_the_gap():
    store = FakeStore()
    store.down = True
    log = RedisLog("s", history=5, store=store)
    log.resync(None, 0, [])
    assert log.backlog(None) == ([], False)
    assert log.backlog(Resume(3, "E1")) == ([], True)


def test_history_size_and_remote_flag():
    _, log, *_ = make(history=7)
    assert log.history_size == 7 and log.remote is True
    assert RedisLog("s", history=0, store=FakeStore()).history_size == 1


# --- an instance that fell behind ------------------------------------------------------------------------


def at(*times: float) -> list[Entry]:
    return [Entry("s", seq, ts, "E", "{}") for seq, ts in enumerate(times, 1)]


def test_a_read_spanning_more_than_the_lag_keeps_only_its_newest_part():
    assert seqs(fresh_part(at(10.0, 10.5, 11.0), 1.0)) == [1, 2, 3]  # exactly the lag: all
    assert seqs(fresh_part(at(9.0, 10.0, 10.5, 11.1), 1.0)) == [3, 4]
    assert seqs(fresh_part(at(9.0, 10.0, 10.5, 11.0), 1.0)) == [2, 3, 4]  # 1.0 behind the newest: kept
    assert seqs(fresh_part(at(5.0, 11.0), 1.0)) == [2]
    assert seqs(fresh_part(at(5.0), 1.0)) == [1] and fresh_part([], 1.0) == []


def test_what_is_skipped_reaches_the_screens_as_the_gap_signal():
    store, log, tail, delivered, holes = make(history=10)
    publish(log, 1)
    tail.read()
    behind = [Entry("s", seq, ts, "E1", "{}") for seq, ts in ((2, 1.0), (3, 2.0), (4, 3.5))]
    for entry in fresh_part(behind, 1.0):
        log.receive(entry)
    assert seqs(delivered) == [1, 4] and seqs(holes) == [4]


# --- how entries are kept in Redis ----------------------------------------------------------------------


def test_an_entry_round_trips_through_its_redis_fields_with_the_same_text():
    entry = Entry("s", 42, 1796000000.1234567, "abc", '{"variable":1.5,"unit":"kg"}')
    fields = {key.encode(): value.encode() for key, value in entry_fields(entry.body, entry.ts, entry.epoch).items()}
    again = entry_from_redis("s", b"42-0", fields)
    assert (again.stream, again.seq, again.ts, again.epoch, again.text) == ("s", 42, entry.ts, "abc", entry.text)
    assert entry_from_redis("s", "7-0", {b"b": "{}", b"t": "1.5", b"e": "x"}).seq == 7
    assert json.loads(again.text)["seq"] == 42


# --- subscribing to a stream whose backlog read yields ----------------------------------------------------


class FakeSession:
    def __init__(self):
        self.received: list[tuple[int, bool]] = []
        self.subscriptions = []
        self.control = False
        self.closed = False

    def send_entry(self, entry, subscription, gap=False):
        self.received.append((entry.seq, gap))
        subscription.epoch, subscription.last_seq = entry.epoch, entry.seq

    def send_backlog(self, entries, subscription, gap=False):
        for index, entry in enumerate(entries):
            self.received.append((entry.seq, gap and index == 0))

    def send_control(self, message):
        pass


def shared(store: FakeStore, history: int = 10) -> tuple[SharedStream, Tail]:
    def factory(name, *, history, clock, on_entry, on_hole):
        return RedisLog(name, history=history, clock=clock, on_entry=on_entry, on_hole=on_hole, store=store)

    stream = SharedStream("s", "publish", history=history, log_factory=factory, clock=Clock())
    stream.fanout = Fanout()  # no eventlet pause in a unit test
    stream.log.on_entry, stream.log.on_hole = stream.fanout.deliver, stream.fanout.mark_missed
    tail = Tail(store, stream.log)
    tail.sync()
    return stream, tail


def test_live_entries_that_arrive_while_the_backlog_is_read_are_sent_once_after_it():
    store = FakeStore()
    stream, tail = shared(store)
    for value in range(3):
        stream.publish({"variable": value})
    tail.read()
    for value in range(3, 5):  # 4 and 5 seen by the client elsewhere, not yet by this tail
        stream.publish({"variable": value})

    def meanwhile():  # the tail runs while subscribe() waits for Redis, and a new value comes
        tail.read()
        stream.publish({"variable": 5})
        tail.read()

    store.before_read = meanwhile
    session = FakeSession()
    stream.subscribe(session, Resume(4, store.epoch))
    assert store.reads == 1
    assert session.received == [(5, False), (6, False)]
    stream.publish({"variable": 6})
    tail.read()
    assert session.received[-1] == (7, False) and len(session.received) == 3


def test_an_up_to_date_resume_positions_the_subscription_so_the_tail_sends_nothing_twice():
    store = FakeStore()
    stream, tail = shared(store)
    stream.publish({"variable": 0})
    tail.read()
    for value in range(1, 3):
        stream.publish({"variable": value})
    # this tail has read only seq 1; Redis is down; the client already has 3
    store.down = True
    session = FakeSession()
    subscription = stream.subscribe(session, Resume(3, store.epoch))
    assert session.received == [] and (subscription.epoch, subscription.last_seq) == ("E1", 3)
    store.down = False
    tail.read()  # brings 2 and 3: the client has them
    stream.publish({"variable": 3})
    tail.read()
    assert session.received == [(4, False)]


def test_a_subscription_made_while_redis_is_down_gets_the_gap_when_the_numbering_restarted():
    store = FakeStore()
    stream, tail = shared(store)
    stream.publish({"variable": 1})
    tail.read()
    session = FakeSession()
    stream.subscribe(session, None)
    assert session.received == [(1, False)]
    store.lose_everything()
    stream.log.resync(None, 0, [])
    tail.cursor = 0
    stream.publish({"variable": 2})
    tail.read()
    assert session.received[-1] == (1, True)  # seq 1 of a new epoch, with the gap signal


def test_a_hole_marks_only_the_subscribers_that_missed_entries():
    store = FakeStore()
    stream, tail = shared(store, history=2)
    stream.publish({"variable": 1})
    tail.read()
    session = FakeSession()
    stream.subscribe(session, None)
    for value in range(2, 6):  # 2..5; Redis keeps 4 and 5
        stream.publish({"variable": value})
    tail.read()
    assert session.received == [(1, False), (4, True), (5, False)]
