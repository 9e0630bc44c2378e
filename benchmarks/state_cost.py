"""What ``--state`` costs: publishes per second on one keep-alive connection with and without
it, and, for ``--streams`` streams of ``--history`` entries, the state file's size and the
time a restart takes until the server answers with every stream restored.

    python benchmarks/state_cost.py --count 5000 --streams 20 --history 200

Starts the real server (``python server.py``, pinned to CPU 0 when ``taskset`` exists) on a
free loopback port and publishes from this process (CPU 1) with ``http.client``, as
``publish_rate.py`` does. The publish rate is measured on stream ``s00`` twice, in memory
and with a fresh state file, in the same run; then every stream is filled to its history,
the server stopped with SIGTERM (which writes everything), the file measured, and the
server started again on it: the restart time is from the start of the process to a
``/streams`` answer that shows the last ``seq`` of every stream.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import cpu_seconds, free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "benchmark-token"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
PIN = ["taskset", "-c", "0"] if shutil.which("taskset") else []


def start(port: int, streams: int, history: int, state: Path | None) -> subprocess.Popen:
    args = [*PIN, sys.executable, str(ROOT / "server.py"), "--port", str(port), "--publish-token", TOKEN,
            "--history", str(history), "--log-level", "warning"]
    for index in range(streams):
        args += ["--stream", f"s{index:02d}=publish"]
    if state is not None:
        args += ["--state", str(state)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def publish_all(port: int, stream: str, count: int) -> float:
    """``count`` publishes on one keep-alive connection; seconds taken."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = {"variable": 12345.678, "label": "Sales today", "unit": "EUR"}  # a 57-byte message
    started = time.perf_counter()
    for value in range(count):
        body["variable"] = value
        connection.request("POST", f"/publish/{stream}", json.dumps(body), HEADERS)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def last_seqs(port: int) -> dict[str, int | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/streams")
    streams = json.loads(connection.getresponse().read())["streams"]
    connection.close()
    return {stream["name"]: stream["last_seq"] for stream in streams if stream["shared"]}


def publish_rate(args, directory: Path) -> None:
    print("| log | publishes/s | server CPU per publish |")
    print("|---|---:|---:|")
    for label, state in (("memory", None), ("--state (SQLite, WAL)", directory / "rate.db")):
        port = free_port()
        server = start(port, 1, args.history, state)
        try:
            wait_ready(port)
            publish_all(port, "s00", min(200, args.count))  # warm up
            cpu = cpu_seconds(server.pid)
            elapsed = publish_all(port, "s00", args.count)
            cpu = cpu_seconds(server.pid) - cpu
            print(f"| {label} | {args.count / elapsed:,.0f} | {cpu / args.count * 1e6:,.0f} µs |")
        finally:
            stop([server])


def restart(args, directory: Path) -> None:
    path = directory / "restart.db"
    port = free_port()
    server = start(port, args.streams, args.history, path)
    try:
        wait_ready(port)
        for index in range(args.streams):
            publish_all(port, f"s{index:02d}", args.history)
    finally:
        stop([server])
    assert server.returncode == 0, server.returncode
    size = path.stat().st_size
    leftovers = [p.name for p in directory.iterdir() if p.name.startswith("restart.db-")]

    port = free_port()
    started = time.perf_counter()
    server = start(port, args.streams, args.history, path)
    try:
        wait_ready(port)
        seqs = last_seqs(port)
        elapsed = time.perf_counter() - started
        assert all(seqs[f"s{index:02d}"] == args.history for index in range(args.streams)), seqs
    finally:
        stop([server])
    # For comparison: the same server started without --state.
    port = free_port()
    started = time.perf_counter()
    bare = start(port, args.streams, args.history, None)
    try:
        wait_ready(port)
        bare_elapsed = time.perf_counter() - started
    finally:
        stop([bare])
    print()
    print(f"| {args.streams} streams x {args.history} history | value |")
    print("|---|---:|")
    beside = f" (+ {', '.join(leftovers)})" if leftovers else ""
    print(f"| state file after SIGTERM | {size / 1024:,.0f} KiB{beside} |")
    print(f"| start to ready, restored from it | {elapsed:.2f} s |")
    print(f"| start to ready, without --state | {bare_elapsed:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="publishes per rate measurement")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--history", type=int, default=200)
    args = parser.parse_args()
    if PIN:
        os.sched_setaffinity(0, {1})
    with tempfile.TemporaryDirectory(prefix="dashstream-state-") as directory:
        publish_rate(args, Path(directory))
        restart(args, Path(directory))


if __name__ == "__main__":
    main()
