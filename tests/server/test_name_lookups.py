"""Host names (a Redis or PostgreSQL URL's host) are resolved by the system's resolver in an
OS thread, not on the hub (``dashstream/runtime.py``: eventlet's greendns is off, it cost
most of a start). A lookup that hangs, as one does while a DNS server is down, must leave
every other green thread (every screen) running. Run in a subprocess: monkey_patch is for
the process the server is, not for pytest's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT, scaled

pytestmark = pytest.mark.timeout(60)

# A resolver that takes 0.5 s for one name (a real, OS-level sleep: it blocks whatever
# thread runs it), while a green ticker counts 10 ms ticks. On the hub, it would tick
# about 0 times during each lookup; off it, about 50.
SCRIPT = r"""
import json, sys, time
from dashstream import runtime
import eventlet.green.socket as green_socket
from eventlet import patcher

blocking_sleep = patcher.original("time").sleep
system_lookup = green_socket.getaddrinfo

def slow_lookup(host, *args, **kwargs):
    if host == "slow.example":
        blocking_sleep(0.5)
        host = "127.0.0.1"
    return system_lookup(host, *args, **kwargs)

green_socket.getaddrinfo = slow_lookup  # what monkey_patch will put in place
runtime.monkey_patch()
import socket
threaded = socket.getaddrinfo
runtime.monkey_patch()  # a second call (server.py run in a process that had made the first)

ticks = []
def ticker():
    while True:
        ticks.append(time.monotonic())
        runtime.sleep(0.01)
runtime.spawn(ticker)
while len(ticks) < 2:  # the ticker runs
    runtime.sleep(0.01)

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
port = listener.getsockname()[1]

result = {"modules": sorted(m for m in ("dns", "eventlet.support.greendns") if m in sys.modules)}
before = len(ticks)
result["address"] = socket.getaddrinfo("slow.example", port, 0, socket.SOCK_STREAM)[0][4][0]
result["ticks_during_getaddrinfo"] = len(ticks) - before
before = len(ticks)
connection = socket.create_connection(("slow.example", port), timeout=5)
result["ticks_during_create_connection"] = len(ticks) - before
result["connected_to"] = connection.getpeername()[1] == port
result["wrapped_once"] = socket.getaddrinfo is threaded and green_socket.getaddrinfo is threaded
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def result() -> dict:
    """What the script saw: one run serves both tests."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                          timeout=scaled(30))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_slow_name_lookup_does_not_stop_the_other_green_threads(result):
    assert result["address"] == "127.0.0.1" and result["connected_to"]
    # 50 ticks fit in each 0.5 s lookup; 10 leaves room for a loaded machine, and on the hub
    # there would be none (the ticker could not run until the lookup returned).
    assert result["ticks_during_getaddrinfo"] >= 10, result
    assert result["ticks_during_create_connection"] >= 10, result


def test_greendns_and_dnspython_are_not_loaded(result):
    assert result["modules"] == []


def test_a_second_monkey_patch_leaves_the_lookups_as_the_first_made_them(result):
    # Wrapped twice, a lookup would wait for an OS thread that waits for another.
    assert result["wrapped_once"] is True
