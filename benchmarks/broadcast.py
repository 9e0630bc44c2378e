"""Fan-out benchmark: memory per connection and broadcast latency with N subscribers.

    python benchmarks/broadcast.py --clients 1000 --messages 200 --rate 20

Starts the real server (``python server.py``) on a free loopback port with one `publish`
stream, opens N WebSocket subscribers (the `websockets` client, in this process), then
publishes M messages at a fixed rate and measures, for every (message, subscriber) pair,
the delivery latency = receive time − the server's `ts`. Also reports the server's RSS
before and after the connections open (memory per connection) and after the run.

Everything runs on 127.0.0.1; the load is bounded by --clients, --messages and --rate.
The client side runs in one Python process, so at high N part of the latency measured is
the client's own event loop: read the figures as an upper bound on the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402

from tests.support import ServerProcess, http_request  # noqa: E402

TOKEN = "benchmark-token"


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run(args) -> dict:
    server = ServerProcess("--stream", "bench=publish", "--publish-token", TOKEN, "--log-level", "warning",
                           "--queue-size", "1000")
    server.start()
    try:
        await asyncio.sleep(0.5)
        rss_idle = server.rss_kib()
        clients = []
        for start in range(0, args.clients, 200):  # open in batches, not a SYN flood
            batch = [websockets.connect(server.ws + "/ws/bench", compression=None, open_timeout=30,
                                        max_queue=None) for _ in range(min(200, args.clients - start))]
            clients.extend(await asyncio.gather(*batch))
        while server.health()["connections"] < args.clients:
            await asyncio.sleep(0.05)
        rss_connected = server.rss_kib()

        latencies: list[float] = []

        async def drain(ws):
            while True:
                message = json.loads(await ws.recv())
                latencies.append(time.time() - message["ts"])
                if message["variable"] == args.messages - 1:
                    return

        readers = [asyncio.create_task(drain(ws)) for ws in clients]
        loop = asyncio.get_running_loop()
        body = json.dumps({"variable": 0, "pad": "x" * args.size}).encode()

        def publish_all():
            interval = 1 / args.rate
            next_at = time.monotonic()
            for value in range(args.messages):
                payload = body.replace(b'"variable": 0', f'"variable": {value}'.encode(), 1)
                status, _, _ = http_request(server.http + "/publish/bench", "POST", payload,
                                            {"Authorization": f"Bearer {TOKEN}",
                                             "Content-Type": "application/json"})
                assert status == 200, status
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))

        started, cpu_before = time.monotonic(), cpu_seconds(server.proc.pid)
        await loop.run_in_executor(None, publish_all)
        published = time.monotonic() - started
        await asyncio.wait_for(asyncio.gather(*readers), 300)
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(server.proc.pid) - cpu_before
        rss_after = server.rss_kib()
        for ws in clients:
            await ws.close()
        return {
            "clients": args.clients, "messages": args.messages, "rate": args.rate, "size": args.size,
            "deliveries": len(latencies), "publish_seconds": round(published, 2),
            "all_received_seconds": round(elapsed, 2),
            # Server CPU over the run, as a share of one core: near 100% means the server
            # (one process, one core) is the limit; far below with late messages means the
            # client process is.
            "server_cpu_percent_of_a_core": round(100 * server_cpu / elapsed, 1),
            "latency_p50_ms": round(1000 * statistics.median(latencies), 2),
            "latency_p99_ms": round(1000 * percentile(latencies, 0.99), 2),
            "latency_max_ms": round(1000 * max(latencies), 2),
            "rss_idle_mib": round(rss_idle / 1024, 1),
            "rss_connected_mib": round(rss_connected / 1024, 1),
            "kib_per_connection": round((rss_connected - rss_idle) / args.clients, 1),
            "rss_after_mib": round(rss_after / 1024, 1),
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="messages published per second")
    parser.add_argument("--size", type=int, default=50, help="padding bytes per message")
    args = parser.parse_args()
    if not (1 <= args.clients <= 20_000 and 1 <= args.messages <= 10_000 and 0 < args.rate <= 1000):
        parser.error("bounds: 1-20000 clients, 1-10000 messages, rate 0-1000/s")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.clients + 256)), hard))
    result = asyncio.run(run(args))
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
