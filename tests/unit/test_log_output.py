"""``dashstream.logs``: escaping, the per-key limiter, the formats, and a log output that
stalls without stalling the server (a real subprocess under ``eventlet.monkey_patch()``)."""

from __future__ import annotations

import json
import logging
import queue
import re
import select
import subprocess
import sys
import textwrap

import pytest

from dashstream.ops.log_output import (
    DroppingQueueHandler,
    JsonFormatter,
    LogLimiter,
    TextFormatter,
    safe,
    suppressed_note,
)
from tests.support import ROOT, http_get, scaled

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


# --- a stalled log does not stall the server -------------------------------------------------------

FLOOD = textwrap.dedent("""
    import warnings
    warnings.filterwarnings("ignore", message=r"\\s*Eventlet is deprecated")
    import eventlet
    eventlet.monkey_patch()
    import json, logging, sys, time
    sys.path.insert(0, {root!r})
    {configure}
    log = logging.getLogger("dashstream.flood")
    lateness = []

    def ticker():
        while True:
            due = time.monotonic() + 0.01
            eventlet.sleep(0.01)
            lateness.append(time.monotonic() - due)

    eventlet.spawn(ticker)
    eventlet.sleep(0.05)
    started = time.monotonic()
    for n in range(100_000):
        log.info("line %d from peer=%s", n, "192.0.2.1")
        if n % 100 == 0:
            eventlet.sleep(0)  # a server does I/O between log lines
    spent = time.monotonic() - started
    eventlet.sleep(0.2)
    print(json.dumps({{"max_late": max(lateness), "ticks": len(lateness), "spent": spent}}), flush=True)
""")


def run_flood(configure: str) -> subprocess.Popen:
    script = FLOOD.format(root=str(ROOT), configure=configure)
    # stderr is a pipe that nobody reads while the child logs: it fills after 64 KiB.
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)


def test_a_log_pipe_nobody_reads_neither_freezes_the_hub_nor_loses_lines_silently():
    child = run_flood("from dashstream.ops.log_output import configure_logging; configure_logging('info', 'text')")
    try:
        report = json.loads(child.stdout.readline())  # only stdout is read until the child reports
        # The ticker kept time all along (it would stop for good if the hub blocked on stderr).
        assert report["max_late"] < scaled(0.1), report
        assert report["ticks"] >= 0.5 * (report["spent"] + 0.2) / 0.01, report
        # Now read stderr: the writer resumes, and the child exits once it has written the rest.
        _, stderr = child.communicate(timeout=scaled(20))
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0
    lines = stderr.decode().splitlines()
    assert all(TEXT_LINE.match(line) for line in lines), [line for line in lines if not TEXT_LINE.match(line)][:3]
    written = [int(m[1]) for m in map(re.compile(r".*: line (\d+) from peer=").match, lines) if m]
    notes = [int(m[1]) for m in map(re.compile(r".* WARNING dashstream.logs: (\d+) log lines dropped").match, lines) if m]
    assert notes, "the stalled output should have cost lines, and said so"
    assert written == sorted(written)  # in order, with gaps where the notes are
    assert len(written) + sum(notes) == 100_000, (len(written), notes)


def test_the_standard_handler_in_the_same_place_freezes_the_hub():
    """The premise of the test above: without the queue the same child stops dead."""
    child = run_flood("logging.basicConfig(level='INFO', stream=sys.stderr)")
    try:
        # The queued version reports within about 2 s; this one never gets there.
        ready, _, _ = select.select([child.stdout], [], [], scaled(6))
        assert not ready and child.poll() is None
    finally:
        child.kill()
        child.wait()


# --- the real server ----------------------------------------------------------------------------------


def test_a_request_path_cannot_forge_a_log_line(server):
    forged = "2026-01-01 00:00:00,000 ERROR dashstream: forged"
    status, _, _ = http_get(server.http + "/%0a" + forged.replace(" ", "%20") + "%0d%1b[2J")
    assert status == 404
    server.signal()
    server.wait()
    output = server.output()
    assert "\\n" + forged + "\\r\\x1b[2J" in output, output[-2000:]
    assert not any(line.startswith("2026-01-01") for line in output.splitlines())


def test_json_log_format_writes_one_object_per_line(start_server):
    import websocket

    server = start_server("--log-format", "json")
    ws = websocket.create_connection(server.ws + "/", timeout=scaled(5))
    json.loads(ws.recv())
    ws.close()
    assert http_get(server.http + "/nope\n")[0] == 404
    server.signal()
    assert server.wait() == 0
    entries = [json.loads(line) for line in server.output().splitlines()]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    messages = [entry["message"] for entry in entries]
    assert any(message.startswith("dashstream ready") for message in messages), messages
    assert any("404" in message for message in messages), messages
    assert any(message.startswith("stopped;") for message in messages), messages
