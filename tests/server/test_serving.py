"""Serving a stream: the page, the socket, health, options, signals and shutdown, against a real
``python server.py`` with real clients."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
import websocket  # websocket-client
import websockets
from websockets.sync.client import connect

from tests.support import ROOT, SERVER, ServerProcess, assert_refused_option, free_port, http_get, scaled, wait_until

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def server():
    """One server for the tests here that leave it as they found it (each socket has a walk of
    its own): a start costs a second of CPU, three under the whole suite's load. The tests that
    count connections, producers or descriptors from zero start their own (start_server)."""
    made = ServerProcess().start()
    yield made
    made.stop()
    made.discard_log()


def recv_json(ws, timeout: float = 3.0) -> dict:
    return json.loads(ws.recv(timeout=scaled(timeout)))


# --- messages ---------------------------------------------------------------------------


def test_messages_follow_the_documented_format(server):
    with connect(server.ws + "/") as ws:
        messages = [recv_json(ws) for _ in range(5)]
    assert [m["seq"] for m in messages] == [1, 2, 3, 4, 5]
    previous = 0
    for message in messages:
        assert isinstance(message["variable"], int)
        assert 1 <= message["variable"] - previous <= 10
        previous = message["variable"]
        assert abs(message["ts"] - time.time()) < 10
    assert all(b["ts"] >= a["ts"] for a, b in zip(messages, messages[1:]))


def test_wait_and_step_bounds_are_options(start_server):
    server = start_server("--min-wait", "0.01", "--max-wait", "0.02", "--min-step", "5", "--max-step", "5")
    with connect(server.ws + "/") as ws:
        started = time.monotonic()
        values = [recv_json(ws)["variable"] for _ in range(20)]
        elapsed = time.monotonic() - started
    assert values == list(range(5, 105, 5))
    assert elapsed < scaled(2)  # 20 waits of at most 20 ms, not the default ~0.5 s each


def test_each_client_has_its_own_walk(server):
    with connect(server.ws + "/") as first:
        recv_json(first)
        recv_json(first)
        with connect(server.ws + "/") as second:
            assert recv_json(second)["seq"] == 1


def test_one_line_page_contract_holds_for_every_message(server):
    """`span.textContent = JSON.parse(e.data).variable` must always find `variable`."""
    ws = websocket.create_connection(server.ws + "/", timeout=scaled(3))
    try:
        for _ in range(3):
            assert "variable" in json.loads(ws.recv())
    finally:
        ws.close()


# --- endpoints -------------------------------------------------------------------------
# Which path gets what (404s, 426s, --no-echo, refusals before the upgrade) is tested in
# process: tests/unit/test_app_routes.py and tests/unit/test_upgrade.py.


def test_plain_get_serves_the_page(server):
    status, headers, body = http_get(server.http + "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert body == (ROOT / "index.html").read_bytes()


def test_healthz_counts_open_websockets(start_server):
    server = start_server()
    assert server.health()["connections"] == 0
    with connect(server.ws + "/"), connect(server.ws + "/echo"):
        wait_until(lambda: server.health()["connections"] == 2, message="2 connections")
    wait_until(lambda: server.health()["connections"] == 0, message="0 connections")


def test_echo_returns_text_and_binary_unchanged(server):
    with connect(server.ws + "/echo") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=scaled(2)) == "héllo"
        ws.send(b"\x00\xffbinary")
        assert ws.recv(timeout=scaled(2)) == b"\x00\xffbinary"


def _raw_request(port: int, request: bytes, timeout: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(timeout)) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


@pytest.mark.parametrize("request_bytes", [
    # hixie-75: no Sec-WebSocket-* headers at all
    b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: http://x\r\n\r\n",
    # hixie-75 without Origin (crashed eventlet into a 500 with a traceback)
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\n\r\n",
    # hixie-76: two keys and 8 bytes of body
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nOrigin: http://x\r\n"
    b"Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\nSec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n\r\n^n:ds[4U",
], ids=["hixie-75", "hixie-75-no-origin", "hixie-76"])
def test_legacy_handshakes_are_refused_with_400(server, request_bytes):
    answer = _raw_request(server.port, request_bytes)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"hixie" in answer
    assert b"Traceback" not in answer


# --- connection lifecycle --------------------------------------------------------------


def test_close_frame_is_answered_at_once(server):
    ws = websocket.create_connection(server.ws + "/", timeout=scaled(3))
    started = time.monotonic()
    ws.close(status=1000)  # websocket-client waits for the server's close frame
    assert time.monotonic() - started < scaled(1)
    assert ws.sock is None


def test_pings_are_answered_while_streaming(server):
    async def scenario():
        async with websockets.connect(server.ws + "/", compression=None) as ws:
            for _ in range(3):
                pong = await ws.ping()
                await asyncio.wait_for(pong, scaled(2))

    asyncio.run(scenario())


def test_producer_stops_within_a_second_of_the_client_leaving(start_server):
    server = start_server()
    ws = websocket.create_connection(server.ws + "/", timeout=scaled(3))
    ws.recv()
    wait_until(lambda: server.health()["producers"] == 1, message="producer running")
    ws.close()
    left = time.monotonic()
    wait_until(lambda: server.health()["producers"] == 0, timeout=1, message="producer stopped")
    assert time.monotonic() - left < 1
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("level", ["info", "debug"])
def test_connection_log_lines_and_no_traceback_on_disconnects(start_server, level):
    server = start_server("--log-level", level)
    with connect(server.ws + "/") as ws:
        recv_json(ws)
        recv_json(ws)
    abrupt = socket.create_connection(("127.0.0.1", server.port))
    abrupt.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    abrupt.recv(1024)
    abrupt.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    abrupt.close()  # RST
    wait_until(lambda: server.health()["connections"] == 0, message="both connections gone")
    wait_until(lambda: server.output().count(" close peer=") >= 2, message="two close lines")
    lines = server.output().splitlines()
    opens = [line for line in lines if " open peer=127.0.0.1:" in line and "path=/" in line]
    closes = [line for line in lines if " close peer=127.0.0.1:" in line]
    assert len(opens) == (2 if level == "debug" else 0) and len(closes) == 2
    assert any("sent=2" in line or "sent=3" in line for line in closes)
    assert all("duration=" in line for line in closes)
    assert "Traceback" not in server.output()


def test_200_concurrent_clients_each_get_about_two_messages_a_second(start_server):
    # A fixed 0.5 s wait (2/s): with random waits a 4 s window varies by +-0.4/s per client
    # by chance alone, which would hide or fake starvation. This measures delivery.
    server = start_server("--log-level", "warning", "--min-wait", "0.5", "--max-wait", "0.5")
    clients, window = 200, scaled(4.0)

    async def one_client() -> float:
        """Messages per second, measured between the first and the last message seen."""
        async with websockets.connect(server.ws + "/", compression=None, open_timeout=scaled(10)) as ws:
            loop = asyncio.get_running_loop()
            await ws.recv()  # first message: the walk is running
            first = last = loop.time()
            intervals = 0
            while (remaining := first + window - loop.time()) > 0:
                try:
                    await asyncio.wait_for(ws.recv(), remaining)
                except asyncio.TimeoutError:
                    break
                last = loop.time()
                intervals += 1
            return intervals / (last - first) if intervals else 0.0

    async def scenario() -> list[float]:
        return await asyncio.gather(*(one_client() for _ in range(clients)))

    rates = sorted(asyncio.run(scenario()))
    # Expected 2/s: +-50% per client (an unpatched sleep starves all but one), mean within 10%.
    assert min(rates) >= 1.0 and max(rates) <= 3.0, rates[:5] + rates[-5:]
    assert 1.8 <= sum(rates) / len(rates) <= 2.2


def test_500_connect_disconnect_cycles_leak_nothing(start_server):
    server = start_server()
    wait_until(lambda: server.health()["connections"] == 0)
    baseline = server.fd_count()
    handshake = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    deadline = time.monotonic() + scaled(60)
    for cycle in range(500):
        assert time.monotonic() < deadline, f"too slow at cycle {cycle}"
        if cycle % 2:
            ws = websocket.create_connection(server.ws + "/", timeout=scaled(3))
            ws.close()
        else:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=scaled(3))
            sock.sendall(handshake)
            assert sock.recv(1024).startswith(b"HTTP/1.1 101")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
    wait_until(lambda: server.health()["connections"] == 0, timeout=5, message="connections back to 0")
    wait_until(lambda: server.health()["producers"] == 0, timeout=5, message="producers back to 0")
    wait_until(lambda: server.fd_count() <= baseline, timeout=5,
               message=f"fd count back to {baseline}")
    assert "Traceback" not in server.output()


# --- process ---------------------------------------------------------------------------


def test_sigterm_closes_every_client_with_1001_and_exits_0(start_server):
    server = start_server("--log-level", "warning")
    clients = 120

    async def scenario():
        sockets = [await websockets.connect(server.ws + "/", compression=None) for _ in range(clients)]
        await asyncio.sleep(0)  # let the handshakes settle
        wait_until(lambda: server.health()["connections"] == clients, message=f"{clients} connections")
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        codes = []
        for ws in sockets:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), scaled(3))
            except websockets.ConnectionClosed as closed:
                codes.append(closed.rcvd.code if closed.rcvd else None)
        return codes, started

    codes, started = asyncio.run(scenario())
    assert server.wait(timeout=3) == 0
    assert time.monotonic() - started < scaled(2.5)
    assert codes == [1001] * clients


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_idle_server_stops_at_once_on_signal(start_server, signum):
    server = start_server()
    started = time.monotonic()
    server.signal(signum)
    assert server.wait(timeout=3) == 0
    assert time.monotonic() - started < scaled(2)


def test_second_instance_on_a_busy_port_exits_1_naming_the_port(server):
    result = subprocess.run([sys.executable, str(SERVER), "--port", str(server.port)],
                            capture_output=True, text=True, timeout=scaled(10))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(server.port) in lines[0], result.stderr
    server.health()  # the first instance is unharmed


@pytest.mark.parametrize("args, env, named", [
    (["--port", "70000"], {}, "--port"),
    (["--port", "0"], {}, "--port"),
    (["--min-wait", "-1"], {}, "--min-wait"),
    (["--max-step", "-3"], {}, "--max-step"),
    (["--min-wait", "2", "--max-wait", "1"], {}, "--min-wait"),
    (["--min-step", "9", "--max-step", "3"], {}, "--min-step"),
    (["--max-connections", "0"], {}, "--max-connections"),
    (["--log-level", "loud"], {}, "--log-level"),
    (["--bogus"], {}, "--bogus"),
    ([], {"DASHSTREAM_PORT": "abc"}, "DASHSTREAM_PORT"),
])
def test_bad_options_exit_2_naming_the_option(args, env, named):
    assert_refused_option(args, named, env)


def test_env_configures_host_and_port(start_server):
    port = free_port()
    server = ServerProcess(env={"DASHSTREAM_PORT": str(port)}, port=port)
    # ServerProcess passes --port too; check the env path on its own here.
    proc = subprocess.Popen([sys.executable, str(SERVER)], env={**server.env, "DASHSTREAM_PORT": str(port)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200, message="env port")
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=scaled(5))
    assert f"http://127.0.0.1:{port}/" in stderr and f"ws://127.0.0.1:{port}/" in stderr


def test_help_lists_every_option_with_env_and_default():
    from dashstream.config.options import OPTIONS

    result = subprocess.run([sys.executable, str(SERVER), "--help"], capture_output=True, text=True,
                            timeout=scaled(10))
    assert result.returncode == 0
    help_text = " ".join(result.stdout.split())
    for option in OPTIONS:
        assert option.flag in help_text
        assert f"env {option.env}" in help_text
    assert help_text.count("default ") >= len(OPTIONS)
