"""The zmq source as a producer, under eventlet, against a PUB socket in another process."""

from __future__ import annotations

import pytest

from tests.services import ZmqPublisher
from tests.support import scaled

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def publisher():
    process = ZmqPublisher().start()
    yield process
    process.stop()


@pytest.mark.alone  # a green ticker's largest gap, 0.3 s: judged with nothing beside it
def test_topic_frames_and_bare_frames_arrive_and_the_topic_filters(publisher, run_sources):
    source = run_sources({
        "temp": {"source": "zmq", "url": publisher.url, "topic": "temp"},
        "all": {"source": "zmq", "url": publisher.url},
    }, ticker=0.05)
    source.wait_state("up", stream="temp")
    publisher.send(["temp.kitchen", '{"variable": 21.5, "unit": "C"}'])
    source.wait_value(lambda fields: fields == {"variable": 21.5, "unit": "C"}, stream="temp")
    publisher.send(["humidity", "40"])
    source.wait_value(lambda fields: fields == {"variable": 40}, stream="all")
    publisher.send(['{"variable": 7}'])  # one frame: matched by the "" subscription only
    source.wait_value(lambda fields: fields == {"variable": 7}, stream="all")
    assert {fields["variable"] for fields in source.values("temp")} == {21.5}
    # Waiting on green sockets does not hold the hub.
    assert source.max_tick_gap(span=1.0) < scaled(0.3)


def test_bad_frames_are_counted_and_the_stream_goes_on(publisher, run_sources):
    source = run_sources({"all": {"source": "zmq", "url": publisher.url}})
    source.wait_state("up")
    publisher.send(["t", "not json"])
    source.wait_for(lambda: source.events("rejected"), message="a rejection")
    publisher.send(["a", "b", "c"])
    source.wait_for(lambda: any("3 frames" in event["reason"] for event in source.events("rejected")),
                    message="the three-frame message rejected")
    publisher.send(["t", "5"])
    source.wait_value(lambda fields: fields == {"variable": 5})
    assert source.state() == "up"
    assert source.events("rejected")[-1]["count"] >= 2


def test_a_stopped_publisher_makes_the_stream_stale_and_a_new_one_brings_it_back(publisher, run_sources):
    source = run_sources({"sensors": {"source": "zmq", "url": publisher.url, "topic": "", "stale_after": 1.0}})
    publisher.send(["temp", "1"])
    source.wait_value(lambda fields: fields == {"variable": 1})
    seen = len(source.events("health"))
    publisher.stop()
    stale = source.wait_state("stale", after=seen, timeout=3)
    assert stale["reason"] == "no new value for 1 s"
    assert source.events("value")[-1]["t"] + 0.9 <= stale["t"]

    replacement = ZmqPublisher(port=publisher.port).start()
    try:
        replacement.send(["temp", "2"])
        source.wait_value(lambda fields: fields == {"variable": 2}, timeout=10)
        assert source.state() == "up"
    finally:
        replacement.stop()
