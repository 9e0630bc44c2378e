"""What keepalive and the write timeout cost the server.

1. N idle WebSocket clients on /echo (``websockets``, which answers pings by itself),
   once with pings off and once pinging every ``--interval`` seconds: the server's CPU
   time over a window (utime + stime from /proc, so other load on the machine does not
   count) and its RSS.
2. The price of the write timeout on each send: a small frame sent bare and inside an
   ``eventlet.Timeout``, timed in a monkey-patched interpreter.

    python benchmarks/keepalive_cost.py [--clients 2000] [--interval 1] [--window 10]

Bounded: at most --clients connections (<= 5000), one window each, timeouts everywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import cpu_seconds

from tests.support import ServerProcess, wait_until


async def hold_idle_clients(server: ServerProcess, clients: int, window: float) -> tuple[float, int]:
    sockets = []
    try:
        for _ in range(clients):
            sockets.append(await websockets.connect(server.ws + "/echo", compression=None,
                                                    ping_interval=None, open_timeout=30))
        await asyncio.to_thread(wait_until, lambda: server.health()["connections"] == clients,
                                30, 0.1, f"{clients} connections")
        await asyncio.sleep(1)  # let the handshakes' garbage settle
        before = cpu_seconds(server.proc.pid)
        await asyncio.sleep(window)
        used = cpu_seconds(server.proc.pid) - before
        assert server.health()["connections"] == clients, "a client was closed during the window"
        return used, server.rss_kib()
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


def measure(clients: int, interval: float, window: float) -> tuple[float, int]:
    server = ServerProcess("--log-level", "warning", "--ping-interval", str(interval),
                           "--ping-timeout", "10").start()
    try:
        return asyncio.run(hold_idle_clients(server, clients, window))
    finally:
        server.stop()


# A 66-byte frame (a typical data message) into a socketpair drained by another green
# thread, bare and inside an eventlet.Timeout as DashWebSocket._send does.
TIMEOUT_PRICE = """
import eventlet, socket, time
eventlet.monkey_patch()
a, b = socket.socketpair()
frame = b"\\x81\\x40" + b"x" * 64

def drain():
    while b.recv(1 << 20):
        pass

eventlet.spawn(drain)

def per_send(timed, rounds=100_000):
    started = time.perf_counter()
    for i in range(rounds):
        if timed:
            with eventlet.Timeout(10):
                a.sendall(frame)
        else:
            a.sendall(frame)
        if i % 200 == 0:
            eventlet.sleep(0)  # let the drain run
    return (time.perf_counter() - started) / rounds * 1e6

bare = min(per_send(False) for _ in range(3))
timed = min(per_send(True) for _ in range(3))
print(bare, timed)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    clients = min(args.clients, 5000)
    print(f"{clients} idle /echo clients, {args.window:g} s window")
    for label, interval in (("pings off", 0.0), (f"ping every {args.interval:g} s", args.interval)):
        used, rss = measure(clients, interval, args.window)
        print(f"  {label:>18}: server CPU {used / args.window * 100:5.1f}% of a core, RSS {rss / 1024:6.1f} MiB")
    bare, timed = map(float, subprocess.run([sys.executable, "-W", "ignore", "-c", TIMEOUT_PRICE],
                                            capture_output=True, text=True, check=True, timeout=300).stdout.split())
    print(f"one small frame sent: {bare:.1f} us bare, {timed:.1f} us inside the write timeout "
          f"(best of 3 x 100,000)")


if __name__ == "__main__":
    main()
