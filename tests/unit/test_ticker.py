"""Unit tests of the test-pattern source (producer/ticker.py): fixed ticks, no catch-up."""

from __future__ import annotations

import itertools

import pytest

from producer.base import UP, Health
from producer.ticker import Ticker


class Clock:
    """A clock that the ticker's own sleep advances, plus late starts the test injects."""

    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 6))
        self.now += seconds


def take(iterable, count):
    return list(itertools.islice(iterable, count))


def test_ticks_at_fixed_times_counting_up():
    clock = Clock()
    ticker = Ticker(rate=4, start=10, step=5, clock=clock, sleep=clock.sleep)
    assert take(ticker, 3) == [{"variable": 15}, {"variable": 20}, {"variable": 25}]
    assert clock.slept == [0.25, 0.25, 0.25] and clock.now == 100.75


def test_time_spent_between_ticks_is_not_added_to_the_interval():
    clock = Clock()
    ticks = iter(Ticker(rate=10, clock=clock, sleep=clock.sleep))
    next(ticks)
    clock.now += 0.04  # the consumer took 40 ms with the first value
    next(ticks)
    assert clock.slept == [0.1, 0.06]  # the second tick is still due 0.2 s after the start


def test_a_late_tick_is_sent_at_once_and_missed_ones_are_skipped():
    clock = Clock()
    ticks = iter(Ticker(rate=10, clock=clock, sleep=clock.sleep))
    assert next(ticks) == {"variable": 1}
    clock.now += 0.15  # half an interval late for the next tick: sent at once, no sleep
    assert next(ticks) == {"variable": 2} and clock.slept == [0.1]
    assert next(ticks) == {"variable": 3} and clock.slept == [0.1, 0.05]  # the fixed schedule holds
    clock.now += 0.1  # exactly one interval late: still sent at once, schedule kept
    assert next(ticks) == {"variable": 4} and clock.slept == [0.1, 0.05]
    assert next(ticks) == {"variable": 5} and clock.slept == [0.1, 0.05, 0.1]
    clock.now += 1.0  # ten intervals late: one value now, then the schedule restarts from now
    assert next(ticks) == {"variable": 6}
    assert next(ticks) == {"variable": 7}
    assert clock.slept[-1] == 0.1


def test_a_tick_exactly_due_does_not_sleep():
    clock = Clock()
    ticks = iter(Ticker(rate=10, clock=clock, sleep=clock.sleep))
    next(ticks)
    clock.now += 0.1  # the next tick is due this very instant
    next(ticks)
    assert clock.slept == [0.1]


def test_defaults_and_the_rate_check():
    ticker = Ticker()
    assert (ticker.rate, ticker.start, ticker.step) == (1.0, 0, 1)
    assert ticker.options == {"rate": 1.0, "start": 0, "step": 1}
    for rate in (0, -2, float("nan")):
        with pytest.raises(ValueError) as refused:
            Ticker(rate=rate)
        assert str(refused.value) == f"rate must be > 0, got {rate}"


def test_as_a_source_it_is_up_at_once_then_yields_values():
    clock = Clock()
    events = take(Ticker(rate=2, clock=clock, sleep=clock.sleep).events(), 3)
    assert isinstance(events[0], Health) and events[0].state == UP
    assert events[1:] == [{"variable": 1}, {"variable": 2}]


def test_a_trace_hears_every_tick_when_it_woke_and_every_skip(monkeypatch):
    clock = Clock()
    heard = []
    monkeypatch.setattr(Ticker, "trace", staticmethod(lambda due, at, kind: heard.append((kind, round(due, 6),
                                                                                          round(at, 6)))))
    ticks = iter(Ticker(rate=10, clock=clock, sleep=clock.sleep))
    next(ticks)
    clock.now += 1.0  # ten intervals late: the missed ticks are skipped, one value now
    next(ticks)
    assert heard == [("tick", 100.1, 100.1), ("skip", 100.2, 101.1), ("tick", 101.1, 101.1)]


def test_without_a_trace_a_ticker_records_nothing():
    assert Ticker.trace is None


def test_exactly_one_interval_late_on_exact_binary_times_keeps_the_schedule():
    clock = Clock()
    ticks = iter(Ticker(rate=4, clock=clock, sleep=clock.sleep))  # 0.25 s: exact in binary
    next(ticks)
    clock.now += 0.5  # the next tick (100.5) is now exactly one interval old: not dropped
    assert [next(ticks), next(ticks)] == [{"variable": 2}, {"variable": 3}]
    assert clock.slept == [0.25]  # both at once: the tick of 100.5 and the one due now
