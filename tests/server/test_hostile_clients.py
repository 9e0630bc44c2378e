"""What broke when the running server was attacked, each case against a real
server with real clients, and a watcher on a shared stream proving the other screens were
untouched (no gap, still flowing)."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import subprocess
import sys
import time

import pytest
import websocket  # websocket-client
from websockets.sync.client import connect

from tests.server.raw_clients import read_all
from tests.support import ROOT, StreamWatcher, free_port, http_get, http_request, publish, scaled, wait_until
from tests.ws_frames import close_payload, frame, text

pytestmark = pytest.mark.timeout(90)

TOKEN = "hardening-token"
WATCHED = ("--stream", "office=random-walk:shared", "--min-wait", "0.01", "--max-wait", "0.05")
HANDSHAKE = ("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")


@pytest.fixture
def watched(start_server):
    """Start a server with the watched stream; yield (server, watcher); check the watcher after."""
    made = []

    def start(*args, **kwargs):
        server = start_server(*WATCHED, *args, **kwargs)
        watcher = StreamWatcher(server.ws + "/ws/office")
        made.append(watcher)
        return server, watcher

    yield start
    for watcher in made:
        watcher.check()
        watcher.close()


def raw_upgrade(port: int, path: str = "/", extra: str = "", source: str | None = None,
                rcvbuf: int | None = None) -> tuple[socket.socket, bytes, bytes]:
    """A hand-made handshake; returns (socket, response head, bytes after it)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if source:
        sock.bind((source, 0))
    sock.settimeout(scaled(5))
    sock.connect(("127.0.0.1", port))
    sock.sendall(HANDSHAKE.format(path=path, extra=extra).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return sock, head, rest


def read_frame(sock: socket.socket, buffer: bytearray) -> tuple[int, bytes] | None:
    def need(count):
        while len(buffer) < count:
            chunk = sock.recv(65536)
            if not chunk:
                return False
            buffer.extend(chunk)
        return True

    if not need(2):
        return None
    length, at = buffer[1] & 0x7F, 2
    if length == 126:
        need(4)
        length, at = struct.unpack("!H", bytes(buffer[2:4]))[0], 4
    elif length == 127:
        need(10)
        length, at = struct.unpack("!Q", bytes(buffer[2:10]))[0], 10
    if not need(at + length):
        return None
    opcode, payload = buffer[0] & 0xF, bytes(buffer[at:at + length])
    del buffer[:at + length]
    return opcode, payload


# --- 1. control is the server's ----------------------------------------------------------------


def test_a_publish_cannot_carry_control_and_control_never_becomes_the_last_value(watched):
    server, _ = watched("--stream", "sales=publish", "--publish-token", TOKEN)
    assert publish(server.http, "sales", {"variable": 1}, TOKEN)[0] == 200
    for field in ("control", "stream"):
        status, body = publish(server.http, "sales", {"variable": 1, field: "reload"}, TOKEN)
        assert status == 400 and field.encode() in body
    assert http_request(server.http + "/reload", "POST", b"", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    with connect(server.ws + "/ws/sales?control=1") as ws:
        info = json.loads(ws.recv(timeout=scaled(3)))  # on connect: the stream's stale_after and history
        first = json.loads(ws.recv(timeout=scaled(3)))
    assert info["control"] == "stream" and "variable" not in info
    assert first["variable"] == 1 and first["seq"] == 1 and "control" not in first


# --- 2. idle sockets cannot lock out the page, /healthz or a new screen ---------------------------


def test_idle_sockets_from_one_address_do_not_lock_out_health_or_new_screens(watched):
    server, _ = watched("--max-connections", "200", "--header-timeout", "30")
    screens = [websocket.create_connection(server.ws + "/", timeout=scaled(5)) for _ in range(50)]
    idle = []
    try:
        for _ in range(600):  # far past eventlet's old pool of --max-connections + 128
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", server.port))
            idle.append(sock)
        time.sleep(0.5)  # let the server accept them all (not a readiness wait: it must not matter)
        for _ in range(6):
            started = time.monotonic()
            status, _, _ = http_get(server.http + "/healthz", timeout=scaled(2))
            assert status == 200 and time.monotonic() - started < scaled(1)
            with connect(server.ws + "/", open_timeout=scaled(2)) as ws:
                assert "variable" in json.loads(ws.recv(timeout=scaled(3)))
    finally:
        for sock in idle:
            sock.close()
        for ws in screens:
            ws.close()


# --- 3. an unfinished fragmented message costs about its size -------------------------------------


@pytest.mark.parametrize("path", ["/echo", "/"])
def test_unfinished_fragmented_messages_cost_about_their_size(watched, path):
    """100 connections each with a message in 4,000 two-byte fragments, unfinished: the
    server must hold about 8 KB for each, not an object per fragment, and the healthy
    subscriber's values keep coming while the 400,000 frames are parsed."""
    server, watcher = watched()
    clients = [raw_upgrade(server.port, path)[0] for _ in range(100)]
    wait_until(lambda: server.health()["connections"] >= 101)
    before = server.rss_kib()
    fragments = b"".join([text(b"xy", fin=False)] + [frame(0x0, b"xy", fin=False)] * 3999)  # 8,000 bytes
    began = time.monotonic()
    for sock in clients:
        # A ping may come between fragments; its pong says the server has read them all.
        sock.sendall(fragments + frame(0x9, b"read?"))
    for sock in clients:
        # Parsed in turns, every connection's pong comes near the flood's end (2.6-3 s on a
        # quiet machine, more beside other tests), not after its own 32 KB alone.
        sock.settimeout(scaled(30))
        buffer = bytearray()
        while (got := read_frame(sock, buffer)) is not None and got[0] != 0xA:
            pass
        assert got == (0xA, b"read?")
    ended = time.monotonic()
    # Parsed a budget of frames per pass of the hub, so the stream's ticker (every 10-50 ms)
    # runs between passes; parsed all at once, no value left until the whole flood was read
    # (the largest gap was the flood's whole time: benchmarks/fragment_flood_gap.py).
    wait_until(lambda: watcher.arrivals[-1] > ended, message="a value after the flood")
    moments = [began, *(t for t in watcher.arrivals if began < t < ended), ended]
    largest_gap = max(b - a for a, b in zip(moments, moments[1:]))
    assert largest_gap < max((ended - began) / 2, 0.3), (largest_gap, ended - began)
    assert server.health()["connections"] >= 101  # all still open: under every limit
    grown_per_connection = (server.rss_kib() - before) / len(clients)
    assert grown_per_connection < 40, f"{grown_per_connection:.0f} KiB per connection for 8 KB buffered"
    for sock in clients:
        sock.close()


def test_a_message_in_too_many_fragments_is_refused_with_1009(watched):
    server, _ = watched()
    sock, _, rest = raw_upgrade(server.port, "/echo")
    sock.sendall(text(b"a", fin=False) + frame(0x0, b"a", fin=False) * 5000)
    buffer = bytearray(rest)
    while (got := read_frame(sock, buffer)) is not None and got[0] != 0x8:
        pass
    assert got is not None and struct.unpack("!H", got[1][:2])[0] == 1009 and b"fragments" in got[1]
    sock.close()


# --- 4. a refused publish takes no number -------------------------------------------------------


def test_refused_publishes_leave_no_hole_and_resume_no_duplicate(watched):
    server, _ = watched("--stream", "sales=publish", "--publish-token", TOKEN, "--max-publish-size", "100000")
    listener = StreamWatcher(server.ws + "/ws/sales")
    assert publish(server.http, "sales", {"variable": 1}, TOKEN)[0] == 200
    bad_bodies = [b'{"variable": 1e400}', b'{"variable": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                  b'{"variable": -1e999, "x": 1}']
    for body in bad_bodies:
        status, answer = publish(server.http, "sales", body, TOKEN)
        assert status == 400, (status, answer)
        assert b"out of range" in answer or b"deep" in answer  # producer.values.parse_json's reasons
    # A malformed chunked body, by hand.
    with socket.create_connection(("127.0.0.1", server.port), timeout=scaled(5)) as sock:
        sock.sendall(b"POST /publish/sales HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"zz\r\n{}\r\n0\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")
    status, answer = publish(server.http, "sales", {"variable": 2}, TOKEN)
    assert status == 200 and json.loads(answer)["seq"] == 2
    wait_until(lambda: len(listener.seqs) >= 2, message="the second publish on the listener")
    listener.check(more=0)
    assert listener.seqs == [1, 2]
    listener.close()
    epoch = json.loads(answer)["epoch"]
    with connect(server.ws + f"/ws/sales?seq=1&epoch={epoch}") as ws:
        assert json.loads(ws.recv(timeout=scaled(3)))["seq"] == 2
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)  # nothing twice


# --- 5. a body shorter than its Content-Length ---------------------------------------------------


def test_a_body_shorter_than_its_content_length_is_ended(watched):
    server, _ = watched("--stream", "sales=publish", "--publish-token", TOKEN, "--header-timeout", "1")
    baseline = server.fd_count()
    socks = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=scaled(5))
        sock.sendall(b"POST /publish/sales HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n"
                     b'{"variable":')
        socks.append(sock)
    for sock in socks:
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        sock.close()
    wait_until(lambda: server.fd_count() <= baseline + 2, message="no descriptor held")


def test_a_publisher_reuses_its_keep_alive_connection(watched):
    server, _ = watched("--stream", "sales=publish", "--publish-token", TOKEN)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=scaled(5))
    ports = set()
    for value in range(20):
        connection.request("POST", "/publish/sales", json.dumps({"variable": value}),
                           {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["seq"] == value + 1
        ports.add(connection.sock.getsockname()[1])
    assert len(ports) == 1, "one TCP connection for every publish"
    connection.close()


# --- 6. slow screens hear 1008 and are counted -----------------------------------------------------


def stream_info(server, name):
    return next(s for s in json.loads(http_get(server.http + "/streams")[2])["streams"] if s["name"] == name)


def test_a_screen_that_stops_reading_is_closed_as_slow_before_the_write_timeout(watched):
    server, _ = watched("--stream", "big=publish", "--publish-token", TOKEN, "--slow-timeout", "1",
                        "--write-timeout", "5")
    sock, _, _ = raw_upgrade(server.port, "/ws/big", rcvbuf=4096)
    pad = "x" * 8000
    started = time.monotonic()
    value = 0
    while stream_info(server, "big")["slow_closed"] == 0:
        assert time.monotonic() - started < scaled(20), "never counted as slow"
        value += 1
        assert publish(server.http, "big", {"variable": value, "pad": pad}, TOKEN)[0] == 200
    wait_until(lambda: "slow subscriber" in server.output(), message="the slow subscriber line")
    wait_until(lambda: server.health()["connections"] == 1, message="the stopped screen dropped")
    wait_until(lambda: "path=/ws/big duration=" in server.output(), message="its close line")
    assert "write timeout" not in server.output()
    sock.close()


def test_a_screen_that_catches_up_in_bursts_but_keeps_dropping_is_told_1008(watched):
    """It drains everything now and then (so "it caught up once" would forgive it for ever)
    but loses messages in every round: it must hear 1008, and be counted."""
    server, _ = watched("--stream", "sales=publish", "--publish-token", TOKEN, "--slow-timeout", "1",
                        "--queue-size", "5")
    sock, _, rest = raw_upgrade(server.port, "/ws/sales", rcvbuf=4096)
    pad = "x" * 8000
    buffer = bytearray(rest)
    close = b"\x88\x15\x03\xf0subscriber too slow"
    deadline = time.monotonic() + scaled(30)
    value = 0
    while close not in buffer and time.monotonic() < deadline:
        for _ in range(40):  # a burst it cannot take...
            value += 1
            assert publish(server.http, "sales", {"variable": value, "pad": pad}, TOKEN)[0] == 200
        sock.settimeout(0.2)
        try:
            while chunk := sock.recv(65536):  # ...then it reads all there is
                buffer.extend(chunk)
        except TimeoutError:
            pass
    assert close in buffer, "no 1008 close frame"
    assert stream_info(server, "sales")["slow_closed"] == 1
    sock.close()


# --- 7. resume beyond --queue-size ------------------------------------------------------------------


def test_resume_beyond_the_queue_size_gets_the_whole_backlog(watched):
    """A backlog larger than --queue-size and than the socket buffers, with live messages
    arriving while it is still being sent: all of it, in order, then the live ones."""
    server, _ = watched("--stream", "sales=publish", "--publish-token", TOKEN, "--queue-size", "10",
                        "--history", "300")
    pad = "x" * 2000
    epoch = None
    for value in range(1, 301):
        status, answer = publish(server.http, "sales", {"variable": value, "pad": pad}, TOKEN)
        epoch = json.loads(answer)["epoch"]
    sock, head, rest = raw_upgrade(server.port, f"/ws/sales?seq=50&epoch={epoch}", rcvbuf=4096)
    for value in range(301, 306):  # live messages while the backlog waits in the server
        assert publish(server.http, "sales", {"variable": value, "pad": pad}, TOKEN)[0] == 200
    buffer = bytearray(rest)
    received = [json.loads(read_frame(sock, buffer)[1]) for _ in range(255)]
    assert [m["seq"] for m in received] == list(range(51, 306))
    assert not any(m.get("gap") for m in received)
    sock.close()


# --- 8. HEAD has no body --------------------------------------------------------------------------


def test_head_gets_headers_only_on_every_endpoint(watched):
    server, _ = watched()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=scaled(5))
    for path in ("/", "/healthz", "/readyz", "/streams", "/nowhere", "/ws/office"):
        connection.request("GET", path)
        get = connection.getresponse()
        get_body = get.read()
        connection.request("HEAD", path)
        head = connection.getresponse()
        assert head.read() == b"" and head.status == get.status, path
        if path in ("/", "/nowhere", "/ws/office"):  # the others change between two requests
            assert head.getheader("Content-Length") == str(len(get_body)), path
        else:
            assert head.getheader("Content-Length").isdigit(), path
        connection.request("GET", "/healthz")  # the keep-alive connection still parses
        after = connection.getresponse()
        assert after.status == 200 and json.loads(after.read())["status"] == "ok"
    connection.close()


# --- 9. the log can be neither flooded nor used to stop the server --------------------------------


def test_a_404_flood_from_one_client_writes_one_line(watched):
    server, _ = watched()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=scaled(5))
    for number in range(2000):
        connection.request("GET", f"/nowhere/{number}")
        response = connection.getresponse()
        assert response.status == 404
        response.read()
    connection.close()
    with socket.create_connection(("127.0.0.1", server.port), timeout=scaled(5)) as other:  # a later line
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert other.recv(100).startswith(b"HTTP/1.1 200")
    wait_until(lambda: "/nowhere/0" in server.output(), message="the first 404 line")
    lines = [line for line in server.output().splitlines() if "→ 404" in line]
    assert len(lines) == 1, lines[:5]


def test_a_log_pipe_nobody_reads_cannot_stop_the_server():
    """stderr is a pipe that is never read: once it and the log queue are full, lines are dropped
    and counted, and the server keeps answering (the old server froze after 560 requests)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "--port", str(port), "--log-level", "debug",
                             "--handshake-rate", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200, timeout=10,
                   message="the server")
        # Two lines each: past the pipe's 64 KiB, and past the 10,000 lines the log queue holds.
        # Hand-made handshakes and close frames, 100 at a time (websocket-client one by one cost
        # the suite a minute of the client's CPU for the same lines).
        hello = HANDSHAKE.format(path="/", extra="").encode() + frame(0x8, close_payload(1000))
        for _ in range(60):
            batch = [socket.create_connection(("127.0.0.1", port), timeout=scaled(5)) for _ in range(100)]
            for sock in batch:
                sock.sendall(hello)
            for sock in batch:
                with sock:
                    assert read_all(sock).startswith(b"HTTP/1.1 101")
        for _ in range(5):
            started = time.monotonic()
            assert http_get(f"http://127.0.0.1:{port}/healthz", timeout=scaled(2))[0] == 200
            assert time.monotonic() - started < scaled(1)
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=scaled(2)) as ws:
            assert "variable" in json.loads(ws.recv(timeout=scaled(3)))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=scaled(10))
    assert b"log lines dropped" in err


# --- 10. a bad permessage-deflate offer is declined ----------------------------------------------


@pytest.mark.parametrize("offer", ["permessage-deflate; client_max_window_bits=abc",
                                   "permessage-deflate; server_max_window_bits=7",
                                   "permessage-deflate; server_max_window_bits",
                                   "permessage-deflate; server_no_context_takeover=1",
                                   "permessage-deflate; bogus", "permessage-deflate; client_max_window_bits=15; "
                                   "client_max_window_bits=15"])
def test_a_bad_extension_offer_is_declined_not_a_500(watched, offer):
    server, _ = watched("--compression")
    sock, head, _ = raw_upgrade(server.port, "/echo", extra=f"Sec-WebSocket-Extensions: {offer}\r\n")
    assert head.startswith(b"HTTP/1.1 101") and b"Sec-WebSocket-Extensions" not in head, head
    sock.sendall(text(b"plain"))
    assert read_frame(sock, bytearray()) == (0x1, b"plain")
    sock.close()
    assert "ERROR" not in server.output()


def test_a_good_extension_offer_is_taken_and_messages_round_trip(watched):
    server, _ = watched("--compression")
    with connect(server.ws + "/echo", compression="deflate") as ws:
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        ws.send("κόσμε " * 100)
        assert ws.recv(timeout=scaled(3)) == "κόσμε " * 100
    with connect(server.ws + "/ws/office", compression="deflate") as ws:
        assert "variable" in json.loads(ws.recv(timeout=scaled(3)))


# --- 11. a frame that has started must finish -----------------------------------------------------


def test_a_client_stalled_mid_frame_is_closed_even_without_pings(watched):
    server, _ = watched("--ping-interval", "0", "--frame-timeout", "1")
    sock, _, rest = raw_upgrade(server.port, "/echo")
    whole = text(b"x" * 1000)
    sock.sendall(whole[:100])  # and never the rest
    started = time.monotonic()
    buffer = bytearray(rest)
    got = read_frame(sock, buffer)
    assert got is not None and got[0] == 0x8 and struct.unpack("!H", got[1][:2])[0] == 1008
    assert scaled(0.8) < time.monotonic() - started < scaled(4)
    sock.close()
