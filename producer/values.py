"""What a source may hand on as a value: the one check every source (and a publish) shares.

A message from outside (a Redis or ZeroMQ payload) is UTF-8 JSON: an object with
``variable``, or a bare number, which is taken as ``{"variable": number}``. ``parse_json``
is the one JSON reader (a publish's body goes through it too, ``dashstream/edge/http.py``)
and ``field_problem`` the one rule for a message's fields (``check_fields`` here, and
``dashstream.messages.encode_fields`` for whatever is published). A SQL row is
already a mapping of column names to values; ``fields_from_row`` makes those JSON values.
Anything else is a ``BadValue`` with a reason a person can act on; a source reports it as
``Rejected`` (counted, logged now and then) and goes on, because one bad message must never
stop a screen.
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from typing import Any, Mapping

# Set by the server on every message (seq/ts/epoch/gap) or meaning something else on the wire
# (control messages, the stream name on a multi-stream socket): a source cannot set them.
RESERVED_FIELDS = frozenset({"seq", "ts", "epoch", "gap", "control", "stream"})

# A payload larger than this is refused before it is parsed: a dashboard value is a few
# dozen bytes, and the same limit as --max-publish-size's default keeps one stray blob
# from costing every screen a copy.
MAX_PAYLOAD_BYTES = 65_536


class BadValue(ValueError):
    """A payload or row that cannot be published; the message says why."""


def _no_constants(name: str) -> float:
    # json.loads accepts NaN, Infinity and -Infinity by default; JSON itself does not, and a
    # browser's JSON.parse would choke on the frame.
    raise BadValue(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    # 1e400 is valid JSON that Python reads as inf, which no JSON encoder may write back.
    value = float(literal)
    if not math.isfinite(value):
        raise BadValue(f"{literal} is out of range for a JSON number")
    return value


# Levels of arrays and objects one message may have (a `list` tile's rows are three). A
# bound of our own, the same on every Python: the interpreter's own recursion limits differ
# (3.12 and 3.13 encode and parse a 5,000-deep value that 3.11 refuses).
MAX_NESTING = 64
_CONTAINERS = (dict, list, tuple)


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether ``value`` nests arrays/objects more than ``limit`` levels deep. Iterative (a
    value that contains itself is simply too deep, never a RecursionError)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))
    return False


def parse_json(data: bytes | str) -> Any:
    """JSON text → its value, or ``BadValue``: not UTF-8, malformed (with the parser's
    reason), ``NaN``/``Infinity``, a number out of range, nested too deeply."""
    try:
        value = json.loads(data, parse_constant=_no_constants, parse_float=_finite_float)
    except UnicodeDecodeError:
        raise BadValue("payload is not UTF-8 text") from None
    except BadValue:
        raise
    except ValueError as error:
        raise BadValue(f"malformed JSON: {error}") from None
    except RecursionError:
        # json.loads gives up on deep nesting ('[' * 2000 is 2 KB) with RecursionError, which is
        # not a ValueError: uncaught, one such message would take the source's connection down.
        raise BadValue("payload is nested too deeply") from None
    if isinstance(value, _CONTAINERS) and too_deep(value):
        raise BadValue("payload is nested too deeply")
    return value


def parse_payload(data: bytes | str) -> dict[str, Any]:
    """A message's bytes → the fields to publish, or ``BadValue``."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise BadValue(f"payload of {len(data)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit")
    value = parse_json(data)
    if isinstance(value, bool) or not isinstance(value, (dict, int, float)):
        raise BadValue(f"expected a JSON object with 'variable' or a number, got {json_kind(value)}")
    if not isinstance(value, dict):
        return {"variable": value}
    return check_fields(value)


def field_problem(fields: Mapping[str, Any]) -> str | None:
    """Why ``fields`` cannot go out as a data message, or ``None``: ``variable`` must be
    there and no field the server sets (the first such, sorted, is named)."""
    if "variable" not in fields:
        return "no 'variable' field"
    if not RESERVED_FIELDS.isdisjoint(fields):
        return f"field {sorted(RESERVED_FIELDS.intersection(fields))[0]!r} is set by the server"
    return None


def check_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Fields that can go out as a data message (``field_problem``), or ``BadValue``."""
    problem = field_problem(fields)
    if problem is not None:
        raise BadValue(problem)
    return dict(fields)


def fields_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A SQL row (column → value) → JSON fields. Database types JSON lacks become what a
    dashboard would show: exact numbers as numbers, times as ISO 8601 text, UUIDs as text."""
    return check_fields({str(column): _json_value(value, str(column)) for column, value in row.items()})


class TooLarge(BadValue):
    """A value over ``MAX_PAYLOAD_BYTES`` once encoded."""


class NullVariable(BadValue):
    """``variable`` is NULL: there is nothing to show (an aggregate over no rows, say)."""


def duplicate_column(names: list[str]) -> str | None:
    """The first column name a row has twice (``SELECT a AS variable, b AS variable``): a
    mapping keeps only one of them, so which value is shown would be a guess."""
    seen: set[str] = set()
    for name in map(str, names):
        if name in seen:
            return name
        seen.add(name)
    return None


def check_row_value(fields: Mapping[str, Any]) -> None:
    """A row's fields may go out: ``variable`` is not NULL and the encoded message is within
    the payload limit every other source is held to (a 120 KB row every second would cost
    every screen that copy)."""
    if fields.get("variable") is None:
        raise NullVariable("'variable' is NULL")
    size = len(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise TooLarge(f"row of {size} bytes as JSON is over the {MAX_PAYLOAD_BYTES}-byte limit")


MAX_ROWS = 100  # a `sql` source's `rows = N`: a list tile shows at most 50


def rows_message(names: list[str], rows: list[tuple]) -> dict[str, Any]:
    """A SQL result's rows (``rows = N``) -> ONE message, ``{"variable": <number of rows>,
    "rows": [{column: value, ...}, ...]}``: each value made JSON as a single row's are
    (``fields_from_row``), and the whole message held to the payload limit (``TooLarge``).
    No ``variable`` column is needed (the count is the value); zero rows is ``{"variable": 0,
    "rows": []}``, an empty list (no open incidents), not an outage."""
    twice = duplicate_column(names)
    if twice is not None:
        raise BadValue(f"two columns named {twice!r}")
    columns = [str(name) for name in names]
    message = {"variable": len(rows),
               "rows": [{column: _json_value(value, column) for column, value in zip(columns, row)} for row in rows]}
    size = len(json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    if size > MAX_PAYLOAD_BYTES:
        raise TooLarge(f"{len(rows)} rows are {size} bytes as JSON, over the {MAX_PAYLOAD_BYTES}-byte limit "
                       "of one message (fewer rows or columns)")
    return message


def _json_value(value: Any, column: str) -> Any:
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadValue(f"column {column!r} is {value}, which JSON cannot carry")
        return value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise BadValue(f"column {column!r} is {value}, which JSON cannot carry")
        # numeric(10,0) and count(*) on some drivers: keep integers integral.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_json_value(item, column) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item, column) for key, item in value.items()}
    raise BadValue(f"column {column!r} has a {type(value).__name__} value, which JSON cannot carry")


_KINDS = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
          bool: "a boolean", type(None): "null"}


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, for a reason a person reads ("got an array")."""
    return _KINDS[type(value)]
