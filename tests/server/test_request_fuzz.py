"""Fuzzing a real server's request parsing: random request lines, headers, query strings
and resume points (hypothesis) must never get a 500, hang, or write an ERROR line.

One server for the module; each example is one raw request on its own connection."""

from __future__ import annotations

import socket
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import ServerProcess, scaled

pytestmark = pytest.mark.timeout(300)

TOKEN = "fuzz-token"
PATHS = ["/", "/ws", "/ws/office", "/ws/nope", "/sse/office", "/sse/sales", "/sse/", "/healthz", "/readyz",
         "/streams", "/metrics", "/dashboard.json", "/publish/sales", "/publish/office", "/reload", "/echo",
         "//x", "/%00", "/sse/office/../x"]
METHODS = ["GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "get", "PRI", "CONNECT"]
QUERY_KEYS = ["seq", "epoch", "last_event_id", "streams", "resume", "control", "token", "x"]
HEADER_NAMES = ["Last-Event-ID", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                "Sec-WebSocket-Extensions", "Content-Length", "Transfer-Encoding", "X-Forwarded-For",
                "X-Real-IP", "Origin", "Authorization", "Expect", "Content-Type", "Cookie", "X-Anything"]

text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
digits = st.one_of(st.integers(min_value=-5, max_value=10 ** 30).map(str), st.just("9" * 5000),
                   st.sampled_from(["\u00b2", "\u0663", "1_0", " 7", "+3", "0x1f", ""]))
point = st.one_of(st.builds(lambda epoch, seq: f"{epoch}:{seq}", text, digits), text)
query_value = st.one_of(text, digits, point,
                        st.builds(lambda points: ",".join(f"office:{p}" for p in points), st.lists(point, max_size=3)),
                        st.sampled_from(["office", "office,sales", "office,office", ",", "1", "yes"]))
query = st.lists(st.tuples(st.sampled_from(QUERY_KEYS), query_value), max_size=5).map(
    lambda pairs: urllib.parse.urlencode(pairs))
header_value = st.one_of(text, digits, point, st.sampled_from([
    "websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25jZQ==", "chunked", "gzip, chunked", "15, 3", "unknown",
    "127.0.0.1, unknown", "100-continue", f"Bearer {TOKEN}", "permessage-deflate; client_max_window_bits",
    "application/json", "null"]))
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value), max_size=8)
raw_junk = st.binary(max_size=60)


def encode(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


@st.composite
def requests(draw) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(raw_junk) + b"\r\n\r\n"  # not HTTP at all
    method = draw(st.sampled_from(METHODS))
    path = draw(st.one_of(st.sampled_from(PATHS), text.map(lambda t: "/" + urllib.parse.quote(t))))
    query_string = draw(query)
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.x", ""]))
    target = path + ("?" + query_string if query_string else "")
    lines = [f"{method} {target} {version}".rstrip()]
    lines += [f"{name}: {value}" for name, value in draw(headers)]
    body = draw(st.one_of(st.just(b""), st.binary(max_size=40), st.just(b'{"variable": 1}'),
                          st.just(b"5\r\nabcde\r\n0\r\n\r\n")))
    head = "\r\n".join(line.replace("\r", " ").replace("\n", " ") for line in lines)
    return encode(head) + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def fuzzed():
    server = ServerProcess("--stream", "office=random-walk:shared", "--min-wait", "0.05", "--max-wait", "0.1",
                           "--stream", "sales=publish", "--publish-token", TOKEN, "--header-timeout", "2")
    server.start()
    yield server
    output = server.output()
    server.stop()
    assert " ERROR " not in output and "Traceback" not in output, output[-5000:]
    server.discard_log()


def answer_status(port: int, request: bytes) -> int | None:
    """The status of the first answer (None: closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            return None
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                data += chunk
        except ConnectionResetError:
            return None
        first = data.split(b"\r\n", 1)[0]
        parts = first.split(b" ", 2)
        assert parts[0].startswith(b"HTTP/"), first
        return int(parts[1])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(request=requests())
def test_no_request_gets_a_500(fuzzed, request):
    status = answer_status(fuzzed.port, request)
    assert status != 500, request[:300]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event_id=point, header=st.booleans())
def test_no_sse_resume_point_gets_a_500(fuzzed, event_id, header):
    if header:
        request = b"GET /sse/office HTTP/1.1\r\nHost: x\r\nLast-Event-ID: " + encode(event_id).replace(
            b"\r", b"").replace(b"\n", b"") + b"\r\n\r\n"
    else:
        request = f"GET /sse/office?{urllib.parse.urlencode({'last_event_id': event_id})} HTTP/1.1\r\n" \
                  "Host: x\r\n\r\n".encode()
    assert answer_status(fuzzed.port, request) in (200, 400, 431)
