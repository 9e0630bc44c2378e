"""Server-Sent Events: ``GET /sse/NAME`` against the real server, with curl, a
Python SSE client (httpx-sse) and EventSource in Chromium."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time

import httpx
import pytest
from httpx_sse import connect_sse

from tests.browser import SOCKET_FAILED
from tests.support import ServerProcess, http_get, http_request, publish, scaled, wait_until

pytestmark = pytest.mark.timeout(60)

TOKEN = "sse-token"
STREAMS = ("--stream", "sales=publish", "--stream", "office=random-walk:shared", "--min-wait", "0.01",
           "--max-wait", "0.05", "--publish-token", TOKEN)


def events(server, path, count, headers=None, timeout=5.0):
    """The first ``count`` SSE events of ``path`` (httpx-sse), as (event, id, data) tuples."""
    got = []
    with httpx.Client(timeout=scaled(timeout)) as client:
        with connect_sse(client, "GET", server.http + path, headers=headers or {}) as source:
            assert source.response.status_code == 200
            for sse in source.iter_sse():
                if not sse.data:
                    continue  # the opening retry: record (EventSource dispatches no event for it)
                got.append((sse.event, sse.id, json.loads(sse.data)))
                if len(got) == count:
                    break
    return got


def test_curl_gets_the_stream_with_the_proxy_friendly_headers(start_server):
    server = start_server(*STREAMS)
    result = subprocess.run(["curl", "-sN", "-i", "--max-time", str(scaled(1.5)), server.http + "/sse/office"],
                            capture_output=True, text=True)
    head, _, body = result.stdout.partition("\n\n")  # text mode: CRLF read as LF
    assert head.startswith("HTTP/1.1 200")
    for header in ("Content-Type: text/event-stream", "Cache-Control: no-cache", "X-Accel-Buffering: no"):
        assert header in head, head
    records = [record for record in body.split("\n\n") if record]
    assert records[0] == "retry: 2000"
    ids = [line[4:] for record in records[1:] for line in record.split("\n") if line.startswith("id: ")]
    datas = [json.loads(line[6:]) for record in records[1:] for line in record.split("\n") if line.startswith("data: ")]
    assert len(datas) >= 5 and len(ids) == len(datas)
    assert [f"{d['epoch']}:{d['seq']}" for d in datas] == ids
    assert [d["seq"] for d in datas] == list(range(datas[0]["seq"], datas[0]["seq"] + len(datas)))


def test_last_event_id_resumes_exactly_and_a_stale_one_gets_the_gap(start_server):
    server = start_server(*STREAMS)
    for value in range(1, 6):
        assert publish(server.http, "sales", {"variable": value}, TOKEN)[0] == 200
    (_, last_id, first), = events(server, "/sse/sales", 1)
    assert first["seq"] == 5 and last_id == f"{first['epoch']}:5"
    for value in range(6, 9):
        assert publish(server.http, "sales", {"variable": value}, TOKEN)[0] == 200
    resumed = events(server, "/sse/sales", 3, headers={"Last-Event-ID": f"{first['epoch']}:5"})
    assert [data["seq"] for _, _, data in resumed] == [6, 7, 8] and not any("gap" in d for _, _, d in resumed)
    by_query = events(server, f"/sse/sales?last_event_id={first['epoch']}:7", 1)
    assert [data["seq"] for _, _, data in by_query] == [8]
    (_, _, gap), = events(server, "/sse/sales", 1, headers={"Last-Event-ID": "another-epoch:3"})
    assert gap["seq"] == 8 and gap["gap"] is True


def test_control_records_only_for_clients_that_asked(start_server):
    server = start_server(*STREAMS)
    assert publish(server.http, "sales", {"variable": 1}, TOKEN)[0] == 200
    got = []
    with httpx.Client(timeout=scaled(5)) as client:
        with connect_sse(client, "GET", server.http + "/sse/sales?control=1") as source:
            # (After the stream's own control record, which every control client gets on connect.)
            stream = (sse for sse in source.iter_sse() if sse.data and '"control":"stream"' not in sse.data)
            got.append(next(stream))
            assert http_request(server.http + "/reload", "POST", b"", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
            got.append(next(stream))
    assert got[0].event == "message" and json.loads(got[0].data)["variable"] == 1
    assert got[1].event == "control" and json.loads(got[1].data) == {"control": "reload"}


def test_a_quiet_stream_gets_heartbeat_comments(start_server):
    server = start_server(*STREAMS, "--sse-heartbeat", "0.3")
    with socket.create_connection(("127.0.0.1", server.port), timeout=scaled(5)) as sock:
        sock.sendall(b"GET /sse/sales HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b": keepalive\n\n") < 2:
            chunk = sock.recv(4096)
            assert chunk
            data += chunk


def test_the_same_admission_as_websockets(start_server):
    server = start_server(*STREAMS, "--token", "reader-token", "--max-connections", "1",
                          "--allowed-origin", "https://dash.example.com")
    assert http_get(server.http + "/sse/sales")[0] == 401
    assert http_get(server.http + "/sse/nowhere?token=reader-token")[0] == 404
    status, _, _ = http_request(server.http + "/sse/sales?token=reader-token", headers={"Origin": "https://evil.example"})
    assert status == 403
    with httpx.Client(timeout=scaled(5)) as client:
        with connect_sse(client, "GET", server.http + "/sse/office?token=reader-token",
                         headers={"Origin": "https://dash.example.com"}) as source:
            assert source.response.headers["Access-Control-Allow-Origin"] == "https://dash.example.com"
            # Keep the iterator: a dropped one closes the response (and the connection).
            records = (sse for sse in source.iter_sse() if sse.data)
            assert next(records).data
            status, headers, _ = http_get(server.http + "/sse/office?token=reader-token")
            assert status == 503 and headers["Retry-After"] == "5"  # capacity: one at a time
    assert http_request(server.http + "/sse/sales", "POST", b"")[0] == 405


def test_an_sse_client_that_stops_reading_is_closed_as_slow(start_server):
    server = start_server(*STREAMS, "--slow-timeout", "1", "--queue-size", "5")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(b"GET /sse/sales HTTP/1.1\r\nHost: x\r\n\r\n")
    started = time.monotonic()
    value = 0
    while next(s for s in json.loads(http_get(server.http + "/streams")[2])["streams"]
               if s["name"] == "sales")["slow_closed"] == 0:
        assert time.monotonic() - started < scaled(20), "never closed as slow"
        value += 1
        assert publish(server.http, "sales", {"variable": value, "pad": "x" * 8000}, TOKEN)[0] == 200
    wait_until(lambda: server.health()["connections"] == 0, message="the slow client dropped")
    sock.close()


def test_shutdown_ends_the_stream_cleanly(start_server):
    server = start_server(*STREAMS)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=scaled(5))
    sock.sendall(b"GET /sse/office HTTP/1.1\r\nHost: x\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    server.signal(signal.SIGTERM)
    while chunk := sock.recv(65536):  # records until the end of the stream, then EOF
        assert b"HTTP/" not in chunk
    assert server.wait() == 0
    sock.close()


@pytest.mark.browser
def test_eventsource_in_chromium_receives_and_reconnects_after_a_restart(start_server, page, problems, after_page):
    problems.allow(re.compile(r"net::ERR_CONNECTION_REFUSED|Failed to load resource"))
    # The page's own WebSocket loses its server too: its reconnects may be refused or, caught
    # in a handshake by the crash or by the restarted server's first moments, reset (CI saw
    # ERR_CONNECTION_RESET once under load). What this test checks is the EventSource.
    problems.allow(SOCKET_FAILED)
    server = start_server(*STREAMS)
    after_page.append(server.stop)
    page.goto(server.http + "/?stream=office")
    page.evaluate("""() => {
        window.__sse = [];
        window.__source = new EventSource('/sse/office');
        window.__source.onmessage = (e) => window.__sse.push(JSON.parse(e.data));
    }""")
    wait_until(lambda: len(page.evaluate("window.__sse")) >= 3, 5, message="EventSource messages")
    first_epoch = page.evaluate("window.__sse[0].epoch")
    server.proc.kill()  # as a crash: no goodbye
    server.proc.wait()
    restarted = ServerProcess(*STREAMS, port=server.port).start()
    after_page.append(restarted.stop)
    wait_until(lambda: page.evaluate("window.__sse.some((m) => m.epoch !== %r)" % first_epoch), 15,
               message="EventSource back on the restarted server")
    after = page.evaluate("window.__sse.filter((m) => m.epoch !== %r)" % first_epoch)
    assert after[0]["gap"] is True  # its Last-Event-ID named the old epoch: the gap signal
    assert page.evaluate("window.__source.readyState") == 1  # OPEN


import re  # noqa: E402 - used by the browser test's allow-list
