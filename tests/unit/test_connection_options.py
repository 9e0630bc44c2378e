"""Every connection starts with the listener's socket options (``serve.connection_options``):
TCP_NODELAY and the --send-buffer clamp, set once on the listening socket and copied by the
kernel at accept, for a WebSocket, an SSE stream and a plain HTTP answer alike. Real sockets:
what is tested is the kernel's copy as much as the code."""

from __future__ import annotations

import socket

import pytest

from dashstream.config.options import parse_config
from dashstream.server import serve
from tests.support import free_port

pytestmark = pytest.mark.timeout(10)


def accepted_options(listener) -> tuple[int, int]:
    """(TCP_NODELAY, SO_SNDBUF) of a connection ``listener`` accepts."""
    host, port = listener.getsockname()[:2]
    with socket.create_connection((host, port), timeout=5):
        accepted, _ = listener.accept()
        with accepted:
            return (accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                    accepted.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))


def plain_listener():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def test_the_server_listens_with_the_options_every_connection_needs():
    options = ["--host", "127.0.0.1", "--port", str(free_port()), "--send-buffer", "32768"]
    listener = serve.listen(parse_config(options, environ={}))
    with listener:
        nodelay, send_buffer = accepted_options(listener)
    assert nodelay == 1
    assert send_buffer == 2 * 32768  # Linux doubles what it is asked, for its bookkeeping


def test_without_a_clamp_the_send_buffer_is_the_kernels_own_and_nagle_may_stay_on():
    with plain_listener() as untouched:
        _, kernels = accepted_options(untouched)
    with plain_listener() as listener:
        serve.connection_options(listener, None, nodelay=False)
        assert accepted_options(listener) == (0, kernels)


def test_each_option_is_set_on_its_own():
    with plain_listener() as listener:
        serve.connection_options(listener, 16384, nodelay=False)
        assert accepted_options(listener) == (0, 32768)
    with plain_listener() as listener:
        serve.connection_options(listener, None, nodelay=True)
        assert accepted_options(listener)[0] == 1
