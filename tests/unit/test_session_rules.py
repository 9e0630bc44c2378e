"""The session's rules one by one, with the scripted socket and fake I/O of test_session.py:
backlogs, counts, the pending-bytes bound, drops and the gap flag, the slow and write
timeouts and their log lines, the close deadline, teardown and the final drain."""

from __future__ import annotations

import logging

import pytest

from dashstream.protocol.frames import FrameReader
from dashstream.sessions.session import SessionContext
from dashstream.sessions.websocket import WebSocketSession
from dashstream.streams.fanout import Subscription
from tests.unit.test_session import Clock, FakeIO, FakeWatchdog, ScriptedSocket, Stream, messages

pytestmark = pytest.mark.timeout(30)


class RecordingStream(Stream):
    def __init__(self):
        super().__init__()
        self.unsubscribed: list = []

    def unsubscribe(self, subscription):
        self.unsubscribed.append(subscription)


class Keepalive:
    def __init__(self):
        self.discarded: list = []

    def discard(self, session):
        self.discarded.append(session)


class DrainSocket(ScriptedSocket):
    """Counts the reads of the final drain; has ``pending`` bytes the peer left unread."""

    def __init__(self, pending: int = 0, **kw):
        super().__init__(**kw)
        self.reads = 0
        self.pending = pending

    def recv_into(self, buffer):
        self.reads += 1
        if self.pending:
            self.pending -= 1
            return 1
        return 0


class Recorded(WebSocketSession):
    """Records pauses and resumes of reading; ``broken_flush`` makes the flush raise."""

    __slots__ = ("events", "broken_flush")

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.events: list[str] = []
        self.broken_flush = False

    def _pause_reading(self):
        self.events.append("pause")

    def _resume_reading(self):
        self.events.append("resume")

    def _flush(self):
        if self.broken_flush:
            raise RuntimeError("a bug")
        super()._flush()


def session_with(sock=None, **limits):
    sock = sock or ScriptedSocket()
    clock, io, watchdog, closed = Clock(), FakeIO(), FakeWatchdog(), []
    ctx = SessionContext(clock=clock, io=io, watchdog=watchdog, on_closed=closed.append, **limits)
    session = Recorded(sock, ctx, peer="1.2.3.4:5", path="/ws/s", reader=FrameReader(keep_messages=False))
    stream = RecordingStream()
    subscription = Subscription(session, stream)
    session.subscriptions.append(subscription)
    return session, subscription, stream, sock, clock, io, watchdog, closed


def test_context_defaults():
    ctx = SessionContext()
    assert (ctx.queue_size, ctx.slow_timeout, ctx.write_timeout, ctx.close_timeout, ctx.frame_timeout,
            ctx.max_pending_bytes) == (100, 5.0, 10.0, 1.0, 10.0, 1 << 20)
    assert (ctx.watchdog, ctx.keepalive, ctx.heartbeat, ctx.on_closed, ctx.metrics) == (None,) * 5


def test_a_new_session_is_open_and_has_sent_nothing():
    session, *_ = session_with()
    assert (session.state, session.sent, session.dropped, session.close_code, session.close_reason) == (
        "open", 0, 0, None, "")
    assert (session.next_ping, session.ping_sent_at, session.last_pong, session.peer_done) == (None, None, None, False)


def test_a_backlog_is_one_write_counting_each_message_with_the_gap_on_the_first_only():
    session, subscription, stream, sock, *_ = session_with()
    entries = [stream.entry(value) for value in range(1, 4)]
    subscription.gap = True
    subscription.backlog(entries, True)
    assert len(sock.sends) == 1 and session.sent == 3
    received = [m for _, m in messages(sock.out)]
    assert [m["seq"] for m in received] == [1, 2, 3]
    assert [m.get("gap") for m in received] == [True, None, None]
    assert (subscription.epoch, subscription.last_seq, subscription.gap) == ("E", 3, False)


def test_a_backlog_for_a_multi_stream_socket_names_the_stream():
    session, _, stream, sock, *_ = session_with()
    multi = Subscription(session, stream, multi=True)
    multi.backlog([stream.entry(1), stream.entry(2)], False)
    assert [m["stream"] for _, m in messages(sock.out)] == ["s", "s"]


def test_nothing_is_written_once_closing_and_an_empty_backlog_writes_nothing():
    session, subscription, stream, sock, *_ = session_with()
    session.send_backlog([], subscription)
    assert sock.sends == [] and session.sent == 0
    session.close(1001, "bye")
    session.send_backlog([stream.entry(1)], subscription)
    subscription.deliver(stream.entry(2))
    assert [op for op, _ in messages(sock.out)] == [0x8]


def test_pending_bytes_over_the_bound_stop_reading_and_draining_resumes_it():
    sock = ScriptedSocket(room=0)
    session, subscription, stream, sock, clock, io, *_ = session_with(sock, max_pending_bytes=100)
    paused = session.events
    session.write(b"x" * 60, count=0)  # pending: 60
    session.write(b"y" * 40, count=0)  # 100: not over
    assert paused == []
    session.write(b"z", count=0)  # 101: over
    assert paused == ["pause"]
    sock.room = 1 << 20
    io.writable()
    assert paused == ["pause", "resume"] and bytes(sock.out) == b"x" * 60 + b"y" * 40 + b"z"


def test_a_drop_re_encodes_the_next_queued_message_of_that_subscription_only():
    sock = ScriptedSocket(room=1)
    session, subscription, stream, sock, clock, io, *_ = session_with(sock, queue_size=4)
    other = Subscription(session, stream, multi=True)
    subscription.deliver(stream.entry(1))  # started
    subscription.deliver(stream.entry(2))
    other.deliver(stream.entry(3))  # another subscription's message between them
    subscription.deliver(stream.entry(4))
    subscription.deliver(stream.entry(5))  # five pending, over 4: 2 goes, and 4 (not 3) carries the gap
    sock.room = 1 << 20
    io.writable()
    received = [m for _, m in messages(sock.out)]
    assert [(m["seq"], m.get("gap"), m.get("stream")) for m in received] == [
        (1, None, None), (3, None, "s"), (4, True, None), (5, None, None)]
    assert stream.dropped == 1 and session.dropped == 1


def test_a_drop_with_nothing_more_queued_flags_the_next_live_message():
    sock = ScriptedSocket(room=1)
    session, subscription, stream, sock, *_ = session_with(sock, queue_size=1)
    subscription.deliver(stream.entry(1))  # started
    other = Subscription(session, stream)
    other.deliver(stream.entry(2))  # over the queue of 1: the other's message is dropped...
    assert other.gap is True and subscription.gap is False  # ...and its next message says so


def test_write_timeout_line_and_reason(caplog):
    sock = ScriptedSocket(room=0)
    session, subscription, stream, sock, clock, io, watchdog, closed = session_with(sock, write_timeout=3,
                                                                                      slow_timeout=60)
    subscription.deliver(stream.entry(1))
    clock.now += 3
    session.check_deadlines(clock.now)
    assert session.state == "open"  # exactly at the limit: not yet
    with caplog.at_level(logging.WARNING, logger="dashstream.connection"):
        clock.now += 0.01
        session.check_deadlines(clock.now)
    assert (session.close_code, session.close_reason) == (1006, "write timeout") and closed == [session]
    assert caplog.messages == ["write timeout peer=1.2.3.4:5 path=/ws/s: nothing could be written for 3s; "
                               "connection dropped"]


def test_slow_line_code_and_reason(caplog):
    sock = ScriptedSocket(room=0)
    session, subscription, stream, sock, clock, *_ = session_with(sock, slow_timeout=2)
    subscription.deliver(stream.entry(1))
    clock.now += 2
    session.check_deadlines(clock.now)
    assert session.state == "open"  # exactly at the limit: not yet
    with caplog.at_level(logging.WARNING, logger="dashstream.connection"):
        clock.now += 0.5
        session.check_deadlines(clock.now)
    assert (session.close_code, session.close_reason, stream.slow_closed) == (1008, "subscriber too slow", 1)
    assert caplog.messages == ["slow subscriber peer=1.2.3.4:5 path=/ws/s: behind for 2.5s, 0 message(s) "
                               "dropped; closing 1008"]


def test_drops_that_keep_coming_are_slow_and_a_pause_in_drops_forgives():
    sock = ScriptedSocket(room=0)
    session, subscription, stream, sock, clock, io, *_ = session_with(sock, queue_size=1, slow_timeout=2)

    def burst():
        sock.room = 0
        subscription.deliver(stream.entry(len(sock.out)))
        subscription.deliver(stream.entry(len(sock.out) + 1))  # a drop
        sock.room = 1 << 20
        io.writable()  # caught up: the pending-based rule alone would forgive it

    burst()
    clock.now += 3  # a pause longer than slow_timeout between drops: forgiven
    burst()
    assert session.state == "open"
    clock.now += 1.5
    burst()
    clock.now += 0.5  # drops again and again for exactly slow_timeout: not yet
    burst()
    assert session.state == "open"
    clock.now += 0.1
    burst()
    assert session.close_code == 1008


def test_dropping_pending_data_keeps_the_started_frame_and_control_frames():
    sock = ScriptedSocket(room=3)
    session, subscription, stream, sock, clock, io, *_ = session_with(sock)
    subscription.deliver(stream.entry(1))  # started
    subscription.deliver(stream.entry(2))
    session.ping()
    subscription.deliver(stream.entry(3))
    session.close(1001, "bye")
    sock.room = 1 << 20
    io.writable()
    assert [(op, m["seq"] if op == 1 else None) for op, m in messages(sock.out)] == [
        (1, 1), (0x9, None), (0x8, None)]


def test_the_close_deadline_runs_from_when_the_close_frame_left():
    sock = ScriptedSocket(room=0)
    session, subscription, stream, sock, clock, io, watchdog, closed = session_with(sock, close_timeout=1)
    session.close(1001, "bye")  # the close frame waits: the socket takes nothing
    clock.now += 0.6
    sock.room = 1 << 20
    io.writable()  # now it leaves
    clock.now += 0.9  # 1.5 s since closing began, 0.9 s since the frame left
    session.check_deadlines(clock.now)
    assert closed == []
    clock.now += 0.2
    session.check_deadlines(clock.now)
    assert closed == [session] and session.close_code == 1001


def test_a_close_frame_that_never_leaves_ends_at_the_deadline_from_closing():
    sock = ScriptedSocket(room=0)
    session, subscription, stream, sock, clock, io, watchdog, closed = session_with(sock, close_timeout=1)
    session.close(1001, "bye")
    clock.now += 1
    session.check_deadlines(clock.now)
    assert closed == []
    clock.now += 0.01
    session.check_deadlines(clock.now)
    assert closed == [session]


def test_teardown_lets_go_of_everything_once():
    sock = DrainSocket(room=0)
    session, subscription, stream, sock, clock, io, watchdog, closed = session_with(sock)
    keepalive = session.keepalive = Keepalive()
    subscription.deliver(stream.entry(1))  # pending: watched, a write watch
    assert session in watchdog.watched and io.writers
    session.abort()
    session.abort()  # once only
    assert closed == [session] and session.close_code == 1006 and session.state == "closed"
    assert stream.unsubscribed == [subscription] and keepalive.discarded == [session]
    assert session not in watchdog.watched and not io.writers and sock.closed
    assert session.subscriptions == [] and session.keepalive is None


@pytest.mark.parametrize("peer_done, pending, reads", [(False, 0, 1), (False, 9, 4), (True, 9, 0)])
def test_the_final_drain_reads_only_when_the_peer_may_have_left_bytes(peer_done, pending, reads):
    sock = DrainSocket(pending=pending)
    session, *_ = session_with(sock)
    session.peer_done = peer_done
    session.abort()
    assert sock.reads == reads and sock.closed


def test_a_close_code_set_before_teardown_is_kept():
    session, *_ = session_with()
    session.close_code = 4000
    session.abort()
    assert session.close_code == 4000


def test_a_failing_flush_is_logged_and_ends_the_session(caplog):
    sock = ScriptedSocket(room=0)
    session, subscription, stream, sock, clock, io, watchdog, closed = session_with(sock)
    subscription.deliver(stream.entry(1))
    session.broken_flush = True
    with caplog.at_level(logging.ERROR, logger="dashstream.connection"):
        io.writable()
    assert closed == [session] and caplog.messages == ["write failed peer=1.2.3.4:5 path=/ws/s"]


def test_a_socket_error_on_write_ends_the_session_as_gone():
    class Broken(ScriptedSocket):
        def send(self, data, flags=0):
            raise ConnectionResetError(104, "reset")

    session, subscription, stream, sock, clock, io, watchdog, closed = session_with(Broken())
    subscription.deliver(stream.entry(1))
    assert closed == [session] and session.close_code == 1006


def test_the_first_frame_counts_as_pending_data_only_if_it_is_a_message():
    sock = ScriptedSocket(room=1)
    session, subscription, stream, sock, *_ = session_with(sock, queue_size=2)
    session.ping()  # a control frame starts the pending queue
    for value in range(1, 4):
        subscription.deliver(stream.entry(value))
    assert stream.dropped == 1  # two messages fit behind the started ping: the third drops the oldest
