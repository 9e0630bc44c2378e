"""``dashstream.ops.log_output``: escaping, the per-key limiter, the formats and the dropping
handler. A stalled log output against a real hub, and the server's own log lines, are
tests/server/test_log_lines.py."""

from __future__ import annotations

import json
import logging
import queue
import re
import sys

import pytest

from dashstream.ops.log_output import (
    TEXT_FORMAT,
    DroppingQueueHandler,
    JsonFormatter,
    LogLimiter,
    TextFormatter,
    safe,
    suppressed_note,
)

pytestmark = pytest.mark.timeout(60)

TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")


# --- escaping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw, shown", [
    ("/\n2026-01-01 00:00:00,000 ERROR forged", "/\\n2026-01-01 00:00:00,000 ERROR forged"),
    ("a\r\nb", "a\\r\\nb"),
    ("tab\there", "tab\\there"),
    ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("nul\x00 bell\x07 del\x7f", "nul\\x00 bell\\x07 del\\x7f"),
    ("c1 \x85 \x9b", "c1 \\x85 \\x9b"),
    ("line\u2028sep\u2029para", "line\\u2028sep\\u2029para"),
    ("bidi \u202e \u2066", "bidi \\u202e \\u2066"),
])
def test_control_characters_are_shown_escaped(raw, shown):
    assert safe(raw) == shown
    assert "\n" not in safe(raw) and "\r" not in safe(raw)


def test_ordinary_text_is_left_alone():
    for text in ("GET /ws/sales → 404", "Zürich ünïcödé 日本 🙂", r"C:\path\n-not-a-newline", "", "a b"):
        assert safe(text) == text
    assert safe(404) == "404"


# --- formats ------------------------------------------------------------------------------------


def record(message: str, *args, level: int = logging.INFO, exc_info=None, **extra) -> logging.LogRecord:
    made = logging.LogRecord("dashstream.http", level, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def prepared(made: logging.LogRecord) -> logging.LogRecord:
    """What the writer thread receives: the handler's ``prepare`` has run."""
    return DroppingQueueHandler(queue.Queue(), lambda: None).prepare(made)


def test_text_format_is_todays_line_with_the_message_escaped():
    line = TextFormatter().format(prepared(record("GET %s → 404 peer=%s", "/\n2026 ERROR x", "1.2.3.4")))
    assert TEXT_LINE.match(line), line
    assert line.endswith(" INFO dashstream.http: GET /\\n2026 ERROR x → 404 peer=1.2.3.4")
    assert "\n" not in line


def test_a_traceback_keeps_its_lines_each_indented_and_escaped():
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 ERROR forged\x1b")
    except ValueError:
        made = record("failed", level=logging.ERROR, exc_info=sys.exc_info())
    first, *rest = TextFormatter().format(prepared(made)).split("\n")
    assert TEXT_LINE.match(first) and first.endswith("ERROR dashstream.http: failed")
    assert rest[0] == "    Traceback (most recent call last):"
    assert all(line.startswith("    ") for line in rest), rest
    assert rest[-2:] == ["    ValueError: bad", "    2026-01-01 00:00:00,000 ERROR forged\\x1b"]


def test_json_format_is_one_object_per_line_with_the_extra_fields():
    try:
        raise KeyError("k")
    except KeyError:
        exc_info = sys.exc_info()
    line = JsonFormatter().format(prepared(record(
        "refused %s\u2028", "/x\n", level=logging.WARNING, exc_info=exc_info,
        peer="1.2.3.4\n", status=429, ratio=0.5, level_extra=None)))
    assert "\n" not in line and "\u2028" not in line and line.isascii()
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "dashstream.http"
    assert entry["message"] == "refused /x\\n\\u2028"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"]), entry["time"]
    assert (entry["peer"], entry["status"], entry["ratio"], entry["level_extra"]) == ("1.2.3.4\\n", 429, 0.5, None)
    assert entry["exc_info"].startswith("Traceback") and "KeyError: 'k'" in entry["exc_info"]
    assert not {"args", "msg", "levelno", "pathname", "exc_text"} & entry.keys()


def test_json_extra_fields_never_replace_the_standard_ones_and_odd_values_become_text():
    entry = json.loads(JsonFormatter().format(prepared(record("m", time="forged", logger="x", where={1, 2}))))
    assert entry["logger"] == "dashstream.http" and entry["time"] != "forged"
    assert entry["where"] == "{1, 2}"


# --- the dropping handler ----------------------------------------------------------------------


def test_a_full_queue_drops_and_counts_and_the_count_takes_the_lost_lines_place():
    import threading

    waiting: queue.Queue = queue.Queue(3)
    handler = DroppingQueueHandler(waiting, threading.RLock)
    for n in range(5):
        handler.handle(record("line %d", n))
    assert handler.dropped_total == 2
    assert [waiting.get_nowait().getMessage() for _ in range(1)] == ["line 0"]
    handler.handle(record("line %d", 5))
    got = [waiting.get_nowait().getMessage() for _ in range(3)]
    assert got[:2] == ["line 1", "line 2"]
    assert re.fullmatch(r"2 log lines dropped: .*", got[2]), got
    assert waiting.empty()  # line 5 was dropped: the note took the last place
    assert handler.dropped_total == 3
    handler.handle(record("line %d", 6))
    assert [waiting.get_nowait().getMessage() for _ in range(2)] == [
        "1 log lines dropped: the log output was not keeping up (logging never makes the server wait)", "line 6"]
    assert handler.take_dropped_note() is None


def test_a_record_that_cannot_be_formatted_is_logged_as_such():
    import threading

    waiting: queue.Queue = queue.Queue()
    DroppingQueueHandler(waiting, threading.RLock).handle(record("%d items", "x"))
    assert waiting.get_nowait().getMessage() == "unformattable log record: '%d items' % ('x',)"


# --- the per-key limiter ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_first_line_per_key_per_interval_is_logged_and_the_rest_counted():
    clock = Clock()
    limiter = LogLimiter(60, clock=clock)
    assert limiter.allow("1.2.3.4") == 0
    assert [limiter.allow("1.2.3.4") for _ in range(5)] == [None] * 5
    assert limiter.allow("5.6.7.8") == 0  # another client is not held back
    clock.now += 59.9
    assert limiter.allow("1.2.3.4") is None
    clock.now += 0.1
    assert limiter.allow("1.2.3.4") == 6  # logged, telling what was suppressed
    assert limiter.allow("1.2.3.4") is None
    assert suppressed_note(6) == " (6 similar lines suppressed)"
    assert suppressed_note(0) == "" and suppressed_note(None) == ""


def test_expired_tells_each_count_once_for_keys_that_fell_silent():
    clock = Clock()
    limiter = LogLimiter(10, clock=clock)
    for key in ("a", "b", "c"):
        limiter.allow(key)
    limiter.allow("a")
    limiter.allow("a")
    limiter.allow("b")
    assert limiter.expired() == []  # intervals not over yet
    clock.now += 10
    assert sorted(limiter.expired()) == [("a", 2), ("b", 1)]
    assert limiter.expired() == []
    assert limiter.allow("a") == 0  # told already: starts afresh


def test_memory_is_bounded_quiet_keys_are_forgotten_and_evicted_counts_kept():
    clock = Clock()
    limiter = LogLimiter(10, max_keys=3, clock=clock)
    for key in range(3):
        limiter.allow(key)
        limiter.allow(key)  # one suppressed each
    limiter.allow(99)  # evicts key 0, whose count goes to the None bucket
    assert len(limiter) == 3
    clock.now += 10
    assert sorted(limiter.expired(), key=str) == [(1, 1), (2, 1), (None, 1)]
    limiter.allow("x")
    clock.now += 10
    limiter.allow("y")  # 99 and x had nothing to tell and their interval is over: forgotten
    assert len(limiter) == 1
    with pytest.raises(ValueError):
        LogLimiter(0)


def test_the_text_time_stamp_is_the_standard_one_for_each_record_within_and_across_seconds():
    formatter, standard = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    for created in (1764661941.36, 1764661941.999, 1764661942.0, 1764661941.5, 1764665541.25):
        made = logging.makeLogRecord({"msg": "x", "created": created, "msecs": (created - int(created)) * 1000})
        assert formatter.formatTime(made) == standard.formatTime(made)
