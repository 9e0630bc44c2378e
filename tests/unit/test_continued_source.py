"""The leased producer's source for a walk (backplane/lease.py ContinuedSource): it continues
from the stream's last value, and a value the log refused is not skipped."""

from __future__ import annotations

import itertools

import pytest

from dashstream.backplane.lease import ContinuedSource
from producer.base import UP, Health, Source
from producer.keys import Key, integer

pytestmark = pytest.mark.timeout(10)


class Counter(Source):
    """Counts up by one from ``start``; remembers every instance made."""

    kind = "counter"
    keys = (Key("start", integer, "first value minus one"),)
    made: list["Counter"] = []

    def __init__(self, start: int = 0, secret: str = "pw"):
        self.start = start
        self.secret = secret
        self.closed = False
        Counter.made.append(self)

    def events(self):
        yield Health(UP)
        for value in itertools.count(self.start + 1):
            yield {"variable": value}

    def close(self):
        self.closed = True

    def describe(self):
        return f"counter from {self.start}"

    @property
    def secrets(self):
        return (self.secret,)


@pytest.fixture(autouse=True)
def fresh():
    Counter.made = []


def values(events, count):
    return [event["variable"] for event in itertools.islice((e for e in events if isinstance(e, dict)), count)]


def test_it_starts_from_the_streams_last_value():
    source = ContinuedSource(Counter, {}, {"variable": 41}, sleep=lambda seconds: None)
    assert values(source.events(), 2) == [42, 43]
    assert ContinuedSource(Counter, {"start": 5}, None, sleep=lambda s: None).current.start == 5


def test_a_refused_value_starts_the_source_again_from_the_last_published_one_after_the_retry_pause():
    slept = []
    published = []

    def publish(fields):  # the log takes 1 and 2, refuses 3 (a Redis timeout), then takes all
        if fields["variable"] == 3 and not slept:
            return None
        published.append(fields["variable"])
        return "entry"

    source = ContinuedSource(Counter, {}, None, sleep=slept.append)
    on_value = source.publisher(publish)
    events = source.events()
    seen = []
    for event in events:
        seen.append(event)
        if isinstance(event, dict):
            on_value(event)
        if len(published) == 4:
            break
    assert published == [1, 2, 3, 4]  # one walk: nothing missing, nothing repeated
    assert slept == [ContinuedSource.RETRY] and len(Counter.made) == 2
    assert Counter.made[0].closed and not Counter.made[1].closed and Counter.made[1].start == 2
    assert seen.count(Health(UP)) == 2 and source.last_fields == {"variable": 4}


def test_it_speaks_for_the_source_it_runs():
    source = ContinuedSource(Counter, {}, {"variable": 7}, sleep=lambda s: None, retry=0.5)
    assert (source.kind, source.passive, source.retry) == ("counter", False, 0.5)
    assert source.describe() == "counter from 7" and source.secrets == ("pw",)
    source.close()
    assert Counter.made[0].closed


def test_a_source_that_ends_ends_the_run():
    class Two(Counter):
        def events(self):
            yield {"variable": 1}

    source = ContinuedSource(Two, {}, None, sleep=lambda s: None)
    assert list(source.events()) == [{"variable": 1}]
