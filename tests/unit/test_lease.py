"""Unit tests of the lease rules (dashstream/lease.py) with a fake clock, and of the
producer that runs under a lease. The real thing (instances killed with SIGKILL, Redis
killed) is in tests/services/test_backplane_fleet.py."""

from __future__ import annotations

import logging
import random

import pytest

from dashstream.backplane.lease import START, STOP, TAKEOVER_JITTER, LeasedProducer, LeaseKeeper, continued_options

pytestmark = pytest.mark.timeout(20)

TTL = 6.0


def keeper(seed: int = 1) -> LeaseKeeper:
    return LeaseKeeper(TTL, rng=random.Random(seed))


# --- one keeper --------------------------------------------------------------------------------------


def test_a_new_keeper_asks_at_once_and_needs_a_positive_ttl():
    k = keeper()
    assert k.due(0.0) and k.holding is False and k.holder is None and k.ttl == TTL and k.renew_every == 2.0
    assert LeaseKeeper(0.5).renew_every == pytest.approx(0.5 / 3)
    for ttl in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="ttl must be > 0"):
            LeaseKeeper(ttl)


def test_granted_starts_the_producer_once_and_renews_at_a_third_of_the_ttl():
    k = keeper()
    assert k.asked(10.0, True, me="a") == START
    assert k.holding and k.holder == "a" and k.next_at == 12.0
    assert not k.due(11.99) and k.due(12.0)
    assert k.asked(12.0, True, me="a") is None  # renewed: keep running
    assert k.next_at == 14.0


def test_another_holder_stops_ours_and_we_ask_again_when_its_lease_would_expire():
    k = keeper()
    k.asked(0.0, True, me="a")
    assert k.asked(2.0, False, holder="b", remaining=0.5) == STOP
    assert not k.holding and k.holder == "b"
    assert 2.5 <= k.next_at <= 2.5 + TAKEOVER_JITTER
    # not holding, refused again: nothing to stop; never waits longer than a third of the TTL
    assert k.asked(3.0, False, holder="b", remaining=30.0) is None
    assert 5.0 <= k.next_at <= 5.0 + TAKEOVER_JITTER


def test_a_lease_about_to_expire_is_asked_for_right_away():
    k = keeper()
    k.asked(1.0, False, holder="b", remaining=0.0)
    assert 1.0 <= k.next_at <= 1.0 + TAKEOVER_JITTER


def test_an_unknown_remaining_time_waits_a_third_of_the_ttl():
    for remaining in (None, -1.0, -2.0):
        k = keeper()
        k.asked(1.0, False, holder="b", remaining=remaining)
        assert 3.0 <= k.next_at <= 3.0 + TAKEOVER_JITTER


def test_no_answer_stops_a_holder_at_once_and_retries_later():
    k = keeper()
    k.asked(0.0, True, me="a")
    assert k.asked(2.0, None) == STOP and not k.holding and k.next_at == 4.0
    assert k.asked(4.0, None) is None and k.next_at == 6.0
    assert k.holder == "a"  # the last one seen


def test_backplane_down_stops_and_asks_as_soon_as_it_is_back():
    k = keeper()
    assert k.lost() is None
    k.asked(0.0, True, me="a")
    assert k.lost() == STOP and k.holding is False and k.due(0.0)


def test_recheck_asks_at_once_but_never_later_than_planned():
    k = keeper()
    k.asked(0.0, True, me="a")
    k.recheck(1.0)
    assert k.next_at == 1.0 and k.holding  # the answer decides, not the recheck
    k.recheck(1.5)
    assert k.next_at == 1.0


def test_the_jitter_comes_from_the_given_random_source():
    a, b = keeper(seed=5), keeper(seed=5)
    a.asked(0.0, False, holder="x", remaining=1.0)
    b.asked(0.0, False, holder="x", remaining=1.0)
    assert a.next_at == b.next_at and a.next_at != 1.0


# --- several instances against a model of the Redis scripts --------------------------------------------


class FakeRedisLease:
    """The LEASE script's semantics on a fake clock: SET NX PX, compare-and-renew."""

    def __init__(self):
        self.holder: str | None = None
        self.expires = 0.0

    def ask(self, now: float, me: str, ttl: float):
        if self.holder is not None and now >= self.expires:
            self.holder = None
        if self.holder in (None, me):
            self.holder, self.expires = me, now + ttl
            return True, me, ttl
        return False, self.holder, self.expires - now


def simulate(instances: list[str], until: float, dies: dict[str, float], step: float = 0.01):
    """Each instance runs its keeper; returns the producer timeline: (time, running set)."""
    redis = FakeRedisLease()
    keepers = {name: keeper(seed=index) for index, name in enumerate(instances)}
    running: set[str] = set()
    timeline = []
    now = 0.0
    while now < until:
        for name in instances:
            if name in dies and now >= dies[name]:
                running.discard(name)  # dead: it neither produces nor renews
                continue
            k = keepers[name]
            if k.due(now):
                action = k.asked(now, *redis.ask(now, name, TTL)[:1], holder=redis.holder,
                                 remaining=redis.expires - now, me=name)
                if action == START:
                    running.add(name)
                elif action == STOP:
                    running.discard(name)
        timeline.append((now, frozenset(running), redis.holder))
        now = round(now + step, 6)
    return timeline


def test_one_producer_at_a_time_and_a_dead_holder_is_replaced_within_the_ttl():
    timeline = simulate(["a", "b", "c"], until=30.0, dies={"a": 7.0})
    assert all(len(running) <= 1 for _, running, _ in timeline)
    first = next(running for _, running, _ in timeline if running)
    assert first == {"a"}
    # a renewed last at or before 7.0: someone else produces within TTL of that (+ jitter + a step)
    gap = [t for t, running, _ in timeline if t >= 7.0 and not running]
    assert gap and max(gap) - 7.0 <= TTL + TAKEOVER_JITTER + 0.02
    assert timeline[-1][1] in ({"b"}, {"c"})


def test_a_holder_paused_past_its_lease_finds_it_taken_and_stops():
    redis = FakeRedisLease()
    a, b = keeper(1), keeper(2)
    assert a.asked(0.0, *redis.ask(0.0, "a", TTL)[:1], me="a") == START
    # a's loop is stalled (a long pause) for longer than the TTL; b takes the expired lease
    granted, holder, remaining = redis.ask(7.0, "b", TTL)
    assert granted and b.asked(7.0, granted, me="b") == START
    # a wakes up and renews: the compare-and-renew refuses it
    granted, holder, remaining = redis.ask(7.5, "a", TTL)
    assert not granted and a.asked(7.5, granted, holder=holder, remaining=remaining, me="a") == STOP


# --- continuing a counter ------------------------------------------------------------------------------


def test_a_counting_source_continues_from_the_last_value():
    keys = ("shared", "min_wait", "start")
    assert continued_options(keys, {"min_wait": 0.1, "start": 0}, {"variable": 41})["start"] == 41
    assert continued_options(keys, {"start": 5}, None) == {"start": 5}
    for odd in ({"variable": 4.5}, {"variable": True}, {"variable": "7"}, {"other": 1}):
        assert continued_options(keys, {"start": 5}, odd) == {"start": 5}
    assert continued_options(("url",), {"url": "x"}, {"variable": 3}) == {"url": "x"}
    options = {"start": 1}
    continued_options(keys, options, {"variable": 2})
    assert options == {"start": 1}  # the spec's own options are left alone


# --- the producer under a lease ----------------------------------------------------------------------------


class Handle:
    def __init__(self, fail: bool = False):
        self.stopped = False
        self.values = 0
        self.fail = fail
        self.running = True

    def stop(self):
        self.stopped = True
        if self.fail:
            raise RuntimeError("boom")

    def note_value(self):
        self.values += 1


def producer():
    calls = {"register": 0, "release": 0, "run": [], "who": []}
    handles: list[Handle] = []

    def run(last):
        calls["run"].append(last)
        handles.append(Handle())
        return handles[-1]

    def register(p):
        calls["register"] += 1
        calls["who"].append(p)

    def release(p):
        calls["release"] += 1
        calls["who"].append(p)

    made = LeasedProducer("s", run, register=register, release=release)
    return made, calls, handles


def test_start_only_registers_and_the_producer_runs_between_begin_and_end():
    made, calls, handles = producer()
    assert made.name == "s" and made.started is False
    made.begin({"variable": 1})
    assert calls["run"] == [] and not made.running  # not started: the lease loop is ahead of us
    made.start()
    made.start()
    assert calls["register"] == 1 and calls["who"] == [made] and not made.running
    made.begin({"variable": 1})
    made.begin({"variable": 2})  # already running: no second producer
    assert calls["run"] == [{"variable": 1}] and made.running
    made.note_value()
    assert handles[0].values == 1
    made.end("lost")
    assert handles[0].stopped and not made.running
    made.note_value()  # nothing running: nothing to tell


def test_stop_gives_the_lease_back_only_if_it_ran_here(caplog):
    made, calls, handles = producer()
    made.start()
    made.stop()
    assert calls["release"] == 0
    made.stop()
    made.start()
    made.begin(None)
    with caplog.at_level(logging.INFO, logger="dashstream.backplane"):
        made.stop()
    assert calls["release"] == 1 and calls["who"] == [made, made, made] and handles[0].stopped
    assert made.started is False
    assert [r.getMessage() for r in caplog.records] == ["stream 's': producer stopped here (stopping)"]


def test_begin_says_so_and_a_handle_without_note_value_is_fine(caplog):
    class Bare:
        running = True

        def stop(self):
            pass

    made = LeasedProducer("s", lambda last: Bare(), register=lambda p: None, release=lambda p: None)
    made.start()
    with caplog.at_level(logging.INFO, logger="dashstream.backplane"):
        made.begin(None)
    made.note_value()
    assert [r.getMessage() for r in caplog.records] == [
        "stream 's': this instance holds the lease and runs its producer"]


def test_running_follows_the_handle():
    made, calls, handles = producer()
    made.start()
    made.begin(None)
    handles[0].running = False
    assert not made.running


def test_a_handle_that_fails_to_stop_is_logged_not_raised(caplog):
    made = LeasedProducer("s", lambda last: Handle(fail=True), register=lambda p: None, release=lambda p: None)
    made.start()
    made.begin(None)
    with caplog.at_level(logging.INFO, logger="dashstream.backplane"):
        made.end("lost")
    assert not made.running
    assert [r.getMessage() for r in caplog.records] == ["stream 's': producer stopped here (lost)",
                                                        "stream 's': stopping the producer failed"]
