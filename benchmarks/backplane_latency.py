"""Publish latency to the screen, across instances: ``POST /publish`` on instance A, the
message received by a WebSocket client on A and on B (through Redis), against the memory
default (one instance, publish and client on it).

    python benchmarks/backplane_latency.py --count 500 --rate 50

Latency is measured by the benchmark's own clock: from just before the POST is written to
when the client's read returns the message (both in this process: ``time.perf_counter``),
so it includes the HTTP request, the Lua append, the tails' XREAD wake-up and the fan-out.
The publisher uses one keep-alive connection and waits for each answer; the clients are
websocket-client threads. Everything is on 127.0.0.1; the machine's load average is printed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import websocket  # websocket-client
from common import free_port, percentile, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench"




class Receiver(threading.Thread):
    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/sales", timeout=10)
        self.arrivals: dict[int, float] = {}

    def run(self) -> None:
        try:
            while True:
                message = json.loads(self.ws.recv())
                self.arrivals[message["variable"]] = time.perf_counter()
        except Exception:  # noqa: BLE001 - closed at the end
            return



def scenario(backplane: bool, count: int, rate: float) -> dict[str, list[float]]:
    folder = Path(tempfile.mkdtemp(prefix="dashstream-latency-"))
    procs: list[subprocess.Popen] = []
    try:
        extra = []
        if backplane:
            redis_port = free_port()
            procs.append(subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                 "--dir", str(folder), "--save", "", "--appendonly", "no", "--logfile", str(folder / "redis.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.3)
            extra = ["--backplane", f"redis://127.0.0.1:{redis_port}/0"]
        ports = [free_port() for _ in range(2 if backplane else 1)]
        for port in ports:
            procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "server.py"), "--port", str(port), "--stream", "sales=publish",
                 "--publish-token", TOKEN, "--log-level", "warning", *extra],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in ports:
            wait_ready(port)
        receivers = {("A→A" if backplane else "memory"): Receiver(ports[0])}
        if backplane:
            receivers["A→B"] = Receiver(ports[1])
        for receiver in receivers.values():
            receiver.start()
        time.sleep(0.5)
        connection = http.client.HTTPConnection("127.0.0.1", ports[0], timeout=10)
        sent: dict[int, float] = {}
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        for value in range(count):
            sent[value] = time.perf_counter()
            connection.request("POST", "/publish/sales", json.dumps({"variable": value}), headers)
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200, answer.status
            time.sleep(max(0.0, 1 / rate - (time.perf_counter() - sent[value])))
        time.sleep(0.5)
        return {name: [(receiver.arrivals[v] - sent[v]) * 1000 for v in sent if v in receiver.arrivals]
                for name, receiver in receivers.items()}
    finally:
        stop(procs)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print("| publish on → client on | messages | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    results = {**scenario(False, args.count, args.rate), **scenario(True, args.count, args.rate)}
    for name, values in results.items():
        label = {"memory": "A → A, memory (no backplane)", "A→A": "A → A, through Redis",
                 "A→B": "A → B, through Redis"}[name]
        print(f"| {label} | {len(values)} | {percentile(values, 0.5):.2f} | {percentile(values, 0.9):.2f} | "
              f"{percentile(values, 0.99):.2f} | {max(values):.2f} | {statistics.fmean(values):.2f} |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
