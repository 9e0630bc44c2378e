"""``server.py`` with its garbage collections counted and timed, for BENCHMARKS.md ("Private
streams: what a wake-up costs"). A benchmark aid only: never deployed.

    cd CHECKOUT && PORT=5601 SHAPE=A RATE=2 PYTHONPATH=. python /path/to/benchmarks/harness_peer.py \\
        --entry /path/to/benchmarks/gc_timing.py
    kill -USR2 PID   # twice, some seconds apart, under load: the difference is that window's

It runs the ``server.py`` of the working directory (so one copy of this file times any
checkout) and, at each SIGUSR2, appends one JSON line to ``$GC_TIMING_OUT`` (default
/tmp/gc-timing.jsonl): per generation the collections so far and the CPU seconds they took,
the objects the collector tracks, and the process's CPU seconds.
"""

import gc
import json
import os
import runpy
import signal
import sys
import time

_collections = {0: 0, 1: 0, 2: 0}
_seconds = {0: 0.0, 1: 0.0, 2: 0.0}
_started = [0.0]


def _timed(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.process_time()
    else:
        generation = info["generation"]
        _collections[generation] += 1
        _seconds[generation] += time.process_time() - _started[0]


def _report(*_args) -> None:
    line = {"collections": _collections, "seconds": {g: round(s, 4) for g, s in _seconds.items()},
            "tracked": len(gc.get_objects()), "cpu": round(time.process_time(), 3)}
    with open(os.environ.get("GC_TIMING_OUT", "/tmp/gc-timing.jsonl"), "a") as out:
        out.write(json.dumps(line) + "\n")


gc.callbacks.append(_timed)
signal.signal(signal.SIGUSR2, _report)
server = os.path.join(os.getcwd(), "server.py")
sys.argv[0] = server
sys.path.insert(0, os.getcwd())
runpy.run_path(server, run_name="__main__")
