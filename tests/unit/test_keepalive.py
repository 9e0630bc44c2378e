"""Unit tests of the watchdog clock and the keepalive's heartbeat mode (dashstream/keepalive.py)."""

from __future__ import annotations

import pytest

from dashstream.sessions.keepalive import Keepalive, Watchdog


class Clock:
    def __init__(self):
        self.now = 50.0

    def __call__(self):
        return self.now


class Session:
    def __init__(self, expects_pong=True):
        self.expects_pong = expects_pong
        self.next_ping = self.ping_sent_at = self.last_pong = None
        self.peer, self.path = "p", "/"
        self.pings = 0
        self.checked: list[float] = []
        self.closed_with = None

    def ping(self):
        self.pings += 1

    def close(self, code, reason):
        self.closed_with = (code, reason)

    def check_deadlines(self, now):
        self.checked.append(now)


def test_a_tick_runs_every_keepalive_and_checks_only_watched_sessions():
    clock = Clock()
    first, second = Keepalive(1, 1, clock=clock), Keepalive(2, 2, clock=clock)
    watchdog = Watchdog(resolution=0.1, clock=clock, sleep=lambda s: None, keepalives=(first, None, second))
    assert watchdog.keepalives == (first, second)
    a, b, watched = Session(), Session(expects_pong=False), Session()
    first.add(a)
    second.add(b)
    watchdog.watch(watched)
    watchdog.watch(watched)
    assert watchdog.watched == 1
    clock.now += 2
    watchdog.tick()
    assert (a.pings, b.pings) == (1, 1) and watched.checked == [52.0] and a.checked == []
    watchdog.unwatch(watched)
    watchdog.unwatch(watched)  # idempotent
    watchdog.tick()
    assert watched.checked == [52.0] and watchdog.watched == 0


def test_a_heartbeat_expects_no_answer_and_never_times_out():
    clock = Clock()
    heartbeat = Keepalive(15, 15, clock=clock)
    session = Session(expects_pong=False)
    heartbeat.add(session)
    for _ in range(5):
        clock.now += 15
        heartbeat.tick(clock.now)
    assert session.pings == 5 and session.closed_with is None and session.ping_sent_at is None


def test_the_loop_sleeps_the_resolution_and_outlives_a_failing_pass():
    clock, slept = Clock(), []
    watchdog = Watchdog(resolution=0.25, clock=clock, sleep=slept.append)

    class Broken(Session):
        def check_deadlines(self, now):
            if len(slept) == 3:
                watchdog.running = False
            raise RuntimeError("a bug in one pass")

    watchdog.watch(Broken())
    watchdog.run()
    assert slept == [0.25, 0.25, 0.25]


def test_a_keepalive_needs_positive_periods():
    for interval, timeout in ((0, 1), (1, 0), (-1, 5)):
        with pytest.raises(ValueError):
            Keepalive(interval, timeout, clock=Clock())
    assert Keepalive(20, 10, clock=Clock()).resolution == 1.0


def test_a_session_past_its_timeout_is_counted_in_metrics():
    class Metrics:
        timeouts = 0

        def keepalive_timeout(self):
            self.timeouts += 1

    clock, metrics = Clock(), Metrics()
    keepalive = Keepalive(1, 2, clock=clock, metrics=metrics)
    session = Session()
    keepalive.add(session)
    for _ in range(4):
        clock.now += 1
        keepalive.tick(clock.now)
    assert session.closed_with == (1011, "keepalive ping timeout") and metrics.timeouts == 1
    assert keepalive.tracked == 0


def test_ended_and_answered_sessions_do_not_stop_the_tick_for_the_others():
    clock = Clock()
    keepalive = Keepalive(1, 1, clock=clock)
    ended, answered, silent = Session(), Session(), Session()
    for session in (ended, answered, silent):
        keepalive.add(session)
    clock.now += 1
    keepalive.tick(clock.now)  # all three pinged
    keepalive.discard(ended)
    answered.last_pong = answered.ping_sent_at  # a pong stamped in the same instant counts
    clock.now += 1
    keepalive.tick(clock.now)
    assert silent.closed_with == (1011, "keepalive ping timeout") and answered.closed_with is None
    assert (ended.pings, answered.pings) == (1, 2)  # the ended one is skipped, the others go on


def test_an_unanswered_ping_holds_back_only_its_own_session():
    clock = Clock()
    keepalive = Keepalive(1, 5, clock=clock)
    slow, quick = Session(), Session()
    keepalive.add(slow)
    keepalive.add(quick)
    clock.now += 1
    keepalive.tick(clock.now)
    quick.last_pong = clock.now + 0.5
    clock.now += 1
    keepalive.tick(clock.now)
    assert (slow.pings, quick.pings) == (1, 2)
    slow.last_pong = slow.ping_sent_at  # answered at the very instant: counts
    clock.now += 1
    keepalive.tick(clock.now)
    assert slow.pings == 2


def test_a_pong_older_than_the_ping_does_not_count(caplog):
    clock = Clock()
    keepalive = Keepalive(1, 1, clock=clock)
    session = Session()
    keepalive.add(session)
    clock.now += 1
    keepalive.tick(clock.now)
    session.last_pong = session.ping_sent_at - 0.001
    clock.now += 1
    with caplog.at_level("WARNING", logger="dashstream.connection"):
        keepalive.tick(clock.now)
    assert session.closed_with is not None
    assert caplog.messages == ["keepalive ping timeout peer=p path=/: no pong within 1s"]


def test_bad_periods_are_explained():
    with pytest.raises(ValueError) as refused:
        Keepalive(0, 3, clock=Clock())
    assert str(refused.value) == "need interval > 0 and timeout > 0, got 0, 3"


def test_a_failing_pass_is_logged(caplog):
    clock = Clock()
    watchdog = Watchdog(resolution=0.1, clock=clock, sleep=lambda s: setattr(watchdog, "running", False))

    class Broken(Session):
        def check_deadlines(self, now):
            raise RuntimeError("bug")

    watchdog.watch(Broken())
    with caplog.at_level("ERROR", logger="dashstream.connection"):
        watchdog.run()
    assert caplog.messages == ["watchdog pass failed"]


def test_a_session_that_ended_with_a_ping_outstanding_is_left_alone():
    clock = Clock()
    keepalive = Keepalive(1, 1, clock=clock)
    session = Session()
    keepalive.add(session)
    clock.now += 1
    keepalive.tick(clock.now)
    keepalive.discard(session)  # it closed before the answer could come
    clock.now += 2
    keepalive.tick(clock.now)
    assert session.closed_with is None and session.pings == 1
