"""``dashstream.ops.log_output``: escaping, the per-key limiter, the formats and the dropping
handler. A stalled log output against a real hub, and the server's own log lines, are
tests/server/test_log_lines.py."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import sys

import pytest

from dashstream.ops.log_output import (
    _CONTROL,
    TEXT_FORMAT,
    DroppingQueueHandler,
    JsonFormatter,
    LogLimiter,
    TextFormatter,
    fields_wanted,
    log_line,
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
    for text in ("GET /ws/sales → 404", "Zürich ünïcödé 日本 🙂", r"C:\path\n-not-a-newline", "", "a b",
                 "no\u00a0break zero\u200bwidth"):  # not printable, yet nothing to escape
        assert safe(text) == text
    assert safe(404) == "404"


def test_every_character_escaped_is_one_isprintable_refuses():
    """``safe`` returns a printable line as it is without the pattern: sound only while
    every character the pattern escapes is one ``str.isprintable`` says is not printable."""
    every = "".join(map(chr, range(0x110000)))
    escaped = _CONTROL.findall(every)
    assert len(escaped) == 32 + 33 + 2 + 5 + 4
    assert not any(char.isprintable() for char in escaped)


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


# --- lines logged per connection (log_line) ---------------------------------------------------------


@pytest.fixture
def quick(tmp_path, monkeypatch):
    """A pipeline writing to a file, the only outlet of the logger ``quick.lane`` (which does
    not propagate: pytest's own handlers sit on the root logger), installed as the module's."""
    import threading

    from dashstream.ops import log_output

    made = []

    def make(log_format: str = "text"):
        path = tmp_path / f"{log_format}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT)
        waiting = log_output.BoundedQueue(queue, 100)
        handler = DroppingQueueHandler(waiting, threading.RLock)
        formatter = log_output.FORMATTERS[log_format]()
        writer = log_output.LogWriter(waiting, threading, formatter, fd, pause=lambda _s: None)
        os.close(fd)
        pipeline = log_output.LogPipeline(handler, writer, waiting, None)
        logger = logging.getLogger("quick.lane")
        logger.propagate, logger.handlers = False, [handler]
        logger.setLevel(logging.INFO)
        monkeypatch.setattr(log_output, "_pipeline", pipeline)
        made.append(logger)

        def lines() -> list[str]:
            assert pipeline.stop(timeout=5)
            return path.read_text().splitlines()

        return logger, pipeline, lines

    yield make
    for logger in made:
        logger.handlers, logger.filters, logger.propagate = [], [], True
        logger.setLevel(logging.NOTSET)


CLOSE = "close peer=%s path=%s duration=%.1fs sent=%d code=%s%s"
CLOSE_ARGS = ("127.0.0.1:5", "/ws/x", 0.25, 3, 1000, "")


def test_a_line_logged_the_short_way_is_the_line_logger_info_writes(quick):
    logger, pipeline, lines = quick("text")
    assert pipeline.only_outlet(logger, logging.INFO)
    logger.info(CLOSE, *CLOSE_ARGS)
    log_line(logger, logging.INFO, CLOSE, CLOSE_ARGS)
    log_line(logger, logging.WARNING, "all of %(what)s", ({"what": "it"},))  # a lone mapping, as logging takes it
    log_line(logger, logging.INFO, "50% as it is")  # no arguments: no formatting
    written = lines()
    assert len(written) == 4 and all(TEXT_LINE.match(line) for line in written)
    expected = " INFO quick.lane: close peer=127.0.0.1:5 path=/ws/x duration=0.2s sent=3 code=1000"
    assert written[0][23:] == written[1][23:] == expected
    assert written[2][23:] == " WARNING quick.lane: all of it" and written[3].endswith("INFO quick.lane: 50% as it is")


def test_its_json_has_the_fields_logger_info_gives_it(quick):
    logger, _, lines = quick("json")
    fields = {"peer": "127.0.0.1:5", "path": "/ws/x", "code": 1000, "duration_s": 0.25, "reason": "bye\n"}
    logger.info(CLOSE, *CLOSE_ARGS, extra=fields)
    log_line(logger, logging.INFO, CLOSE, CLOSE_ARGS, fields)
    first, second = (json.loads(line) for line in lines())
    first.pop("time"), second.pop("time")
    assert first == second and second["reason"] == "bye\\n" and list(second)[:3] == ["level", "logger", "message"]


def test_its_text_is_escaped_and_a_full_queue_drops_it_counted(quick):
    logger, pipeline, lines = quick("text")
    log_line(logger, logging.INFO, "path=%s", ("/\n2026-01-01 forged",))
    # No room at all: the writer thread may already have taken the line above, so a bound of
    # 1 only sometimes made the queue full (a race seen on Python 3.13 under load).
    pipeline.queue.maxsize = 0
    log_line(logger, logging.INFO, "dropped")
    assert pipeline.dropped == 1
    pipeline.queue.maxsize = 100
    log_line(logger, logging.INFO, "after")  # room again: the count is told first, then the line
    written = lines()
    assert written[0].endswith("INFO quick.lane: path=/\\n2026-01-01 forged")
    assert "WARNING dashstream.logs: 1 log lines dropped" in written[1], written
    assert written[2].endswith("INFO quick.lane: after"), written


def test_with_another_outlet_or_a_filter_it_is_an_ordinary_record(quick):
    logger, pipeline, lines = quick("text")
    seen: list[logging.LogRecord] = []
    collector = logging.Handler()
    collector.emit = seen.append
    logger.addHandler(collector)
    assert not pipeline.only_outlet(logger, logging.INFO)
    log_line(logger, logging.INFO, CLOSE, CLOSE_ARGS, {"peer": "127.0.0.1:5"})
    assert [r.getMessage() for r in seen] == [CLOSE % CLOSE_ARGS] and seen[0].peer == "127.0.0.1:5"
    logger.removeHandler(collector)
    logger.addFilter(lambda record: False)
    assert not pipeline.only_outlet(logger, logging.INFO)
    log_line(logger, logging.INFO, "filtered out")
    assert len(lines()) == 1  # the first line reached the pipeline's handler too, as with logger.info


def test_below_the_level_nothing_is_made(quick):
    logger, pipeline, lines = quick("text")
    logger.setLevel(logging.WARNING)
    log_line(logger, logging.INFO, "%s", (object(),))
    pipeline.handler.setLevel(logging.ERROR)
    logger.setLevel(logging.INFO)
    assert not pipeline.only_outlet(logger, logging.WARNING)  # the handler would drop it
    assert lines() == []


def test_a_bad_format_or_a_field_named_like_a_standard_one_takes_loggings_own_way(quick):
    logger, _, lines = quick("text")
    log_line(logger, logging.INFO, "%d items", ("x",))  # logging's handler reports it
    with pytest.raises(KeyError):
        log_line(logger, logging.INFO, "x", (), {"msg": "clash"})  # makeRecord refuses it, as before
    written = lines()
    assert len(written) == 1 and written[0].endswith("INFO quick.lane: unformattable log record: '%d items' % ('x',)")


def test_the_fields_are_wanted_only_by_an_output_that_shows_them(quick):
    from dashstream.ops import log_output

    assert log_output._pipeline is not None or fields_wanted() is True  # not this module's logging: built
    quick("text")
    assert fields_wanted() is False
    quick("json")
    assert fields_wanted() is True
