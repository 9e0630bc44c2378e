"""What a private stream's random walks cost per message, in CPU (the S3 shape: many screens,
each with its own walk).

    python benchmarks/private_walk_cost.py [--clients 5000] [--seconds 10] [--hot] [--sleep eventlet]
        [--checkout DIR] [--step-ms N] [--bare | --floor]

Subscribes ``--clients`` fake sessions to one ``PrivateStream`` of the default walk under
eventlet (no sockets: a session builds the frame and counts it) and reports messages per CPU
second over ``--seconds``. ``--hot`` makes every walk's wait ``sleep(0)`` instead: the hub
still switches per value, but the per-message Python cost of the loop dominates. Run it with
``--checkout`` naming two checkouts in turn to compare their loops (default: the one this
script is in); only ``PrivateStream(name, source, factory)`` and ``subscribe(session)`` are
used, which every version since the supervisor has.

The walks sleep as the server's do: on the millisecond grid (``runtime.sleep_on_millisecond``)
in a checkout that has it; ``--sleep eventlet`` makes them sleep with ``eventlet.sleep``, one
hub timer per wake, as they did before it. ``--step-ms N`` puts them on a grid of N ms instead
of the server's (a checkout with ``runtime.grid_sleep``).

Two yardsticks beside the real thing, each a green thread per client on the same sleep:
``--bare`` loops that only sleep (what a wake-up costs: the hub's share and the switch), and
``--floor`` the walk written out as one loop that builds the same frame (the value, ``seq``,
``ts``, ``epoch``; no supervisor, generator, log, entry or subscription): the difference to
the real walk is what those layers cost per message.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
import eventlet  # noqa: E402

eventlet.monkey_patch()
# The checkout to measure: --checkout DIR, read before argparse because the imports need it.
_checkout = sys.argv[sys.argv.index("--checkout") + 1] if "--checkout" in sys.argv else None
sys.path.insert(0, str(Path(_checkout).resolve() if _checkout else Path(__file__).resolve().parent.parent))
from dashstream.streams.stream import PrivateStream  # noqa: E402
from producer.random_walk import RandomWalk  # noqa: E402

# The walks draw as the server's do: from one generator (streams/stream.py), in a checkout
# that has it; before it, each walk had a Random of its own.
WALK_RNG = getattr(sys.modules["dashstream.streams.stream"], "_WALK_RNG", None)


class CountingSession:
    control = False
    count = 0

    def __init__(self):
        self.subscriptions = []

    def send_entry(self, entry, subscription, gap=False):
        CountingSession.count += 1
        entry.frame  # noqa: B018 - built as a real session would

    def send_backlog(self, entries, subscription, gap=False):
        pass

    def send_control(self, message):
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hot", action="store_true")
    parser.add_argument("--sleep", choices=("server", "eventlet"), default="server",
                        help="the walks' sleep: the server's (default) or eventlet.sleep")
    parser.add_argument("--checkout", help="the dashstream checkout to measure (default: this one)")
    parser.add_argument("--step-ms", type=int, help="the walks' grid step (default: the server's)")
    yardstick = parser.add_mutually_exclusive_group()
    yardstick.add_argument("--bare", action="store_true", help="green loops that only sleep")
    yardstick.add_argument("--floor", action="store_true", help="the walk and its frame as one loop")
    options = parser.parse_args()
    from dashstream import runtime

    sleep = getattr(runtime, "sleep_on_millisecond", eventlet.sleep) if options.sleep == "server" else eventlet.sleep
    if options.step_ms is not None:
        sleep = runtime.grid_sleep(options.step_ms)
    if options.hot:
        sleep = lambda seconds: eventlet.sleep(0)  # noqa: E731
    # A server's hub always watches a socket (its listener), so it waits in epoll, whose
    # timeout is whole milliseconds; with nothing watched it would sleep to the microsecond
    # and wake far more often than a server's does.
    listener = eventlet.listen(("127.0.0.1", 0))
    runtime.watch_read(listener.fileno(), lambda fileno: None)
    stream = None
    if options.bare or options.floor:
        loop = bare_loop if options.bare else floor_loop
        for _ in range(options.clients):
            eventlet.spawn(loop, sleep)
    else:
        stream = PrivateStream("walk", "random-walk", lambda: RandomWalk(sleep=sleep, rng=WALK_RNG))
        for _ in range(options.clients):
            stream.subscribe(CountingSession())
    eventlet.sleep(1.5)  # every walk has started
    CountingSession.count = 0
    cpu = time.process_time()
    eventlet.sleep(options.seconds)
    cpu = time.process_time() - cpu
    count = CountingSession.count
    kind = "bare" if options.bare else "floor" if options.floor else "walk"
    print(f"{kind} clients={options.clients} messages={count} cpu={cpu:.2f}s messages/cpu-s={count / cpu:.0f} "
          f"cpu-us/message={cpu / count * 1e6:.1f}" + (f" producers={stream.producers}" if stream else ""))
    if stream is not None:
        stream.stop()


def bare_loop(sleep) -> None:
    """``--bare``: a wait as the default walk's, nothing else."""
    draw = (WALK_RNG or random.Random()).random
    while True:
        sleep(draw())
        CountingSession.count += 1


def floor_loop(sleep) -> None:
    """``--floor``: the default walk and its message, written out (the text is Entry.text's)."""
    from dashstream.protocol.frames import text_frame

    draw, clock, epoch = (WALK_RNG or random.Random()).random, time.time, "0123456789ab"
    value = seq = 0
    while True:
        sleep(draw())
        value += 1 + int(draw() * 10)
        seq += 1
        text_frame(f'{{"variable":{value},"seq":{seq},"ts":{clock()!r},"epoch":"{epoch}"}}')
        CountingSession.count += 1


if __name__ == "__main__":
    main()
