"""After Redis is killed and restarted, both instances deliver the shared ticker as promptly
as before: a real redis-server, two instances, a 20 msg/s ticker run by whichever instance
takes the lease, a screen on each.

The cause this guards against: each instance's tail slept in its reconnect backoff (up to
5 s, jittered) between tries while Redis was away. The instance that came back first took
the lease and produced; the other one delivered everything published meanwhile only when
its sleep ended (p99 478 ms against 5.4 ms on the other). The tail now tries again every
20-40 ms while Redis cannot be reached. The target is p99 < 20 ms on both (measured on a
quiet machine: see the report in BENCHMARKS.md); the assertion has a margin for a loaded one.
"""

from __future__ import annotations

import time

import pytest

from tests.fleet import Fleet, Recorder, ready
from tests.support import scaled, wait_until

# alone: tests/run.sh runs these after the rest, with nothing beside them (pyproject.toml markers).
pytestmark = [pytest.mark.timeout(120), pytest.mark.alone]

RATE = 20.0


@pytest.fixture
def fleet(tmp_path):
    path = tmp_path / "streams.toml"
    path.write_text(f'[streams.tick]\nsource = "ticker"\nrate = {RATE}\n')
    made = Fleet("--config", str(path), count=2).start()
    yield made
    made.stop()


def p99(lags: list[float]) -> float:
    return lags[min(len(lags) - 1, int(len(lags) * 0.99))]


def test_after_redis_is_killed_and_restarted_both_instances_deliver_the_ticker_promptly(fleet):
    screens = [Recorder(instance.ws + "/ws/tick") for instance in fleet.instances]
    try:
        for screen in screens:
            screen.wait_data(10)
        fleet.redis.kill()
        time.sleep(3.0)  # an outage long enough for several reconnect tries (the backoff grew)
        restarted = time.time()
        fleet.redis.restart()
        wait_until(lambda: all(ready(instance) for instance in fleet.instances), timeout=20,
                   message="both instances ready again")
        # Six seconds of ticks after the restart on each screen: the instance asleep in its
        # backoff (up to 5 s) delivered late through most of them.
        wait_until(lambda: all(len(screen.lags(restarted)) >= RATE * 6 for screen in screens),
                   timeout=30, message="six seconds of ticks on both screens")
        figures = [(round(p99(s.lags(restarted)) * 1000, 1), round(s.lags(restarted)[-1] * 1000, 1))
                   for s in screens]
        print(f"p99, max (ms) per instance: {figures}")  # pytest -s: the figures BENCHMARKS.md quotes
        for screen in screens:
            assert p99(screen.lags(restarted)) < scaled(0.1), f"p99, max (ms) per instance: {figures}"
    finally:
        for screen in screens:
            screen.close()
