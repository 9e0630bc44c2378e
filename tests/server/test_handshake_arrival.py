"""A handshake's answer does not depend on how its bytes arrive: whole in the first segment
(served from the bytes read at accept) or in pieces (read by the full request reader), the
server says the same, and bytes sent right behind the head reach the session."""

from __future__ import annotations

import base64
import os
import time

import pytest

from tests.server.raw_clients import connect, read_all, read_head, status_of
from tests.support import scaled
from tests.ws_frames import close_payload, frame

pytestmark = pytest.mark.timeout(60)


def handshake(port: int, path: str, extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


def answer(port: int, request: bytes, pieces: int) -> tuple[list[bytes], bytes]:
    """(the answer's head lines without Date and Sec-WebSocket-Accept, what follows it) for
    ``request`` sent in ``pieces`` pieces, a pause between them."""
    sock = connect(port)
    try:
        step = -(-len(request) // pieces)
        for start in range(0, len(request), step):
            sock.sendall(request[start:start + step])
            if start + step < len(request):
                time.sleep(scaled(0.1))  # the server reads what came so far
        head, rest = read_head(sock)
        if status_of(head) != 101:
            rest += read_all(sock)
    finally:
        sock.close()
    lines = [line for line in head.split(b"\r\n")
             if not line.lower().startswith((b"date:", b"sec-websocket-accept:"))]
    return lines, rest


@pytest.mark.parametrize("path, extra, status", [
    ("/ws/bench", "", 101),
    ("/ws/no-such-stream", "", 404),
    ("/ws/bench", "Sec-WebSocket-Version: 8\r\n", 426),  # two versions: "13,8"
    ("/ws/bench?history=x", "", 400),
    ("//ws/bench", "", 101),  # a doubled slash is one, as for any request
])
def test_whole_or_in_pieces_a_handshake_gets_the_same_answer(start_server, tmp_path, path, extra, status):
    config = tmp_path / "streams.toml"
    config.write_text('[streams.bench]\nsource = "publish"\n')
    server = start_server("--config", str(config))
    request = handshake(server.port, path, extra)
    whole, whole_rest = answer(server.port, request, 1)
    pieces, pieces_rest = answer(server.port, request, 3)
    assert status_of(whole[0] + b"\r\n") == status
    assert whole == pieces and whole_rest == pieces_rest


def test_frames_sent_right_behind_the_head_reach_the_session(server):
    sock = connect(server.port)
    try:
        sock.sendall(handshake(server.port, "/echo") + frame(0x1, b"first")
                     + frame(0x8, close_payload(1000)))
        head, rest = read_head(sock)
        assert status_of(head) == 101
        rest += read_all(sock)
    finally:
        sock.close()
    assert rest == b"\x81\x05first" + b"\x88\x02\x03\xe8"  # the echo, then the answer to the close


def test_an_upgrade_with_a_body_is_read_by_the_full_reader_and_still_upgrades(server):
    sock = connect(server.port)
    try:
        sock.sendall(handshake(server.port, "/echo", "Content-Length: 0\r\n") + frame(0x1, b"x"))
        head, rest = read_head(sock)
        assert status_of(head) == 101
        sock.sendall(frame(0x8, close_payload(1000)))
        rest += read_all(sock)
    finally:
        sock.close()
    assert rest == b"\x81\x01x" + b"\x88\x02\x03\xe8"
