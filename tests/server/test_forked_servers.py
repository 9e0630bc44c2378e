"""The suite's servers are forks of a warm process (tests/forked_servers.py): each must be the
server ``python server.py`` would be, with its own environment, directory, randomness, event
hub and exit status, or every other test in this folder would test something else."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import websocket  # websocket-client

from tests.forked_servers import ForkedProcess, warm_process
from tests.support import ROOT, server_environment, wait_until

pytestmark = pytest.mark.timeout(60)


def first_values(server, count: int = 6) -> list[int]:
    ws = websocket.create_connection(server.ws + "/", timeout=5)
    try:
        return [json.loads(ws.recv())["variable"] for _ in range(count)]
    finally:
        ws.close()


def test_a_fork_has_its_own_environment_and_directory(start_server, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # A relative --state path (given by the environment) is made in each server's own directory.
    one = start_server("--stream", "sales=publish", env={"DASHSTREAM_STATE": "state.db"}, cwd=tmp_path / "a")
    two = start_server("--stream", "sales=publish", cwd=tmp_path / "b")
    assert isinstance(one.proc, ForkedProcess) and isinstance(two.proc, ForkedProcess)
    assert (tmp_path / "a" / "state.db").exists()
    assert not (tmp_path / "b" / "state.db").exists()


def foreign_registrations(pid: int) -> tuple[int, list[str]]:
    """(how many files the process's epoll instances watch, those of them that are not its own
    open files: /proc/PID/fdinfo names each by its descriptor number and inode)."""
    watched, foreign = 0, []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        if os.readlink(fd) != "anon_inode:[eventpoll]":
            continue
        info = (Path(f"/proc/{pid}/fdinfo") / fd.name).read_text()
        for number, inode in re.findall(r"tfd:\s*(\d+).*?\bino:([0-9a-f]+)", info):
            watched += 1
            try:
                own = os.stat(f"/proc/{pid}/fd/{number}").st_ino == int(inode, 16)
            except FileNotFoundError:
                own = False
            if not own:
                foreign.append(f"fd {number} inode {int(inode, 16)}")
    return watched, foreign


def test_forks_serve_side_by_side_each_on_an_epoll_of_its_own(start_server):
    one, two = start_server(), start_server()
    walks = [first_values(one), first_values(two), first_values(one)]
    assert all(walk == sorted(walk) and len(set(walk)) == len(walk) for walk in walks), walks
    # With the warm process's epoll instance shared, each fork's would also hold the other's
    # files (and wake it for them).
    for server in (one, two):
        watched, foreign = foreign_registrations(server.proc.pid)
        assert watched >= 2 and foreign == [], (watched, foreign)


def test_every_random_generator_of_a_fork_is_seeded_anew(tmp_path):
    # The private walks' generator (streams/stream.py) is made at import, in the warm process.
    script = tmp_path / "draw.py"
    script.write_text("import random\nfrom dashstream.streams import stream\n"
                      "print(stream._PRIVATE_RNG.random(), random.random())\n")
    warm = warm_process(sys.executable, server_environment(), ROOT)
    draws = []
    for n in range(2):
        log = tmp_path / f"draw{n}.log"
        log.touch()
        assert warm.fork([sys.executable, str(script)], dict(os.environ), tmp_path, str(log)).wait(10) == 0
        draws.append(log.read_text().split())
    assert len(draws[0]) == 2 and draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1], draws


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGKILL, -signal.SIGKILL)])
def test_a_fork_exits_as_the_server_would(start_server, signum, code):
    server = start_server()
    server.signal(signum)
    assert server.wait() == code
    assert server.proc.poll() == code
    server.signal(signal.SIGTERM)   # reaped: the pid is no longer its to signal, and nothing is sent


def test_a_bad_option_exits_2_with_its_message(start_server):
    server = start_server("--no-such-option", wait=False)
    assert server.wait() == 2
    assert "unrecognized arguments: --no-such-option" in server.output()


def test_wait_times_out_like_popens(start_server):
    server = start_server()
    with pytest.raises(subprocess.TimeoutExpired):
        server.proc.wait(0.2)
    assert server.proc.poll() is None


def test_an_environment_that_acts_at_startup_gets_a_subprocess(start_server):
    server = start_server(env={"PYTHONFAULTHANDLER": "1"})
    assert isinstance(server.proc, subprocess.Popen)
    wait_until(lambda: server.health()["status"] == "ok")
