"""Connections that say nothing hold no request slot: 1,280 silent sockets from 20
addresses (64 each, the per-address limit) and a fresh address is still answered at once,
a page load and a screen's handshake alike; a silent socket is closed at --header-timeout."""

from __future__ import annotations

import resource
import socket
import time

import pytest

from tests.server.raw_clients import RawWebSocket, connect, read_all, read_head, status_of
from tests.support import scaled, wait_until

pytestmark = pytest.mark.timeout(90)


def silent_sockets(port: int, addresses: int, each: int) -> list[socket.socket]:
    opened = []
    for index in range(addresses):
        for _ in range(each):
            opened.append(connect(port, source=f"127.0.0.{10 + index}"))
    return opened


def timed_healthz(port: int, source: str) -> float:
    started = time.monotonic()
    sock = connect(port, source=source)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _ = read_head(sock)
        assert status_of(head) == 200
    finally:
        sock.close()
    return time.monotonic() - started


def timed_handshake(port: int, source: str) -> float:
    started = time.monotonic()
    client = RawWebSocket(port, "/ws/office", source=source)
    try:
        assert client.status == 101
        client.read_frame()  # the stream's last value: the session is live
    finally:
        client.close()
    return time.monotonic() - started


@pytest.fixture
def many_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_twenty_addresses_of_silent_sockets_do_not_hold_a_fresh_address(start_server, many_descriptors):
    server = start_server("--stream", "office=random-walk:shared", "--min-wait", "0.05", "--max-wait", "0.1")
    opened = silent_sockets(server.port, 20, 64)
    try:
        time.sleep(scaled(0.3))  # whatever the server does with them, it has had the time to
        health = [timed_healthz(server.port, f"127.0.0.{100 + probe}") for probe in range(5)]
        handshakes = [timed_handshake(server.port, f"127.0.0.{110 + probe}") for probe in range(5)]
        # one of the silent addresses is not locked out by its own silent sockets either
        own = timed_healthz(server.port, "127.0.0.10")
    finally:
        for sock in opened:
            sock.close()
    assert sum(took <= scaled(0.1) for took in health) >= 4 and max(health) < scaled(0.5), health
    assert sum(took <= scaled(0.2) for took in handshakes) >= 4 and max(handshakes) < scaled(0.5), handshakes
    assert own < scaled(0.5), own
    output = server.output()
    assert " ERROR " not in output and "Traceback" not in output


def test_a_silent_connection_is_closed_at_the_header_timeout(start_server):
    server = start_server("--header-timeout", "1")
    sock = connect(server.port, timeout=10)
    started = time.monotonic()
    try:
        assert read_all(sock) == b""
    finally:
        sock.close()
    took = time.monotonic() - started
    # the kernel may hold it (TCP_DEFER_ACCEPT) before the server's own deadline starts
    assert took < scaled(1) + 5, took
    # a client that then speaks is served as before
    wait_until(lambda: timed_healthz(server.port, "127.0.0.1") < 5, message="a request after the silent one")


def test_connections_that_speak_late_are_served_whether_the_kernel_or_the_server_held_them(start_server):
    # --header-timeout 3: the kernel holds a silent connection for about 3 s (TCP_DEFER_ACCEPT),
    # then the server watches it for 3 s more. Clients that speak at 1 s (still in the kernel),
    # and at 4 s and 5 s (handed over silent: woken from the server's watcher) are answered at once.
    server = start_server("--header-timeout", "3")
    waits = (1.0, 4.0, 5.0)
    socks = [connect(server.port, timeout=15) for _ in waits]
    opened = time.monotonic()
    answered = []
    try:
        for sock, wait in zip(socks, waits):
            time.sleep(max(0.0, opened + wait - time.monotonic()))
            spoke = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            head, _ = read_head(sock)
            assert status_of(head) == 200, (wait, head)
            answered.append(time.monotonic() - spoke)
    finally:
        for sock in socks:
            sock.close()
    assert max(answered) < scaled(1), answered
