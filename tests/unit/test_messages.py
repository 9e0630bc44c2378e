"""Unit tests of ``dashstream.messages``: the one check of a message's fields, and each form
of a message (JSON text, WebSocket frame, the multi-stream frame, the SSE record), built once
and shared."""

from __future__ import annotations

import json

import pytest

from dashstream.messages import BadFields, ControlMessage, Entry, encode_fields, sse_record
from dashstream.protocol.frames import text_frame

pytestmark = pytest.mark.timeout(10)


def make_entry(stream: str = "s", seq: int = 1, ts: float = 1000.5, epoch: str = "E",
          fields: dict | None = None) -> Entry:
    return Entry(stream, seq, ts, epoch, encode_fields(fields or {"variable": 0}))

def test_every_encoding_is_built_once_and_shared():
    entry = make_entry()
    assert entry.frame is entry.frame and entry.frame == text_frame(entry.text)
    assert entry.stream_frame is entry.stream_frame
    assert json.loads(entry.stream_frame[2:]) == {**json.loads(entry.text), "stream": "s"}
    assert entry.sse is entry.sse
    assert entry.sse == f"id: E:1\ndata: {entry.text}\n\n".encode()


def test_gap_texts_add_the_flag_and_keep_everything_else():
    entry = make_entry()
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


class Count(int):
    """An int subclass (an enum's value, say): written as json writes it, not by repr."""

    def __repr__(self):
        return "Count!"


@pytest.mark.parametrize("fields", [
    {"variable": 0}, {"variable": -7}, {"variable": 10**40}, {"variable": True}, {"variable": None},
    {"variable": Count(3)}, {"variable": 2.5}, {"other": 1},
])
def test_a_lone_variable_is_written_as_json_writes_it_whatever_its_type(fields):
    if "variable" not in fields:
        with pytest.raises(BadFields):
            encode_fields(fields)
        return
    assert encode_fields(fields) == json.dumps(fields, separators=(",", ":"))


def test_a_mapping_that_is_not_a_dict_is_refused_as_json_refuses_it_even_with_a_lone_int():
    from types import MappingProxyType

    with pytest.raises(BadFields) as refused:
        encode_fields(MappingProxyType({"variable": 1}))
    assert str(refused.value).startswith("not JSON-serializable: Object of type mappingproxy")


def test_an_int_with_more_digits_than_python_writes_is_refused_as_before():
    import sys

    with pytest.raises(BadFields) as refused:
        encode_fields({"variable": 10 ** (sys.get_int_max_str_digits() + 1)})
    assert str(refused.value) == FINITE



def test_sse_records():
    assert sse_record("{}") == b"data: {}\n\n"
    assert sse_record("{}", "E:1", "control") == b"event: control\nid: E:1\ndata: {}\n\n"


def test_the_text_is_the_publishers_fields_then_seq_ts_and_epoch_exactly():
    entry = make_entry(stream="office", seq=7, ts=1000.25, epoch="e1", fields={"variable": 7, "unit": "kg"})
    assert entry.text == '{"variable":7,"unit":"kg","seq":7,"ts":1000.25,"epoch":"e1"}'
    assert entry.text is entry.text  # built once
    assert entry.fields == {"variable": 7, "unit": "kg", "seq": 7, "ts": 1000.25, "epoch": "e1"}
    assert entry.stream_text() == '{"variable":7,"unit":"kg","stream":"office","seq":7,"ts":1000.25,"epoch":"e1"}'
    assert entry.stream_text(gap=True) == ('{"variable":7,"unit":"kg","stream":"office","gap":true,'
                                           '"seq":7,"ts":1000.25,"epoch":"e1"}')
    assert entry.gap_text() == '{"variable":7,"unit":"kg","gap":true,"seq":7,"ts":1000.25,"epoch":"e1"}'
    assert entry.stream_frame == text_frame(entry.stream_text())


def test_a_stream_name_is_written_as_a_json_string():
    entry = make_entry(stream='a"b')
    assert json.loads(entry.stream_text())["stream"] == 'a"b'


def test_fields_are_checked_before_the_nesting_and_a_shallow_value_is_not_walked():
    with pytest.raises(BadFields) as refused:  # the field rule first, whatever the nesting
        encode_fields({"seq": 1, "deep": [[[[]]]]})
    assert str(refused.value) == "no 'variable' field"
    assert encode_fields({"variable": [[1]], "rows": [{"a": [1]}]}) == '{"variable":[[1]],"rows":[{"a":[1]}]}'


def test_a_value_json_cannot_write_is_named():
    with pytest.raises(BadFields) as refused:
        encode_fields({"variable": {1, 2}})
    assert str(refused.value) == "not JSON-serializable: Object of type set is not JSON serializable"


def test_a_control_message_is_compact_json_in_each_form_built_once():
    message = ControlMessage({"control": "reload", "streams": ["a", "b"]})
    assert message.text == '{"control":"reload","streams":["a","b"]}'
    assert message.frame == text_frame(message.text) and message.frame is message.frame
    assert message.sse == b'event: control\ndata: {"control":"reload","streams":["a","b"]}\n\n'
    assert message.sse is message.sse


def test_an_sse_record_with_an_id_only_and_unicode_data():
    assert sse_record('{"v":"é"}', "E:2") == 'id: E:2\ndata: {"v":"é"}\n\n'.encode("utf-8")
    assert sse_record("{}", event="control") == b"event: control\ndata: {}\n\n"


class HiddenValues(dict):
    """A mapping whose ``values()`` shows nothing: the nesting walk (``too_deep``) sees no
    children, while the JSON encoder, which reads ``items()``, still recurses into them."""

    def values(self):
        return []


def test_nesting_the_walk_cannot_see_still_ends_as_too_deep_not_a_crash():
    # The encoder's own RecursionError is the last guard: a cycle the walk missed must be
    # a reason for the publisher, never an exception that takes the connection down.
    looped = HiddenValues(a=1)
    looped["again"] = looped
    with pytest.raises(BadFields) as refused:
        encode_fields({"variable": 1, "looped": looped})
    assert str(refused.value) == "the object is nested too deeply"
