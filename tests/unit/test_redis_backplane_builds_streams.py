"""The Redis backplane builds shared streams through its factories (backplane/redis.py): the
log, what runs the source, and the tail's registry, set when the stream is made (no adopt)."""

from __future__ import annotations

import pytest

pytest.importorskip("redis")

from dashstream.backplane import make_backplane
from dashstream.backplane.lease import ContinuedSource, LeasedProducer
from dashstream.backplane.redis_keys import stream_key
from dashstream.backplane.redis_log import RedisLog
from dashstream.config.stream_specs import spec_from_table
from dashstream.streams.stream import SharedStream
from dashstream.streams.supervisor import Supervisor
from producer.ticker import Ticker

pytestmark = pytest.mark.timeout(10)


def built(table):
    backplane = make_backplane("redis://127.0.0.1:1/0", "me:1:ab")  # nothing listens there: never connects
    spec = spec_from_table("office", table, "test")
    stream = SharedStream("office", spec.source, log_factory=backplane.log_factory(spec),
                          runner=backplane.runner_factory(spec))
    return backplane, spec, stream


def test_a_producer_stream_gets_a_fenced_redis_log_a_leased_producer_and_is_tailed():
    backplane, _, stream = built({"source": "random-walk", "shared": True})
    assert isinstance(stream.log, RedisLog) and stream.log.fenced and stream.log.store is backplane
    assert stream.log.on_hole == stream.fanout.mark_missed and stream.log.on_entry == stream.fanout.deliver
    assert isinstance(stream.supervisor, LeasedProducer) and "office" in backplane.fleet
    assert backplane.streams == {"office": stream} and backplane._by_key == {stream_key("office", "log"): stream}


def test_a_publish_stream_gets_the_plain_supervisor_and_an_unfenced_log():
    backplane, _, stream = built({"source": "publish"})
    assert not stream.log.fenced and isinstance(stream.supervisor, Supervisor) and stream.supervisor.source.passive
    assert "office" not in backplane.fleet and backplane.streams == {"office": stream}


def test_the_lease_holder_runs_the_walk_under_a_supervisor_continuing_from_the_last_value():
    backplane, spec, stream = built({"source": "random-walk", "shared": True})
    supervisor = backplane._run(spec, stream, {"variable": 41})
    try:
        assert isinstance(supervisor, Supervisor) and isinstance(supervisor.source, ContinuedSource)
        assert supervisor.source.current.start == 41 and supervisor.running
        shared = []
        backplane._share_health = lambda stream_, state, reason, since: shared.append((state, reason))
        supervisor._set("down", "test")
        assert shared == [("down", "test")]  # the holder's states go to the whole fleet
    finally:
        supervisor.stop()


def test_another_counting_source_continues_too_but_is_not_restarted_on_a_refusal():
    backplane, spec, stream = built({"source": "ticker", "rate": 1})
    supervisor = backplane._run(spec, stream, {"variable": 9})
    try:
        assert isinstance(supervisor.source, Ticker) and supervisor.source.start == 9
        assert supervisor.on_value == stream.publish_from_source
    finally:
        supervisor.stop()
