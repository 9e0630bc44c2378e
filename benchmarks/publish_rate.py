"""Publishes per second from one client: one keep-alive connection against a new connection
per request.

    python benchmarks/publish_rate.py --count 5000

Starts the real server (``python server.py``, one ``publish`` stream, pinned to CPU 0 when
``taskset`` exists) on a free loopback port, then sends ``--count`` ``POST /publish`` requests
from this process (CPU 1) with ``http.client``: first all on one keep-alive connection, then
each on a connection of its own (what the server forced before it kept connections with a
body alive). Reports requests per second and the server's CPU per request.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from common import cpu_seconds, free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "benchmark-token"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}




def publish_all(port: int, count: int, keep_alive: bool) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.perf_counter()
    for value in range(count):
        if not keep_alive:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("POST", "/publish/sales", json.dumps({"variable": value}), HEADERS)
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        if not keep_alive:
            connection.close()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    port = free_port()
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    server = subprocess.Popen([*pin, sys.executable, str(ROOT / "server.py"), "--port", str(port),
                               "--stream", "sales=publish", "--publish-token", TOKEN, "--log-level", "warning"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if shutil.which("taskset"):
            os.sched_setaffinity(0, {1})
        publish_all(port, 200, True)  # warm up
        print("| connection | publishes/s | server CPU per publish |")
        print("|---|---:|---:|")
        for label, keep_alive in (("one keep-alive connection", True), ("a new connection per publish", False)):
            cpu = cpu_seconds(server.pid)
            elapsed = publish_all(port, args.count, keep_alive)
            cpu = cpu_seconds(server.pid) - cpu
            print(f"| {label} | {args.count / elapsed:,.0f} | {cpu / args.count * 1e6:,.0f} µs |")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
