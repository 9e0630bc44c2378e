"""S2 (one stream broadcast to every client) through the Redis backplane, with one instance
or two, against the memory default: what the backplane costs per delivery, and whether two
instances deliver twice what one does.

    python benchmarks/backplane_scale.py --instances 1 --backplane memory --conns 2000 --rates 100,200
    python benchmarks/backplane_scale.py --instances 1 --backplane redis  --conns 2000 --rates 100,200
    python benchmarks/backplane_scale.py --instances 2 --backplane redis  --conns 2000 --rates 100,200

For each rate: a fresh redis-server (no persistence) and fresh instances, each pinned to a
core of its own (instance i on CPU i); the harness's C load client
(``wsload``, built on first use as compare.sh builds it: ``common.load_client``) opens ``conns`` connections
split evenly over the instances, one client process per instance pinned to the *other*
core (with one instance: the server on CPU 0, the client on CPU 1, as the harness does).
The stream is a shared ``ticker`` at RATE messages a second; through Redis only one
instance (the lease holder) runs it, and every instance tails the one log. With
``--backplane memory`` and two instances, each runs its own ticker (nothing shared): the
ceiling two independent processes reach, for comparison.

Reported per run: delivered messages/s (all clients), the delivered ratio, latency p50/p99
(the worse client's), server CPU per instance and Redis's (from /proc over the client's
measuring window), and server CPU per delivery (µs: instances' CPU / deliveries). The
machine's load average is printed before and after: a shared machine makes every figure
noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import CLK_TCK, cpu_ticks, free_port, load_client, need_taskset, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent





class Run:
    def __init__(self, args, rate: float):
        self.args = args
        self.rate = rate
        self.procs: list[subprocess.Popen] = []
        self.folder = Path(tempfile.mkdtemp(prefix="dashstream-scale-"))
        self.redis: subprocess.Popen | None = None
        self.instances: list[tuple[subprocess.Popen, int]] = []

    def start(self) -> None:
        url = None
        if self.args.backplane == "redis":
            port = free_port()
            self.redis = subprocess.Popen(
                [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                 "--dir", str(self.folder), "--save", "", "--appendonly", "no", "--logfile",
                 str(self.folder / "redis.log")], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
            self.procs.append(self.redis)
            url = f"redis://127.0.0.1:{port}/0"
            time.sleep(0.3)
        config = self.folder / "streams.toml"
        config.write_text(f'[streams.bench]\nsource = "ticker"\nrate = {self.rate!r}\n')
        ncpu = os.cpu_count() or 1
        for index in range(self.args.instances):
            port = free_port()
            command = ["taskset", "-c", str(index % ncpu), sys.executable, str(ROOT / "server.py"), "--host",
                       "127.0.0.1", "--port", str(port), "--config", str(config), "--handshake-rate", "0",
                       "--max-connections", "19900", "--log-level", "warning"]
            if url:
                command += ["--backplane", url]
            log = open(self.folder / f"instance-{index}.log", "wb")
            proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
            self.procs.append(proc)
            self.instances.append((proc, port))
        for _, port in self.instances:
            wait_ready(port)
        time.sleep(0.5)

    def measure(self) -> dict:
        ncpu = os.cpu_count() or 1
        share = self.args.conns // self.args.instances
        clients, results, marks = [], [None] * self.args.instances, {}
        time_limit = 60 + self.args.warmup + self.args.duration

        def client(index: int, port: int) -> None:
            cpu = (index + 1) % ncpu
            command = ["taskset", "-c", str(cpu), str(self.args.client), "--poll-us", "-1",
                       "--url", f"ws://127.0.0.1:{port}/ws/bench", "--mode", "push", "--conns", str(share),
                       "--warmup", str(self.args.warmup), "--duration", str(self.args.duration),
                       "--expect-rate", str(self.rate), "--connect-concurrency", "200",
                       "--time-limit", str(time_limit)]
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            for line in proc.stderr:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") in ("window_start", "window_end"):
                    marks.setdefault((index, event["event"]), self._sample())
            out = proc.stdout.read().decode().strip().splitlines()
            proc.wait()
            results[index] = json.loads(out[-1]) if out else {"error": "no result"}

        for index, (_, port) in enumerate(self.instances):
            thread = threading.Thread(target=client, args=(index, port))
            thread.start()
            clients.append(thread)
        for thread in clients:
            thread.join(time_limit + 30)
        starts = [marks[(i, "window_start")] for i in range(self.args.instances) if (i, "window_start") in marks]
        ends = [marks[(i, "window_end")] for i in range(self.args.instances) if (i, "window_end") in marks]
        if len(starts) < self.args.instances or len(ends) < self.args.instances:
            # A client that never measured (refused connections, a crash) says why in its result.
            raise SystemExit(f"a load client measured no window: {results}")
        start, end = min(starts, key=lambda m: m["t"]), max(ends, key=lambda m: m["t"])
        window = end["t"] - start["t"]
        cpu = {name: (end["ticks"][name] - start["ticks"][name]) / CLK_TCK / window * 100 for name in start["ticks"]}
        delivered = sum(r.get("msgs_per_s", 0) for r in results)
        instance_cpu = sum(v for k, v in cpu.items() if k.startswith("instance"))
        return {
            "instances": self.args.instances, "backplane": self.args.backplane, "conns": self.args.conns,
            "rate": self.rate, "delivered_per_s": delivered, "expected_per_s": self.rate * self.args.conns,
            "ratio": delivered / (self.rate * self.args.conns),
            "p50_ms": max(r["lat_ms"]["p50"] for r in results), "p99_ms": max(r["lat_ms"]["p99"] for r in results),
            "cpu_pct": {k: round(v, 1) for k, v in cpu.items()},
            "us_per_delivery": instance_cpu / 100 / delivered * 1e6 if delivered else None,
            "us_per_delivery_with_redis": (instance_cpu + cpu.get("redis", 0)) / 100 / delivered * 1e6
            if delivered else None,
            "clients": [{k: r.get(k) for k in ("opened", "failed", "msgs_per_s", "delivered_ratio",
                                                "client_cpu_pct_window")} for r in results]}

    def _sample(self) -> dict:
        sample = {"t": time.monotonic(), "ticks": {}}
        for index, (proc, _) in enumerate(self.instances):
            sample["ticks"][f"instance{index}"] = cpu_ticks(proc.pid)
        if self.redis is not None:
            sample["ticks"]["redis"] = cpu_ticks(self.redis.pid)
        return sample

    def stop(self) -> None:
        stop(self.procs)
        shutil.rmtree(self.folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--backplane", choices=("memory", "redis"), default="redis")
    parser.add_argument("--conns", type=int, default=2000, help="connections in all, split over the instances")
    parser.add_argument("--rates", default="100", help="comma-separated messages/s of the ticker")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()
    need_taskset()
    args.client = load_client()
    print(f"load average before: {os.getloadavg()}", flush=True)
    print("| instances | backplane | conns | rate | delivered/s | ratio | p50 ms | p99 ms | server CPU % "
          "(each) | Redis CPU % | µs/delivery | µs/delivery incl. Redis |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for rate in [float(r) for r in args.rates.split(",")]:
        run = Run(args, rate)
        try:
            run.start()
            row = run.measure()
        finally:
            run.stop()
        cpu = row["cpu_pct"]
        each = ", ".join(str(v) for k, v in sorted(cpu.items()) if k.startswith("instance"))
        print(f"| {row['instances']} | {row['backplane']} | {row['conns']} | {rate:g} | {row['delivered_per_s']:.0f} | "
              f"{row['ratio']:.3f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {each} | "
              f"{cpu.get('redis', 0):.1f} | {row['us_per_delivery'] or 0:.2f} | "
              f"{row['us_per_delivery_with_redis'] or 0:.2f} |", flush=True)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
