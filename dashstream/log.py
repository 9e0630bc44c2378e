"""A stream's log: numbering (``seq``), ``epoch``, history, last value, and the resume rule.

The Log is the half of a stream that decides *what* each client is owed; the Fanout
(``fanout.py``) is the half that hands it to this process's subscribers. ``MemoryLog`` is the
default, one process; a Redis log keeps the same three things in Redis so several instances
share them. Both call ``on_entry`` for every entry that reaches the log, so delivery takes
the same path whichever log is behind it.

An ``Entry`` is one message as it goes out, serialized once for everyone: its JSON text,
the WebSocket frame of that text, the frame with ``"stream"`` added (for sockets carrying
several streams) and the Server-Sent Events record are each built on first use and shared
by every subscriber that needs that form.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from dashstream.protocol import text_frame
from producer.values import RESERVED_FIELDS

# RESERVED_FIELDS: the fields the server owns; a producer or publisher cannot set them (400
# on publish). One list for both: a source's value is checked against it before the log.


class BadFields(ValueError):
    """Fields that cannot become a message; the text says why (an HTTP 400 reason)."""


class LogUnavailable(Exception):
    """The log cannot take an entry now (a shared log whose backplane is down, or a producer
    that no longer holds its stream's lease): nothing was numbered, except after a timeout,
    when it cannot be known (the reason says so). ``retry_after``: seconds a publisher
    should wait (an HTTP 503's ``Retry-After``)."""

    def __init__(self, reason: str, retry_after: int = 2):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def new_epoch() -> str:
    """A token that changes whenever a stream's numbering restarts (e.g. a server restart)."""
    return secrets.token_hex(6)


# Built once: json.dumps with any non-default argument builds a new encoder on every call,
# and JSONEncoder.encode still builds its C encoder on every call (2 us of the 3 an
# encode_fields took). No circular-reference check: values come from JSON or from a source's
# dict, and a cycle would end as the RecursionError below ("nested too deeply").
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
    Raises ``BadFields`` with a reason a publisher can act on."""
    if "variable" not in fields:
        raise BadFields("the object must have a 'variable' field")
    if not RESERVED_FIELDS.isdisjoint(fields):
        raise BadFields(f"field {sorted(RESERVED_FIELDS & fields.keys())[0]!r} is set by the server")
    try:
        return _encode(fields)
    except ValueError:
        # json.loads reads 1e400 as inf; allow_nan=False refuses to write it back.
        raise BadFields("numbers must be finite (no NaN, Infinity or overflowing values like 1e400)") from None
    except RecursionError:
        raise BadFields("the object is nested too deeply") from None
    except TypeError as error:
        raise BadFields(f"not JSON-serializable: {error}") from None


@dataclass(frozen=True)
class Resume:
    """What a reconnecting client saw last on one stream."""

    seq: int
    epoch: str


class Entry:
    """One numbered message. ``body`` is the publisher's fields as compact JSON."""

    __slots__ = ("stream", "seq", "ts", "epoch", "body", "_text", "_frame", "_stream_frame", "_sse")

    def __init__(self, stream: str, seq: int, ts: float, epoch: str, body: str):
        self.stream = stream
        self.seq = seq
        self.ts = ts
        self.epoch = epoch
        self.body = body
        self._text: str | None = None
        self._frame: bytes | None = None
        self._stream_frame: bytes | None = None
        self._sse: bytes | None = None

    def _tail(self) -> str:
        return f'"seq":{self.seq},"ts":{self.ts!r},"epoch":"{self.epoch}"}}'

    @property
    def text(self) -> str:
        """``{"variable":42,...,"seq":7,"ts":...,"epoch":"..."}``: the publisher's fields first."""
        if self._text is None:
            self._text = _join(self.body, self._tail())
        return self._text

    @property
    def frame(self) -> bytes:
        """The WebSocket text frame of ``text``, built once for every subscriber."""
        if self._frame is None:
            self._frame = text_frame(self.text)
        return self._frame

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


class MemoryLog:
    """One stream's numbering and history in this process.

    Everything runs in one OS thread and nothing here yields to another green thread, so
    ``append`` and ``backlog`` are atomic with respect to each other: a subscriber that
    takes its backlog and then joins the fan-out meets the live messages exactly.
    """

    def __init__(self, stream: str, *, history: int = 100, clock: Callable[[], float] = time.time,
                 epoch: str | None = None, on_entry: Callable[[Entry], None] | None = None):
        self.stream = stream
        self.epoch = epoch or new_epoch()
        self.seq = 0
        self.on_entry = on_entry
        self._clock = clock
        self._history: deque[Entry] = deque(maxlen=max(history, 1))

    @property
    def history_size(self) -> int:
        return self._history.maxlen

    @property
    def last(self) -> Entry | None:
        return self._history[-1] if self._history else None

    def append(self, body: str) -> Entry:
        """Number and stamp a message (``body`` from ``encode_fields``) and deliver it."""
        self.seq += 1
        entry = Entry(self.stream, self.seq, self._clock(), self.epoch, body)
        self._history.append(entry)
        if self.on_entry is not None:
            self.on_entry(entry)
        return entry

    def backlog(self, resume: Resume | None) -> tuple[list[Entry], bool]:
        """What a new subscriber is owed, and whether it must be told it missed data."""
        return owed(self._history, self.seq, self.epoch, resume)


def owed(history: Iterable[Entry] | deque, last_seq: int, epoch: str,
         resume: Resume | None) -> tuple[list[Entry], bool]:
    """The resume rule, for any log that can list its recent entries.

    * no resume: the last value, so the screen shows something at once;
    * same epoch, a seq the log has reached, and history reaching back: exactly the missed
      entries (none if the client is up to date);
    * anything else (another epoch, a seq from the future, history too short): the latest
      entry with the gap signal, or, with nothing published yet, the gap rides on the
      first live message.
    """
    history = history if isinstance(history, deque) else deque(history)
    if resume is None:
        return ([history[-1]] if history else []), False
    if resume.epoch == epoch and 0 <= resume.seq <= last_seq:
        missed = last_seq - resume.seq
        if missed == 0:
            return [], False
        if missed <= len(history):
            return list(history)[-missed:], False
    return ([history[-1]] if history else []), True
