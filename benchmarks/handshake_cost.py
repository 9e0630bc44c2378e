"""Server CPU per WebSocket handshake: admitted (open and close at once) and refused (429).

    python benchmarks/handshake_cost.py [--count 1000]

Starts the real server on a free loopback port, opens and closes --count WebSockets one
after another with websocket-client, and reads the server's CPU time from /proc before
and after; then the same against a limit that refuses every handshake after the first.
The figures behind the default --handshake-rate/--handshake-burst (dashstream/admission.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websocket
from common import cpu_seconds

from tests.support import ServerProcess


def run(server: ServerProcess, path: str, count: int) -> tuple[float, float]:
    before, started = cpu_seconds(server.proc.pid), time.monotonic()
    for _ in range(count):
        try:
            websocket.create_connection(server.ws + path, timeout=5).close()
        except websocket.WebSocketBadStatusException:
            pass
    return (cpu_seconds(server.proc.pid) - before) / count, count / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    count = parser.parse_args().count
    for label, args, path in (("admitted, /echo", ("--handshake-rate", "0"), "/echo"),
                              ("admitted, / (starts a private walk)", ("--handshake-rate", "0"), "/"),
                              ("refused with 429", ("--trusted-proxy", "none", "--handshake-rate", "0.001",
                                                    "--handshake-burst", "1"), "/echo")):
        server = ServerProcess(*args, "--log-level", "warning").start()
        try:
            per_handshake, rate = run(server, path, count)
        finally:
            server.stop()
            server.discard_log()
        print(f"{per_handshake * 1e3:6.2f} ms server CPU per handshake  {rate:5.0f}/s  {label}")


if __name__ == "__main__":
    main()
