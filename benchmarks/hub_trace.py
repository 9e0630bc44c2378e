"""``server.py`` with every green-thread switch and every ticker tick recorded, to find what
holds the hub when a broadcast ticker wakes late (issue 23's S2 consistency gap):

    cc -O2 -o /tmp/wsload benchmarks/harness/client/wsload.c -lm
    HUB_TRACE=/tmp/trace.json python benchmarks/harness/harness.py --cwd . \\
        --server "python benchmarks/harness_peer.py --entry benchmarks/hub_trace.py" \\
        --url ws://127.0.0.1:5105/ws/bench --scenario S2 --s2-rates 70 --c-client /tmp/wsload
    python benchmarks/hub_trace.py --read /tmp/trace.json

The server writes ``HUB_TRACE`` when it stops. Each switch is stored with the wall clock and
the main thread's CPU clock, so a slice's CPU time holds on a loaded machine even where its
wall time does not. ``--read`` prints, for the ticks that woke more than ``--late`` ms after
they were due, which green threads ran in between and for how long. A benchmark aid only:
never deployed.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def where(frame) -> str:
    """The innermost frame of the project's own code in a suspended green thread's stack."""
    outer = None if frame is not None else "a green thread not started yet"
    while frame is not None:
        name = frame.f_code.co_filename
        if ("/dashstream/" in name or "/producer/" in name) and outer is None:
            outer = f"{Path(name).parent.name}/{Path(name).name}:{frame.f_code.co_name}"
            break
        frame = frame.f_back
    return outer or "other"


def record() -> None:
    import eventlet

    eventlet.monkey_patch()  # first, as server.py does
    sys.path.insert(0, str(ROOT))
    import runpy
    import time

    import greenlet

    from producer import ticker

    switches: list = []  # (wall, cpu, label of the green thread switched to)
    ticks: list = []  # (due, woke) on the ticker's monotonic clock
    clock, cpu = time.monotonic, time.thread_time

    from eventlet import hubs

    hub = hubs.get_hub()

    def trace(event, args):
        if event in ("switch", "throw"):
            target = args[1]
            if target is hub.greenlet:
                label = "hub"
            elif target in tickers:
                label = "the ticker's green thread (its fan-out pass)"
            else:
                label = where(target.gr_frame)
            switches.append((clock(), cpu(), label))

    tickers: set = set()

    def on_tick(due, at, kind):
        tickers.add(greenlet.getcurrent())
        ticks.append((due, at, kind))

    collections_: list = []  # (wall at start, cpu spent, generation)
    started: list = [0.0, 0.0]

    def on_gc(phase, info):
        if phase == "start":
            started[:] = clock(), cpu()
        else:
            collections_.append((started[0], cpu() - started[1], info["generation"]))

    import gc

    gc.callbacks.append(on_gc)
    ticker.Ticker.trace = staticmethod(on_tick)
    greenlet.settrace(trace)
    sys.argv[0] = str(ROOT / "server.py")
    try:
        runpy.run_path(str(ROOT / "server.py"), run_name="__main__")
    finally:
        greenlet.settrace(None)
        out = os.environ.get("HUB_TRACE", "/tmp/hub-trace.json")
        with open(out, "w") as file:
            json.dump({"switches": switches, "ticks": ticks, "gc": collections_}, file)


def read(path: str, late_ms: float, top: int, skip: float) -> None:
    import bisect

    data = json.load(open(path))
    switches, ticks = data["switches"], data["ticks"]
    if ticks:  # the measured part: --skip seconds after the first tick (connections, warm-up)
        begin = ticks[0][0] + skip
        ticks = [t for t in ticks if t[0] >= begin]
    times = [s[0] for s in switches]
    lateness = sorted((woke - due) * 1000 for due, woke, kind in ticks if kind == "tick")
    skips = sum(1 for *_, kind in ticks if kind == "skip")
    if not lateness:
        print("no ticks recorded")
        return
    q = lambda p: lateness[min(len(lateness) - 1, int(p * len(lateness)))]  # noqa: E731
    print(f"{len(lateness)} ticks, {skips} skipped; lateness ms p50 {q(0.5):.2f} p90 {q(0.9):.2f} "
          f"p99 {q(0.99):.2f} max {lateness[-1]:.2f}")
    wall: collections.Counter = collections.Counter()
    busy: collections.Counter = collections.Counter()
    longest: dict = {}
    windows = 0
    for due, woke, kind in ticks:
        if kind != "tick" or (woke - due) * 1000 < late_ms:
            continue
        windows += 1
        first = max(0, bisect.bisect_left(times, due) - 1)
        last = bisect.bisect_left(times, woke)
        for (t0, c0, label), (t1, c1, _) in zip(switches[first:last], switches[first + 1:last + 1]):
            span = min(t1, woke) - max(t0, due)
            if span <= 0:
                continue
            wall[label] += span
            busy[label] += c1 - c0
            longest[label] = max(longest.get(label, 0.0), c1 - c0)
    if ticks:
        switches = [s for s in switches if s[0] >= ticks[0][0]]
        times = [s[0] for s in switches]
    by_generation: dict = collections.defaultdict(list)
    for at, spent, generation in data.get("gc", []):
        if not ticks or at >= ticks[0][0]:
            by_generation[generation].append(spent)
    for generation, spent in sorted(by_generation.items()):
        print(f"gc generation {generation}: {len(spent)} collections, cpu {sum(spent) * 1000:.1f} ms, "
              f"max {max(spent) * 1000:.2f} ms")
    slices: dict = collections.defaultdict(list)
    for (t0, c0, label), (t1, c1, _) in zip(switches, switches[1:]):
        slices[label].append(c1 - c0)
    print("every slice of the run, by CPU time:")
    for label, cpus in sorted(slices.items(), key=lambda item: -sum(item[1]))[:top]:
        cpus.sort()
        print(f"  {label:60s} {len(cpus):7d} slices, cpu {sum(cpus) * 1000:8.1f} ms, "
              f"p50 {cpus[len(cpus) // 2] * 1e6:7.0f} us, p99 {cpus[int(len(cpus) * 0.99)] * 1e6:7.0f} us, "
              f"max {cpus[-1] * 1e6:7.0f} us")
    print(f"{windows} ticks woke >= {late_ms} ms late; in those windows, by wall time:")
    for label, seconds in wall.most_common(top):
        print(f"  {label:60s} wall {seconds * 1000:9.1f} ms  cpu {busy[label] * 1000:9.1f} ms  "
              f"longest slice cpu {longest[label] * 1000:7.2f} ms")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--read"]:
        parser = argparse.ArgumentParser()
        parser.add_argument("--read", required=True)
        parser.add_argument("--late", type=float, default=5.0, help="ms late a tick must be to count")
        parser.add_argument("--top", type=int, default=15)
        parser.add_argument("--skip", type=float, default=3.0, help="s after the first tick left out")
        options = parser.parse_args()
        read(options.read, options.late, options.top, options.skip)
    else:
        record()
