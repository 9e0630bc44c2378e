"""The redis source as a producer, under eventlet, against a real redis-server."""

from __future__ import annotations

import os
import signal

import pytest

from tests.services import RedisServer
from tests.support import free_port, scaled

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.mark.alone  # a green ticker's largest gap, 0.3 s: judged with nothing beside it
def test_published_objects_and_numbers_arrive_and_bad_payloads_are_counted_not_fatal(redis_server, run_sources):
    source = run_sources({"orders": {"source": "redis", "url": redis_server.url, "channel": "orders"}}, ticker=0.05)
    source.wait_state("up")
    assert redis_server.publish("orders", '{"variable": 5, "unit": "orders"}') == 1
    for bad in ("not json", '{"no": "variable"}', '"a string"', '{"variable": NaN}', '{"variable": 1, "seq": 3}',
                b"\xff\xfe".decode("latin-1")):
        redis_server.publish("orders", bad)
    redis_server.publish("orders", "7.5")
    source.wait_for(lambda: len(source.values()) == 2, message="both good values")
    assert source.values() == [{"variable": 5, "unit": "orders"}, {"variable": 7.5}]
    rejected = source.wait_for(lambda: len(source.events("rejected")) == 6 and source.events("rejected"))
    assert rejected[-1]["count"] == 6
    assert "malformed JSON" in rejected[0]["reason"] and "no 'variable'" in rejected[1]["reason"]
    assert "set by the server" in rejected[4]["reason"]
    assert source.state() == "up"  # six bad messages later, still up
    # The log line about rejections is written once, not six times.
    assert source.stderr().count("rejected a value") == 1
    # A quiet subscription does not hold the hub: the ticker beside it kept its pace.
    assert source.max_tick_gap(span=1.0) < scaled(0.3)


def test_a_pattern_subscription_takes_matching_channels_only(redis_server, run_sources):
    source = run_sources({"regions": {"source": "redis", "url": redis_server.url, "pattern": "orders.*"}})
    source.wait_state("up")
    redis_server.publish("other", '{"variable": 1}')
    redis_server.publish("orders.eu", '{"variable": 2}')
    redis_server.publish("orders.us", "3")
    source.wait_for(lambda: len(source.values()) == 2, message="two matching messages")
    assert source.values() == [{"variable": 2}, {"variable": 3}]


def test_redis_killed_is_down_within_seconds_and_up_again_when_restarted_on_its_port(redis_server, run_sources):
    source = run_sources({"orders": {"source": "redis", "url": redis_server.url, "channel": "orders"}})
    source.wait_state("up")
    redis_server.publish("orders", "1")
    source.wait_value(lambda fields: fields == {"variable": 1})

    seen = len(source.events("health"))
    redis_server.kill()
    down = source.wait_state("down", after=seen, timeout=3)
    assert str(redis_server.port) in down["reason"]  # the reason names what could not be reached
    # While it is away the supervisor keeps retrying (and the source stays down, not crashing).
    source.wait_for(lambda: source.stderr().count("retrying in") >= 2, timeout=5, message="retries")

    redis_server.restart()
    source.wait_state("up", after=seen, timeout=scaled(35))
    source.wait_for(lambda: redis_server.subscribers("orders") == 1, message="resubscribed")
    redis_server.publish("orders", "2")
    source.wait_value(lambda fields: fields == {"variable": 2})


def test_a_redis_that_stops_answering_without_closing_the_socket_is_down_within_seconds(redis_server, run_sources):
    """SIGSTOP: the socket stays open and nothing answers, as with a host that vanished."""
    source = run_sources({"orders": {"source": "redis", "url": redis_server.url, "channel": "orders"}})
    source.wait_state("up")
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        down = source.wait_state("down", after=1, timeout=8)
        assert "PING" in down["reason"]
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    source.wait_state("up", after=2, timeout=scaled(40))


def test_after_a_reconnect_the_latest_key_is_read_so_the_screen_catches_up(run_sources):
    """Pub/sub loses what was published while away; a key the publisher keeps beside it is
    read after every (re)subscribe. Persistence on, so the key outlives the kill."""
    server = RedisServer(persist=True).start()
    try:
        server.command("SET", "orders:latest", '{"variable": 41}')
        source = run_sources({"orders": {"source": "redis", "url": server.url, "channel": "orders",
                                         "latest_key": "orders:latest"}})
        source.wait_value(lambda fields: fields == {"variable": 41})  # read at the first connect
        # Changed while the screen listens, without a PUBLISH: not seen now...
        server.command("SET", "orders:latest", '{"variable": 42}')
        server.kill()
        server.restart()
        # ...but read after the reconnect.
        source.wait_value(lambda fields: fields == {"variable": 42}, timeout=scaled(35))
        assert [fields["variable"] for fields in source.values()] == [41, 42]
    finally:
        server.stop()


def test_a_password_in_the_url_is_never_logged(run_sources):
    closed = free_port()  # nothing listens there: the source is down and logs why, repeatedly
    source = run_sources({"orders": {"source": "redis", "url_env": "ORDERS_REDIS_URL", "channel": "orders"}},
                         env={"ORDERS_REDIS_URL": f"redis://:hunter2secret@127.0.0.1:{closed}/0"})
    down = source.wait_state("down", after=1)
    source.wait_for(lambda: "failed" in source.stderr(), message="a failure logged")
    log = source.stop()
    assert "hunter2secret" not in log and "hunter2secret" not in down["reason"]
    assert "redis://:***@127.0.0.1" in log
