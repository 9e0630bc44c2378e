"""Run sources through the supervisor under eventlet and print their events as JSON lines.

    python tests/source_runner.py '{"streams": {"NAME": {TOML-shaped table}}, "ticker": 0.05}'

What the server will do with a source, without the server: ``eventlet.monkey_patch()`` first,
the tables read by ``stream_specs`` exactly as a config file's, each source run by a
``Supervisor`` with eventlet's spawn and sleep. Each event is one line on stdout:

    {"event": "value", "stream": NAME, "fields": {...}, "t": MONOTONIC}
    {"event": "health", "stream": NAME, "state": "up"|"down"|"stale", "reason": TEXT, "since": TS, "t": ...}
    {"event": "rejected", "stream": NAME, "reason": TEXT, "count": N, "t": ...}
    {"event": "tick", "t": ...}          (with "ticker": a green thread printing every N s)

The ticker proves a source is green: it is one more green thread, so a source that blocks
the hub shows as a gap between ticks. SIGTERM stops every supervisor (closing its
connections) and exits 0. The supervisor's log goes to stderr.
"""

import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # as server.py does

import eventlet  # noqa: E402

eventlet.monkey_patch()

import json  # noqa: E402 - after monkey_patch on purpose, like server.py
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashstream.config.stream_specs import spec_from_table  # noqa: E402
from dashstream.streams.supervisor import Supervisor  # noqa: E402
from producer import SOURCES  # noqa: E402


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps({**event, "t": time.monotonic()}) + "\n")
    sys.stdout.flush()


def supervise(name: str, table: dict) -> Supervisor:
    spec = spec_from_table(name, table, "runner")
    source = SOURCES[spec.source](**spec.options)
    supervisor: Supervisor

    def on_rejected(reason: str) -> None:
        emit({"event": "rejected", "stream": name, "reason": reason, "count": supervisor.rejected})

    supervisor = Supervisor(
        name, source,
        on_value=lambda fields: emit({"event": "value", "stream": name, "fields": fields}),
        on_health=lambda state, reason, since: emit({"event": "health", "stream": name, "state": state,
                                                     "reason": reason, "since": since}),
        on_rejected=on_rejected, stale_after=spec.stale_after,
        spawn=eventlet.spawn, sleep=eventlet.sleep)
    return supervisor


def main() -> int:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    config = json.loads(sys.argv[1])
    supervisors = [supervise(name, table) for name, table in config["streams"].items()]
    # A flag, polled: a signal handler that only schedules a wake-up would not cut short the
    # hub's own sleep (up to the next timer, e.g. a 30 s query interval).
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
    if config.get("ticker"):
        def tick(every: float) -> None:
            while True:
                emit({"event": "tick"})
                eventlet.sleep(every)

        eventlet.spawn(tick, config["ticker"])
    for supervisor in supervisors:
        supervisor.start()
    while not stopping:
        eventlet.sleep(0.1)
    for supervisor in supervisors:
        supervisor.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
