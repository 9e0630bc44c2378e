"""Readers beside screens that never read: does a stuck hundred cost the other thousand?

    python benchmarks/slow_readers.py --duration 90 --out /tmp/slow-readers.json

Two runs of the same shape, each on a fresh server (``benchmarks/harness_peer.py``, a
shared ``ticker`` stream at ``--rate`` messages a second, server pinned to CPU 0):

1. ``--readers`` subscribers read everything (the load harness's C client, ``wsload``, on
   CPU 1), nothing else;
2. the same, plus ``--stuck`` subscribers that open a WebSocket and then never read a byte
   (raw sockets in this process, kernel receive buffers left at their defaults).

Reported per run: the readers' delivered ratio and latency percentiles (``wsload``), the
server's RSS sampled every second, and, for the second run, when the server had closed
the stuck ones (``slow_closed`` in ``GET /streams`` and open connections in ``/healthz``,
polled twice a second) and how (``/metrics``: slow closes, write timeouts, keepalive
timeouts, close codes sent). Loopback only; every loop is bounded by ``--duration``.

A stuck socket is only *behind* once the kernel's buffers between the server and it are
full; until then its frames wait in the kernel, and the keepalive (a ping unanswered for
``--ping-timeout``) is what notices it. ``--server-args "--ping-interval 0"`` turns the
keepalive off to show the slow-subscriber rule (1008) on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from common import free_port, load_client, need_taskset, rss_kib

ROOT = Path(__file__).resolve().parent.parent
HANDSHAKE = (b"GET /ws/bench HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")



def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())



def stuck_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(HANDSHAKE)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: not one byte of the stream beyond the 101 is read
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def run(args, stuck: int) -> dict:
    port = free_port()
    env = {**os.environ, "SHAPE": "B", "RATE": str(args.rate), "PORT": str(port)}
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, str(ROOT / "benchmarks" / "harness_peer.py"),
                               "--log-level", "warning", *shlex.split(args.server_args)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                get_json(base + "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        stuck_sockets = [stuck_socket(port) for _ in range(stuck)]
        client = subprocess.Popen(
            ["taskset", "-c", "1", str(args.client), "--url", f"ws://127.0.0.1:{port}/ws/bench",
             "--conns", str(args.readers), "--warmup", "1", "--duration", str(args.duration),
             "--expect-rate", str(args.rate), "--time-limit", str(args.duration + 60)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        started = time.monotonic()
        samples, closed_at, dropped_at, all_open = [], None, None, False
        while client.poll() is None and time.monotonic() - started < args.duration + 60:
            elapsed = round(time.monotonic() - started, 1)
            stream = next(s for s in get_json(base + "/streams")["streams"] if s["name"] == "bench")
            connections = get_json(base + "/healthz")["connections"]
            samples.append({"t": elapsed, "rss_kib": rss_kib(server.pid), "connections": connections,
                            "slow_closed": stream["slow_closed"], "dropped": stream["dropped"]})
            if stuck and closed_at is None and stream["slow_closed"] >= stuck:
                closed_at = elapsed
            all_open = all_open or connections >= args.readers + stuck
            if stuck and all_open and dropped_at is None and connections <= args.readers:
                dropped_at = elapsed
            time.sleep(0.5)
        result = json.loads(client.communicate(timeout=30)[0])
        closes = closing_counts(base)
        for sock in stuck_sockets:
            sock.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
    rss = [sample["rss_kib"] for sample in samples]
    return {"stuck": stuck, "delivered_ratio": result["delivered_ratio"], "msgs_per_s": result["msgs_per_s"],
            "lat_ms": result["lat_ms"], "rss_kib_min": min(rss), "rss_kib_max": max(rss),
            "stuck_counted_slow_at_s": closed_at, "stuck_gone_at_s": dropped_at, "closes": closes,
            "samples": samples}


def closing_counts(base: str) -> dict:
    """How the server ended connections so far, from /metrics: slow (1008), write timeouts,
    keepalive timeouts (1011), and every close code it sent."""
    wanted = ("dashstream_slow_subscribers_closed", "dashstream_write_timeouts",
              "dashstream_keepalive_timeouts", "dashstream_closes_sent")
    counts = {}
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(wanted) and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                if float(value):
                    counts[name.replace("_total", "")] = int(float(value))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--stuck", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--duration", type=int, default=60, help="seconds the readers measure")
    parser.add_argument("--out", default=None, help="write the full JSON here")
    parser.add_argument("--server-args", default="", help='more server options, e.g. "--ping-interval 0"')
    args = parser.parse_args()
    need_taskset()
    args.client = load_client()
    results = [run(args, 0), run(args, args.stuck)]
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    print("| run | readers' delivered | p50 / p99 (ms) | server RSS min-max (MiB) | stuck counted slow at | "
          "stuck gone at | how the server closed connections |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for result in results:
        label = f"{args.readers} readers" + (f" + {result['stuck']} never reading" if result["stuck"] else "")
        print(f"| {label} | {result['delivered_ratio']:.3f} | {result['lat_ms']['p50']:.1f} / "
              f"{result['lat_ms']['p99']:.1f} | "
              f"{result['rss_kib_min'] / 1024:.1f}-{result['rss_kib_max'] / 1024:.1f} | "
              f"{result['stuck_counted_slow_at_s'] or '-'} s | {result['stuck_gone_at_s'] or '-'} s | "
              f"{', '.join(f'{k} {v}' for k, v in result['closes'].items()) or '-'} |")


if __name__ == "__main__":
    main()
