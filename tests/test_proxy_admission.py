"""--trusted-proxy against a real server: the handshake limit counts the forwarded client,
and the server's own machine is not limited.

NEEDS THE NEW CORE: today's app.py builds ``Admission`` without a ``ProxyPolicy``, so the
server still limits by the socket's peer. These tests are ``xfail(strict=True)`` until the
lead passes ``proxies=ProxyPolicy(config.trusted_proxies)`` (and logs
``client.address``): then they pass, strict xfail turns that into a failure, and the
marker must go. The pure rule is tested in tests/test_forwarded.py.
"""

from __future__ import annotations

import pytest
import websocket  # websocket-client

from tests.support import scaled, wait_until

needs_core = pytest.mark.xfail(strict=True, reason="needs the new core: app.py must pass "
                               "ProxyPolicy(config.trusted_proxies) to Admission and log client.address")
pytestmark = pytest.mark.timeout(60)

OFFICE = "203.0.113.7"


def handshake(server, forwarded_for: str | None = None) -> int:
    headers = [f"X-Forwarded-For: {forwarded_for}"] if forwarded_for else []
    try:
        ws = websocket.create_connection(server.ws + "/echo", timeout=scaled(5), header=headers)
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code
    ws.close()
    return 101


@needs_core
def test_the_local_machine_is_not_limited_even_by_a_tiny_limit(start_server):
    server = start_server("--handshake-rate", "0.1", "--handshake-burst", "5")
    assert [handshake(server) for _ in range(50)] == [101] * 50


@needs_core
def test_a_forwarded_client_is_limited_by_its_own_address_and_named_in_the_log(start_server):
    server = start_server("--handshake-rate", "0.1", "--handshake-burst", "3")
    assert [handshake(server, OFFICE) for _ in range(4)] == [101, 101, 101, 429]
    # another client behind the same proxy is not held back by the first one
    assert handshake(server, "203.0.113.8") == 101
    # ... and a forged header from a client we do not trust changes nothing (it is the
    # proxy that appends the real address: here the right-most entry)
    assert handshake(server, f"127.0.0.1, {OFFICE}") == 429
    wait_until(lambda: f"peer={OFFICE}" in server.output(), message="the forwarded client in the log")
