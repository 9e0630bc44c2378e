"""dashstream with its private-stream layers taken out: a yardstick for S3, never a server.

    python benchmarks/revision_cost.py --client benchmarks/.bench/bin/wsload --pin --figures private \\
        node=benchmarks/harness/peers/ws_peer.js head=. floor=benchmarks/private_floor_server.py

The real server under the load harness's contract (PORT, SHAPE, RATE: ``harness_peer.py``),
except that a private stream's client gets, instead of a supervisor running a random walk
into its own log, subscription and session, one green loop that sleeps as the walk does (the
same grid, ``runtime.grid_sleep``), steps the value and writes the same frame (the value,
``seq``, ``ts``, ``epoch``) with the session's own ``write``. Accept, handshake, session,
write engine, watchdog, hub: all the real server's. What the real server costs beyond this
per message is what the layers in between cost (BENCHMARKS.md, "Floors").

``FLOOR_LAYERS`` puts some of the layers back, to say what each half costs: ``entry``, each
value an ``Entry`` through the session's ``send_entry`` and the metrics' count; ``log``, each
value published into the client's real ``PrivateLog`` (its encoder, ``Entry``, the
subscription's ``deliver``, ``send_entry``, the count). Beyond ``log`` are the supervisor and
the walk's generator.
"""

import eventlet

eventlet.monkey_patch()  # first, as server.py does

import os  # noqa: E402
import runpy  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import harness_peer  # noqa: E402

from dashstream import runtime  # noqa: E402
from dashstream.messages import Entry  # noqa: E402
from dashstream.protocol.frames import text_frame  # noqa: E402
from dashstream.sessions.session import OPEN  # noqa: E402
from dashstream.streams import stream as streams  # noqa: E402
from dashstream.streams.log import PrivateLog  # noqa: E402


class FloorWalk:
    """What stands in for a client's supervisor: a green loop, ``start``/``stop``/``running``."""

    running = True

    def __init__(self, session, subscription, own_log: PrivateLog, longest_wait: float):
        self.thread = None
        self.args = session, subscription, own_log, longest_wait

    def start(self) -> None:
        loop = {"log": self._loop_into_log, "entry": self._loop_into_session}.get(os.environ.get("FLOOR_LAYERS", ""),
                                                                               self._loop)
        self.thread = runtime.spawn(loop, *self.args)

    def stop(self) -> None:
        if self.thread is not None and self.thread is not runtime.getcurrent():
            self.thread.kill()

    @staticmethod
    def _loop_into_log(session, subscription, own_log: PrivateLog, longest_wait: float) -> None:
        """``FLOOR_LAYERS=log``: the same loop, its values published into the client's real
        log (numbered, stamped, an ``Entry``, the subscription's ``deliver``, the session's
        ``send_entry``, the metrics' count): what is left beyond it is the supervisor's and
        the walk's generator."""
        sleep = runtime.grid_sleep(streams.grid_step_ms(longest_wait))
        draw, publish = streams._WALK_RNG.random, own_log.publish
        value = 0
        while session.state is OPEN:
            if own_log.seq:  # the log numbers what it publishes: the first value comes at once
                sleep(draw() * longest_wait)
            value += 1 + int(draw() * 10)
            publish({"variable": value})

    @staticmethod
    def _loop_into_session(session, subscription, own_log: PrivateLog, longest_wait: float) -> None:
        """``FLOOR_LAYERS=entry``: the same loop, each value an ``Entry`` given to the session's
        ``send_entry`` and counted by the metrics, as ``PrivateLog.publish`` does, with no
        call of the log, the encoder or the subscription in between."""
        sleep = runtime.grid_sleep(streams.grid_step_ms(longest_wait))
        draw, clock, send, counted = streams._WALK_RNG.random, time.time, session.send_entry, own_log.on_delivered
        name, epoch = own_log.stream, own_log.epoch
        value = seq = 0
        while session.state is OPEN:
            if seq:
                sleep(draw() * longest_wait)
            value += 1 + int(draw() * 10)
            seq += 1
            entry = Entry(name, seq, clock(), epoch, f'{{"variable":{value}}}')
            send(entry, subscription)
            counted(entry)

    @staticmethod
    def _loop(session, subscription, own_log: PrivateLog, longest_wait: float) -> None:
        sleep = runtime.grid_sleep(streams.grid_step_ms(longest_wait))
        draw, clock, write, epoch = streams._WALK_RNG.random, time.time, session.write, own_log.epoch
        value = seq = 0
        while session.state is OPEN:
            if seq:
                sleep(draw() * longest_wait)
            value += 1 + int(draw() * 10)
            seq += 1
            write(text_frame(f'{{"variable":{value},"seq":{seq},"ts":{clock()!r},"epoch":"{epoch}"}}'),
                  subscription, None)


def floor_supervisor(self, own_log: PrivateLog, session) -> FloorWalk:
    """``PrivateStream._supervisor``'s stand-in: ``subscribe`` stays the server's own, and the
    log it made delivers to the subscription (``on_entry`` is its bound ``deliver``)."""
    # The harness's SHAPE=A walk waits uniform in [0, 2/RATE) (``harness_peer.stream_table``).
    return FloorWalk(session, own_log.on_entry.__self__, own_log, 2.0 / float(os.environ.get("RATE", "2")))


streams.PrivateStream._supervisor = floor_supervisor
sys.argv = [str(ROOT / "server.py"), *harness_peer.server_options(sys.argv[1:])]
runpy.run_path(str(ROOT / "server.py"), run_name="__main__")
