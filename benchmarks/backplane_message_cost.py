"""What the Redis backplane costs per message, apart from delivery: a shared ``ticker`` at
RATE messages a second with no client at all, memory against Redis, server CPU (and
Redis's) from /proc over a window.

    python benchmarks/backplane_message_cost.py --rate 500 --seconds 10

With no subscriber the fan-out does nothing, so what is left is the per-message path: in
memory, numbering and an empty pass; through Redis, the producer's Lua append (a round
trip), the tail's XREAD and parsing, and the empty pass. Delivery itself (the fan-out to
each subscriber) is the same code whichever log is behind it, so the cost per delivery of
the backplane is this per-message cost divided by the subscribers of each message.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import CLK_TCK, cpu_ticks, free_port, stop

ROOT = Path(__file__).resolve().parent.parent




def last_seq(port: int) -> int:
    import json

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/streams", timeout=5) as answer:
        return next(s for s in json.load(answer)["streams"] if s["name"] == "bench")["last_seq"] or 0


def measure(backplane: bool, rate: float, seconds: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="dashstream-cost-"))
    procs: list[subprocess.Popen] = []
    try:
        extra = []
        redis = None
        if backplane:
            redis_port = free_port()
            redis = subprocess.Popen(
                ["taskset", "-c", "1", shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
                 "--bind", "127.0.0.1", "--dir", str(folder), "--save", "", "--appendonly", "no"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(redis)
            time.sleep(0.3)
            extra = ["--backplane", f"redis://127.0.0.1:{redis_port}/0"]
        (folder / "s.toml").write_text(f'[streams.bench]\nsource = "ticker"\nrate = {rate!r}\n')
        port = free_port()
        server = subprocess.Popen(["taskset", "-c", "0", sys.executable, str(ROOT / "server.py"), "--port", str(port),
                                   "--config", str(folder / "s.toml"), "--log-level", "warning", *extra],
                                  cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        procs.append(server)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(1.0)
        start, seq0 = time.monotonic(), last_seq(port)
        server0, redis0 = cpu_ticks(server.pid), cpu_ticks(redis.pid) if redis else 0
        time.sleep(seconds)
        window = time.monotonic() - start
        messages = last_seq(port) - seq0
        server_s = (cpu_ticks(server.pid) - server0) / CLK_TCK
        redis_s = ((cpu_ticks(redis.pid) - redis0) / CLK_TCK) if redis else 0.0
        return {"messages_per_s": messages / window, "server_cpu_pct": server_s / window * 100,
                "redis_cpu_pct": redis_s / window * 100,
                "server_us_per_message": server_s / messages * 1e6 if messages else None,
                "redis_us_per_message": redis_s / messages * 1e6 if messages else None}
    finally:
        stop(procs)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print("| log | messages/s | server CPU % | Redis CPU % | server µs/message | Redis µs/message |")
    print("| --- | --- | --- | --- | --- | --- |")
    for backplane in (False, True):
        row = measure(backplane, args.rate, args.seconds)
        print(f"| {'redis' if backplane else 'memory'} | {row['messages_per_s']:.0f} | {row['server_cpu_pct']:.1f} | "
              f"{row['redis_cpu_pct']:.1f} | {row['server_us_per_message']:.1f} | "
              f"{row['redis_us_per_message'] or 0:.1f} |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
