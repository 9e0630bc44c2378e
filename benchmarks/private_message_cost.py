"""What one message of a private walk costs from the walk's value to ``send()``, in process:
no hub, no green thread, no wake-up (``private_walk_cost.py`` measures those).

    python benchmarks/private_message_cost.py [--messages 20000] [--checkout DIR]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/private_message_cost.py --messages N --count   # N, then 0: the difference / N

One client of a ``PrivateStream`` of the default walk (its sleep does nothing) on a real
``WebSocketSession`` over an AF_UNIX socket pair (drained every 50 messages), with a watchdog
and metrics as the server has them; every message falls in a new watchdog tick, as at 2 msg/s
a client. Without ``--count`` it prints the best CPU time per message of 15 runs of 2,000 (a
figure that load moves); with ``--count`` it only sends ``--messages`` messages, for an
instruction count under callgrind that load does not move.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
_checkout = sys.argv[sys.argv.index("--checkout") + 1] if "--checkout" in sys.argv else None
sys.path.insert(0, str(Path(_checkout).resolve() if _checkout else Path(__file__).resolve().parent.parent))

from dashstream.ops.metrics import Metrics  # noqa: E402
from dashstream.protocol.frames import FrameReader  # noqa: E402
from dashstream.sessions.keepalive import Watchdog  # noqa: E402
from dashstream.sessions.session import SessionContext  # noqa: E402
from dashstream.sessions.websocket import WebSocketSession  # noqa: E402
from dashstream.streams import stream as stream_module  # noqa: E402
from producer.random_walk import RandomWalk  # noqa: E402


class NoThread:
    """The supervisor's loop is driven by hand here, not in a green thread."""

    dead = False

    def __init__(self, function):
        self.function = function

    def kill(self):
        self.dead = True


class NoIO:
    def watch_read(self, fileno, callback):
        return object()

    def watch_write(self, fileno, callback):
        return object()

    def unwatch(self, handle):
        pass


def one_client():
    """(send the next message, drain the peer's socket)."""
    stream_module._ClientThread = NoThread
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    metrics = Metrics(process=False)
    watchdog = Watchdog(resolution=0.1, clock=time.monotonic, sleep=lambda seconds: None)
    ctx = SessionContext(watchdog=watchdog, io=NoIO(), metrics=metrics)
    session = WebSocketSession(ours, ctx, peer="bench", path="/", reader=FrameReader(keep_messages=False))
    stream = stream_module.PrivateStream("bench", "random-walk", lambda: RandomWalk(sleep=lambda seconds: None),
                                         on_delivery=metrics.private_delivery)
    supervisor = stream._supervisors[stream.subscribe(session)]
    events = supervisor.source.events()
    next(events)  # the walk's Health(UP)
    handle = supervisor._handle

    def send_next():
        watchdog.ticks += 1
        handle(next(events))

    def drain():
        try:
            while theirs.recv(1 << 16):
                pass
        except BlockingIOError:
            pass

    return send_next, drain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--count", action="store_true", help="only send them (for callgrind)")
    parser.add_argument("--checkout", help="the dashstream checkout to measure (default: this one)")
    options = parser.parse_args()
    send_next, drain = one_client()
    if options.count:
        for index in range(options.messages):
            if index % 50 == 0:
                drain()
            send_next()
        return
    best = float("inf")
    for _ in range(15):
        cpu = time.process_time()
        for index in range(2000):
            if index % 50 == 0:
                drain()
            send_next()
        best = min(best, (time.process_time() - cpu) / 2000)
    print(f"µs CPU per message, best of 15 x 2,000: {best * 1e6:.2f}")


if __name__ == "__main__":
    main()
