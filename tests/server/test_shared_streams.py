"""Shared streams, last value, resume, the publish API and reload: real server, real clients."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
import tomllib

import pytest
import websocket  # websocket-client
import websockets
from websockets.sync.client import connect

from tests.support import ROOT, SERVER, ServerProcess, http_get, http_request, publish, scaled, wait_until

pytestmark = pytest.mark.timeout(90)

TOKEN = "test-token-0123"


def recv_json(ws, timeout: float = 3.0) -> dict:
    return json.loads(ws.recv(timeout=scaled(timeout)))


def stream_info(server: ServerProcess, name: str) -> dict:
    _, _, body = http_get(server.http + "/streams")
    return next(stream for stream in json.loads(body)["streams"] if stream["name"] == name)


# --- shared streams ------------------------------------------------------------------------


def test_200_subscribers_of_a_shared_stream_receive_identical_sequences(start_server):
    server = start_server("--stream", "office=random-walk:shared", "--min-wait", "0.02", "--max-wait", "0.05",
                          "--log-level", "warning")

    async def subscriber() -> list[tuple[int, int]]:
        async with websockets.connect(server.ws + "/ws/office", compression=None, open_timeout=scaled(10)) as ws:
            return [(m["seq"], m["variable"]) for m in
                    [json.loads(await asyncio.wait_for(ws.recv(), scaled(5))) for _ in range(40)]]

    async def scenario():
        return await asyncio.gather(*(subscriber() for _ in range(200)))

    sequences = asyncio.run(scenario())
    start = max(sequence[0][0] for sequence in sequences)
    end = min(sequence[-1][0] for sequence in sequences)
    assert end - start >= 15, (start, end)
    reference = [pair for pair in sequences[0] if start <= pair[0] <= end]
    assert [seq for seq, _ in reference] == list(range(start, end + 1))  # no holes
    for sequence in sequences:
        assert [pair for pair in sequence if start <= pair[0] <= end] == reference


def test_a_new_subscriber_gets_the_latest_value_within_100_ms(start_server):
    # Values every 5-6 s: a message within 100 ms can only be the stored last value.
    server = start_server("--stream", "slow=random-walk:shared", "--min-wait", "5", "--max-wait", "6")
    wait_until(lambda: stream_info(server, "slow")["last_seq"], timeout=8, message="a first value")
    last_seq = stream_info(server, "slow")["last_seq"]
    with connect(server.ws + "/ws/slow") as ws:
        opened = time.monotonic()
        message = recv_json(ws, timeout=1)
        elapsed = time.monotonic() - opened
    assert message["seq"] == last_seq
    assert elapsed < 0.1


def test_unknown_stream_is_refused_before_the_upgrade_and_plain_get_gets_426(start_server):
    server = start_server("--stream", "office=random-walk:shared")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(server.ws + "/ws/nope", timeout=scaled(3))
    assert refused.value.status_code == 404
    assert http_get(server.http + "/ws/office")[0] == 426


def test_default_stream_is_also_at_ws_default(server):
    with connect(server.ws + "/ws/default") as ws:
        assert recv_json(ws)["seq"] == 1


# --- resume ----------------------------------------------------------------------------------


def test_resume_delivers_exactly_the_missed_messages_then_live_ones(start_server):
    server = start_server("--stream", "office=random-walk:shared", "--min-wait", "0.02", "--max-wait", "0.04")
    with connect(server.ws + "/ws/office") as ws:
        seen = [recv_json(ws) for _ in range(5)]
    last = seen[-1]
    wait_until(lambda: stream_info(server, "office")["last_seq"] >= last["seq"] + 10, message="10 missed")
    with connect(f"{server.ws}/ws/office?seq={last['seq']}&epoch={last['epoch']}") as ws:
        resumed = [recv_json(ws) for _ in range(25)]
    assert [m["seq"] for m in resumed] == list(range(last["seq"] + 1, last["seq"] + 26))
    assert not any("gap" in m for m in resumed)
    assert all(m["epoch"] == last["epoch"] for m in resumed)


def test_resume_beyond_history_gets_the_gap_signal_and_the_latest_value(start_server):
    server = start_server("--stream", "office=random-walk:shared", "--history", "5",
                          "--min-wait", "0.01", "--max-wait", "0.02")
    with connect(server.ws + "/ws/office") as ws:
        last = recv_json(ws)
    wait_until(lambda: stream_info(server, "office")["last_seq"] >= last["seq"] + 20, message="20 missed")
    with connect(f"{server.ws}/ws/office?seq={last['seq']}&epoch={last['epoch']}") as ws:
        first = recv_json(ws)
        second = recv_json(ws)
    assert first["gap"] is True and first["seq"] > last["seq"] + 5
    assert "gap" not in second and second["seq"] == first["seq"] + 1


def test_after_a_server_restart_a_resuming_client_gets_the_gap_signal(start_server):
    server = start_server("--stream", "sales=publish", "--publish-token", TOKEN)
    for value in (1, 2, 3):
        assert publish(server.http, "sales", {"variable": value}, TOKEN)[0] == 200
    with connect(server.ws + "/ws/sales") as ws:
        last = recv_json(ws)
    assert last["seq"] == 3
    server.stop()
    restarted = start_server("--stream", "sales=publish", "--publish-token", TOKEN, port=server.port)
    assert publish(restarted.http, "sales", {"variable": 10}, TOKEN)[0] == 200
    with connect(f"{restarted.ws}/ws/sales?seq={last['seq']}&epoch={last['epoch']}") as ws:
        first = recv_json(ws)
    assert first["gap"] is True
    assert first["epoch"] != last["epoch"]
    assert (first["seq"], first["variable"]) == (1, 10)


def test_resume_with_a_bad_seq_is_refused_before_the_upgrade(start_server):
    server = start_server("--stream", "office=random-walk:shared")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(server.ws + "/ws/office?seq=abc&epoch=x", timeout=scaled(3))
    assert refused.value.status_code == 400


# --- slow subscribers ------------------------------------------------------------------------------


def test_a_stuck_subscriber_does_not_slow_the_others_and_is_closed(start_server):
    server = start_server("--stream", "big=publish", "--publish-token", TOKEN, "--queue-size", "10",
                          "--slow-timeout", "1", "--close-timeout", "0.5", "--log-level", "warning")
    pad = "x" * 8000  # big messages fill the stuck client's socket buffers quickly

    def publish_burst(count: int) -> None:
        for value in range(count):
            assert publish(server.http, "big", {"variable": value, "pad": pad}, TOKEN)[0] == 200
            time.sleep(0.025)  # paces the publisher (~40/s), not a readiness wait

    async def phase(count: int) -> list[float]:
        loop = asyncio.get_running_loop()
        clients = [await websockets.connect(server.ws + "/ws/big", compression=None, max_size=None)
                   for _ in range(50)]
        latencies: list[float] = []

        async def drain(ws):
            while True:
                message = json.loads(await ws.recv())
                latencies.append(time.time() - message["ts"])
                if message["variable"] == count - 1:
                    return

        readers = [asyncio.create_task(drain(ws)) for ws in clients]
        await loop.run_in_executor(None, publish_burst, count)
        await asyncio.wait_for(asyncio.gather(*readers), scaled(20))
        for ws in clients:
            await ws.close()
        return latencies

    baseline = statistics.median(asyncio.run(phase(80)))
    wait_until(lambda: server.health()["connections"] == 0)

    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", server.port))
    stuck.sendall(b"GET /ws/big HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    rss_before = server.rss_kib()
    with_stuck = statistics.median(asyncio.run(phase(160)))
    rss_after = server.rss_kib()

    # Loopback medians are a few ms, where a 2x bound alone is noise; a stuck client that
    # blocked the others would add seconds, which either bound catches.
    assert with_stuck <= max(2 * baseline, baseline + 0.010), (baseline, with_stuck)
    assert rss_after - rss_before < 20_000, (rss_before, rss_after)  # KiB
    info = wait_until(lambda: (lambda i: i if i["slow_closed"] >= 1 else None)(stream_info(server, "big")),
                      timeout=5, message="the stuck subscriber closed")
    assert info["dropped"] > 0
    wait_until(lambda: server.health()["connections"] == 0, message="stuck connection gone")
    stuck.close()


# --- publish API -----------------------------------------------------------------------------------


def test_every_publish_error_is_specific_and_leaves_the_stream_working(start_server):
    server = start_server("--stream", "sales=publish", "--stream", "office=random-walk:shared",
                          "--publish-token", TOKEN, "--max-publish-size", "1000")
    cases = [
        (dict(token=None), 401),
        (dict(token="wrong-token"), 401),
        (dict(stream="nope"), 404),
        (dict(stream="office"), 404),  # exists, but is not a publish stream
        (dict(content_type="text/plain"), 415),
        (dict(body=b'{"variable": 1'), 400),
        (dict(body=b'[1, 2]'), 400),
        (dict(body=b'{"variable": NaN}'), 400),
        (dict(body=b'{"unit": "no variable"}'), 400),
        (dict(body=b'{"variable": 1, "seq": 99}'), 400),
        (dict(body=json.dumps({"variable": 1, "pad": "x" * 2000}).encode()), 413),
    ]
    with connect(server.ws + "/ws/sales") as subscriber:
        for number, (case, expected) in enumerate(cases):
            status, answer = publish(server.http, case.get("stream", "sales"),
                                     case.get("body", {"variable": -1}), case.get("token", TOKEN),
                                     case.get("content_type", "application/json"))
            assert status == expected, (case, status, answer)
            assert answer.strip() and b"Traceback" not in answer
            assert TOKEN.encode() not in answer
            status, answer = publish(server.http, "sales", {"variable": number, "unit": "orders"}, TOKEN)
            assert status == 200, answer
            message = recv_json(subscriber)
            assert (message["variable"], message["unit"]) == (number, "orders")
            assert message["seq"] == json.loads(answer)["seq"] == number + 1
    status, _, _ = http_request(server.http + "/publish/sales", "GET")
    assert status == 405
    assert TOKEN not in server.output()


def test_publishing_is_off_without_a_token(start_server):
    server = start_server("--stream", "sales=publish")
    status, answer = publish(server.http, "sales", {"variable": 1}, "anything")
    assert status == 403 and b"--publish-token" in answer


def test_publish_token_from_the_environment(start_server):
    server = start_server("--stream", "sales=publish", env={"DASHSTREAM_PUBLISH_TOKEN": TOKEN})
    assert publish(server.http, "sales", {"variable": 1}, TOKEN)[0] == 200


def test_streams_lists_name_source_subscribers_and_last_message(start_server):
    server = start_server("--stream", "sales=publish", "--publish-token", TOKEN)
    publish(server.http, "sales", {"variable": 5}, TOKEN)
    with connect(server.ws + "/ws/sales"), connect(server.ws + "/ws/sales"):
        info = wait_until(lambda: (lambda i: i if i["subscribers"] == 2 else None)(stream_info(server, "sales")),
                          message="2 subscribers")
    assert info["source"] == "publish" and info["last_seq"] == 1 and info["last_ts"] > 0
    assert {stream["name"] for stream in json.loads(http_get(server.http + "/streams")[2])["streams"]} == {
        "sales", "default"}


# --- reload and compatibility ----------------------------------------------------------------------


def test_reload_reaches_control_clients_only(start_server):
    server = start_server("--stream", "sales=publish", "--publish-token", TOKEN)
    with connect(server.ws + "/ws/sales?control=1") as page, connect(server.ws + "/ws/sales") as plain:
        wait_until(lambda: server.health()["connections"] == 2)
        status, _, answer = http_request(server.http + "/reload", "POST", b"",
                                         {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and json.loads(answer) == {"reloaded": 1}
        assert recv_json(page)["control"] == "stream"  # on connect: the stream's stale_after and history
        assert recv_json(page) == {"control": "reload"}
        publish(server.http, "sales", {"variable": 1}, TOKEN)
        # the one-line page never sees a message without `variable`
        assert recv_json(plain)["variable"] == 1
    assert http_request(server.http + "/reload", "POST", b"", {"Authorization": "Bearer wrong"})[0] == 401


def test_compression_is_off_unless_asked_for(start_server):
    plain = start_server("--stream", "office=random-walk:shared", "--min-wait", "0.01", "--max-wait", "0.02")
    compressed = start_server("--stream", "office=random-walk:shared", "--compression",
                              "--min-wait", "0.01", "--max-wait", "0.02")
    with connect(plain.ws + "/ws/office", compression="deflate") as ws:
        assert ws.protocol.extensions == []
        recv_json(ws)
    with connect(compressed.ws + "/ws/office", compression="deflate") as ws:
        assert [extension.name for extension in ws.protocol.extensions] == ["permessage-deflate"]
        first, second = recv_json(ws), recv_json(ws)
        assert second["seq"] == first["seq"] + 1


# --- configuration -------------------------------------------------------------------------------


def test_the_example_config_serves_every_stream_it_defines(start_server):
    # Its PostgreSQL stream reads the URL from the environment; nothing answers there, and the
    # server must serve everything regardless.
    server = start_server("--config", str(ROOT / "streams.example.toml"), "--publish-token", TOKEN,
                          env={"ORDERS_DATABASE_URL": "postgresql://dashboard:secret@127.0.0.1:9/shop"})
    names = {stream["name"] for stream in json.loads(http_get(server.http + "/streams")[2])["streams"]}
    defined = set(tomllib.loads((ROOT / "streams.example.toml").read_text())["streams"])
    assert {"default", "office", "sales"} <= defined
    assert names == defined
    assert publish(server.http, "sales", {"variable": 3}, TOKEN)[0] == 200
    with connect(server.ws + "/ws/sales") as ws:
        assert recv_json(ws)["variable"] == 3
    with connect(server.ws + "/ws/office") as ws:
        assert recv_json(ws, timeout=5)["variable"] > 1000  # start = 1000 in the example


@pytest.mark.parametrize("text, named", [
    ('[streams.office]\nsource = "random-walk"\nmax_wait = "fast"\n', ["office", "max_wait"]),
    ('[streams.office]\nsource = "random-walk"\nmin_wait = 3\nmax_wait = 1\n', ["office", "min_wait"]),
    ('[streams.office]\nsource = "redis"\n', ["office", "source"]),
    ('[streams.office]\nshared = true\n', ["office", "source"]),
    ('[streams.sales]\nsource = "publish"\ncolour = "red"\n', ["sales", "colour"]),
    ('[streams.sales]\nsource = "publish"\nhistory = 0\n', ["sales", "history"]),
    ('[streams."bad name"]\nsource = "publish"\n', ["bad name"]),
    ('[streams.office\nsource = "publish"\n', ["TOML"]),
    ('port = 5000\n', ["port"]),
])
def test_a_bad_config_file_exits_2_naming_file_stream_and_key(tmp_path, text, named):
    path = tmp_path / "streams.toml"
    path.write_text(text)
    result = subprocess.run([sys.executable, str(SERVER), "--config", str(path)], capture_output=True, text=True,
                            timeout=scaled(10))
    assert result.returncode == 2
    assert str(path) in result.stderr
    for word in named:
        assert word in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_config_file_exits_2_naming_it(tmp_path):
    missing = tmp_path / "nope.toml"
    result = subprocess.run([sys.executable, str(SERVER), "--config", str(missing)], capture_output=True,
                            text=True, timeout=scaled(10))
    assert result.returncode == 2 and str(missing) in result.stderr
