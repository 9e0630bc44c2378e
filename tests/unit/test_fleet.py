"""backplane/fleet.py with a fake Redis client: who runs each producer (leases) and who serves
whom (presence), without a server or a Redis."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("redis")

from dashstream.backplane import fleet as fleet_module
from dashstream.backplane.fleet import LEASE, RELEASE, Fleet
from dashstream.backplane.redis_keys import INSTANCES, stream_key

pytestmark = pytest.mark.timeout(10)


class Pipe:
    def __init__(self, redis):
        self.redis = redis
        self.replies = []

    def __getattr__(self, command):
        def queue(*args, **kwargs):
            self.redis.calls.append((command, args, kwargs))
            self.replies.append(self.redis.answers.get((command, args[0] if args else None)))
            return self
        return queue

    def execute(self):
        return self.replies


class FakeRedis:
    def __init__(self):
        self.calls = []
        self.answers = {}
        self.lease_replies = []
        self.released = []
        self.newest = []
        self.members = set()

    def register_script(self, script):
        if script == LEASE:
            return lambda keys, args: self.lease_replies.pop(0)
        assert script == RELEASE
        return lambda keys, args: self.released.append((keys, args))

    def pipeline(self, transaction=False):
        return Pipe(self)

    def xrevrange(self, key, high, low, count):
        return self.newest

    def smembers(self, key):
        assert key == INSTANCES
        return self.members

    def srem(self, key, *members):
        self.calls.append(("srem", (key, *members), {}))


class Log:
    last = None


class Stream:
    def __init__(self, name="office"):
        self.name = name
        self.log = Log()


class Handle:
    running = True

    def __init__(self, last):
        self.last = last
        self.stopped = False

    def stop(self):
        self.stopped = True


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(fleet_module.runtime, "monotonic", lambda: now[0])
    return now


def make(redis, up=True):
    state = {"up": up}
    fleet = Fleet(redis, instance="me", lease_ttl=3.0, is_up=lambda: state["up"],
                  local_counts=lambda: {"office": 2, "_control": 1})
    return fleet, state


def test_a_granted_lease_starts_the_producer_from_the_streams_last_value_and_another_holder_stops_it(clock):
    redis = FakeRedis()
    redis.newest = [(b"7-0", {b"b": '{"variable":41}', b"t": "1.0", b"e": "E"})]
    fleet, _ = make(redis)
    handles = []
    producer = fleet.lease(Stream(), run=lambda last: handles.append(Handle(last)) or handles[-1])
    assert fleet.leased() == ["office"] and "office" in fleet and "other" not in fleet
    producer.start()
    redis.lease_replies = [(1, b"me", 3000)]
    fleet._ask(fleet._leased["office"])
    assert [handle.last["variable"] for handle in handles] == [41] and producer.running
    redis.lease_replies = [(0, b"them", 2500)]
    fleet._ask(fleet._leased["office"])
    assert handles[0].stopped and not producer.running
    assert fleet.census_here() == ({"me": {"office": 2, "_control": 1}}, {"office": "them"})


def test_the_backplane_going_down_stops_every_producer_here(clock):
    redis = FakeRedis()
    fleet, state = make(redis)
    handles = []
    producer = fleet.lease(Stream(), run=lambda last: handles.append(Handle(last)) or handles[-1])
    producer.start()
    redis.lease_replies = [(1, b"me", 3000)]
    fleet._ask(fleet._leased["office"])
    fleet.lost()
    assert handles[0].stopped and handles[0].last is None  # no entry in Redis: the stream's own last
    # Stopping at shutdown gives the lease back, unless Redis is away (it then expires by itself).
    redis.lease_replies = [(1, b"me", 3000)]
    fleet._ask(fleet._leased["office"])
    producer.stop()
    assert redis.released == [([stream_key("office", "lease"), fleet_module.CONTROL], ["me", "office", 1000])]
    state["up"] = False
    producer.start()
    redis.lease_replies = [(1, b"me", 3000)]
    fleet._ask(fleet._leased["office"])  # granted, but Redis went away meanwhile: no start
    assert len(handles) == 2 and not producer.running


def test_recheck_asks_at_once(clock):
    fleet, _ = make(FakeRedis())
    fleet.lease(Stream(), run=Handle)
    keeper = fleet._leased["office"].keeper
    keeper.next_at = 500.0
    fleet.recheck("office")
    fleet.recheck("unknown")  # not leased here: nothing
    assert keeper.next_at == 100.0 and fleet._wake.ready()


def test_the_census_counts_every_live_instance_and_forgets_the_gone(clock):
    redis = FakeRedis()
    redis.members = {b"me", b"b", b"gone"}
    redis.answers = {("hgetall", "dashstream:presence:b"): {b"office": b"3", b"_control": b"0"},
                     ("hgetall", "dashstream:presence:gone"): {},
                     ("get", stream_key("office", "lease")): b"b"}
    fleet, _ = make(redis)
    fleet.lease(Stream(), run=Handle)
    counts, holders = fleet.census()
    assert counts == {"me": {"office": 2, "_control": 1}, "b": {"office": 3, "_control": 0}}
    assert holders == {"office": "b"}
    assert ("srem", (INSTANCES, "gone"), {}) in redis.calls


def test_presence_is_written_and_left(clock):
    redis = FakeRedis()
    fleet, _ = make(redis)
    fleet._write_presence()
    assert [call[0] for call in redis.calls] == ["hset", "pexpire", "set", "sadd"]
    assert redis.calls[0][2] == {"mapping": {"office": 2, "_control": 1}}
    assert redis.calls[1][1] == ("dashstream:presence:me", int(fleet_module.PRESENCE_TTL * 1000))
    # The named screens connected here, beside the counts, with the same expiry.
    assert redis.calls[2][1:] == (("dashstream:screens:presence:me", "{}"),
                                  {"px": int(fleet_module.PRESENCE_TTL * 1000)})
    redis.calls.clear()
    fleet.leave()
    assert [call[0] for call in redis.calls] == ["delete", "srem"] and fleet._stopping
    assert redis.calls[0][1] == ("dashstream:presence:me", "dashstream:screens:presence:me")


def test_the_screen_census_merges_every_live_instances_screens_oldest_first(clock):
    redis = FakeRedis()
    here = {"lobby": [{"address": "10.0.0.1", "since": 5.0, "instance": "me"}]}
    fleet = Fleet(redis, instance="me", lease_ttl=3.0, is_up=lambda: True, local_counts=dict,
                  local_screens=lambda: here)
    fleet._write_presence()
    assert redis.calls[2][1] == ("dashstream:screens:presence:me", json.dumps(here))
    redis.members = {b"me", b"them", b"gone", b"odd"}
    theirs = {"lobby": [{"address": "10.0.0.2", "since": 1.0, "instance": "them"}],
              "desk": [{"address": "10.0.0.3", "since": 2.0, "instance": "them"}, "not a row"]}
    redis.mget = lambda keys: (redis.calls.append(("mget", tuple(keys), {})) and None) or [
        None, b"not json", json.dumps(theirs).encode()]
    merged = fleet.screen_census(here)
    assert redis.calls[-1][1] == ("dashstream:screens:presence:gone", "dashstream:screens:presence:odd",
                                  "dashstream:screens:presence:them")
    assert merged == {"lobby": [{"address": "10.0.0.2", "since": 1.0, "instance": "them"},
                                {"address": "10.0.0.1", "since": 5.0, "instance": "me"}],
                      "desk": [{"address": "10.0.0.3", "since": 2.0, "instance": "them"}]}
    assert here == {"lobby": [{"address": "10.0.0.1", "since": 5.0, "instance": "me"}]}  # ours not changed
    redis.members = {b"me"}
    calls = len(redis.calls)
    assert fleet.screen_census(here) == here
    assert len(redis.calls) == calls  # alone: no MGET at all
