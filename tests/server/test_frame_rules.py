"""RFC 6455 conformance of the server's WebSocket sessions, against a real ``python server.py``:
a table of bad frames sent with raw sockets after a real handshake, on ``/echo`` and on a
stream socket (``/``), each answered by the close code the RFC asks for, while a healthy
client on the same server keeps its stream. The frame reader and a WebSocket session driven
by bytes, without a network, are tests/unit/test_frames.py (same frame builders,
tests/ws_frames.py).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import pytest

from tests.support import ServerProcess, StreamWatcher, scaled, wait_until
from tests.ws_frames import INVALID_CLOSE_CODES, MAX_MESSAGE_SIZE, VALID_CLOSE_CODES, close_payload, frame, text

pytestmark = pytest.mark.timeout(60)

# --- a raw client for the real server --------------------------------------------------


class RawClient:
    """A handshake done by hand, then bytes written and server frames read by hand."""

    def __init__(self, port: int, path: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("server closed the TCP connection")
        return data

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self.buffer += self._recv()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def read_frame(self) -> tuple[int, bytes]:
        first, second = self._take(2)
        assert first & 0x70 == 0 and not second & 0x80, "server frames: no RSV bits, never masked"
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._take(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._take(8))[0]
        return first & 0xF, self._take(length)

    def read_until_close(self) -> tuple[int, bytes, list]:
        """Skip the stream's data frames; return (close code, reason, messages seen)."""
        seen = []
        while True:
            opcode, payload = self.read_frame()
            if opcode == 0x8:
                assert len(payload) >= 2, payload
                return struct.unpack("!H", payload[:2])[0], payload[2:], seen
            seen.append((opcode, payload))

    def finish_close(self) -> None:
        """Answer the server's close frame; the server must then close the TCP connection."""
        self.send(frame(0x8, close_payload(1000)))
        assert self.sock.recv(65536) == b"", "nothing follows the server's close frame"

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def frame_server():
    server = ServerProcess("--min-wait", "0", "--max-wait", "0.02", "--close-timeout", "1")
    server.start()
    healthy = StreamWatcher(server.ws + "/")
    server.healthy = healthy
    yield server
    healthy.close()
    server.stop()
    assert "Traceback" not in server.output(), server.output()


@pytest.fixture
def healthy_after(frame_server):
    """Every test here ends by checking the healthy client kept its stream."""
    yield frame_server
    frame_server.healthy.check()


# --- the table of bad frames ------------------------------------------------------------


BAD_FRAMES = {
    # RSV bits: no extension is negotiated, so all three must be 0.
    "rsv1 on text": ([text(b"hi", rsv=4)], 1002),
    "rsv2 on text": ([text(b"hi", rsv=2)], 1002),
    "rsv3 on text": ([text(b"hi", rsv=1)], 1002),
    "rsv2 on ping": ([frame(0x9, b"x", rsv=2)], 1002),
    # Reserved opcodes.
    **{f"reserved opcode {op:#x}": ([frame(op, b"x")], 1002) for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)},
    # Invalid UTF-8, whole and fragmented.
    "invalid utf-8 whole": ([text("κόσμε".encode() + b"\xed\xa0\x80edited")], 1007),
    "invalid utf-8 start byte": ([text(b"\xff")], 1007),
    "invalid utf-8 in a later fragment": ([text(b"hello ", fin=False), frame(0x0, b"\xc0\xaf", fin=True)], 1007),
    "utf-8 truncated at the end of the message": ([text(b"ab\xce", fin=False), frame(0x0, b"")], 1007),
    "invalid utf-8 split across fragments": (
        [text(b"\xe2\x82", fin=False), frame(0x0, b"\x28")], 1007),
    # Too big, whole and across fragments.
    "oversized whole": ([frame(0x2, b"x" * (MAX_MESSAGE_SIZE + 1))], 1009),
    "oversized text fragmented": ([text(b"a" * 40000, fin=False), frame(0x0, b"a" * 40000)], 1009),
    "oversized in many fragments": ([text(b"a" * 10000, fin=False)]
                                    + [frame(0x0, b"a" * 10000, fin=False)] * 6
                                    + [frame(0x0, b"a" * 10000)], 1009),
    "huge declared length, no payload": ([frame(0x2, b"", length=1 << 40)], 1009),
    "64-bit length with the top bit set": ([bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + os.urandom(4)],
                                           1002),
    # Bad close frames.
    **{f"close code {code}": ([frame(0x8, close_payload(code))], 1002) for code in INVALID_CLOSE_CODES},
    "close payload of one byte": ([frame(0x8, b"\x03")], 1002),
    "close reason not utf-8": ([frame(0x8, close_payload(1000, b"\xff\xfe"))], 1002),
    # Control frames: never fragmented, at most 125 bytes.
    "fragmented ping": ([frame(0x9, b"x", fin=False)], 1002),
    "fragmented close": ([frame(0x8, close_payload(1000), fin=False)], 1002),
    "ping over 125 bytes": ([frame(0x9, b"p" * 126)], 1002),
    "close over 125 bytes": ([frame(0x8, close_payload(1000, b"r" * 124))], 1002),
    # Masking and fragmentation rules.
    "unmasked text": ([text(b"hi", masked=False)], 1002),
    "unmasked ping": ([frame(0x9, b"", masked=False)], 1002),
    "continuation without a start": ([frame(0x0, b"x")], 1002),
    "new text inside a fragmented message": ([text(b"a", fin=False), text(b"b")], 1002),
    "new binary inside a fragmented message": ([text(b"a", fin=False), frame(0x2, b"b")], 1002),
}


@pytest.mark.parametrize("path", ["/echo", "/"])
@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_bad_frame_fails_the_connection_with_its_code(healthy_after, path, case):
    frames, expected = BAD_FRAMES[case]
    client = RawClient(healthy_after.port, path)
    try:
        client.send(*frames)
        code, reason, seen = client.read_until_close()
        assert code == expected, (code, reason)
        assert reason, "a close for a protocol error says why"
        if path == "/echo":
            assert seen == [], "nothing of a bad message is echoed"
        if frames[-1][0] & 0xF == 0x8:
            # The bad frame was the client's own close: it will not send another, so the
            # server closes TCP at once instead of waiting for one (Autobahn 7.3.6).
            assert client.sock.recv(1) == b""
        else:
            client.finish_close()  # the server completes the handshake and closes TCP
    finally:
        client.close()


@pytest.mark.parametrize("path", ["/echo", "/"])
def test_invalid_utf8_is_caught_before_the_message_ends(healthy_after, path):
    client = RawClient(healthy_after.port, path)
    try:
        client.send(text(b"\xf8\x88\x80\x80\x80", fin=False))
        code, _, _ = client.read_until_close()  # no final fragment has been sent
        assert code == 1007
        client.finish_close()
    finally:
        client.close()


@pytest.mark.parametrize("path", ["/echo", "/"])
def test_invalid_utf8_is_caught_before_the_frame_ends(healthy_after, path):
    client = RawClient(healthy_after.port, path)
    try:
        # A 60,000-byte text frame whose first bytes are not UTF-8; the rest never comes.
        whole = frame(0x1, b"\xc3\x28" + b"a" * 59998)
        client.send(whole[:8 + 100])  # 2 + 2 header bytes, 4 mask bytes, 100 payload bytes
        code, _, _ = client.read_until_close()
        assert code == 1007
    finally:
        client.close()


@pytest.mark.parametrize("path", ["/echo", "/"])
def test_oversize_is_caught_from_the_frame_header(healthy_after, path):
    client = RawClient(healthy_after.port, path)
    try:
        # Only the header of a 1 MiB frame: the server answers before any payload.
        client.send(frame(0x2, b"", length=1 << 20))
        code, _, _ = client.read_until_close()
        assert code == 1009
    finally:
        client.close()


@pytest.mark.parametrize("path", ["/echo", "/"])
@pytest.mark.parametrize("code", VALID_CLOSE_CODES)
def test_valid_close_codes_are_echoed(healthy_after, path, code):
    client = RawClient(healthy_after.port, path)
    try:
        client.send(frame(0x8, close_payload(code, b"bye")))
        echoed, _, _ = client.read_until_close()
        assert echoed == code
        assert client.sock.recv(1) == b""  # the server closes TCP after its reply
    finally:
        client.close()


def test_empty_close_is_answered_with_1000(healthy_after):
    client = RawClient(healthy_after.port, "/echo")
    try:
        client.send(frame(0x8))
        assert client.read_until_close()[0] == 1000
    finally:
        client.close()


def test_echo_accepts_the_largest_message_and_split_characters(healthy_after):
    client = RawClient(healthy_after.port, "/echo")
    try:
        largest = b"a" * MAX_MESSAGE_SIZE
        word = "κόσμε €𝄞".encode()
        client.send(text(largest[:30000], fin=False), frame(0x9, b"in between"), frame(0x0, largest[30000:]))
        assert client.read_frame() == (0xA, b"in between")  # control frames may interleave
        assert client.read_frame() == (0x1, largest)
        # Multi-byte characters cut at every fragment boundary are fine.
        client.send(*[frame(0x1 if i == 0 else 0x0, word[i:i + 1], fin=i == len(word) - 1)
                      for i in range(len(word))])
        assert client.read_frame() == (0x1, word)
        client.send(frame(0x2, b"\xff\x00", fin=False), frame(0x0, b"\xfe"))
        assert client.read_frame() == (0x2, b"\xff\x00\xfe")
    finally:
        client.close()


def test_stream_socket_ignores_valid_messages_and_keeps_streaming(healthy_after):
    client = RawClient(healthy_after.port, "/")
    try:
        client.send(text(b"hello"), frame(0x2, b"\x00" * 1000), frame(0x9, b"p"))
        seqs, pong = [], False
        while len(seqs) < 3 or not pong:
            opcode, payload = client.read_frame()
            if opcode == 0xA:
                pong = payload == b"p"
            else:
                seqs.append(json.loads(payload)["seq"])
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        client.close()


def test_server_drops_a_peer_that_never_answers_its_close(healthy_after):
    client = RawClient(healthy_after.port, "/echo")
    try:
        client.send(text(b"hi", rsv=2))
        assert client.read_until_close()[0] == 1002
        started = time.monotonic()
        # We never send our close frame: the server waits --close-timeout (1 s), then drops us.
        client.sock.settimeout(scaled(5))
        assert client.sock.recv(1) == b""
        assert time.monotonic() - started >= 0.5
    finally:
        client.close()


def test_protocol_errors_log_one_line_with_the_peer(frame_server):
    client = RawClient(frame_server.port, "/echo")
    local_port = client.sock.getsockname()[1]
    try:
        client.send(text(b"\xff"))
        assert client.read_until_close()[0] == 1007
        client.finish_close()
    finally:
        client.close()
    line = wait_until(lambda: next((line for line in frame_server.output().splitlines()
                                    if "protocol error" in line and f":{local_port} " in line), None),
                      message="the protocol error log line")
    assert "code=1007" in line and "UTF-8" in line


# --- the option ---------------------------------------------------------------------------


def test_max_message_size_option_reaches_the_socket(start_server):
    server = start_server("--max-message-size", "100")
    client = RawClient(server.port, "/echo")
    try:
        client.send(text(b"a" * 60, fin=False), frame(0x0, b"a" * 40))
        assert client.read_frame() == (0x1, b"a" * 100)  # exactly the limit is fine
        client.send(text(b"a" * 60, fin=False), frame(0x0, b"a" * 41))
        code, reason, _ = client.read_until_close()
        assert code == 1009 and b"100" in reason
    finally:
        client.close()


def test_max_message_size_must_be_positive(capsys):
    from dashstream.config.options import parse_config

    assert parse_config(["--max-message-size", "1000"], environ={}).max_message_size == 1000
    assert parse_config([], environ={"DASHSTREAM_MAX_MESSAGE_SIZE": "2000"}).max_message_size == 2000
    assert parse_config([], environ={}).max_message_size == 65536
    with pytest.raises(SystemExit) as exited:
        parse_config(["--max-message-size", "0"], environ={})
    assert exited.value.code == 2
    assert "--max-message-size" in capsys.readouterr().err
