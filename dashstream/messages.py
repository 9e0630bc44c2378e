"""One message, encoded once per form: ``Entry`` (a numbered data message) and
``ControlMessage`` (the server's own: reload, source and backplane health).

An ``Entry`` is one message as it goes out, serialized once for everyone: its JSON text,
the WebSocket frame of that text, the frame with ``"stream"`` added (for sockets carrying
several streams) and the Server-Sent Events record are each built on first use and shared
by every subscriber that needs that form. ``encode_fields`` is the one check of a message's
own fields (whatever brought them: a source, a publish), made before it takes a number.

The ground floor with ``protocol`` and ``runtime``: it imports neither streams nor sessions,
so both can hand messages around without importing each other.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from dashstream.protocol.frames import text_frame
from producer.values import field_problem, too_deep

_NESTED = (dict, list, tuple)  # a value that may nest (producer.values.MAX_NESTING)

# The stream ``/`` serves (README: "Message format"); a connection to it needs no name.
DEFAULT_STREAM = "default"


class BadFields(ValueError):
    """Fields that cannot become a message; the text says why (an HTTP 400 reason)."""


# Built once: json.dumps with any non-default argument builds a new encoder on every call,
# and JSONEncoder.encode still builds its C encoder on every call (most of what an
# encode_fields cost: BENCHMARKS.md S3). No circular-reference check: values come from JSON
# or from a source's dict, and a cycle would end as the RecursionError below ("nested too
# deeply").
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


if json.encoder.c_make_encoder is not None:  # CPython's accelerator: the same output
    _encode_chunks = json.encoder.c_make_encoder(
        None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)

    def _encode(fields) -> str:
        return "".join(_encode_chunks(fields, 0))
else:  # pragma: no cover - an interpreter without the C accelerator
    _encode = _ENCODER.encode


def encode_fields(fields: Mapping[str, Any]) -> str:
    """Check and serialize a message's own fields, completely, *before* it is numbered: a
    message that cannot be sent must not take a ``seq`` (screens would see a false hole).
    Raises ``BadFields`` with a reason a publisher can act on (the field rule is the one
    every source's values pass too: ``producer.values.field_problem``)."""
    if type(fields) is dict and len(fields) == 1:
        # The random walk's every message, and a publish of a bare number: {"variable": n}
        # with an int n (not a bool) passes every check, and json writes an int as repr
        # does. The checks and the encoder's call were about 8,500 instructions of a private
        # walk's 55,000 per message (BENCHMARKS.md, "Private streams: what a wake-up costs").
        value = fields.get("variable")
        if type(value) is int:
            try:
                return f'{{"variable":{value!r}}}'
            except ValueError:
                pass  # more digits than Python writes (sys.get_int_max_str_digits): refused below
    problem = field_problem(fields)
    if problem is not None:
        raise BadFields(problem)
    if any(isinstance(value, _NESTED) for value in fields.values()) and too_deep(fields):
        raise BadFields("the object is nested too deeply")
    try:
        return _encode(fields)
    except ValueError:
        # json.loads reads 1e400 as inf; allow_nan=False refuses to write it back.
        raise BadFields("numbers must be finite (no NaN, Infinity or overflowing values like 1e400)") from None
    except RecursionError:
        raise BadFields("the object is nested too deeply") from None
    except TypeError as error:
        raise BadFields(f"not JSON-serializable: {error}") from None


class Entry:
    """One numbered message. ``body`` is the publisher's fields as compact JSON."""

    __slots__ = ("stream", "seq", "ts", "epoch", "body", "text", "frame", "_stream_frame", "_sse")

    def __init__(self, stream: str, seq: int, ts: float, epoch: str, body: str):
        self.stream = stream
        self.seq = seq
        self.ts = ts
        self.epoch = epoch
        self.body = body
        # ``text`` (``{"variable":42,...,"seq":7,"ts":...,"epoch":"..."}``: the publisher's
        # fields first) and ``frame`` (its WebSocket text frame, the same bytes for every
        # subscriber) are made here, once, rather than on first use: an entry exists to be
        # sent, and as plain attributes they cost the fan-out no property call per subscriber.
        # (``_join(body, _tail())`` in one f-string for the usual body: every entry comes here.)
        self.text = text = (f'{body[:-1]},"seq":{seq},"ts":{ts!r},"epoch":"{epoch}"}}'
                            if body != "{}" else "{" + self._tail())
        self.frame = text_frame(text)
        self._stream_frame: bytes | None = None
        self._sse: bytes | None = None

    def _tail(self) -> str:
        return f'"seq":{self.seq},"ts":{self.ts!r},"epoch":"{self.epoch}"}}'

    @property
    def stream_frame(self) -> bytes:
        """The frame for a socket that carries several streams: ``"stream"`` added."""
        if self._stream_frame is None:
            self._stream_frame = text_frame(self.stream_text())
        return self._stream_frame

    def stream_text(self, gap: bool = False) -> str:
        return _join(self.body, f'"stream":{json.dumps(self.stream)},' + self._gap(gap) + self._tail())

    def gap_text(self) -> str:
        """The one per-subscriber serialization: the first message after data was missed."""
        return _join(self.body, self._gap(True) + self._tail())

    @staticmethod
    def _gap(gap: bool) -> str:
        return '"gap":true,' if gap else ""

    @property
    def sse(self) -> bytes:
        """The Server-Sent Events record: ``id: EPOCH:SEQ`` and the same JSON as ``data``."""
        if self._sse is None:
            self._sse = sse_record(self.text, f"{self.epoch}:{self.seq}")
        return self._sse

    @property
    def fields(self) -> dict:
        return json.loads(self.text)


def _join(body: str, tail: str) -> str:
    return (body[:-1] + "," + tail) if body != "{}" else "{" + tail


def sse_record(data: str, event_id: str | None = None, event: str | None = None) -> bytes:
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {data}")  # compact JSON has no newline in it
    return ("\n".join(lines) + "\n\n").encode("utf-8")

class ControlMessage:
    """A message from the server itself (reload, source or backplane state): never numbered,
    never kept as a stream's last value; encoded once per transport for all receivers."""

    __slots__ = ("text", "_frame", "_sse")

    def __init__(self, fields: dict):
        self.text = json.dumps(fields, separators=(",", ":"))
        self._frame: bytes | None = None
        self._sse: bytes | None = None

    @property
    def frame(self) -> bytes:
        frame = self._frame
        if frame is None:
            frame = self._frame = text_frame(self.text)
        return frame

    @property
    def sse(self) -> bytes:
        if self._sse is None:
            self._sse = sse_record(self.text, event="control")
        return self._sse
