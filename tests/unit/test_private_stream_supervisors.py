"""A private stream runs each client's source under a supervisor of its own (streams/stream.py),
driven here with a fake spawn: no eventlet loop, no waiting."""

from __future__ import annotations

import json
import logging

import pytest

from dashstream.streams import stream as stream_module
from dashstream.streams.stream import PrivateStream, _ClientThread
from producer.base import DOWN, UP, Health, Rejected, Source

pytestmark = pytest.mark.timeout(10)


class Scripted(Source):
    """A source that yields what the test put in ``script``."""

    kind = "scripted"

    def __init__(self, script):
        self.script = script
        self.closed = 0

    def events(self):
        yield from self.script

    def close(self):
        self.closed += 1


class FakeSession:
    def __init__(self, control=False):
        self.control = control
        self.subscriptions = []
        self.entries = []
        self.controls = []

    def send_entry(self, entry, subscription, gap=False):
        self.entries.append((json.loads(entry.text), gap))

    def send_backlog(self, entries, subscription, gap=False):
        raise AssertionError("a private stream has no backlog")

    def send_control(self, message):
        self.controls.append(json.loads(message.text))


class FakeThread:
    def __init__(self, function):
        self.function = function
        self.dead = False
        self.killed = 0

    def kill(self):
        self.killed += 1
        self.dead = True


@pytest.fixture
def spawned(monkeypatch):
    threads: list[FakeThread] = []

    def spawn(function, *args):
        threads.append(FakeThread(lambda: function(*args)))
        return threads[-1]

    monkeypatch.setattr(stream_module.runtime, "spawn", spawn)
    monkeypatch.setattr(stream_module.runtime, "getcurrent", lambda: None)
    return threads


def private(script_for, **options) -> PrivateStream:
    return PrivateStream("walk", "scripted", lambda: Scripted(script_for()), **options)


def test_every_client_gets_its_own_supervisor_its_own_numbering_and_one_green_thread(spawned):
    stream = private(lambda: [Health(UP), {"variable": 1}, {"variable": 2}])
    first, second = FakeSession(), FakeSession()
    stream.subscribe(first)
    stream.subscribe(second)
    assert len(spawned) == 2 and stream.producers == 2 and stream.subscriber_count == 2
    supervisor = stream._supervisors[first.subscriptions[0]]
    assert supervisor is not stream._supervisors[second.subscriptions[0]]
    assert supervisor.source is not stream._supervisors[second.subscriptions[0]].source
    for event in supervisor.source.events():
        supervisor._handle(event)
    assert [m["variable"] for m, _ in first.entries] == [1, 2]
    assert [m["seq"] for m, _ in first.entries] == [1, 2]
    assert first.entries[0][1] is False and second.entries == []


def test_values_reach_only_their_client_and_count_in_metrics(spawned):
    passes = []
    stream = private(lambda: [], on_delivery=lambda entry: passes.append(entry.seq))
    session = FakeSession()
    subscription = stream.subscribe(session)
    supervisor = stream._supervisors[subscription]
    supervisor._handle({"variable": 5, "unit": "kW"})
    supervisor._handle({"variable": 6})
    assert [(m["variable"], m["seq"]) for m, _ in session.entries] == [(5, 1), (6, 2)]
    assert passes == [1, 2]


def test_rejections_are_counted_once_in_the_stream_and_logged_by_the_supervisor(spawned, caplog):
    caplog.set_level(logging.WARNING, "dashstream.supervisor")
    stream = private(lambda: [])
    session = FakeSession()
    supervisor = stream._supervisors[stream.subscribe(session)]
    supervisor._handle(Rejected("malformed JSON"))
    supervisor._handle({"no": "variable"})
    supervisor._handle({"variable": float("nan")})  # the log cannot encode it
    assert stream.stats.rejected == 3 and stream.describe()["rejected"] == 3 and session.entries == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "rejected a value (1 so far; logged at most once a minute): malformed JSON" in lines[0]


def test_the_start_and_the_first_up_are_no_news_a_failure_and_recovery_are_told_to_that_client_only(spawned):
    stream = private(lambda: [])
    watching, other = FakeSession(control=True), FakeSession(control=True)
    supervisor = stream._supervisors[stream.subscribe(watching)]
    stream.subscribe(other)
    supervisor._handle(Health(UP))
    assert watching.controls == [] and other.controls == []
    supervisor._handle(Health(DOWN, "no rows"))
    supervisor._handle(Health(DOWN, "no rows"))
    supervisor._handle({"variable": 1})
    assert [(c["control"], c["stream"], c["state"], c["reason"]) for c in watching.controls] == [
        ("source", "walk", DOWN, "no rows"), ("source", "walk", UP, "")]
    assert watching.controls[0]["since"] == pytest.approx(supervisor.since, abs=60)
    assert other.controls == [] and stream.state == UP  # the stream's own state is not the client's


def test_private_supervisors_do_not_log_each_client_coming_up(spawned, caplog):
    caplog.set_level(logging.INFO, "dashstream.supervisor")
    stream = private(lambda: [])
    for _ in range(3):
        stream._supervisors[stream.subscribe(FakeSession())]._handle(Health(UP))
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


def test_leaving_stops_that_clients_supervisor_and_closes_its_source(spawned):
    stream = private(lambda: [])
    session = FakeSession()
    subscription = stream.subscribe(session)
    supervisor = stream._supervisors[subscription]
    stream.unsubscribe(subscription)
    assert spawned[0].killed == 1 and supervisor.source.closed == 1
    assert stream.producers == 0 and stream.subscriber_count == 0
    stream.unsubscribe(subscription)  # twice: nothing more
    assert spawned[0].killed == 1


def test_stop_ends_every_client(spawned):
    stream = private(lambda: [])
    for _ in range(3):
        stream.subscribe(FakeSession())
    stream.stop()
    assert [thread.killed for thread in spawned] == [1, 1, 1] and stream.producers == 0


def test_a_client_thread_never_kills_the_thread_that_stops_it(monkeypatch):
    thread = FakeThread(lambda: None)
    monkeypatch.setattr(stream_module.runtime, "spawn", lambda function: thread)
    current = [thread]
    monkeypatch.setattr(stream_module.runtime, "getcurrent", lambda: current[0])
    handle = _ClientThread(lambda: None)
    handle.kill()  # its own value found the client gone: the teardown goes on, the loop ends by itself
    assert thread.killed == 0
    current[0] = None
    handle.kill()
    assert thread.killed == 1
    handle.kill()  # dead already
    assert thread.killed == 1


def test_a_supervisor_stopped_by_its_own_value_ends_its_loop_after_that_value(spawned):
    stream = private(lambda: [Health(UP), {"variable": 1}, {"variable": 2}])
    session = FakeSession()
    subscription = stream.subscribe(session)
    session.send_entry = lambda entry, sub, gap=False: stream.unsubscribe(subscription)
    supervisor = stream._supervisors[subscription]
    supervisor._run()  # returns: no retry, no second value
    assert supervisor._stopping and supervisor.source.closed >= 1


def test_a_configured_private_walk_sleeps_on_the_millisecond_grid_with_its_options(spawned):
    from dashstream import runtime
    from dashstream.config.options import parse_config
    from dashstream.streams.stream import streams_from_config

    config = parse_config(["--stream", "own=random-walk"], environ={})
    stream = streams_from_config(config)["own"]
    assert isinstance(stream, PrivateStream)
    first, second = FakeSession(), FakeSession()
    walks = [stream._supervisors[stream.subscribe(session)].source for session in (first, second)]
    assert walks[0] is not walks[1] and all(walk._sleep == runtime.sleep_on_millisecond for walk in walks)
    assert (walks[0].min_wait, walks[0].max_wait, walks[0].min_step, walks[0].max_step) == (0.0, 1.0, 1, 10)
    # One generator for every walk (a Random each was 2.5 KB per client), their values still
    # independent draws of it.
    assert walks[0]._rng is walks[1]._rng is stream_module._WALK_RNG


@pytest.mark.parametrize(("max_wait", "step_ms"), [("0.01", 1), ("0.4", 2), ("1.0", 5), ("60", 5)])
def test_a_private_walks_grid_follows_its_longest_wait(spawned, tmp_path, max_wait, step_ms):
    from dashstream import runtime
    from dashstream.config.options import parse_config
    from dashstream.streams.stream import streams_from_config

    path = tmp_path / "streams.toml"
    path.write_text(f'[streams.own]\nsource = "random-walk"\nshared = false\nmax_wait = {max_wait}\n')
    config = parse_config(["--config", str(path)], environ={})
    stream = streams_from_config(config)["own"]
    walk = stream._supervisors[stream.subscribe(FakeSession())].source
    assert walk.max_wait == float(max_wait) and walk._sleep is runtime.grid_sleep(step_ms)


@pytest.mark.parametrize(("longest_wait", "step_ms"), [
    (0.0, 1), (0.001, 1), (0.2, 1), (0.399, 1), (0.4, 2), (0.6, 3), (0.999, 4), (1.0, 5), (1.2, 5), (3600.0, 5)])
def test_the_grid_step_is_a_two_hundredth_of_the_longest_wait_between_1_and_5_ms(longest_wait, step_ms):
    assert stream_module.grid_step_ms(longest_wait) == step_ms
