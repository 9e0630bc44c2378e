"""The Subscription keeps its own resume bookkeeping (streams/fanout.py): what it has had, and
whether its next message carries the gap signal; the session only calls back."""

from __future__ import annotations

import ast
from pathlib import Path

from dashstream.messages import Entry
from dashstream.streams.fanout import Fanout, Subscription
from dashstream.streams.log import Resume

ROOT = Path(__file__).resolve().parents[2]


class Session:
    def __init__(self):
        self.backlogs = []
        self.entries = []

    def send_backlog(self, entries, subscription, gap=False):
        self.backlogs.append(([entry.seq for entry in entries], gap))

    def send_entry(self, entry, subscription, gap=False):
        self.entries.append((entry.seq, gap))


class Stream:
    def __init__(self):
        self.calls = []

    def count_dropped(self):
        self.calls.append("dropped")

    def count_slow_closed(self):
        self.calls.append("slow_closed")

    def unsubscribe(self, subscription):
        self.calls.append(("unsubscribe", subscription))


def entry(seq, epoch="E"):
    return Entry("s", seq, 1.0, epoch, "{}")


def test_a_backlog_sets_where_the_subscription_stands_and_hands_the_gap_to_the_session():
    session = Session()
    subscription = Subscription(session, Stream())
    subscription.gap = True  # whatever it was: the backlog decides
    subscription.backlog([entry(4), entry(5)], True)
    assert session.backlogs == [([4, 5], True)]
    assert (subscription.epoch, subscription.last_seq, subscription.gap) == ("E", 5, False)
    subscription.deliver(entry(5))  # had it
    subscription.deliver(entry(6))
    assert session.entries == [(6, False)]


def test_nothing_owed_with_the_gap_rides_on_the_next_live_message():
    session = Session()
    subscription = Subscription(session, Stream())
    subscription.backlog([], True, Resume(3, "OLD"))
    assert session.backlogs == [] and subscription.gap is True and subscription.epoch is None
    subscription.deliver(entry(1))
    assert session.entries == [(1, True)] and subscription.gap is False


def test_a_client_up_to_date_stands_where_its_resume_says():
    session = Session()
    subscription = Subscription(session, Stream())
    subscription.backlog([], False, Resume(7, "E"))
    assert (subscription.epoch, subscription.last_seq, subscription.gap) == ("E", 7, False)
    subscription.deliver(entry(7))
    subscription.deliver(entry(8))
    assert session.entries == [(8, False)]
    fresh = Subscription(Session(), Stream())
    fresh.backlog([], False)  # no resume, nothing published yet
    assert (fresh.epoch, fresh.last_seq, fresh.gap) == (None, 0, False)


def test_a_hole_marks_only_the_subscribers_of_that_epoch_that_miss_something():
    fanout = Fanout()
    subs = []
    for epoch, last_seq in (("E", 3), ("E", 8), ("E", 9), ("E", 12), ("F", 3), (None, 0)):
        subscription = Subscription(Session(), Stream())
        subscription.epoch, subscription.last_seq = epoch, last_seq
        fanout.add(subscription)
        subs.append(subscription)
    fanout.mark_missed(entry(10))
    assert [s.gap for s in subs] == [True, True, False, False, False, False]


def test_what_the_session_calls_back():
    stream = Stream()
    subscription = Subscription(Session(), stream)
    subscription.missed()
    assert subscription.gap is True
    subscription.count_dropped()
    subscription.count_slow_closed()
    subscription.cancel()
    assert stream.calls == ["dropped", "slow_closed", ("unsubscribe", subscription)]


def test_sessions_import_nothing_of_streams_not_even_for_types():
    for path in sorted((ROOT / "dashstream" / "sessions").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            assert not [name for name in names if name.startswith("dashstream.streams")], path.name


def test_a_fanout_lists_its_subscribers_as_a_copy():
    fanout = Fanout()
    first, second = Subscription(Session(), Stream()), Subscription(Session(), Stream())
    fanout.add(first)
    fanout.add(second)
    listed = iter(fanout)
    fanout.discard(first)  # while listed: the copy is unchanged
    assert list(listed) == [first, second] and list(fanout) == [second] and len(fanout) == 1
