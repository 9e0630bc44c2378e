"""What the benchmark scripts share: a free loopback port, a process's CPU time and RSS from
/proc, waiting for a server to be ready, stopping the processes a run started, a
percentile, and the project's load client (built on first use). Imported as ``common`` (each
script runs as ``python benchmarks/NAME.py``, so this folder is on ``sys.path``)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent
CLIENT_SOURCE = ROOT / "benchmarks" / "harness" / "client" / "wsload.c"


def bench_home() -> Path:
    """Where the benchmark's own tools live: ``$BENCH_HOME``, by default ``benchmarks/.bench``
    (the folder ``compare.sh`` installs into), so every script finds the client it built."""
    return Path(os.environ.get("BENCH_HOME") or ROOT / "benchmarks" / ".bench")


def need_taskset() -> None:
    """Scripts that pin the server and the client to their own cores stop here without it."""
    if shutil.which("taskset") is None:
        sys.exit("needs taskset to pin the server and the load client (Debian/Ubuntu: apt-get install util-linux)")


def load_client() -> Path:
    """The project's C load client (``wsload``) in ``bench_home()/bin``, built with the system
    compiler as ``compare.sh`` builds it when it is missing or older than its source. With no
    compiler the script stops, saying what to install."""
    binary = bench_home() / "bin" / "wsload"
    if binary.exists() and binary.stat().st_mtime >= CLIENT_SOURCE.stat().st_mtime:
        return binary
    cc = shutil.which("cc")
    if cc is None:
        sys.exit("no C compiler (cc) to build the load client: install one (Debian/Ubuntu: apt-get install gcc "
                 "libc6-dev; Fedora: dnf install gcc), then run this again")
    binary.parent.mkdir(parents=True, exist_ok=True)
    built = subprocess.run([cc, "-O2", "-Wall", "-o", str(binary), str(CLIENT_SOURCE), "-lm"],
                           capture_output=True, text=True)
    if built.returncode != 0:
        sys.exit(f"building the load client failed:\n{built.stderr}")
    return binary


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
