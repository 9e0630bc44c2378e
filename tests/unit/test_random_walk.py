"""Unit tests of the default source, the random walk (producer/random_walk.py), driven by a
seeded generator and a recording sleep.

Mutation testing (README, "Development"): 66 of 67 mutants killed; the one left is
equivalent: ``waits = None`` for ``waits = False`` (only its truth is read)."""

from __future__ import annotations

import itertools
import random

import pytest

from producer.base import UP, Health
from producer.keys import ConfigProblem
from producer.random_walk import RandomWalk


def walk(**options):
    slept = []
    return RandomWalk(rng=random.Random(42), sleep=slept.append, **options), slept


def take(iterable, count):
    return list(itertools.islice(iterable, count))


def test_the_tutorials_walk_by_default():
    producer, slept = walk()
    values = [m["variable"] for m in take(producer, 500)]
    steps = [b - a for a, b in zip([0] + values, values)]
    assert min(steps) == 1 and max(steps) == 10  # every step in [1, 10], both ends reached
    assert all(0 <= wait < 1 for wait in slept) and len(slept) == 499  # none before the first
    assert min(slept) < 0.05 and max(slept) > 0.95  # the whole window is used
    assert (producer.min_wait, producer.max_wait, producer.min_step, producer.max_step, producer.start) == (
        0.0, 1.0, 1, 10, 0)


def test_each_message_is_the_running_total_and_only_variable():
    producer, _ = walk(start=100, min_step=3, max_step=3)
    assert take(producer, 3) == [{"variable": 103}, {"variable": 106}, {"variable": 109}]


def test_waits_and_steps_follow_the_options():
    producer, slept = walk(min_wait=0.5, max_wait=0.5, min_step=0, max_step=2)
    values = [m["variable"] for m in take(producer, 300)]
    assert slept == [0.5] * 299
    assert set(b - a for a, b in zip([0] + values, values)) == {0, 1, 2}


@pytest.mark.parametrize("draw, step", [(0.0, 2), (0.25, 3), (0.5, 5), (0.9999999, 7)])
def test_the_wait_and_the_step_are_min_plus_a_fraction_of_their_window(draw, step):
    class Fixed(random.Random):
        def random(self):
            return draw

    slept = []
    producer = RandomWalk(min_wait=1.0, max_wait=3.0, min_step=2, max_step=7, rng=Fixed(), sleep=slept.append)
    assert take(producer, 2) == [{"variable": step}, {"variable": 2 * step}]
    assert slept == [1.0 + 2.0 * draw]  # the first value at once, then the wait


@pytest.mark.parametrize("options, message", [
    ({"min_wait": 2.0, "max_wait": 1.0}, "need 0 <= min_wait <= max_wait, got 2.0, 1.0"),
    ({"min_wait": -1.0}, "need 0 <= min_wait <= max_wait, got -1.0, 1.0"),
    ({"min_step": 5, "max_step": 4}, "need 0 <= min_step <= max_step, got 5, 4"),
    ({"min_step": -1}, "need 0 <= min_step <= max_step, got -1, 10"),
])
def test_bad_bounds_are_refused(options, message):
    with pytest.raises(ValueError) as refused:
        RandomWalk(**options)
    assert str(refused.value) == message


def test_equal_bounds_are_fine():
    producer, slept = walk(min_wait=0.0, max_wait=0.0, min_step=0, max_step=0)
    assert take(producer, 2) == [{"variable": 0}, {"variable": 0}] and slept == [0.0]


def test_the_config_check_names_the_low_key():
    RandomWalk.check({"min_wait": 1, "max_wait": 1, "min_step": 2})
    with pytest.raises(ConfigProblem) as problem:
        RandomWalk.check({"min_step": 5, "max_step": 2})
    assert (problem.value.key, problem.value.reason) == ("min_step", "min_step (5) must not exceed max_step (2)")
    with pytest.raises(ConfigProblem) as problem:
        RandomWalk.check({"min_wait": 0.5, "max_wait": 0.25})
    assert problem.value.key == "min_wait"


def test_as_a_source_it_is_up_at_once_then_yields_values():
    producer, _ = walk(min_step=1, max_step=1)
    events = take(producer.events(), 3)
    assert isinstance(events[0], Health) and events[0].state == UP
    assert events[1:] == [{"variable": 1}, {"variable": 2}]
    assert producer.options == {"min_wait": 0.0, "max_wait": 1.0, "min_step": 1, "max_step": 1, "start": 0}
