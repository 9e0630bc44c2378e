"""The session's bookkeeping, checked after every step: pending bytes and pending data
messages always match what is queued, through partial writes, drops with the gap re-encoded,
closes that discard data, and catching up. Also the error paths (which socket errors mean
"the peer went away", what is logged otherwise), control messages, the SSE transport's
frames through the same engine, and how peers are named in log lines."""

from __future__ import annotations

import errno
import json
import logging
import ssl

import pytest

from dashstream.messages import ControlMessage, sse_record
from dashstream.protocol.frames import FrameReader, text_frame
from dashstream.sessions.session import Session, SessionContext, describe_peer, peer_gone
from dashstream.sessions.sse import SSESession
from dashstream.sessions.websocket import WebSocketSession
from dashstream.streams.fanout import Subscription
from tests.unit.test_session import Clock, FakeIO, FakeWatchdog, ScriptedSocket, Stream, make_session, messages

pytestmark = pytest.mark.timeout(30)


def assert_accounts(session) -> None:
    """What the session believes is pending is what is queued, byte for byte."""
    pending = session._pending
    if pending is None:
        assert (session._pending_bytes, session._pending_data, session._head_sent) == (0, 0, 0)
        assert session._behind_since is None
        return
    assert session._pending_bytes == sum(len(item[0]) for item in pending) - session._head_sent
    assert session._pending_data == sum(1 for item in pending if item[1] is not None)


def test_a_new_session_owes_nothing():
    session, *_ = make_session(ScriptedSocket())
    assert_accounts(session)
    assert (session._progress_at, session._last_drop, session._close_sent_at, session._closing_since) == (
        0.0, 0.0, None, None)
    assert (session._close_when_flushed, session._watched, session._dropping_since) == (False, False, None)


def test_the_accounts_hold_through_partial_writes_drops_and_catching_up():
    sock = ScriptedSocket(room=7)
    session, subscription, stream, io, watchdog, clock, _ = make_session(sock, queue_size=3)
    subscription.deliver(stream.entry(1, size=30))  # partly sent: 7 bytes out
    assert session._head_sent == 7
    assert_accounts(session)
    session.ping()  # a control frame: never dropped
    assert_accounts(session)
    for value in range(2, 9):  # drops the oldest unstarted ones, re-encoding the gap
        subscription.deliver(stream.entry(value, size=value))
        assert_accounts(session)
    assert session.dropped == 5 and session._pending_data == 3
    sock.room = 20  # part of the head, then nothing
    io.writable()
    assert_accounts(session)
    sock.room = 1 << 20
    io.writable()
    assert_accounts(session)
    assert session._write_watch is None and not io.writers and session not in watchdog.watched
    received = [m for op, m in messages(sock.out) if op == 1]
    assert [m["seq"] for m in received] == [1, 7, 8] and received[1]["gap"] is True


def test_a_finished_data_frame_leaves_the_droppable_count():
    sock = ScriptedSocket(room=0)
    session, subscription, stream, io, *_ = make_session(sock)
    entries = [stream.entry(value) for value in range(1, 4)]
    for entry in entries:
        subscription.deliver(entry)
    assert session._pending_data == 3
    sock.room = len(entries[0].frame)  # exactly the first frame
    io.writable()
    assert session._pending_data == 2 and session._head_sent == 0
    assert_accounts(session)


def test_closing_with_data_pending_keeps_only_the_started_frame_and_control_frames():
    sock = ScriptedSocket(room=4)
    session, subscription, stream, io, *_ = make_session(sock)
    subscription.deliver(stream.entry(1, size=20))  # started: 4 bytes out
    subscription.deliver(stream.entry(2))
    session.ping()
    subscription.deliver(stream.entry(3))
    session.close(1001, "going away")
    assert_accounts(session)
    assert session._pending_data == 0 and all(item[1] is None for item in session._pending)
    assert len(session._pending) == 3  # the started data frame, the ping, the close frame
    sock.room = 1 << 20
    io.writable()
    assert [op for op, _ in messages(sock.out)] == [1, 0x9, 0x8]
    assert [m["seq"] for op, m in messages(sock.out) if op == 1] == [1]


def test_writes_count_messages_and_the_close_frame_is_stamped_when_it_leaves():
    sock = ScriptedSocket()
    session, subscription, stream, io, watchdog, clock, _ = make_session(sock)
    session.write(b"\x81\x01a")
    session.write(b"\x81\x01b")
    assert session.sent == 2 and session._close_sent_at is None
    session.write(b"\x81\x02cd" * 3, count=3)
    assert session.sent == 5
    clock.now = 123.0
    session.close(1000, "bye")
    assert session._close_sent_at == 123.0 and session.sent == 5  # the close frame is not a message


def test_a_close_frame_that_leaves_later_is_stamped_then():
    sock = ScriptedSocket(room=0)
    session, subscription, stream, io, watchdog, clock, _ = make_session(sock)
    session.close(1000, "bye")
    assert session._close_sent_at is None
    assert_accounts(session)  # the close frame is pending, and it is not a droppable message
    clock.now = 150.0
    sock.room = 1 << 20
    io.writable()
    assert session._close_sent_at == 150.0


@pytest.mark.parametrize("error, gone", [
    (ConnectionResetError(), True),  # a ConnectionError even without an errno
    (BrokenPipeError(errno.EPIPE, "pipe"), True),
    (TimeoutError(), True),
    (ssl.SSLEOFError(), True),
    (ssl.SSLZeroReturnError(), True),
    (OSError(errno.EBADF, "bad fd"), True),  # plain OSErrors: judged by errno
    (OSError(errno.ENOTCONN, "not connected"), True),
    (OSError(errno.EIO, "i/o"), False),
    (OSError("no errno"), False),
    (ValueError("a bug"), False),
])
def test_which_errors_mean_the_peer_went_away(error, gone):
    assert peer_gone(error) is gone


class FailingSocket(ScriptedSocket):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def send(self, data, flags=0):
        raise self.error


def test_a_real_socket_error_is_logged_with_the_peer_and_ends_the_session_1006(caplog):
    session, subscription, stream, io, watchdog, clock, closed = make_session(FailingSocket(OSError(errno.EIO, "i/o")))
    session.peer, session.path = "10.0.0.9:4000", "/ws/sales"
    with caplog.at_level(logging.ERROR, logger="dashstream.connection"):
        subscription.deliver(stream.entry(1))
    assert [r.getMessage() for r in caplog.records] == [
        "socket error peer=10.0.0.9:4000 path=/ws/sales: OSError(5, 'i/o')"]
    assert session.closed and session.close_code == 1006 and closed == [session]


def test_a_peer_that_went_away_is_not_an_error_and_a_close_code_already_chosen_stays(caplog):
    sock = ScriptedSocket(room=0)
    session, subscription, stream, io, watchdog, clock, closed = make_session(sock)
    session.close(1001, "going away")
    sock.room = 1 << 20
    sock.closed = True  # the next send raises EBADF: the peer side is gone
    with caplog.at_level(logging.ERROR, logger="dashstream.connection"):
        io.writable()
    assert caplog.records == [] and session.closed and session.close_code == 1001


def test_a_failed_read_ends_the_session_and_would_block_is_nothing():
    class Reader(ScriptedSocket):
        def __init__(self, outcome):
            super().__init__()
            self.outcome = outcome

        def recv_into(self, buffer):
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome

    session, *_ = make_session(Reader(BlockingIOError()))
    assert session._recv() == -1 and not session.closed
    session, *_ = make_session(Reader(ConnectionResetError()))
    assert session._recv() == -1 and session.closed and session.close_code == 1006
    session, *_ = make_session(Reader(7))
    assert session._recv() == 7


def test_a_control_message_is_compact_json_encoded_once_per_transport():
    message = ControlMessage({"control": "source", "stream": "s", "state": "down"})
    assert message.text == '{"control":"source","stream":"s","state":"down"}'
    assert message.frame == text_frame(message.text) and message.frame is message.frame
    assert message.sse == sse_record(message.text, event="control") and message.sse is message.sse
    assert message.sse.startswith(b"event: control\n")


def sse_session(sock, control=False):
    clock, io, watchdog, closed = Clock(), FakeIO(), FakeWatchdog(), []
    ctx = SessionContext(clock=clock, io=io, watchdog=watchdog, on_closed=closed.append, queue_size=2)
    session = SSESession(sock, ctx, peer="p", path="/sse/s", control=control)
    stream = Stream()
    subscription = Subscription(session, stream)
    session.subscriptions.append(subscription)
    return session, subscription, stream, io


def test_sse_sends_records_through_the_same_engine_with_drops_and_the_gap():
    sock = ScriptedSocket(room=3)
    session, subscription, stream, io = sse_session(sock)
    entries = [stream.entry(value) for value in range(1, 6)]
    for entry in entries:
        subscription.deliver(entry)
        assert_accounts(session)
    assert session.dropped == 3 and session.sent == 5  # two pending at most, the started one included
    sock.room = 1 << 20
    io.writable()
    records = [block for block in bytes(sock.out).decode().split("\n\n") if block]
    data = [json.loads(line[6:]) for block in records for line in block.split("\n") if line.startswith("data: ")]
    ids = [line[4:] for block in records for line in block.split("\n") if line.startswith("id: ")]
    assert [d["seq"] for d in data] == [1, 5] and data[1]["gap"] is True and "gap" not in data[0]
    assert ids == ["E:1", "E:5"]
    assert bytes(sock.out).startswith(entries[0].sse)


def test_sse_control_messages_only_for_clients_that_asked_and_only_while_open():
    message = ControlMessage({"control": "reload"})
    sock = ScriptedSocket()
    session, *_ = sse_session(sock, control=False)
    session.send_control(message)
    assert sock.out == b""
    session, *_ = sse_session(sock, control=True)
    session.send_control(message)
    assert bytes(sock.out) == message.sse
    session.close(1001, "shutdown")
    session.send_control(message)
    assert bytes(sock.out) == message.sse  # nothing after the close
    subscription = Subscription(session, Stream())
    session.send_entry(Stream().entry(1), subscription)
    assert bytes(sock.out) == message.sse


def test_a_websocket_session_sends_the_stream_form_to_a_multi_stream_subscription():
    sock = ScriptedSocket()
    session, subscription, stream, *_ = make_session(sock)
    multi = Subscription(session, stream, multi=True)
    entry = stream.entry(1)
    Session.send_entry(session, entry, multi)  # the transport-independent base's form
    Session.send_entry(session, entry, subscription, gap=True)
    received = [m for _, m in messages(sock.out)]
    assert received[0]["stream"] == "s" and "gap" not in received[0]
    assert received[1]["gap"] is True and "stream" not in received[1]


@pytest.mark.parametrize("address, named", [
    (("10.1.2.3", 5000), "10.1.2.3:5000"),
    (("::1", 5000, 0, 0), "[::1]:5000"),
    (("fe80::1%eth0", 80), "[fe80::1%eth0]:80"),
    ("/run/dashstream.sock", "/run/dashstream.sock"),
    (("lonely",), "('lonely',)"),
    (None, "None"),
])
def test_peers_are_named_as_in_a_url(address, named):
    assert describe_peer(address) == named


def test_a_frame_reader_session_keeps_its_transport_name():
    session = WebSocketSession(ScriptedSocket(), SessionContext(io=FakeIO()), peer="p", path="/",
                               reader=FrameReader(keep_messages=False))
    assert (session.kind, session.control, session.opened > 0) == ("websocket", False, True)


def test_the_context_keeps_what_it_is_given():
    keepalive, heartbeat, metrics = object(), object(), object()
    ctx = SessionContext(keepalive=keepalive, heartbeat=heartbeat, metrics=metrics)
    assert (ctx.keepalive, ctx.heartbeat, ctx.metrics) == (keepalive, heartbeat, metrics)


def test_a_session_wants_no_control_messages_unless_asked():
    assert Session(ScriptedSocket(), SessionContext(io=FakeIO()), peer="p", path="/").control is False


def test_sse_a_drop_flags_the_gap_on_the_record_already_queued():
    sock = ScriptedSocket(room=3)
    session, subscription, stream, io = sse_session(sock)
    for value in range(1, 4):  # 1 started, 2 dropped for 3: 3 must say so, nothing comes after it
        subscription.deliver(stream.entry(value))
    sock.room = 1 << 20
    io.writable()
    data = [json.loads(line[6:]) for line in bytes(sock.out).decode().split("\n") if line.startswith("data: ")]
    assert [(d["seq"], d.get("gap")) for d in data] == [(1, None), (3, True)]


def test_a_drop_on_a_multi_stream_connection_keeps_the_stream_name_in_the_gap_frame():
    sock = ScriptedSocket(room=3)
    session, _, stream, io, *_ = make_session(sock, queue_size=2)
    multi = Subscription(session, stream, multi=True)
    for value in range(1, 4):
        multi.deliver(stream.entry(value))
    sock.room = 1 << 20
    io.writable()
    received = [m for _, m in messages(sock.out)]
    assert [(m["seq"], m["stream"], m.get("gap")) for m in received] == [(1, "s", None), (3, "s", True)]


def test_the_accounts_hold_while_the_frames_left_after_a_close_drain():
    sock = ScriptedSocket(room=4)
    session, subscription, stream, io, *_ = make_session(sock)
    subscription.deliver(stream.entry(1, size=20))  # started, then kept by the close
    session.ping()
    session.close(1001, "going away")
    sock.room = len(session._pending[0][0]) - session._head_sent  # the rest of the data frame only
    io.writable()
    assert len(session._pending) == 2
    assert_accounts(session)


def test_sse_ends_at_once_when_nothing_is_pending_and_after_the_flush_otherwise():
    sock = ScriptedSocket()
    session, *_ = sse_session(sock)
    session.close(1001, "shutdown")
    assert session.closed
    sock = ScriptedSocket(room=2)
    session, subscription, stream, io = sse_session(sock)
    entry = stream.entry(1)
    subscription.deliver(entry)
    session.close(1001, "shutdown")
    assert not session.closed
    sock.room = 1 << 20
    io.writable()
    assert session.closed and bytes(sock.out) == entry.sse


def test_a_read_lands_in_the_shared_buffer_and_a_reset_is_not_an_error(caplog):
    from dashstream import runtime

    class Filling(ScriptedSocket):
        def __init__(self, outcome=b"hello"):
            super().__init__()
            self.outcome = outcome

        def recv_into(self, buffer):
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            buffer[:len(self.outcome)] = self.outcome
            return len(self.outcome)

    session, *_ = make_session(Filling())
    assert session._recv() == 5 and bytes(runtime.RECV_BUFFER[:5]) == b"hello"
    session, *_ = make_session(Filling(ConnectionResetError()))
    with caplog.at_level(logging.ERROR, logger="dashstream.connection"):
        assert session._recv() == -1
    assert caplog.records == [] and session.closed


def test_teardown_drains_what_a_real_peer_left_unread_without_an_error():
    import socket

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    try:
        theirs.sendall(b"x" * 1000)  # bytes we never read: the drain takes them before close
        session, *_ = make_session(ours)
        session.write(b"\x81\x02ok")
        session.abort()
        assert session.closed and ours.fileno() == -1
        theirs.settimeout(5)
        assert theirs.recv(100) == b"\x81\x02ok" and theirs.recv(100) == b""  # our frame, then EOF
    finally:
        theirs.close()
