"""Unit tests of the stream log: numbering, epoch, history, the resume rule, encodings."""

from __future__ import annotations

import json

import pytest

from dashstream.messages import BadFields, Entry, encode_fields, sse_record
from dashstream.protocol.frames import text_frame
from dashstream.streams.log import MemoryLog, Resume, owed

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


def test_every_encoding_is_built_once_and_shared():
    entry = filled(1).last
    assert entry.frame is entry.frame and entry.frame == text_frame(entry.text)
    assert entry.stream_frame is entry.stream_frame
    assert json.loads(entry.stream_frame[2:]) == {**json.loads(entry.text), "stream": "s"}
    assert entry.sse is entry.sse
    assert entry.sse == f"id: E:1\ndata: {entry.text}\n\n".encode()


def test_gap_texts_add_the_flag_and_keep_everything_else():
    entry = filled(1).last
    assert json.loads(entry.gap_text()) == {**json.loads(entry.text), "gap": True}
    assert json.loads(entry.stream_text(gap=True)) == {**json.loads(entry.text), "gap": True, "stream": "s"}
    assert "gap" not in json.loads(entry.stream_text())


def test_an_empty_body_still_makes_valid_json():
    entry = Entry("s", 3, 1.5, "E", "{}")
    assert json.loads(entry.text) == {"seq": 3, "ts": 1.5, "epoch": "E"}
    assert json.loads(entry.gap_text()) == {"gap": True, "seq": 3, "ts": 1.5, "epoch": "E"}


FINITE = "numbers must be finite (no NaN, Infinity or overflowing values like 1e400)"


@pytest.mark.parametrize("fields, reason", [
    ({"unit": "kg"}, "no 'variable' field"),
    ({"variable": 1, "seq": 2}, "field 'seq' is set by the server"),
    ({"variable": 1, "control": "reload"}, "field 'control' is set by the server"),
    ({"variable": 1, "stream": "x"}, "field 'stream' is set by the server"),
    ({"variable": 1, "gap": False, "epoch": 1}, "field 'epoch' is set by the server"),  # the first, sorted
    ({"variable": float("inf")}, FINITE),
    ({"variable": float("nan")}, FINITE),
])
def test_fields_that_cannot_be_a_message_are_refused_with_a_reason(fields, reason):
    with pytest.raises(BadFields) as refused:
        encode_fields(fields)
    assert str(refused.value) == reason


def test_a_value_json_cannot_write_is_refused():
    with pytest.raises(BadFields, match="not JSON-serializable"):
        encode_fields({"variable": object()})


def test_epochs_are_fresh_twelve_hex_digits():
    epochs = {MemoryLog("s").epoch for _ in range(20)}
    assert len(epochs) == 20 and all(len(e) == 12 and int(e, 16) >= 0 for e in epochs)
    assert MemoryLog("s").history_size == 100


def test_deep_nesting_is_refused_not_a_crash():
    deep: dict = {"variable": 1}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(BadFields) as refused:
        encode_fields(deep)
    assert str(refused.value) == "the object is nested too deeply"


def test_a_source_value_that_contains_itself_is_refused_as_too_deep():
    looped: dict = {"variable": 1}
    looped["again"] = looped
    with pytest.raises(BadFields) as refused:
        encode_fields(looped)
    assert str(refused.value) == "the object is nested too deeply"


@pytest.mark.parametrize("fields", [
    {"variable": 1}, {"variable": -2.5, "unit": "kg"}, {"variable": "é\u2028\"<>", "list": [1, None, True, {}]},
    {"variable": 10**30, "nested": {"a": [0.1, 1e300]}},
])
def test_messages_are_compact_ascii_json_in_the_publishers_order(fields):
    assert encode_fields(fields) == json.dumps(fields, separators=(",", ":"))


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


def test_sse_records():
    assert sse_record("{}") == b"data: {}\n\n"
    assert sse_record("{}", "E:1", "control") == b"event: control\nid: E:1\ndata: {}\n\n"


def test_every_appended_entry_reaches_on_entry_in_order():
    seen = []
    log_ = MemoryLog("s", epoch="E", on_entry=seen.append)
    entries = [log_.append(encode_fields({"variable": value})) for value in range(3)]
    assert seen == entries and [e.seq for e in seen] == [1, 2, 3]
