"""Unit tests of the fan-out hub: pure Python, real threads, fakes injected by constructor."""

from __future__ import annotations

import json
import threading

import pytest

from dashstream.hub import Envelope, Hub, Resume
from dashstream.websocket import text_frame

pytestmark = pytest.mark.timeout(20)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_broadcast_serializes_once_and_builds_one_frame_for_all_subscribers():
    serializations, framings = [], []

    def counting_dumps(message):
        serializations.append(message["seq"])
        return json.dumps(message)

    def counting_frame(text):
        framings.append(text)
        return text_frame(text)

    hub = Hub("s", dumps=counting_dumps)
    subscriptions = [hub.subscribe() for _ in range(10)]
    for value in range(3):
        hub.publish({"variable": value})
    for subscription in subscriptions:
        frames = [subscription.get(timeout=1).wire(counting_frame) for _ in range(3)]
        assert [json.loads(frame[2:])["variable"] for frame in frames] == [0, 1, 2]
    assert serializations == [1, 2, 3]  # once per broadcast, not per subscriber
    assert len(framings) == 3
    # and the subscribers really share the same bytes object
    first = hub.subscribe(resume=Resume(0, hub.epoch)).get(timeout=1)
    assert first.wire(counting_frame) is first.wire(counting_frame)


def test_messages_are_numbered_stamped_and_carry_the_epoch():
    clock = Clock()
    hub = Hub("s", clock=clock, epoch="e1")
    envelope = hub.publish({"variable": 7, "unit": "kg"})
    assert envelope.message == {"variable": 7, "unit": "kg", "seq": 1, "ts": 1000.0, "epoch": "e1"}
    assert json.loads(envelope.text) == envelope.message


def test_a_new_subscriber_gets_the_last_value_at_once():
    hub = Hub("s")
    for value in range(5):
        hub.publish({"variable": value})
    assert hub.subscribe().get(timeout=0).message["variable"] == 4


def test_resume_delivers_exactly_the_missed_messages_then_live_ones():
    hub = Hub("s", history_size=10)
    for value in range(6):
        hub.publish({"variable": value})
    subscription = hub.subscribe(Resume(seq=3, epoch=hub.epoch))
    hub.publish({"variable": 6})
    seqs = []
    while (envelope := subscription.get(timeout=0)) is not None:
        seqs.append(envelope.seq)
        assert "gap" not in envelope.message
    assert seqs == [4, 5, 6, 7]


def test_resume_from_the_latest_seq_sends_nothing_twice():
    hub = Hub("s")
    hub.publish({"variable": 1})
    subscription = hub.subscribe(Resume(seq=1, epoch=hub.epoch))
    assert subscription.get(timeout=0) is None


@pytest.mark.parametrize("resume", [Resume(seq=2, epoch="other-epoch"), Resume(seq=1, epoch="HUB"),
                                    Resume(seq=99, epoch="HUB")], ids=["new epoch", "beyond history", "future seq"])
def test_unresumable_requests_get_the_gap_signal_with_the_latest_value(resume):
    hub = Hub("s", history_size=3, epoch="HUB")
    for value in range(10):
        hub.publish({"variable": value})
    envelope = hub.subscribe(resume).get(timeout=0)
    assert envelope.message["gap"] is True
    assert envelope.message["variable"] == 9 and envelope.seq == 10


def test_gap_on_an_empty_stream_rides_on_the_first_live_message():
    hub = Hub("s", epoch="new")
    subscription = hub.subscribe(Resume(seq=5, epoch="old"))
    hub.publish({"variable": 1})
    hub.publish({"variable": 2})
    assert subscription.get(timeout=0).message["gap"] is True
    assert "gap" not in subscription.get(timeout=0).message


def test_a_full_queue_drops_the_oldest_and_counts_it():
    hub = Hub("s", queue_size=3)
    subscription = hub.subscribe()
    for value in range(10):
        hub.publish({"variable": value})
    assert [subscription.get(timeout=0).message["variable"] for _ in range(3)] == [7, 8, 9]
    assert subscription.dropped == 7 and hub.stats.dropped == 7


def test_a_subscriber_behind_longer_than_slow_timeout_is_reported_once_and_others_unaffected():
    clock = Clock()
    reported = []
    hub = Hub("s", queue_size=2, slow_timeout=5.0, clock=clock)
    stuck = hub.subscribe(on_slow=reported.append)
    healthy = hub.subscribe(on_slow=reported.append)
    for step in range(20):
        clock.now += 1
        hub.publish({"variable": step})
        assert healthy.get(timeout=0).message["variable"] == step
    assert reported == [stuck]
    assert hub.stats.slow_closed == 1


def test_catching_up_resets_the_slow_clock():
    clock = Clock()
    reported = []
    hub = Hub("s", queue_size=1, slow_timeout=5.0, clock=clock)
    subscription = hub.subscribe(on_slow=reported.append)
    for step in range(20):
        clock.now += 1
        hub.publish({"variable": step})
        hub.publish({"variable": step})  # one drop per step...
        subscription.get(timeout=0)  # ...but it keeps catching up
    assert reported == []


def test_close_wakes_a_blocked_get_and_unsubscribes():
    hub = Hub("s")
    subscription = hub.subscribe()
    results = []
    waiter = threading.Thread(target=lambda: results.append(subscription.get()))
    waiter.start()
    subscription.close()
    waiter.join(timeout=2)
    assert results == [None]
    assert hub.subscriber_count == 0


def test_idle_callback_fires_when_the_last_subscriber_leaves():
    idle = []
    hub = Hub("s", on_idle=idle.append)
    first, second = hub.subscribe(), hub.subscribe()
    first.close()
    assert idle == []
    second.close()
    second.close()  # idempotent
    assert idle == [hub]


def test_concurrent_publish_and_subscribe_never_duplicate_or_skip():
    hub = Hub("s", history_size=10_000, queue_size=10_000)
    done = threading.Event()

    def publisher():
        for value in range(2000):
            hub.publish({"variable": value})
        done.set()

    subscriptions = []
    thread = threading.Thread(target=publisher)
    thread.start()
    while not done.is_set() and len(subscriptions) < 200:  # bounded: each one copies history
        subscriptions.append(hub.subscribe(Resume(0, hub.epoch)))
    thread.join()
    assert subscriptions
    for subscription in subscriptions:
        seqs = []
        while (envelope := subscription.get(timeout=0)) is not None:
            seqs.append(envelope.seq)
        assert seqs == list(range(1, 2001))


def test_control_push_goes_to_one_subscriber_only():
    hub = Hub("s")
    a, b = hub.subscribe(), hub.subscribe()
    a.push(Envelope({"control": "reload"}))
    assert a.get(timeout=0).message == {"control": "reload"}
    assert b.get(timeout=0) is None
