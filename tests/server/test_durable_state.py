"""``--state PATH``: a real server with a real file, stopped with SIGTERM and killed with
SIGKILL, restarted on the same file; bad files refused at start; a full disk while running.

The file is read by the test with SQLite itself (read-only, beside the running server: WAL
mode lets a reader in), to wait until the server has written instead of sleeping.
Read-only and full file systems are small tmpfs mounts (root only; skipped elsewhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from tests.support import SERVER, free_port, http_get, publish, scaled, wait_until

pytestmark = pytest.mark.timeout(90)

TOKEN = "state-token-0123"
SALES = ("--stream", "sales=publish", "--publish-token", TOKEN)


def recv_json(ws, timeout: float = 3.0) -> dict:
    return json.loads(ws.recv(timeout=scaled(timeout)))


def publish_values(server, values) -> list[dict]:
    answers = []
    for value in values:
        status, body = publish(server.http, "sales", {"variable": value}, TOKEN)
        assert status == 200, body
        answers.append(json.loads(body))
    return answers


def stored(path) -> tuple[str, int, int] | None:
    """(epoch, seq, dirty) of 'sales' as the file holds it now, or None."""
    if not os.path.exists(path):
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT epoch, seq, dirty FROM streams WHERE name = 'sales'").fetchone()
    except sqlite3.OperationalError:
        return None  # not created yet
    finally:
        conn.close()


def written(path, seq: int) -> None:
    """Until the file holds seq and nothing unwritten (one flush after the last publish)."""
    wait_until(lambda: (row := stored(path)) is not None and row[1:] == (seq, 0), timeout=scaled(10),
               message=f"the state file holding seq {seq}")


def resume(server, epoch: str, seq: int, count: int) -> list[dict]:
    with connect(f"{server.ws}/ws/sales?seq={seq}&epoch={epoch}") as ws:
        return [recv_json(ws) for _ in range(count)]


def check_restored(server, epoch: str) -> None:
    """Resume from 30 gets 31..50 then the live 51, without a gap, in the same epoch."""
    with connect(f"{server.ws}/ws/sales?seq=30&epoch={epoch}") as ws:
        backlog = [recv_json(ws) for _ in range(20)]
        (live,) = publish_values(server, [51])
        after = recv_json(ws)
    assert [(m["seq"], m["variable"], m["epoch"]) for m in backlog] == [(n, n, epoch) for n in range(31, 51)]
    assert not any("gap" in m for m in backlog)
    assert (live["seq"], live["epoch"]) == (51, epoch)
    assert (after["seq"], after["variable"], after["epoch"]) == (51, 51, epoch) and "gap" not in after


def test_after_sigterm_the_same_epoch_the_next_seq_and_the_history(start_server, tmp_path):
    path = tmp_path / "state.db"
    server = start_server(*SALES, "--state", str(path))
    epoch = publish_values(server, range(1, 51))[0]["epoch"]
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    # Everything written at exit (no flush interval waited); private streams are not kept.
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name, epoch, seq, dirty FROM streams").fetchall() == [("sales", epoch, 50, 0)]
    conn.close()
    restarted = start_server(*SALES, "--state", str(path), port=server.port)
    check_restored(restarted, epoch)
    with connect(restarted.ws + "/ws/sales") as ws:  # a new screen: the last value at once
        assert recv_json(ws)["seq"] == 51


def test_after_sigkill_once_a_flush_interval_passed_nothing_is_lost(start_server, tmp_path):
    path = tmp_path / "state.db"
    server = start_server(*SALES, "--state", str(path), "--state-flush", "0.2")
    epoch = publish_values(server, range(1, 51))[0]["epoch"]
    written(path, 50)
    server.signal(signal.SIGKILL)
    server.wait()
    restarted = start_server(*SALES, "--state", str(path), "--state-flush", "0.2", port=server.port)
    check_restored(restarted, epoch)


def test_sigkill_within_the_flush_interval_loses_the_tail_and_says_so(start_server, tmp_path):
    path = tmp_path / "state.db"
    args = (*SALES, "--state", str(path), "--state-flush", "2")
    server = start_server(*args)
    old = publish_values(server, range(1, 21))[0]["epoch"]
    written(path, 20)
    with connect(server.ws + "/ws/sales") as ws:
        assert recv_json(ws)["seq"] == 20
        publish_values(server, range(21, 31))
        seen = [recv_json(ws) for _ in range(10)]
    assert [m["seq"] for m in seen] == list(range(21, 31))  # a screen saw 30...
    # ...and the server is killed before its next write (2 s after entry 21 arrived).
    wait_until(lambda: stored(path) == (old, 20, 1), timeout=scaled(2), message="the stream marked dirty")
    server.signal(signal.SIGKILL)
    server.wait()

    restarted = start_server(*args, port=server.port)
    status, _, body = http_get(restarted.http + "/streams")
    (sales,) = [s for s in json.loads(body)["streams"] if s["name"] == "sales"]
    new = sales["epoch"]
    assert sales["last_seq"] == 20 and new != old  # the numbering goes on, in an epoch that says so
    # New values take the numbers the lost ones had: 21..35, other messages.
    publish_values(restarted, range(121, 136))
    # The screen that saw the lost 30 is told it missed data: never 31.. as if it followed its 30.
    first = resume(restarted, old, 30, 1)[0]
    assert (first["gap"], first["seq"], first["epoch"], first["variable"]) == (True, 35, new, 135)
    # A screen that saw only what was written resumes without a gap, across the epoch change.
    backlog = resume(restarted, old, 15, 20)
    assert [(m["seq"], m["variable"]) for m in backlog] == [(n, n) for n in range(16, 21)] + [
        (n, n + 100) for n in range(21, 36)]
    assert {m["epoch"] for m in backlog} == {new} and not any("gap" in m for m in backlog)


# --- bad states: exit 2 at start, one line ---------------------------------------------------------


def refused(*args: str) -> str:
    """The one line a refused start writes (exit 2), after its log prefix."""
    result = subprocess.run([sys.executable, str(SERVER), "--port", str(free_port()), *args],
                            capture_output=True, text=True, timeout=scaled(15), stdin=subprocess.DEVNULL)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    match = re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ERROR (dashstream: .*)\n", result.stderr)
    assert match, result.stderr
    return match[1]


@contextlib.contextmanager
def tmpfs(directory, *options: str):
    directory.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(("size=1m", *options)), "tmpfs", str(directory)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def test_a_missing_directory_exits_2(tmp_path):
    path = tmp_path / "missing" / "state.db"
    assert refused("--state", str(path)) == (f"dashstream: --state {path}: the directory {path.parent} does not "
                                             f"exist; create it (mkdir -p {path.parent}) or choose another path")


def test_a_read_only_directory_exits_2(tmp_path):
    with tmpfs(tmp_path / "ro", "ro") as directory:
        path = directory / "state.db"
        assert refused("--state", str(path)) == (f"dashstream: --state {path}: cannot write in {directory} "
                                                 "(Read-only file system); make it writable for this user or "
                                                 "choose another path")


def test_a_foreign_file_exits_2_and_is_left_alone(tmp_path):
    path = tmp_path / "state.db"
    path.write_text("these are someone else's notes\n" * 10)
    assert refused("--state", str(path)) == (f"dashstream: --state {path}: not a dashstream state file (file is not "
                                             "a database); move it away or choose another path")
    assert path.read_text() == "these are someone else's notes\n" * 10


def test_a_file_in_use_by_another_server_exits_2(start_server, tmp_path):
    path = tmp_path / "state.db"
    start_server(*SALES, "--state", str(path))
    assert refused(*SALES, "--state", str(path)) == (
        f"dashstream: --state {path}: in use by another dashstream process (the file is locked); stop that one "
        "or give each instance its own file")


def test_state_with_a_backplane_is_refused():
    result = subprocess.run([sys.executable, str(SERVER), "--state", "/tmp/x.db", "--backplane",
                             "redis://127.0.0.1:6379/0"], capture_output=True, text=True, timeout=scaled(15))
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "python server.py: error: --state cannot be combined with --backplane: with a backplane Redis keeps every "
        "shared stream's numbering and history; drop one of the two")


# --- a full disk while running -----------------------------------------------------------------------


def readyz(server) -> tuple[int, dict]:
    status, _, body = http_get(server.http + "/readyz")
    return status, json.loads(body)


def metric(server, name: str) -> float:
    _, _, body = http_get(server.http + "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def fill(directory) -> None:
    """Leave no byte free on the file system (unbuffered writes until ENOSPC)."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)


def test_a_full_disk_keeps_delivering_says_degraded_and_recovers_by_itself(start_server, tmp_path):
    with tmpfs(tmp_path / "small") as directory:
        path = directory / "state.db"
        server = start_server(*SALES, "--state", str(path), "--state-flush", "0.1")
        publish_values(server, range(1, 6))
        written(path, 5)
        assert readyz(server) == (200, {"ready": True, "state": "ok"})
        fill(directory)
        with connect(server.ws + "/ws/sales") as ws:
            assert recv_json(ws)["seq"] == 5
            # Enough to outgrow what the WAL already holds.
            publish_values(server, [{"text": "x" * 2000, "n": n} for n in range(6, 106)])
            assert [recv_json(ws)["seq"] for _ in range(100)] == list(range(6, 106))  # delivery goes on
            wait_until(lambda: readyz(server)[1].get("state") == "degraded", timeout=scaled(10),
                       message="/readyz saying state: degraded")
            status, ready = readyz(server)
            assert status == 200 and ready["ready"] is True and ready["state_reason"]
            assert metric(server, "dashstream_state_degraded") == 1
            assert metric(server, "dashstream_state_write_errors_total") >= 1
            wait_until(lambda: "cannot write" in server.output(), timeout=scaled(5), message="the error logged")
            assert server.output().count("cannot write") == 1  # once a minute at most

            (directory / "filler").unlink()
            wait_until(lambda: readyz(server)[1] == {"ready": True, "state": "ok"}, timeout=scaled(10),
                       message="writing resumed")
            publish_values(server, [106])
            assert recv_json(ws)["seq"] == 106
        written(path, 106)
        assert metric(server, "dashstream_state_degraded") == 0
        wait_until(lambda: "writing again" in server.output(), timeout=scaled(5), message="the end logged")
