"""A Redis that answers but takes no writes is a backplane outage: out of memory at
``maxmemory`` with ``noeviction`` (``OOM``) and a read-only replica (``READONLY``), caused on a
real redis-server with ``CONFIG SET maxmemory`` and ``REPLICAOF``. The backplane is ``down``
with the reason (told to control clients, ``/readyz`` 503, ``/metrics``) and ``up`` again by
itself once Redis takes writes, with the shared walk flowing again."""

from __future__ import annotations

import json
import re

import pytest

from tests.fleet import Fleet, Recorder
from tests.support import free_port, http_get, wait_until

pytestmark = pytest.mark.timeout(90)

WALK = ("--stream", "office=random-walk:shared", "--min-wait", "0.02", "--max-wait", "0.06")


@pytest.fixture
def fleet():
    made = Fleet(*WALK, count=1).start()
    yield made
    made.stop()


def backplane_up_metric(instance) -> float:
    text = http_get(instance.http + "/metrics", timeout=5)[2].decode()
    return float(re.search(r"^dashstream_backplane_up (\S+)$", text, re.M).group(1))


def refused_then_taken(fleet: Fleet, refuse, take, words: str) -> None:
    instance = fleet.instances[0]
    screen = Recorder(instance.ws + "/ws/office", control=True)
    try:
        screen.wait_data(3)
        refuse()
        # (A replica first cuts the tail's blocked XREAD: down for that, then for the refusal.)
        down = screen.wait_control(lambda m: m.get("control") == "backplane" and m["state"] == "down"
                                   and words in m["reason"], timeout=10)
        after = screen.controls[screen.controls.index(down):]
        assert not any(m.get("control") == "backplane" and m["state"] == "up" for m in after), after
        status, _, body = http_get(instance.http + "/readyz", timeout=5)
        assert status == 503 and words in body.decode(), (status, body)
        assert backplane_up_metric(instance) == 0
        described = json.loads(http_get(instance.http + "/streams", timeout=5)[2])["backplane"]
        assert described["state"] == "down" and words in described["reason"], described
        take()
        screen.wait_control(lambda m: m.get("control") == "backplane" and m["state"] == "up"
                            and m["since"] > down["since"], timeout=10)
        wait_until(lambda: http_get(instance.http + "/readyz", timeout=5)[0] == 200, timeout=10,
                   message="/readyz 200 again")
        assert backplane_up_metric(instance) == 1
        seen = len(screen.data)
        screen.wait_data(seen + 3)  # the walk flows again
    finally:
        screen.close()


def test_redis_out_of_memory_with_noeviction_is_a_backplane_down_with_its_reason_until_writes_work(fleet):
    redis = fleet.redis
    redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    refused_then_taken(fleet, lambda: redis.command("CONFIG", "SET", "maxmemory", "1"),
                       lambda: redis.command("CONFIG", "SET", "maxmemory", "0"), "out of memory")


def test_a_read_only_replica_is_a_backplane_down_with_its_reason_until_it_is_a_primary_again(fleet):
    redis = fleet.redis
    # A replica of a primary that is not there: it keeps its data and refuses every write.
    refused_then_taken(fleet, lambda: redis.command("REPLICAOF", "127.0.0.1", str(free_port())),
                       lambda: redis.command("REPLICAOF", "NO", "ONE"), "read-only replica")
