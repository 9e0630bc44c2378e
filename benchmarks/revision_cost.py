"""Server CPU per handshake, memory per idle connection and CPU per private message, for two
or more checkouts of dashstream side by side, interleaved round by round.

    python benchmarks/revision_cost.py --rounds 3 old=/path/to/checkout-of-206e205 new=.

(the load client is built on first use, as compare.sh builds it; ``--client`` takes another).

Each checkout is run as the load harness runs it (``benchmarks/harness_peer.py``, so
``--log-level info`` and the harness's stream ``bench``), a fresh server per measurement,
the checkouts in a rotated order each round. The figures are CPU time of the server
process (``/proc``) divided by the work done, and RSS growth divided by the connections
held, so they hold on a machine that other processes load, where rates and latencies do
not. They are a cross-check for ``compare.sh``, not a substitute: S4's rate also depends on
latency, which this does not measure.

``--cpu user`` (or ``system``) counts that part of the server's CPU time alone: what a server's
own code costs, apart from the kernel's work on its system calls.

``--callgrind`` runs each server under valgrind's callgrind instead and counts the
instructions the server executes (every thread) during the measured part, toggled with
``callgrind_control``: a figure that other load on the machine does not move at all
(kernel time is not in it). Use a few hundred handshakes and ~100 private clients then:
the server runs about 50 times slower.

* handshakes: ``wsload --mode churn`` (open, close, repeat) for ``--handshakes`` handshakes
  at ``--concurrency`` loops; µs of server CPU per handshake;
* idle: ``wsload --mode idle`` holds ``--idle`` connections; KiB of RSS per connection,
  read after the last one opened and ``--settle`` seconds;
* private: ``SHAPE=A`` (a private random walk per client at 2 msg/s), ``--private``
  clients for ``--window`` seconds; µs of server CPU per delivered message;
* broadcast: ``SHAPE=B`` (S2's shared ticker) at ``--broadcast-rate`` messages a second to
  ``--broadcast`` clients for ``--window`` seconds; µs of server CPU per delivery (a rate
  below the ceiling, so that the figure is the cost of a delivery, not of falling behind).

A ``LABEL=PATH`` whose PATH is a ``.js`` file is a Node peer of the harness instead of a
checkout (``node=benchmarks/harness/peers/ws_peer.js``, with ``NODE_PATH`` holding ``ws``,
as ``compare.sh`` installs it in ``benchmarks/.bench/node/node_modules``): it runs beside
the checkouts under the same load, so its figure is a same-run reference (CPU time only).
A ``LABEL=PATH`` whose PATH is a ``.py`` file is a Python server under the same contract,
run as it is: the floors (``floor=benchmarks/harness/peers/eventlet_floor.py``, green sockets
and nothing else; ``floor=benchmarks/private_floor_server.py``, dashstream without its
private-stream layers; BENCHMARKS.md, "Floors").
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CLK_TCK, cpu_parts, free_port, load_client, need_taskset, rss_kib, stop, wait_ready


class Meter:
    """What a measurement counts: the server's CPU seconds, or (``--callgrind``) its
    instructions."""

    def __init__(self, callgrind: bool, cpu: str = "all"):
        self.callgrind = callgrind
        self.cpu = cpu  # "all", "user" or "system": which of the server's CPU time is counted
        self.folder = tempfile.mkdtemp(prefix="revision-cost-") if callgrind else None

    def _seconds(self, pid: int) -> float:
        user, system = cpu_parts(pid)
        return {"all": user + system, "user": user, "system": system}[self.cpu] / CLK_TCK

    def command(self) -> list[str]:
        if not self.callgrind:
            return []
        return ["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
                f"--callgrind-out-file={self.folder}/cg.%p"]

    def begin(self, proc) -> float:
        if not self.callgrind:
            return self._seconds(proc.pid)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
        return 0.0

    def end(self, proc, began: float) -> float:
        if not self.callgrind:
            return self._seconds(proc.pid) - began
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
        for dump in glob.glob(f"{self.folder}/cg.{proc.pid}*"):
            os.remove(dump)
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
        total = 0
        for dump in glob.glob(f"{self.folder}/cg.{proc.pid}.*"):
            total += sum(int(line.split()[1]) for line in Path(dump).read_text().splitlines()
                         if line.startswith("totals:"))
        return float(total)


def start(tree: Path, shape: str, rate: float, port: int, a) -> subprocess.Popen:
    env = dict(os.environ, PORT=str(port), SHAPE=shape, RATE=str(rate), PYTHONPATH=str(tree))
    if tree.suffix == ".js":  # a Node peer (module docstring): ready once it accepts
        env.setdefault("NODE_PATH", str(Path(__file__).resolve().parent / ".bench" / "node" / "node_modules"))
        proc = subprocess.Popen([*a.pin_server, "node", str(tree)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_accepting(port)
        return proc
    if tree.suffix == ".py":  # a Python server under the harness's contract (a floor: module docstring)
        proc = subprocess.Popen([*a.pin_server, *a.meter.command(), sys.executable, str(tree)],
                                env=dict(env, PYTHONPATH=str(tree.parent)), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        wait_accepting(port, timeout=120 if a.meter.callgrind else 20)
        return proc
    proc = subprocess.Popen([*a.pin_server, *a.meter.command(), sys.executable, "benchmarks/harness_peer.py", *a.extra],
                            cwd=tree,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, timeout=120 if a.meter.callgrind else 20)
    return proc


def wait_accepting(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} not accepting")


def client(a, port: int, *args, on_event=None, timeout: float = 120) -> dict:
    cmd = [*a.pin_client, a.client, "--url", f"ws://127.0.0.1:{port}/ws/bench", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        if on_event is not None and line.startswith("{"):
            try:
                on_event(json.loads(line).get("event"))
            except ValueError:
                pass
        if time.monotonic() > deadline:
            proc.kill()
            break
    out = proc.stdout.read()
    proc.wait(10)
    return json.loads(out.strip().splitlines()[-1])


def handshakes(tree, a) -> float:
    port = free_port()
    proc = start(tree, "B", 0, port, a)
    try:
        client(a, port, "--mode", "churn", "--duration", 120, "--churn-concurrency", 4, "--max-churn", 50)
        began = a.meter.begin(proc)
        result = client(a, port, "--mode", "churn", "--duration", 300, "--churn-concurrency", a.concurrency,
                        "--max-churn", a.handshakes, timeout=400)
        used = a.meter.end(proc, began)
        return a.scale * used / max(1, result["completed"])
    finally:
        stop([proc])


def idle(tree, a) -> float:
    port = free_port()
    proc = start(tree, "B", 0, port, a)
    seen = {}
    try:
        time.sleep(a.settle)
        before = rss_kib(proc.pid)

        def on_event(name):
            if name == "opened":
                time.sleep(a.settle)
                seen["after"] = rss_kib(proc.pid)

        result = client(a, port, "--mode", "idle", "--conns", a.idle, "--duration", 1,
                        "--connect-concurrency", 200, on_event=on_event)
        return (seen["after"] - before) / max(1, result["opened"])
    finally:
        stop([proc])


def pushed(tree, a, shape: str, rate: float, conns: int) -> tuple[dict, float]:
    """A fresh server of ``shape`` at ``rate``, ``conns`` push clients: the client's result
    and what the meter counted over its measured window (CPU seconds or instructions)."""
    port = free_port()
    proc = start(tree, shape, rate, port, a)
    marks = {}
    try:
        def on_event(name):
            if name == "window_start":
                marks["began"] = a.meter.begin(proc)
            elif name == "window_end":
                marks["used"] = a.meter.end(proc, marks["began"])

        result = client(a, port, "--mode", "push", "--conns", conns, "--warmup", 2, "--duration", a.window,
                        "--expect-rate", rate, "--connect-concurrency", 50, on_event=on_event, timeout=300)
        return result, marks["used"]
    finally:
        stop([proc])


def private(tree, a) -> float:
    result, used = pushed(tree, a, "A", 2, a.private)
    return a.scale * used / max(1, result["msgs_window"])


def broadcast(tree, a) -> float:
    result, used = pushed(tree, a, "B", a.broadcast_rate, a.broadcast)
    if not a.callgrind:
        # What was delivered beside what the ticker offered: above the ceiling the figure is
        # the cost of what got through, and this says how much did.
        print(f"    delivered {result['msgs_window'] / a.window:,.0f}/s of {a.broadcast * a.broadcast_rate:,.0f}, "
              f"server CPU {used / a.window:.0%}", flush=True)
    return a.scale * used / max(1, result["msgs_window"])


FIGURES = {"handshake": ("µs server CPU per handshake", handshakes),
           "idle": ("KiB RSS per idle connection", idle),
           "private": ("µs server CPU per private message", private),
           "broadcast": ("µs server CPU per broadcast delivery", broadcast)}
COUNTED = {"handshake": "thousand instructions per handshake", "private": "thousand instructions per private message",
           "broadcast": "thousand instructions per broadcast delivery"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", help="LABEL=PATH of a dashstream checkout")
    parser.add_argument("--client", help="a built wsload (default: the project's, built on first use in "
                                         "$BENCH_HOME/bin, benchmarks/.bench unless set)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--figures", default="handshake,idle,private")
    parser.add_argument("--handshakes", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=0.5)
    parser.add_argument("--private", type=int, default=1000)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--broadcast", type=int, default=1000, help="clients of the broadcast figure")
    parser.add_argument("--broadcast-rate", type=float, default=50, help="its ticker's messages a second")
    parser.add_argument("--extra", default="", help="extra server.py arguments, one string")
    parser.add_argument("--pin", action="store_true",
                        help="server on CPU 0, load client on CPU 1 (taskset), as the harness runs them")
    parser.add_argument("--callgrind", action="store_true", help="count instructions under callgrind, not CPU time")
    parser.add_argument("--cpu", choices=("all", "user", "system"), default="all",
                        help="the server's CPU time counted: user + system (default), or one of them")
    a = parser.parse_args()
    a.extra = a.extra.split()
    a.client = a.client or str(load_client())
    if a.pin:
        need_taskset()
    a.pin_server = ["taskset", "-c", "0"] if a.pin else []
    a.pin_client = ["taskset", "-c", "1"] if a.pin else []
    a.meter = Meter(a.callgrind, a.cpu)
    a.scale = 1e-3 if a.callgrind else 1e6
    if a.callgrind and "idle" in a.figures:
        parser.error("--callgrind counts instructions: use it with --figures handshake,private,broadcast")
    trees = [(label, Path(path).resolve()) for label, path in (t.split("=", 1) for t in a.trees)]
    if a.callgrind and any(tree.suffix == ".js" for _, tree in trees):
        parser.error("--callgrind counts a Python server's instructions: leave the Node peer out")
    figures = [f.strip() for f in a.figures.split(",")]
    results: dict = {(f, label): [] for f in figures for label, _ in trees}
    for round_ in range(a.rounds):
        order = trees[round_ % len(trees):] + trees[:round_ % len(trees)]
        for figure in figures:
            for label, tree in order:
                value = FIGURES[figure][1](tree, a)
                results[figure, label].append(value)
                print(f"round {round_ + 1} {figure:9} {label:10} {value:8.2f}", flush=True)
    print()
    print("| figure | " + " | ".join(label for label, _ in trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for figure in figures:
        cells = []
        for label, _ in trees:
            values = results[figure, label]
            cells.append(f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})")
        name = COUNTED[figure] if a.callgrind else FIGURES[figure][0] + ("" if a.cpu == "all" else f" ({a.cpu} time)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
