"""Which streams a connection asks for: a path and a query string -> streams and resume points.

Pure parsing, no I/O, so every rule is a unit test (tests/unit/test_subscribe_query.py). Forms:

* ``/`` (the default stream) and ``/ws/NAME``, resumed with ``?seq=N&epoch=E``;
* ``/ws?streams=a,b,c`` (several streams on one socket, at most ``MAX_STREAMS`` names, each
  at most once), resumed per stream with ``?resume=a:EPOCH:SEQ,b:EPOCH:SEQ`` (streams not
  named there get their last value);
* ``/sse/NAME`` resumes with ``Last-Event-ID: EPOCH:SEQ`` or ``?last_event_id=EPOCH:SEQ``.

On every form, ``?history=N`` asks for the newest N entries (at most the stream's
``history``) instead of the last value when there is no resume point, or when the resume
cannot be honoured: a chart that is full on first paint.

Every refusal is an ``HTTPError`` with the status and the reason a client can act on,
raised before any upgrade.

Every resume point, whichever form carries it, is read by one function,
``resume_point(epoch, seq)``, with the same bounds: ``seq`` is 1 to ``MAX_SEQ_DIGITS``
ASCII digits (``str.isdigit`` also accepts ``²`` and ``٣``, which ``int`` refuses, and
``int`` of 5,000 digits raises past Python's digit limit: each was an unhandled error and an
ERROR line per request), ``epoch`` is 1 to ``MAX_EPOCH_LENGTH`` characters.
"""

from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import parse_qs

from dashstream.edge.http import HTTPError
from dashstream.streams.log import MAX_STREAMS, Resume

# A seq of 18 digits is 10**18 messages: a stream publishing a million a second reaches it
# in 30,000 years. An epoch is a short token (``log.new_epoch``), 64 leaves it room.
MAX_SEQ_DIGITS = 18
MAX_EPOCH_LENGTH = 64
_DIGITS = frozenset("0123456789")


class BadResume(ValueError):
    """A resume point outside the bounds above; the text says which part."""


def _bad(reason: str) -> HTTPError:
    return HTTPError("400 Bad Request", reason)


def resume_point(epoch: str, seq: str) -> Resume:
    """The one reader of a resume point (``EPOCH`` and ``SEQ`` as the client wrote them)."""
    if not 1 <= len(seq) <= MAX_SEQ_DIGITS or not _DIGITS.issuperset(seq):
        raise BadResume(f"seq must be 1 to {MAX_SEQ_DIGITS} digits 0-9")
    if not 1 <= len(epoch) <= MAX_EPOCH_LENGTH:
        raise BadResume(f"epoch must be 1 to {MAX_EPOCH_LENGTH} characters")
    return Resume(int(seq), epoch)


def split_point(text: str) -> tuple[str, str]:
    """``EPOCH:SEQ`` → (epoch, seq); the epoch may itself contain colons."""
    epoch, _, seq = text.rpartition(":")
    return epoch, seq


def wants_control(query: dict) -> bool:
    return query.get("control", ["0"])[0].lower() in ("1", "true", "yes")


SCREEN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")  # config/walls.py's WALL_NAME


def screen_name(query: dict) -> str | None:
    """``screen=NAME``: the named screen this connection is (``/?screen=lobby`` on the page),
    steered by ``POST /screens/NAME``; None when the query names none. A name the config does
    not define is accepted (the page says so and shows the default wall; a reload may add
    it); a name no config could define is refused."""
    if "screen" not in query:
        return None
    name = query["screen"][0]
    if not SCREEN_NAME.match(name):
        raise _bad(f"screen= takes a screen's name (1-64 letters, digits, '_' or '-'), got {name[:80]!r}")
    return name


def parse_query(query_string: str) -> dict[str, list[str]]:
    # No query at all (a page's plain ``ws://host/``) is the usual case: parse_qs's
    # argument coercion and split would only find that out.
    return parse_qs(query_string, keep_blank_values=True) if query_string else {}


def single_resume(query: dict) -> Resume | None:
    """``?seq=N&epoch=E`` (both or neither)."""
    if "seq" not in query and "epoch" not in query:
        return None
    if "seq" not in query or "epoch" not in query:
        raise _bad("resume needs both seq (an integer) and epoch")
    epoch, seq = query["epoch"][0], query["seq"][0]
    try:
        return resume_point(epoch, seq)
    except BadResume as error:
        if not epoch or seq[:1] == "-" and _DIGITS.issuperset(seq[1:]):
            raise _bad("resume needs both seq (an integer >= 0) and epoch") from None
        if seq and _DIGITS.issuperset(seq) or len(epoch) > MAX_EPOCH_LENGTH:  # only the bounds broken
            raise _bad(f"resume needs both seq (an integer >= 0) and epoch: {error}") from None
        raise _bad("resume needs both seq (an integer) and epoch") from None


def recent_count(query: dict) -> int:
    """``?history=N`` (an integer >= 1; default 1, the last value)."""
    if "history" not in query:
        return 1
    text = query["history"][0]
    if not text.isdigit() or int(text) < 1:
        raise _bad(f"history= takes how many recent entries to send (an integer >= 1), got {text!r}")
    return int(text)


def event_id_resume(text: str | None) -> Resume | None:
    """An SSE ``Last-Event-ID`` (``EPOCH:SEQ``); an unparsable one is a resume that cannot be
    honoured (the gap signal), not an error: browsers send back whatever id they last saw."""
    if text is None or not text.strip():
        return None
    try:
        return resume_point(*split_point(text.strip()))
    except BadResume:
        return Resume(-1, "")  # matches no epoch: the client gets the gap signal


def stream_names(text: str, known: Iterable[str]) -> list[str]:
    """``a,b,c``: each name once, all known, at most ``MAX_STREAMS``."""
    names = [name.strip() for name in text.split(",")]
    if not names or any(not name for name in names):
        raise _bad("streams= needs a comma-separated list of stream names, e.g. streams=a,b")
    if len(names) > MAX_STREAMS:
        raise _bad(f"at most {MAX_STREAMS} streams on one connection, got {len(names)}")
    if len(set(names)) != len(names):
        raise _bad("a stream is named twice in streams=")
    known = set(known)
    for name in names:
        if name not in known:
            raise HTTPError("404 Not Found", f"no stream named {name!r}")
    return names


def resume_points(text: str, names: Iterable[str]) -> dict[str, Resume]:
    """``a:EPOCH:SEQ,b:EPOCH:SEQ`` for streams of this connection."""
    names = set(names)
    points: dict[str, Resume] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, rest = item.partition(":")
        try:
            if not name:
                raise BadResume("no stream name")
            point = resume_point(*split_point(rest))
        except BadResume as error:
            raise _bad(f"resume= takes NAME:EPOCH:SEQ items, got {item[:80]!r} ({error})") from None
        if name not in names:
            raise _bad(f"resume= names {name[:80]!r}, which is not in streams=")
        if name in points:
            raise _bad(f"resume= names {name[:80]!r} twice")
        points[name] = point
    return points


def multi_stream_targets(query: dict, known: Iterable[str]) -> list[tuple[str, Resume | None]]:
    """``/ws?streams=...&resume=...`` -> [(name, resume or None)] in the order asked."""
    if "streams" not in query:
        raise _bad("/ws needs ?streams=a,b,c (or connect to /ws/NAME for one stream)")
    names = stream_names(query["streams"][0], known)
    points = resume_points(query.get("resume", [""])[0], names)
    return [(name, points.get(name)) for name in names]
