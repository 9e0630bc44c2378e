"""producer.values: what a Redis/ZeroMQ payload or a SQL row may become."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest

from producer.values import (
    MAX_PAYLOAD_BYTES,
    RESERVED_FIELDS,
    BadValue,
    NullVariable,
    TooLarge,
    check_fields,
    check_row_value,
    duplicate_column,
    fields_from_row,
    parse_json,
    parse_payload,
    rows_message,
)

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("payload, fields", [
    (b'{"variable": 5}', {"variable": 5}),
    ('{"variable": 5, "unit": "orders"}', {"variable": 5, "unit": "orders"}),
    (b'{"variable": "text is allowed", "nested": {"a": [1, 2]}}',
     {"variable": "text is allowed", "nested": {"a": [1, 2]}}),
    (b'{"variable": null}', {"variable": None}),
    (b"5", {"variable": 5}),
    (b" -2.5e3 ", {"variable": -2500.0}),
    ("0", {"variable": 0}),
    ('{"variable": "caf\u00e9"}'.encode(), {"variable": "caf\u00e9"}),
])
def test_objects_with_variable_and_bare_numbers_are_accepted(payload, fields):
    assert parse_payload(payload) == fields


@pytest.mark.parametrize("payload, reason", [
    (b"", "malformed JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"not json", "malformed JSON: Expecting value"),
    (b'{"variable": 1', "malformed JSON: Expecting ',' delimiter"),
    (b"NaN", "NaN is not valid JSON"),
    (b'{"variable": Infinity}', "Infinity is not valid JSON"),
    (b'{"variable": -Infinity}', "-Infinity is not valid JSON"),
    (b'{"variable": 1e400}', "1e400 is out of range for a JSON number"),
    (b"-1E999", "-1E999 is out of range for a JSON number"),
    (b"\xff\xfe\x00", "payload is not UTF-8 text"),
    (b"[1, 2]", "expected a JSON object with 'variable' or a number, got an array"),
    (b'"5"', "expected a JSON object with 'variable' or a number, got a string"),
    (b"true", "expected a JSON object with 'variable' or a number, got a boolean"),
    (b"null", "expected a JSON object with 'variable' or a number, got null"),
    (b'{"value": 5}', "no 'variable' field"),
    (b"{}", "no 'variable' field"),
    # 4 KB of nesting: json.loads raises RecursionError (not a ValueError), which escaped and
    # took the source's connection down.
    (b'{"variable": ' + b"[" * 2000 + b"]" * 2000 + b"}", "payload is nested too deeply"),
    (b"[" * 30_000, "payload is nested too deeply"),
])
def test_anything_else_is_refused_with_a_reason(payload, reason):
    with pytest.raises(BadValue) as refused:
        parse_payload(payload)
    assert str(refused.value).startswith(reason)


@pytest.mark.parametrize("field", sorted(RESERVED_FIELDS))
def test_server_fields_cannot_be_set(field):
    with pytest.raises(BadValue, match=f"field '{field}' is set by the server"):
        parse_payload(f'{{"variable": 1, "{field}": 2}}'.encode())


def test_the_reserved_fields_are_exactly_the_servers():
    assert RESERVED_FIELDS == {"seq", "ts", "epoch", "gap", "control", "stream"}


def test_the_first_reserved_field_in_name_order_is_named():
    with pytest.raises(BadValue, match="'epoch'"):
        check_fields({"variable": 1, "ts": 1, "epoch": 2})


def test_payload_size_limit():
    at_limit = b'{"variable": "' + b"x" * (MAX_PAYLOAD_BYTES - 16) + b'"}'
    assert len(at_limit) == MAX_PAYLOAD_BYTES
    assert parse_payload(at_limit)["variable"].startswith("x")
    with pytest.raises(BadValue, match=f"payload of {MAX_PAYLOAD_BYTES + 1} bytes is over the 65536-byte limit"):
        parse_payload(at_limit + b" ")
    assert MAX_PAYLOAD_BYTES == 65536


def test_check_fields_copies():
    fields = {"variable": 1}
    checked = check_fields(fields)
    assert checked == fields and checked is not fields


# --- SQL rows ------------------------------------------------------------------------------


def test_row_values_become_json_values():
    row = {
        "variable": decimal.Decimal("42"),
        "ratio": decimal.Decimal("0.25"),
        "count": 7,
        "flag": True,
        "name": "orders",
        "missing": None,
        "real": 1.5,
        "at": datetime.datetime(2026, 12, 1, 9, 30, tzinfo=datetime.timezone.utc),
        "day": datetime.date(2026, 12, 1),
        "clock": datetime.time(9, 30),
        "took": datetime.timedelta(minutes=1, seconds=30),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "tags": ["a", decimal.Decimal("2")],
        "pair": (1, 2),
        "doc": {"k": decimal.Decimal("1.5"), 3: "three"},
    }
    fields = fields_from_row(row)
    assert fields == {
        "variable": 42, "ratio": 0.25, "count": 7, "flag": True, "name": "orders", "missing": None, "real": 1.5,
        "at": "2026-12-01T09:30:00+00:00", "day": "2026-12-01", "clock": "09:30:00", "took": 90.0,
        "id": "12345678-1234-5678-1234-567812345678", "tags": ["a", 2], "pair": [1, 2],
        "doc": {"k": 1.5, "3": "three"},
    }
    assert type(fields["variable"]) is int and type(fields["ratio"]) is float


@pytest.mark.parametrize("value, reason", [
    (float("nan"), "column 'variable' is nan, which JSON cannot carry"),
    (float("inf"), "column 'variable' is inf, which JSON cannot carry"),
    (decimal.Decimal("NaN"), "column 'variable' is NaN, which JSON cannot carry"),
    (decimal.Decimal("-Infinity"), "column 'variable' is -Infinity, which JSON cannot carry"),
    (b"\x00\x01", "column 'variable' has a bytes value, which JSON cannot carry"),
    (memoryview(b"x"), "column 'variable' has a memoryview value"),
    ([float("nan")], "column 'variable' is nan"),
    ({"a": float("inf")}, "column 'variable' is inf"),
])
def test_row_values_json_cannot_carry_are_refused_naming_the_column(value, reason):
    with pytest.raises(BadValue) as refused:
        fields_from_row({"variable": value})
    assert str(refused.value).startswith(reason)


def test_a_row_needs_variable_and_no_server_field():
    with pytest.raises(BadValue, match="no 'variable' field"):
        fields_from_row({"count": 1})
    with pytest.raises(BadValue, match="'seq' is set by the server"):
        fields_from_row({"variable": 1, "seq": 2})


def test_column_names_become_text():
    assert fields_from_row({"variable": 1, 2: "x"}) == {"variable": 1, "2": "x"}


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_nesting_is_bounded_at_its_own_limit_whatever_the_python():
    from producer.values import MAX_NESTING, too_deep

    assert not too_deep(nested(MAX_NESTING)) and too_deep(nested(MAX_NESTING + 1))
    assert not too_deep({"variable": 1, "rows": [{"name": "a", "total": 2}]})
    assert parse_json(json.dumps({"variable": nested(MAX_NESTING - 1)}))["variable"] == nested(MAX_NESTING - 1)
    with pytest.raises(BadValue, match="^payload is nested too deeply$"):
        parse_json(json.dumps({"variable": nested(MAX_NESTING)}))


def test_a_value_that_contains_itself_is_too_deep_not_a_recursion_error():
    from producer.values import too_deep

    loop: dict = {"variable": 1}
    loop["self"] = loop
    assert too_deep(loop)


def test_a_rows_payload_limit_is_on_the_encoded_message_up_to_the_byte():
    frame = len(json.dumps({"variable": 1, "blob": ""}, separators=(",", ":")))
    check_row_value({"variable": 1, "blob": "x" * (MAX_PAYLOAD_BYTES - frame)})  # exactly the limit
    with pytest.raises(TooLarge) as over:
        check_row_value({"variable": 1, "blob": "x" * (MAX_PAYLOAD_BYTES - frame + 1)})
    assert str(over.value) == f"row of {MAX_PAYLOAD_BYTES + 1} bytes as JSON is over the {MAX_PAYLOAD_BYTES}-byte limit"
    with pytest.raises(TooLarge):
        check_row_value({"variable": 1, "blob": "é" * (MAX_PAYLOAD_BYTES // 2 + 10)})  # 2 bytes each in UTF-8


def test_a_row_whose_variable_is_null_or_missing_has_nothing_to_show():
    for fields in ({"variable": None, "unit": "orders"}, {"unit": "orders"}):
        with pytest.raises(NullVariable) as null:
            check_row_value(fields)
        assert str(null.value) == "'variable' is NULL"
    check_row_value({"variable": 0})  # zero is a value


def test_the_first_column_named_twice_is_named():
    assert duplicate_column(["a", "b", "c", "b", "a"]) == "b"
    assert duplicate_column(["a", "b"]) is None and duplicate_column([]) is None
    assert duplicate_column([1, "1"]) == "1"  # column names are compared as text


def test_a_rows_message_is_held_to_the_payload_limit_up_to_the_byte():
    def message(blob: str) -> dict:
        return rows_message(["name", "blob"], [("a", blob)])

    frame = len(json.dumps({"variable": 1, "rows": [{"name": "a", "blob": ""}]}, separators=(",", ":")))
    at_limit = message("x" * (MAX_PAYLOAD_BYTES - frame))  # exactly the limit: one message still
    assert at_limit == {"variable": 1, "rows": [{"name": "a", "blob": "x" * (MAX_PAYLOAD_BYTES - frame)}]}
    with pytest.raises(TooLarge) as over:
        message("x" * (MAX_PAYLOAD_BYTES - frame + 1))
    assert str(over.value) == (f"1 rows are {MAX_PAYLOAD_BYTES + 1} bytes as JSON, over the "
                               f"{MAX_PAYLOAD_BYTES}-byte limit of one message (fewer rows or columns)")
