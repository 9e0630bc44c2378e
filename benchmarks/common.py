"""What the benchmark scripts share: a free loopback port, a process's CPU time and RSS from
/proc, waiting for a server to be ready, stopping the processes a run started, and a
percentile. Imported as ``common`` (each
script runs as ``python benchmarks/NAME.py``, so this folder is on ``sys.path``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process so far, in clock ticks (Linux /proc)."""
    user, system = cpu_parts(pid)
    return user + system


def cpu_parts(pid: int) -> tuple[int, int]:
    """(user, system) CPU time of a process so far, in clock ticks (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_seconds(pid: int) -> float:
    return cpu_ticks(pid) / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_ready(port: int, path: str = "/readyz", timeout: float = 20.0) -> None:
    """Until ``path`` answers 200 (a 503 while sources connect counts as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} not ready")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def stop(procs: list) -> None:
    """SIGTERM the processes a run started, newest first (servers before the Redis they
    use), then wait for each; one that does not end within 10 s is killed."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
