"""Unit tests of history on load (``?history=N``): what a subscriber without a resume point
is owed (streams/log.py ``owed``), the same over a Redis log's mirror and over Redis itself
(backplane/redis_log.py, with a fake store). The ``history=`` query: test_subscribe_query.py."""

from __future__ import annotations

import pytest

from dashstream.backplane.redis_log import RedisLog
from dashstream.messages import encode_fields
from dashstream.streams.log import MemoryLog, Resume
from tests.fake_log_store import Clock, FakeStore

pytestmark = pytest.mark.timeout(20)


def memory_log(count: int, history: int = 100) -> MemoryLog:
    log = MemoryLog("s", history=history, clock=Clock(), epoch="E")
    for value in range(count):
        log.append(encode_fields({"variable": value}))
    return log


def seqs(entries) -> list[int]:
    return [entry.seq for entry in entries]


def test_without_history_a_new_subscriber_gets_the_last_value():
    assert [(seqs(e), gap) for e, gap in [memory_log(30).backlog(None)]] == [([30], False)]


def test_history_brings_the_newest_entries_oldest_first():
    entries, gap = memory_log(30).backlog(None, 100)
    assert seqs(entries) == list(range(1, 31)) and gap is False
    entries, gap = memory_log(30).backlog(None, 10)
    assert seqs(entries) == list(range(21, 31)) and gap is False


def test_history_is_bounded_by_the_streams_history():
    entries, _ = memory_log(30, history=5).backlog(None, 100)
    assert seqs(entries) == [26, 27, 28, 29, 30]


def test_an_empty_log_owes_nothing():
    assert memory_log(0).backlog(None, 100) == ([], False)


def test_a_resume_that_can_be_honoured_wins_over_history():
    log = memory_log(30)
    assert seqs(log.backlog(Resume(27, "E"), 100)[0]) == [28, 29, 30]
    assert log.backlog(Resume(30, "E"), 100) == ([], False)


def test_a_resume_from_another_epoch_gets_the_history_with_the_gap_signal():
    entries, gap = memory_log(30).backlog(Resume(3, "OLD"), 100)
    assert seqs(entries) == list(range(1, 31)) and gap is True
    entries, gap = memory_log(30).backlog(Resume(3, "OLD"))
    assert seqs(entries) == [30] and gap is True  # without history: the last value, as before


def redis_log(store: FakeStore, history: int = 100) -> RedisLog:
    return RedisLog("s", history=history, clock=Clock(), store=store)


def filled_store(count: int, history: int = 100) -> FakeStore:
    store = FakeStore()
    writer = redis_log(store, history)
    for value in range(count):
        writer.append(encode_fields({"variable": value}))
    return store


def test_redis_mirror_answers_history_without_asking_redis():
    store = filled_store(30)
    log = redis_log(store)
    store.sync(log)
    reads = store.reads
    entries, gap = log.backlog(None, 100)
    assert seqs(entries) == list(range(1, 31)) and gap is False and store.reads == reads


def test_redis_is_read_from_its_start_when_the_mirror_is_not_loaded():
    store = filled_store(30, history=20)
    log = redis_log(store, history=20)
    entries, gap = log.backlog(None, 100)
    assert seqs(entries) == list(range(11, 31)) and gap is False
    assert store.asked_after == [0]


def test_redis_without_history_asks_only_for_the_newest():
    store = filled_store(30)
    entries, _ = redis_log(store).backlog(None)
    assert seqs(entries) == [30] and store.asked_after == [None]


def test_redis_resume_from_another_epoch_gets_the_history():
    store = filled_store(30)
    entries, gap = redis_log(store).backlog(Resume(5, "OLD"), 100)
    assert seqs(entries) == list(range(1, 31)) and gap is True


def test_redis_down_gives_the_mirrors_last_value():
    store = filled_store(3)
    log = redis_log(store)
    store.down = True
    assert log.backlog(None, 100) == ([], False)
