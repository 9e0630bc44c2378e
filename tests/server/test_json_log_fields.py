"""``--log-format json`` carries each line's facts as JSON keys, not only inside the message:
a busy server (pages, refusals, WebSockets one and several streams, SSE, a slow handshake,
a shutdown) writes lines that all parse, and every request and connection line has its
``peer``, ``path``, ``status`` or ``code``, ``duration_s``, ``sent`` and ``stream`` where
they apply. The text format says the same in words (checked by the log tests). A port
already in use is a fatal ERROR line, not a ``WARNING stderr:`` one.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import websocket  # websocket-client

from tests.support import SERVER, scaled, wait_until

pytestmark = pytest.mark.timeout(60)


def lines_of(output: str) -> list[dict]:
    records = []
    for line in output.splitlines():
        if line.strip():
            records.append(json.loads(line))  # every line is one JSON object
    return records


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=scaled(5)) as answer:
            answer.read()
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_every_line_of_a_busy_server_is_json_with_the_fields(start_server, tmp_path):
    config = tmp_path / "streams.toml"
    config.write_text('[streams.sales]\nsource = "publish"\n\n'
                      '[streams.office]\nsource = "random-walk"\nshared = true\nmin_wait = 0.01\nmax_wait = 0.05\n')
    server = start_server("--log-format", "json", "--log-level", "debug", "--config", str(config),
                          "--publish-token", "secret")
    assert get(server.http + "/") == 200
    assert get(server.http + "/nowhere") == 404
    request = urllib.request.Request(server.http + "/publish/sales", method="POST", data=b'{"variable": 1}',
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer wrong"})
    try:
        urllib.request.urlopen(request, timeout=scaled(5))
    except urllib.error.HTTPError as error:
        assert error.code == 401
    one = websocket.create_connection(server.ws + "/ws/office", timeout=scaled(5))
    several = websocket.create_connection(server.ws + "/ws?streams=office,sales", timeout=scaled(5))
    for client in (one, several):
        client.recv()
        client.close()
    with urllib.request.urlopen(server.http + "/sse/office", timeout=scaled(5)) as events:
        while not events.readline().startswith(b"data: "):
            pass
    # A connection that never finishes its request line: the server's own http line.
    with socket.create_connection(("127.0.0.1", server.port), timeout=scaled(5)) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 70000 + b"\r\n\r\n")
        raw.recv(1024)

    def closes() -> list[dict]:
        records = lines_of(server.output())
        found = [r for r in records if r["logger"] == "dashstream.connection" and r["message"].startswith("close ")]
        return found if len(found) >= 3 else []

    wait_until(closes, timeout=10, message="three close lines")
    server.stop()
    records = lines_of(server.output())
    assert {"time", "level", "logger", "message"} <= set(records[0])

    connection_lines = [r for r in records if r["logger"] == "dashstream.connection"]
    close_lines = [r for r in connection_lines if r["message"].startswith("close ")]
    assert len(close_lines) >= 3, connection_lines
    for line in connection_lines:
        assert {"peer", "path"} <= set(line), line
        assert line["peer"].startswith("127.0.0.1:"), line
    for line in close_lines:
        assert {"peer", "path", "code", "duration_s", "sent", "stream"} <= set(line), line
        assert isinstance(line["duration_s"], float) and isinstance(line["sent"], int), line
        assert line["sent"] >= 1, line
    by_path = {line["path"]: line for line in close_lines}
    assert by_path["/ws/office"]["stream"] == "office" and by_path["/ws/office"]["code"] == 1000
    assert by_path["/ws/office"]["transport"] == "websocket"
    assert set(by_path["/ws"]["stream"].split(",")) == {"office", "sales"}  # the path is logged without its query
    assert by_path["/sse/office"]["stream"] == "office"

    http_lines = [r for r in records if r["logger"] == "dashstream.http"]
    refusals = {line["path"]: line for line in http_lines if "path" in line}
    assert refusals["/nowhere"]["status"] == 404 and refusals["/nowhere"]["method"] == "GET"
    assert refusals["/publish/sales"]["status"] == 401
    for line in http_lines:
        assert "peer" in line, line
    assert any(line.get("status") == 431 for line in http_lines), http_lines  # the long header


def test_a_port_in_use_is_a_fatal_error_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for log_format in ("json", "text"):
            result = subprocess.run([sys.executable, str(SERVER), "--port", str(port), "--log-format", log_format],
                                    capture_output=True, text=True, timeout=scaled(30), cwd=tmp_path)
            assert result.returncode == 1, result.stderr
            if log_format == "json":
                (record,) = lines_of(result.stderr)
                assert record["level"] == "ERROR", record
                assert f"port {port} on 127.0.0.1 is already in use" in record["message"]
            else:
                assert " ERROR dashstream: cannot start: port " in result.stderr, result.stderr
                assert "WARNING" not in result.stderr

