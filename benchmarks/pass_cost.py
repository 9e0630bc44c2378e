"""What one fan-out pass costs per delivery in Python, apart from the kernel.

    python benchmarks/pass_cost.py [--subscribers 1000]

Builds ``--subscribers`` WebSocket sessions on one ``Fanout`` (no server, no hub) and times
the best of 30 passes of one entry: once with sockets whose ``send()`` takes everything at no
cost (the Python part alone: the pass, the ``(epoch, seq)`` check, ``Session.write``), once
with AF_UNIX socket pairs (a real ``send()`` into the kernel; TCP on loopback costs more).
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dashstream.protocol.frames import FrameReader
from dashstream.sessions.session import SessionContext
from dashstream.sessions.websocket import WebSocketSession
from dashstream.streams.fanout import Fanout, Subscription
from tests.unit.test_session import Clock, FakeIO, FakeWatchdog, Stream


class FreeSocket:
    def send(self, data, flags=0) -> int:
        return len(data)

    def fileno(self) -> int:
        return -1


def best_pass(subscribers: int, real: bool) -> float:
    ctx = SessionContext(clock=Clock(), io=FakeIO(), watchdog=FakeWatchdog())
    fanout, pairs = Fanout(), []
    for _ in range(subscribers):
        if real:
            ours, theirs = socket.socketpair()
            ours.setblocking(False)
            theirs.setblocking(False)
            pairs.append((ours, theirs))
            sock = ours
        else:
            sock = FreeSocket()
        session = WebSocketSession(sock, ctx, peer="p", path="/", reader=FrameReader(keep_messages=False))
        fanout.add(Subscription(session, None))
    stream, best = Stream(), float("inf")
    try:
        for value in range(30):
            entry = stream.entry(value)
            started = time.perf_counter()
            fanout.deliver(entry)
            best = min(best, time.perf_counter() - started)
            for _, theirs in pairs:
                theirs.recv(65536)
    finally:
        for pair in pairs:
            for end in pair:
                end.close()
    return best / subscribers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    args = parser.parse_args()
    for label, real in (("send() free (Python only)", False), ("AF_UNIX socket pairs", True)):
        print(f"{label}: {best_pass(args.subscribers, real) * 1e6:.2f} µs per delivery")


if __name__ == "__main__":
    main()
