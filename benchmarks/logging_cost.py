"""What a log line costs the server's thread, under ``eventlet.monkey_patch()``.

    python benchmarks/logging_cost.py [--lines 50000]

CPU time of the calling thread per ``log.info(...)`` (``time.thread_time``), and wall time:
the standard StreamHandler writing in the caller's thread, against dashstream.logs'
queue to a writer thread, with the output keeping up (/dev/null) and stalled (a pipe
nobody reads, where nearly every line is dropped).
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

import eventlet  # noqa: E402

eventlet.monkey_patch()

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashstream.ops.log_output import TEXT_FORMAT, configure_logging  # noqa: E402

log = logging.getLogger("dashstream.bench")


def measure(label: str, lines: int) -> None:
    cpu, wall = time.thread_time(), time.perf_counter()
    for n in range(lines):
        log.info("line %d from peer=%s", n, "192.0.2.1")
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    print(f"{cpu / lines * 1e6:6.1f} µs CPU {wall / lines * 1e6:6.1f} µs wall per line  {label}", file=sys.__stdout__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    lines = parser.parse_args().lines
    root = logging.getLogger()
    root.setLevel("INFO")
    handler = logging.StreamHandler(open(os.devnull, "w"))
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    measure("StreamHandler to /dev/null in the caller's thread (today's logging)", lines)
    root.removeHandler(handler)
    pipeline = configure_logging("info", "text", fd=os.open(os.devnull, os.O_WRONLY), queue_size=10 ** 7,
                                 capture_stderr=False)
    measure("dashstream.logs, output keeping up (/dev/null)", lines)
    pipeline.stop()
    _, stalled = os.pipe()
    pipeline = configure_logging("info", "text", fd=stalled, capture_stderr=False)
    measure("dashstream.logs, output stalled (nearly all dropped)", lines)
    print(f"dropped {pipeline.dropped} of {lines}", file=sys.__stdout__)
    os._exit(0)  # the writer is stuck on the stalled pipe by design


if __name__ == "__main__":
    main()
