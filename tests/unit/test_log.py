"""Unit tests of the stream log: numbering, epoch, history, the resume rule. (The message and
its encodings: test_messages.py.)

Equivalent mutants of streams/log.py (mutmut, 2026-12-04): PrivateLog.backlog's ``recent``
(its default, or not passing it) with nothing kept; ``owed`` skipping its ``isinstance(history,
deque)`` (a copy of a deque holds the same); and three of the ``newest`` line's branch (``recent
> 1`` made ``>= 1``, ``or True``, ``max(recent, 2)``): for one entry, the slice and
``[history[-1]]`` are the same list."""

from __future__ import annotations

import json

import pytest

from dashstream.messages import BadFields, Entry, encode_fields
from dashstream.streams.log import LogUnavailable, MemoryLog, PrivateLog, Resume, memory_log, owed

pytestmark = pytest.mark.timeout(20)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


def filled(count: int, history: int = 100, epoch: str = "E") -> MemoryLog:
    log = MemoryLog("s", history=history, clock=Clock(), epoch=epoch)
    for value in range(count):
        log.append(encode_fields({"variable": value}))
    return log


def test_entries_are_numbered_stamped_and_carry_the_epoch_after_the_fields():
    log = MemoryLog("s", clock=Clock(), epoch="e1")
    delivered = []
    log.on_entry = delivered.append
    entry = log.append(encode_fields({"variable": 7, "unit": "kg"}))
    assert json.loads(entry.text) == {"variable": 7, "unit": "kg", "seq": 1, "ts": 1000.5, "epoch": "e1"}
    assert entry.text.startswith('{"variable":7,"unit":"kg",')  # the publisher's fields first
    assert delivered == [entry] and log.last is entry and log.seq == 1
    assert log.append(encode_fields({"variable": 8})).seq == 2


def test_epochs_are_fresh_twelve_hex_digits():
    epochs = {MemoryLog("s").epoch for _ in range(20)}
    assert len(epochs) == 20 and all(len(e) == 12 and int(e, 16) >= 0 for e in epochs)
    assert MemoryLog("s").history_size == 100


def test_a_refused_message_takes_no_number():
    log = filled(1)
    with pytest.raises(BadFields):
        encode_fields({"variable": float("inf")})
    assert log.append(encode_fields({"variable": 2})).seq == 2


def test_a_new_subscriber_gets_the_last_value():
    log = filled(5)
    entries, gap = log.backlog(None)
    assert [e.seq for e in entries] == [5] and not gap
    assert MemoryLog("s").backlog(None) == ([], False)


def test_resume_gets_exactly_the_missed_entries():
    log = filled(6, history=10)
    entries, gap = log.backlog(Resume(3, "E"))
    assert [e.seq for e in entries] == [4, 5, 6] and not gap
    assert log.backlog(Resume(6, "E")) == ([], False)  # up to date: nothing twice
    entries, gap = log.backlog(Resume(0, "E"))
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5, 6] and not gap


def test_resume_reaching_exactly_the_oldest_kept_entry_is_honoured():
    log = filled(10, history=3)
    entries, gap = log.backlog(Resume(7, "E"))
    assert [e.seq for e in entries] == [8, 9, 10] and not gap


@pytest.mark.parametrize("resume", [Resume(2, "other"), Resume(6, "E"), Resume(11, "E"), Resume(-1, "E")],
                         ids=["another epoch", "beyond history", "future seq", "negative"])
def test_unresumable_requests_get_the_gap_signal_with_the_latest_entry(resume):
    entries, gap = filled(10, history=3).backlog(resume)
    assert [e.seq for e in entries] == [10] and gap


def test_with_nothing_published_the_gap_rides_on_the_first_live_entry():
    assert MemoryLog("s", epoch="new").backlog(Resume(5, "old")) == ([], True)


def test_owed_takes_any_iterable_history():
    entries = [Entry("s", seq, 0.0, "E", '{"variable":1}') for seq in (4, 5, 6)]
    assert [e.seq for e in owed(iter(entries), 6, "E", Resume(4, "E"))[0]] == [5, 6]


def test_history_is_at_least_one():
    log = filled(3, history=0)
    assert log.history_size == 1 and log.last.seq == 3


def test_every_appended_entry_reaches_on_entry_in_order():
    seen = []
    log_ = MemoryLog("s", epoch="E", on_entry=seen.append)
    entries = [log_.append(encode_fields({"variable": value})) for value in range(3)]
    assert seen == entries and [e.seq for e in seen] == [1, 2, 3]


# --- PrivateLog: one client's numbering on a private stream, nothing kept ---


def test_a_private_log_numbers_stamps_and_delivers_each_message_and_keeps_none():
    delivered = []
    log = PrivateLog("walk", clock=Clock(), on_entry=delivered.append)
    first = log.publish({"variable": 3})
    second = log.publish({"variable": 9})
    assert delivered == [first, second] and (first.seq, second.seq) == (1, 2) and log.seq == 2
    assert json.loads(second.text) == {"variable": 9, "seq": 2, "ts": 1001.0, "epoch": log.epoch}
    assert second.stream == "walk" and log.last is None and log.history_size == 0


def test_every_private_log_has_an_epoch_of_its_own():
    epochs = {PrivateLog("walk", on_entry=print).epoch for _ in range(20)}
    assert len(epochs) == 20 and all(len(e) == 12 and int(e, 16) >= 0 for e in epochs)


@pytest.mark.parametrize("resume", [None, Resume(0, "elsewhere"), Resume(5, "elsewhere")])
def test_a_private_log_owes_what_a_fresh_memory_log_owes(resume):
    private, memory = PrivateLog("walk", on_entry=print), MemoryLog("walk")
    assert private.backlog(resume) == memory.backlog(resume) == ([], resume is not None)
    assert private.backlog(resume, recent=50) == ([], resume is not None)


def test_a_resume_of_a_private_logs_own_epoch_is_up_to_date_or_owed_the_gap():
    log = PrivateLog("walk", on_entry=lambda entry: None)
    assert log.backlog(Resume(0, log.epoch)) == ([], False)  # nothing published, nothing missed
    log.publish({"variable": 1})
    log.publish({"variable": 2})
    assert log.backlog(Resume(2, log.epoch)) == ([], False)  # up to date
    assert log.backlog(Resume(1, log.epoch)) == ([], True)  # missed one that is not kept


def test_a_private_log_publishes_a_value_encoded_numbered_delivered_then_counted():
    order = []
    log = PrivateLog("walk", clock=Clock(), on_entry=lambda entry: order.append(("entry", entry)),
                     on_delivered=lambda entry: order.append(("counted", entry)))
    first = log.publish({"variable": 3})
    second = log.publish({"variable": 4, "unit": "kg"})
    assert order == [("entry", first), ("counted", first), ("entry", second), ("counted", second)]
    assert (first.seq, second.seq, log.seq) == (1, 2, 2) and first.epoch == second.epoch == log.epoch
    assert json.loads(second.text) == {"variable": 4, "unit": "kg", "seq": 2, "ts": 1001.0, "epoch": log.epoch}
    assert first.stream == "walk" and first.ts == 1000.5


def test_a_value_a_private_log_cannot_encode_takes_no_seq_and_reaches_nobody():
    order = []
    log = PrivateLog("walk", on_entry=order.append, on_delivered=order.append)
    with pytest.raises(BadFields, match="finite"):
        log.publish({"variable": float("nan")})
    assert log.seq == 0 and order == []
    assert log.publish({"variable": 1}).seq == 1 and len(order) == 2


def test_a_private_log_counts_only_when_asked_to():
    counted = []
    log = PrivateLog("walk", on_entry=lambda entry: None, on_delivered=counted.append)
    entry = log.publish({"variable": 5})
    assert counted == [entry] and PrivateLog("walk", on_entry=print).on_delivered is None
    delivered_only = PrivateLog("walk", on_entry=counted.append)  # no on_delivered: delivered, not counted
    assert counted == [entry, delivered_only.publish({"variable": 6})]


def test_a_log_that_cannot_take_an_entry_says_why_and_when_to_retry():
    error = LogUnavailable("redis is down")
    assert (str(error), error.reason, error.retry_after) == ("redis is down", "redis is down", 2)
    assert LogUnavailable("lease lost", retry_after=5).retry_after == 5


def test_the_default_log_factory_makes_a_memory_log_of_the_history_asked_for():
    delivered, clock = [], Clock()
    log = memory_log("office", clock=clock, on_entry=delivered.append)
    entry = log.append(encode_fields({"variable": 1}))
    assert isinstance(log, MemoryLog) and log.history_size == 100 and delivered == [entry]
    assert (entry.stream, entry.ts) == ("office", 1000.5)
    assert memory_log("office", history=3).history_size == 3


def test_with_no_resume_and_no_count_a_client_is_owed_the_last_entry_only():
    log = MemoryLog("s", epoch="E")
    entries = [log.append(encode_fields({"variable": value})) for value in range(3)]
    assert owed(list(entries), 3, "E", None) == ([entries[-1]], False)
