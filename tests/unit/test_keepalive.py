"""Unit tests of dashstream/sessions/keepalive.py: ``Keepalive``'s schedule driven by a fake clock and
fake sessions, the watchdog clock, the heartbeat mode and the keepalive options."""

from __future__ import annotations

import pytest

from dashstream.config.options import parse_config
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


# --- the schedule -----------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeSession:
    """What Keepalive reads and calls on a session."""

    expects_pong = True

    def __init__(self, name: str):
        self.peer, self.path = name, "/"
        self.next_ping = self.ping_sent_at = self.last_pong = None
        self.pings = 0
        self.closed_with = None

    def ping(self):
        self.pings += 1

    def close(self, code, reason):
        self.closed_with = (code, reason)


class Ticking:
    """A Keepalive and its fake clock; ``tick()`` runs one pass at the clock's time."""

    def __init__(self, interval: float, timeout: float):
        self.clock = FakeClock()
        self.keepalive = Keepalive(interval, timeout, clock=self.clock)

    def tick(self):
        self.keepalive.tick(self.clock.now)


def keepalive_with_fakes(interval: float, timeout: float) -> tuple[Ticking, FakeClock]:
    ticking = Ticking(interval, timeout)
    return ticking, ticking.clock


def test_first_ping_one_interval_after_opening_then_every_interval():
    keepalive, clock = keepalive_with_fakes(20, 10)
    connection = FakeSession("a")
    keepalive.keepalive.add(connection)
    clock.now += 19.9
    keepalive.tick()
    assert connection.pings == 0
    clock.now += 0.1
    keepalive.tick()
    assert connection.pings == 1
    clock.now += 1
    connection.last_pong = clock.now  # answered
    keepalive.tick()
    clock.now += 18.9
    keepalive.tick()
    assert connection.pings == 1
    clock.now += 0.1
    keepalive.tick()
    assert connection.pings == 2 and connection.closed_with is None


def test_unanswered_ping_closes_with_1011_after_the_timeout():
    keepalive, clock = keepalive_with_fakes(20, 10)
    silent, answering = FakeSession("silent"), FakeSession("answering")
    keepalive.keepalive.add(silent)
    keepalive.keepalive.add(answering)
    clock.now += 20
    keepalive.tick()
    assert silent.pings == answering.pings == 1
    silent.last_pong = clock.now - 5  # a pong from *before* the ping does not count
    answering.last_pong = clock.now + 0.01
    clock.now += 9.9
    keepalive.tick()
    assert silent.closed_with is None
    clock.now += 0.1
    keepalive.tick()
    assert silent.closed_with == (1011, "keepalive ping timeout")
    assert answering.closed_with is None
    assert keepalive.keepalive.tracked == 1  # the silent one is no longer tracked; the other still is


def test_one_ping_outstanding_at_a_time():
    keepalive, clock = keepalive_with_fakes(1, 5)
    connection = FakeSession("slow")
    keepalive.keepalive.add(connection)
    for _ in range(5):  # ping at t=1, then four intervals without an answer
        clock.now += 1
        keepalive.tick()
    assert connection.pings == 1  # no pile of pings to a peer that has not answered the first
    clock.now += 1
    keepalive.tick()
    assert connection.closed_with == (1011, "keepalive ping timeout")


def test_discard_stops_tracking():
    ticking, clock = keepalive_with_fakes(1, 1)
    keepalive = ticking.keepalive
    connection = FakeSession("gone")
    keepalive.add(connection)
    keepalive.discard(connection)
    keepalive.discard(connection)  # idempotent
    assert keepalive.tracked == 0
    clock.now += 5
    ticking.tick()
    assert connection.pings == 0  # a discarded session is never pinged


def test_ten_thousand_sessions_cost_a_tick_only_when_due():
    """The schedule is two queues: a tick before anyone is due touches nobody."""
    ticking, clock = keepalive_with_fakes(20, 20)
    sessions = [FakeSession(str(i)) for i in range(10_000)]
    for session in sessions:
        ticking.keepalive.add(session)
    clock.now += 19.99
    ticking.tick()
    assert sum(session.pings for session in sessions) == 0
    clock.now += 0.02
    ticking.tick()
    assert all(session.pings == 1 for session in sessions)


# --- the options ----------------------------------------------------------------------


def test_option_defaults_and_ping_interval_zero_turns_pings_off():
    config = parse_config([], environ={})
    assert (config.ping_interval, config.ping_timeout, config.write_timeout) == (20.0, 20.0, 10.0)
    assert parse_config(["--ping-interval", "0"], environ={}).ping_interval == 0
    assert parse_config([], environ={"DASHSTREAM_PING_INTERVAL": "0"}).ping_interval == 0
    assert parse_config([], environ={"DASHSTREAM_WRITE_TIMEOUT": "2.5"}).write_timeout == 2.5


def test_the_lag_sweep_runs_every_lag_interval_and_drops_the_sessions_that_are_done():
    now = [0.0]

    class Lagging:
        def __init__(self, stays: bool):
            self.stays = stays
            self.checks: list[float] = []

        def check_lag(self, at: float) -> bool:
            self.checks.append(at)
            return self.stays

    watchdog = Watchdog(resolution=0.1, clock=lambda: now[0], sleep=lambda _: None, lag_interval=0.5)
    behind, caught_up = Lagging(True), Lagging(False)
    watchdog.track_lag(behind)
    watchdog.track_lag(caught_up)
    for step in range(1, 11):  # ten ticks of 0.1 s: sweeps at 0.5 and 1.0 only
        now[0] = step / 10
        watchdog.tick()
    assert behind.checks == [0.5, 1.0]
    assert caught_up.checks == [0.5]  # found caught up at the first sweep: off the list


def test_each_tick_counts_itself_and_reads_the_wall_clock_once_for_the_sessions_lag_marks():
    walls = iter([100.0, 100.25, 100.5])
    watchdog = Watchdog(resolution=0.1, clock=lambda: 0.0, sleep=lambda _: None, wall_clock=lambda: next(walls))
    assert (watchdog.ticks, watchdog.wall) == (0, 100.0)
    watchdog.tick()
    assert (watchdog.ticks, watchdog.wall) == (1, 100.25)
    watchdog.tick()
    assert (watchdog.ticks, watchdog.wall) == (2, 100.5)
