"""Does one client flooding the server with maximum-size messages delay everyone else?

Starts the real server (``python server.py``) on 127.0.0.1 and a free port, connects N
ordinary subscribers of the default stream ``/`` and measures their delivery latency
(receive time minus the message's ``ts``), first alone, then while one abusive client
(in a process of its own) sends text messages of exactly ``--max-message-size`` bytes
to ``/echo`` as fast as the server takes them, reading the echoes. The abuser is
bounded in count and in time. Rounds alternate quiet and abusive phases so drift on a
shared machine hits both alike.

Also measures raw unmasking speed: eventlet 0.41.3's byte-by-byte ``_apply_mask``
against ``dashstream.protocol.xor_mask``.

    python benchmarks/unmask_latency.py [--clients 20] [--seconds 5] [--rounds 2]

Prints a Markdown block for BENCHMARKS.md. Requirement (issue 5): the abusive client
raises the others' p99 by less than 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import cpu_seconds, percentile  # noqa: E402 - after the path is set

from tests.support import ServerProcess  # noqa: E402 - after the path is set

MAX_MESSAGE_SIZE = 65536


# --- the abusive client (runs as a child process) --------------------------------------


async def abuse(url: str, size: int, seconds: float, max_messages: int) -> dict:
    import websockets

    payload = "x" * size
    sent = received = 0
    async with websockets.connect(url, max_size=None, compression=None) as ws:
        async def reader():
            nonlocal received
            async for _ in ws:
                received += 1

        reading = asyncio.create_task(reader())
        print("ready", flush=True)  # the parent starts its abusive phase now
        started = time.monotonic()
        deadline = started + seconds
        while sent < max_messages and time.monotonic() < deadline:
            await ws.send(payload)
            sent += 1
        elapsed = time.monotonic() - started
        for _ in range(200):  # up to 2 s for the last echoes
            if received >= sent:
                break
            await asyncio.sleep(0.01)
        reading.cancel()
    return {"sent": sent, "echoed": received, "seconds": round(elapsed, 2),
            "sent_mb_per_s": round(sent * size / elapsed / 1e6, 1)}


# --- ordinary subscribers --------------------------------------------------------------


async def subscriber(url: str, phase: dict, stop: asyncio.Event) -> None:
    import websockets

    async with websockets.connect(url, compression=None) as ws:
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except asyncio.TimeoutError:
                continue
            now = time.time()
            if phase["name"] is not None:
                phase["samples"].setdefault(phase["name"], []).append(now - json.loads(text)["ts"])


async def measure(server: ServerProcess, clients: int, seconds: float, rounds: int, size: int,
                  max_messages: int, nice: int) -> tuple[dict, list[dict]]:
    phase = {"name": None, "samples": {}, "lag": {}, "server_cpu": []}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(subscriber(server.ws + "/", phase, stop)) for _ in range(clients)]
    tasks.append(asyncio.create_task(lag_probe(phase, stop)))
    await asyncio.sleep(1.0)  # let every subscriber connect and settle; not measured
    abusers = []
    for round_number in range(rounds):
        phase["name"] = f"quiet-{round_number}"
        await asyncio.sleep(seconds)
        phase["name"] = None  # the abuser's start and end are not measured
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--abuser-nice", str(nice), "--abuser", server.ws + "/echo", str(size),
            str(seconds), str(max_messages),
            stdout=subprocess.PIPE)
        assert (await child.stdout.readline()).strip() == b"ready"
        phase["name"] = f"abusive-{round_number}"
        cpu_before = cpu_seconds(server.proc.pid)
        await asyncio.sleep(seconds)
        phase["name"] = None
        phase["server_cpu"].append((cpu_seconds(server.proc.pid) - cpu_before) / seconds)
        output, _ = await child.communicate()
        abusers.append(json.loads(output))
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for abuser, cpu in zip(abusers, phase["server_cpu"]):
        abuser["server_cpu"] = cpu
    return phase["samples"], phase["lag"], abusers


async def lag_probe(phase: dict, stop: asyncio.Event) -> None:
    """How late this process's own event loop wakes up: delay the subscribers' process adds
    to their figures (on a shared machine), as opposed to delay added by the server."""
    while not stop.is_set():
        started = time.monotonic()
        await asyncio.sleep(0.01)
        if phase["name"] is not None:
            phase["lag"].setdefault(phase["name"], []).append(time.monotonic() - started - 0.01)




# --- raw unmasking speed ---------------------------------------------------------------


def unmask_speed(size: int) -> dict:
    import warnings

    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from eventlet.websocket import RFC6455WebSocket

    from dashstream.protocol.frames import xor_mask as _xor_mask

    data, mask = os.urandom(size), os.urandom(4)
    figures = {}
    for name, function, repeats in (("eventlet _apply_mask", lambda: RFC6455WebSocket._apply_mask(data, mask), 3),
                                    ("dashstream _xor_mask", lambda: _xor_mask(data, mask), 300)):
        started = time.perf_counter()
        for _ in range(repeats):
            function()
        elapsed = (time.perf_counter() - started) / repeats
        figures[name] = (elapsed * 1e3, size / elapsed / 1e6)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=2, help="quiet/abusive phase pairs")
    parser.add_argument("--max-messages", type=int, default=200_000, help="abuser's message cap per phase")
    parser.add_argument("--unmask", choices=("xor", "eventlet"), default="xor",
                        help="server unmasking: dashstream's integer XOR, or eventlet's byte loop (before)")
    parser.add_argument("--abuser-nice", type=int, default=10, help="niceness of the abusive client's process")
    parser.add_argument("--abuser", nargs=4, metavar=("URL", "SIZE", "SECONDS", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.abuser:
        url, size, seconds, count = args.abuser
        # On a real deployment the abuser is another machine. Here it shares two cores with
        # the server and the subscribers; a lower priority keeps its own CPU use (masking,
        # reading echoes) from being counted as the server's delay.
        os.nice(args.abuser_nice)
        print(json.dumps(asyncio.run(abuse(url, int(size), float(seconds), int(count)))))
        return

    # --unmask eventlet runs the same server with eventlet's own unmasking, for comparison.
    entry = Path(__file__).with_name("eventlet_unmask_server.py") if args.unmask == "eventlet" else None
    server = ServerProcess("--min-wait", "0.01", "--max-wait", "0.02", "--log-level", "warning",
                           "--max-message-size", str(MAX_MESSAGE_SIZE), server=entry)
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    server.start()
    try:
        samples, lag, abusers = asyncio.run(measure(server, args.clients, args.seconds, args.rounds,
                                               MAX_MESSAGE_SIZE, args.max_messages, args.abuser_nice))
    finally:
        server.stop()
    quiet = [v for name, values in samples.items() if name.startswith("quiet") for v in values]
    abusive = [v for name, values in samples.items() if name.startswith("abusive") for v in values]

    command = "python benchmarks/unmask_latency.py " + " ".join(sys.argv[1:])
    print(f"`{command.strip()}` on {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}\n")
    print(f"server unmasking: {args.unmask}; abusive client at nice {args.abuser_nice}. "
          f"{args.clients} subscribers of `/` (`--min-wait 0.01 --max-wait 0.02`), {args.rounds} rounds of "
          f"{args.seconds:g} s quiet + {args.seconds:g} s with one client sending {MAX_MESSAGE_SIZE}-byte text "
          "messages to `/echo` as fast as it can.\n")
    print("| phase | messages | p50 ms | p99 ms | max ms | subscribers' own loop lag p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = [(name, samples[name]) for name in sorted(samples, key=lambda n: (n.split("-")[1], n))]
    lag_by = {name: lag.get(name, [0.0]) for name in samples}
    lag_by["all quiet"] = [v for name, values in lag.items() if name.startswith("quiet") for v in values]
    lag_by["all abusive"] = [v for name, values in lag.items() if name.startswith("abusive") for v in values]
    for name, values in rows + [("all quiet", quiet), ("all abusive", abusive)]:
        print(f"| {name} | {len(values)} | {percentile(values, 0.5) * 1e3:.1f} | "
              f"{percentile(values, 0.99) * 1e3:.1f} | {max(values) * 1e3:.1f} | "
              f"{percentile(lag_by[name] or [0.0], 0.99) * 1e3:.1f} |")
    delta = (percentile(abusive, 0.99) - percentile(quiet, 0.99)) * 1e3
    rises = [(percentile(samples[f"abusive-{n}"], 0.99) - percentile(samples[f"quiet-{n}"], 0.99)) * 1e3
             for n in range(args.rounds)]
    print(f"\np99 rise, all samples: {delta:.1f} ms; per round: {', '.join(f'{r:.1f}' for r in rises)} ms "
          f"(median {statistics.median(rises):.1f} ms). Requirement: < 50 ms.")
    print(f"load average before/after: {load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    for number, abuser in enumerate(abusers):
        print(f"abuser round {number}: sent {abuser['sent']} messages in {abuser['seconds']} s "
              f"({abuser['sent_mb_per_s']} MB/s), {abuser['echoed']} echoed back; "
              f"server CPU {abuser['server_cpu']:.0%} of a core")
    print("\n| unmasking 64 KiB | ms per message | MB/s |")
    print("| --- | --- | --- |")
    for name, (ms, mb_per_s) in unmask_speed(MAX_MESSAGE_SIZE).items():
        print(f"| {name} | {ms:.3f} | {mb_per_s:.1f} |")


if __name__ == "__main__":
    main()
