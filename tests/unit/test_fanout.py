"""Unit tests of the fan-out: one pass per entry, in log order, no duplicate, no hole."""

from __future__ import annotations

import pytest

from dashstream.messages import encode_fields
from dashstream.streams.fanout import Fanout, Subscription
from dashstream.streams.log import MemoryLog, Resume

pytestmark = pytest.mark.timeout(20)


class FakeSession:
    """Records what the fan-out hands it."""

    def __init__(self):
        self.received: list[tuple[int, bool]] = []  # (seq, gap)
        self.subscriptions = []

    def send_entry(self, entry, subscription, gap=False):
        assert subscription in self.subscriptions or subscription.session is self
        self.by = subscription
        self.received.append((entry.seq, gap))

    def send_backlog(self, entries, subscription, gap=False):
        for index, entry in enumerate(entries):
            self.received.append((entry.seq, gap and index == 0))


class Stream:
    def __init__(self, fanout):
        self.fanout = fanout
        self.log = MemoryLog("s", epoch="E", on_entry=fanout.deliver)

    def publish(self, value):
        return self.log.append(encode_fields({"variable": value}))

    def subscribe(self, resume=None):
        session = FakeSession()
        subscription = Subscription(session, self)
        subscription.backlog(*self.log.backlog(resume))
        self.fanout.add(subscription)
        return session, subscription


def seqs(session):
    return [seq for seq, _ in session.received]


def test_every_subscriber_gets_every_entry_once_in_order():
    stream = Stream(Fanout())
    sessions = [stream.subscribe()[0] for _ in range(50)]
    for value in range(5):
        stream.publish(value)
    assert all(seqs(session) == [1, 2, 3, 4, 5] for session in sessions)


def test_a_pass_yields_to_the_hub_every_n_writes():
    pauses = []
    fanout = Fanout(yield_every=10, pause=lambda: pauses.append(1))
    stream = Stream(fanout)
    for _ in range(35):
        stream.subscribe()
    stream.publish(1)
    assert len(pauses) == 3


def test_entries_published_during_a_yielded_pass_follow_in_order():
    """A second publisher arriving while a pass is yielded must not overtake it."""
    stream = None
    published_during_pause = []

    def pause():
        if not published_during_pause:
            published_during_pause.append(stream.publish("second"))

    stream = Stream(Fanout(yield_every=2, pause=pause))
    sessions = [stream.subscribe()[0] for _ in range(5)]
    stream.publish("first")
    assert all(seqs(session) == [1, 2] for session in sessions)


def test_a_subscriber_joining_during_a_pass_gets_no_duplicate_and_no_hole():
    joined = []
    stream = None

    def pause():
        if not joined:  # while entry 1's pass is yielded: entry 2 is published, then one joins
            stream.publish(2)
            joined.append(stream.subscribe(Resume(0, "E"))[0])

    stream = Stream(Fanout(yield_every=1, pause=pause))
    first = stream.subscribe()[0]
    stream.subscribe()
    stream.publish(1)
    stream.publish(3)
    assert seqs(first) == [1, 2, 3]
    assert seqs(joined[0]) == [1, 2, 3]  # backlog 1, 2; the queued pass of 2 is skipped


def test_the_pass_reports_its_deliveries_once():
    passes = []
    stream = Stream(Fanout(on_pass=lambda count, entry: passes.append((count, entry.seq))))
    for _ in range(7):
        stream.subscribe()
    stream.publish(1)
    assert passes == [(7, 1)]


def test_gap_from_the_backlog_rides_on_the_first_live_entry():
    stream = Stream(Fanout())
    session, _ = stream.subscribe(Resume(5, "old"))
    stream.publish(1)
    stream.publish(2)
    assert session.received == [(1, True), (2, False)]


def test_an_epoch_change_under_a_subscriber_is_delivered_with_the_gap_flag():
    stream = Stream(Fanout())
    session, _ = stream.subscribe()
    stream.publish(1)
    stream.log = MemoryLog("s", epoch="F", on_entry=stream.fanout.deliver)  # the log lost its state
    stream.publish(2)
    assert session.received == [(1, False), (1, True)]


def test_a_subscription_knows_its_session_stream_and_form():
    stream = Stream(Fanout())
    session, subscription = stream.subscribe()
    stream.publish(1)
    assert session.by is subscription and subscription.stream is stream and subscription.multi is False
    assert Subscription(session, stream, multi=True).multi is True
    assert (subscription.epoch, subscription.last_seq) == ("E", 1)
    fresh = Subscription(session, stream)
    assert (fresh.epoch, fresh.last_seq, fresh.gap, fresh.priming) == (None, 0, False, None)


def test_live_entries_that_came_after_the_backlog_was_read_follow_it():
    stream = Stream(Fanout())
    stream.publish(1)
    session = FakeSession()
    subscription = Subscription(session, stream)
    subscription.priming = []
    stream.fanout.add(subscription)
    backlog = stream.log.backlog(Resume(0, "E"))  # read (from another server, say): has 1 only
    stream.publish(2)
    stream.publish(3)
    subscription.backlog(*backlog)
    subscription.start()
    assert seqs(session) == [1, 2, 3]


def test_priming_holds_live_entries_until_the_backlog_is_sent():
    stream = Stream(Fanout())
    stream.publish(1)
    session = FakeSession()
    subscription = Subscription(session, stream)
    subscription.priming = []
    stream.fanout.add(subscription)
    stream.publish(2)  # arrives while the backlog is being fetched
    assert session.received == []
    subscription.backlog(*stream.log.backlog(Resume(0, "E")))  # has 1 and 2
    subscription.start()
    stream.publish(3)
    assert seqs(session) == [1, 2, 3]


def test_discarded_subscribers_get_nothing_more():
    stream = Stream(Fanout())
    session, subscription = stream.subscribe()
    stream.publish(1)
    stream.fanout.discard(subscription)
    stream.fanout.discard(subscription)  # idempotent
    stream.publish(2)
    assert seqs(session) == [1] and len(stream.fanout) == 0
