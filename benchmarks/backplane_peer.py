"""dashstream through the Redis backplane, under the load harness's server contract
(../shared/bench/README.md): ``harness_peer.py`` with ``--backplane`` and a redis-server of
its own.

    ../shared/bench/run.sh --cwd . --server "python benchmarks/backplane_peer.py" \\
        --url ws://127.0.0.1:5105/ws/bench --label dashstream-redis --scenario S2

The redis-server (no persistence, a fresh temporary directory, a free port) is started in
the same session as the server, so the harness counts its CPU with the server's (the
backplane's whole cost) and stops it with the server (it signals the session). It runs on
the server's core unless ``REDIS_CPU=N`` pins it elsewhere (on 2 cores the other one is the
load client's); ``BACKPLANE=redis://...`` uses a Redis that is already running instead. The stream
``bench`` is the same as harness_peer.py's; with RATE > 0 its producer (the ticker) runs
under the lease, on this one instance, and every message goes through Redis: the Lua
append, then the instance's own tail, then the fan-out.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import free_port  # noqa: E402 - after the path is set
from harness_peer import write_config  # noqa: E402 - after the path is set


def start_redis() -> str:
    port = free_port()
    folder = tempfile.mkdtemp(prefix="dashstream-bench-redis-")
    pin = ["taskset", "-c", os.environ["REDIS_CPU"]] if os.environ.get("REDIS_CPU") else []
    subprocess.Popen([*pin, shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                      "--dir", folder, "--save", "", "--appendonly", "no", "--daemonize", "no",
                      "--logfile", os.path.join(folder, "redis.log")],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    return f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def main() -> None:
    shape = os.environ.get("SHAPE", "B").upper()
    rate = float(os.environ.get("RATE", "10"))
    port = os.environ.get("PORT", "5105")
    config = write_config(shape, rate)
    url = os.environ.get("BACKPLANE") or start_redis()
    args = [sys.executable, str(ROOT / "server.py"), "--host", "127.0.0.1", "--port", port,
            "--config", str(config), "--handshake-rate", "0", "--max-connections", "19900",
            "--log-level", os.environ.get("LOG_LEVEL", "info"), "--backplane", url, *sys.argv[1:]]
    os.execv(sys.executable, args)


if __name__ == "__main__":
    main()
