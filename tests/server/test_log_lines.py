"""Log lines of real processes: a log output that stalls without stalling the server (a
subprocess under ``eventlet.monkey_patch()`` writing to a pipe nobody reads), a request path
that cannot forge a line, and the JSON format of a real server. The formatters and the
handler alone are tests/unit/test_log_output.py."""

from __future__ import annotations

import json
import re
import select
import subprocess
import sys
import textwrap

import pytest

from tests.support import ROOT, http_get, scaled
from tests.unit.test_log_output import TEXT_LINE

pytestmark = pytest.mark.timeout(60)


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
    dropped = re.compile(r".* WARNING dashstream.logs: (\d+) log lines dropped")
    notes = [int(m[1]) for m in map(dropped.match, lines) if m]
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
