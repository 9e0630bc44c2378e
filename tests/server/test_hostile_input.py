"""What a client can send after its request, in a resume point, a close code or a publish
body, against a real server: bounded, refused with a reason, never a 500 or an ERROR line.

Each test also checks that the log has no ERROR and no traceback: input alone must never
produce one."""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import time

import pytest
import websocket  # websocket-client

from tests.server.raw_clients import (
    RawWebSocket,
    connect,
    read_all,
    read_head,
    status_of,
)
from tests.support import ServerProcess, http_get, http_request, scaled, wait_until
from tests.ws_frames import close_payload, frame

pytestmark = pytest.mark.timeout(60)

TOKEN = "red-team-token"
STREAMS = ("--stream", "office=random-walk:shared", "--min-wait", "0.01", "--max-wait", "0.05",
           "--stream", "sales=publish", "--publish-token", TOKEN)


def quiet_log(server) -> None:
    output = server.output()
    assert " ERROR " not in output and "Traceback" not in output, output[-5000:]


@pytest.fixture(scope="module")
def shared_server():
    """One server for the tests that change nothing another test here reads (a refused
    request, a resume point, a publish): a start costs a second of CPU, three under the whole
    suite's load. Each test still checks the log after it (``server``)."""
    made = ServerProcess(*STREAMS).start()
    yield made
    made.stop()
    made.discard_log()


@pytest.fixture
def server(shared_server):
    yield shared_server
    quiet_log(shared_server)


@pytest.fixture
def own_server(start_server):
    """A server of the test's own: for the tests that count connections, closes or metrics
    from zero, or leave sockets behind that another test would count."""
    server = start_server(*STREAMS)
    yield server
    quiet_log(server)


# --- input after the request -------------------------------------------------------------------


def test_an_sse_client_that_keeps_sending_after_its_request_is_closed(own_server):
    server = own_server
    sock = connect(server.port)
    try:
        sock.sendall(b"GET /sse/office HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = read_head(sock)
        assert status_of(head) == 200
        started = time.monotonic()
        sent = 0
        closed = False
        while time.monotonic() - started < scaled(5):
            try:
                sock.sendall(b"x" * 8192)
                sent += 8192
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if sent >= 1 << 20:  # a megabyte is far past the budget: the server must have closed
                sock.settimeout(scaled(3))
                read_all(sock)
                closed = True
                break
        assert closed, "the server kept reading an SSE client's input"
    finally:
        sock.close()
    wait_until(lambda: "bytes sent after the request" in server.output(), message="the close's log line")


def test_a_stream_websocket_that_sends_messages_nobody_reads_is_closed_1008(own_server):
    server = own_server
    client = RawWebSocket(server.port, "/ws/office")
    try:
        for _ in range(8):
            client.send(frame(0x1, b"a" * 8000))
        code, reason = client.read_until_close()
        assert code == 1008 and b"reads no messages" in reason, (code, reason)
    finally:
        client.close()
    # a screen that only answers pings (and sends nothing else) is left alone
    screen = websocket.create_connection(server.ws + "/ws/office", timeout=scaled(5))
    for _ in range(50):
        screen.ping(b"p")
    assert json.loads(screen.recv())["variable"] is not None
    screen.close()


# --- resume points -----------------------------------------------------------------------------


@pytest.mark.parametrize("headers, query", [
    ({"Last-Event-ID": "e:" + "9" * 5000}, ""),
    ({"Last-Event-ID": "e:\u00b2".encode("utf-8").decode("latin-1")}, ""),
    ({}, "?last_event_id=e:%C2%B2"),
    ({}, "?last_event_id=" + "e" * 5000 + ":1"),
])
def test_an_sse_resume_point_out_of_bounds_is_a_gap_not_a_500(server, headers, query):
    sock = connect(server.port)
    try:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        sock.sendall(f"GET /sse/office{query} HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode("latin-1"))
        head, rest = read_head(sock)
        assert status_of(head) == 200, head
        while b'"gap": true' not in rest and b'"gap":true' not in rest:
            rest += sock.recv(65536)
    finally:
        sock.close()


@pytest.mark.parametrize("path", [
    "/ws?streams=office&resume=office:e:%C2%B2",
    "/ws?streams=office&resume=office:e:" + "9" * 5000,
    "/ws/office?seq=%C2%B2&epoch=e",
    "/ws/office?seq=" + "9" * 5000 + "&epoch=e",
    "/ws/office?seq=1&epoch=" + "e" * 500,
])
def test_a_websocket_resume_point_out_of_bounds_is_400(server, path):
    client = RawWebSocket(server.port, path)
    try:
        assert client.status == 400, client.head
    finally:
        client.close()


def test_a_thousand_bad_resumes_write_no_error_line(server):
    for _ in range(200):
        status, _, _ = http_request(server.http + "/sse/office?last_event_id=e:%C2%B2", method="HEAD")
        assert status == 200
    for _ in range(200):
        client = RawWebSocket(server.port, "/ws?streams=office&resume=office:e:%C2%B2")
        assert client.status == 400
        client.close()


# --- a client gone at once, HEAD ---------------------------------------------------------------


def test_an_sse_client_that_resets_at_once_costs_no_500(own_server):
    server = own_server
    for _ in range(100):
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(b"GET /sse/office HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.close()  # RST at once
    wait_until(lambda: server.health()["connections"] == 0, message="every reset SSE client gone")
    # A 500 is logged as "GET /sse/office failed peer=..." (dashstream/edge/app.py); the bare
    # digits "500" also turn up in peer ports (127.0.0.1:35000) and timestamps (,500).
    output = server.output()
    assert " failed peer=" not in output and "500 Internal Server Error" not in output, output[-5000:]
    assert "ERROR" not in output and "Traceback" not in output, output[-5000:]


def test_head_on_sse_gets_the_get_answers_headers_and_no_body(own_server):
    server = own_server
    status, headers, body = http_request(server.http + "/sse/office", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Type"].startswith("text/event-stream")
    assert headers["X-Accel-Buffering"] == "no" and "no-cache" in headers["Cache-Control"]
    assert http_request(server.http + "/sse/nope", method="HEAD")[0] == 404
    assert server.health()["connections"] == 0


# --- metric labels -----------------------------------------------------------------------------


def closes_series(server) -> list[str]:
    _, _, body = http_get(server.http + "/metrics")
    return [line for line in body.decode().splitlines() if line.startswith("dashstream_closes_sent_total{")]


def test_client_close_codes_make_a_fixed_set_of_metric_labels(own_server):
    server = own_server
    for code in range(4000, 4060):
        client = RawWebSocket(server.port, "/ws/office")
        client.send(frame(0x8, close_payload(code)))
        assert client.read_until_close()[0] == code  # the echo keeps the client's own code
        client.close()
    client = RawWebSocket(server.port, "/ws/office")
    client.send(frame(0x8, close_payload(3123)))
    client.read_until_close()
    client.close()
    series = closes_series(server)
    labels = {re.search(r'code="([^"]+)"', line)[1] for line in series}
    assert labels == {"4xxx", "3xxx"}, series
    assert any(line.startswith('dashstream_closes_sent_total{code="4xxx"} 60') for line in series), series


# --- SSE slow readers --------------------------------------------------------------------------


def server_send_buffers(server) -> list[int]:
    """The kernel's send buffer (``tb`` in ``ss -m``) of each established connection the
    server holds on its port."""
    result = subprocess.run(["ss", "-tmnH", "state", "established", f"( sport = :{server.port} )"],
                            capture_output=True, text=True, check=True)
    return [int(match) for match in re.findall(r"\btb(\d+)", result.stdout)]


@pytest.mark.parametrize("request_head", [
    b"GET /sse/office HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /ws/office HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
], ids=["sse", "websocket"])
def test_streams_get_the_send_buffer_clamp(start_server, request_head):
    server = start_server(*STREAMS, "--send-buffer", "32768")
    sock = connect(server.port)
    try:
        sock.sendall(request_head)
        read_head(sock)
        # Linux doubles SO_SNDBUF for its bookkeeping: 32 KiB asked is 64 KiB shown.
        assert server_send_buffers(server) == [65536]
    finally:
        sock.close()
    quiet_log(server)


def test_a_stuck_sse_reader_is_closed_by_the_slow_policy_within_seconds(start_server):
    server = start_server(*STREAMS, "--slow-timeout", "1", "--send-buffer", "32768")
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and then never reads
    reader.settimeout(scaled(10))
    reader.connect(("127.0.0.1", server.port))
    reader.sendall(b"GET /sse/sales HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_until(lambda: server.health()["connections"] == 1, message="the SSE reader connected")
    publisher = http_publisher(server)
    started = time.monotonic()
    body = json.dumps({"variable": 1, "blob": "x" * 20000}).encode()
    while server.health()["connections"] and time.monotonic() - started < scaled(15):
        publisher(body)
    elapsed = time.monotonic() - started
    reader.close()
    assert server.health()["connections"] == 0, "the stuck SSE reader was never closed"
    assert elapsed < scaled(5), f"closed after {elapsed:.1f}s"
    assert "slow subscriber" in server.output()
    quiet_log(server)


def http_publisher(server):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=scaled(5))

    def publish(body: bytes) -> None:
        connection.request("POST", "/publish/sales", body, {"Content-Type": "application/json",
                                                             "Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        response.read()
        assert response.status == 200

    return publish


# --- publish framing ---------------------------------------------------------------------------


def raw_publish(server, head_lines: str, body: bytes, wait: float = 5.0) -> tuple[int, bytes, float]:
    sock = connect(server.port, timeout=wait)
    started = time.monotonic()
    try:
        sock.sendall(f"POST /publish/sales HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                     f"Content-Type: application/json\r\n{head_lines}\r\n".encode() + body)
        head, rest = read_head(sock)
        return status_of(head), head + rest, time.monotonic() - started
    finally:
        sock.close()


def test_a_chunk_size_line_without_end_is_refused_at_its_limit(server):
    status, answer, took = raw_publish(server, "Transfer-Encoding: chunked\r\n", b"1" * 20000)
    assert status == 400 and b"chunk line" in answer, answer
    assert took < scaled(2), f"refused only after {took:.1f}s"


def test_two_different_content_lengths_are_refused(server):
    body = b'{"variable": 1}'
    status, answer, _ = raw_publish(server, f"Content-Length: {len(body)}\r\nContent-Length: 3\r\n", body)
    assert status == 400 and b"Content-Length" in answer, answer
    status, _, _ = raw_publish(server, f"Content-Length: {len(body)}\r\nContent-Length: {len(body)}\r\n", body)
    assert status == 200  # the same value twice is one length (RFC 9112 6.3)


def test_trailer_lines_are_bounded(server):
    chunked = b'f\r\n{"variable": 1}\r\n0\r\n'
    status, _, _ = raw_publish(server, "Transfer-Encoding: chunked\r\n", chunked + b"X-A: 1\r\n" * 3 + b"\r\n")
    assert status == 200
    status, answer, _ = raw_publish(server, "Transfer-Encoding: chunked\r\n", chunked + b"X-A: 1\r\n" * 2000 + b"\r\n")
    assert status == 400 and b"trailer" in answer, answer


def test_a_transfer_coding_other_than_chunked_is_501(server):
    status, _, _ = raw_publish(server, "Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n")
    assert status == 501


# --- a trusted proxy that cannot name its client -------------------------------------------------


def test_x_forwarded_for_unknown_from_a_trusted_proxy_is_not_exempt_from_the_handshake_limit(start_server):
    server = start_server(*STREAMS, "--handshake-rate", "5", "--handshake-burst", "5")
    statuses = []
    for _ in range(30):
        client = RawWebSocket(server.port, "/ws/office", extra="X-Forwarded-For: unknown\r\n")
        statuses.append(client.status)
        client.close()
    assert statuses.count(429) >= 20, statuses
    # the proxy's own requests (no forwarding header) stay exempt
    for _ in range(10):
        client = RawWebSocket(server.port, "/ws/office")
        assert client.status == 101
        client.close()
    quiet_log(server)
