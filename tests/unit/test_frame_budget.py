"""The reader's frame budget and the session that holds a connection on it: a flood of tiny
frames is parsed a budget per pass of the hub, with the socket unwatched in between, so the
hub's timers run between passes (BENCHMARKS.md, "A flood of unfinished fragments").

The same flood against a real server is tests/server/test_hostile_clients.py.

Equivalent mutants (mutmut, protocol/frames.py): the first value of ``self._frames_left`` in
``__init__`` (every parse sets it from the budget first, and ``held`` is false before one
whatever it is);
``resume()`` parsing when not held (what is left then is at most part of a frame, which a parse
leaves as it is)."""

from __future__ import annotations

import pytest

from dashstream.protocol.frames import FRAMES_PER_PASS, Failure, FrameReader, Message, PeerClose, Ping
from dashstream.sessions.session import CLOSED, SessionContext
from dashstream.sessions.websocket import WebSocketSession
from tests.ws_frames import close_payload, frame, text

pytestmark = pytest.mark.timeout(30)


def pings(count: int, start: int = 0) -> bytes:
    return b"".join(frame(0x9, b"%d" % n) for n in range(start, start + count))


def ping_numbers(events) -> list[int]:
    assert all(type(event) is Ping for event in events), events
    return [int(event.data) for event in events]


# --- the reader ---------------------------------------------------------------------------------


def test_without_a_budget_everything_received_is_parsed_at_once():
    reader = FrameReader()
    assert ping_numbers(reader.receive(pings(500))) == list(range(500))
    assert not reader.held and reader.resume() == []


def test_a_budget_parses_that_many_frames_a_call_and_resume_the_next_ones():
    reader = FrameReader(frame_budget=2)
    assert ping_numbers(reader.receive(pings(5))) == [0, 1]
    assert reader.held
    assert ping_numbers(reader.resume()) == [2, 3]
    assert reader.held
    assert ping_numbers(reader.resume()) == [4]
    assert not reader.held
    assert reader.resume() == []


def test_a_budget_spent_exactly_on_the_last_frame_holds_nothing():
    reader = FrameReader(frame_budget=3)
    assert ping_numbers(reader.receive(pings(3))) == [0, 1, 2]
    assert not reader.held
    # The next call has a whole budget again.
    assert ping_numbers(reader.receive(pings(3, 3))) == [3, 4, 5]


def test_a_new_receive_renews_the_budget():
    reader = FrameReader(frame_budget=2)
    assert ping_numbers(reader.receive(pings(1))) == [0]
    assert ping_numbers(reader.receive(pings(3, 1))) == [1, 2]
    assert ping_numbers(reader.resume()) == [3]


def test_a_partial_frame_left_at_the_budget_is_held_then_waits_for_its_bytes():
    reader = FrameReader(frame_budget=1)
    whole = frame(0x9, b"1")
    assert ping_numbers(reader.receive(pings(1) + whole[:3])) == [0]
    assert reader.held
    assert reader.resume() == []   # nothing whole to parse yet: waits for bytes
    assert not reader.held
    assert ping_numbers(reader.receive(whole[3:])) == [1]


def test_fragments_count_against_the_budget_though_they_make_no_event():
    reader = FrameReader(frame_budget=2)
    message = text(b"ab", fin=False) + frame(0x0, b"cd", fin=False) + frame(0x0, b"ef", fin=False) + frame(0x0, b"g")
    assert reader.receive(message) == []
    assert reader.held and reader.in_frame
    assert reader.resume() == [Message(True, b"abcdefg")]
    assert not reader.held and not reader.in_frame


def test_a_payload_in_progress_is_finished_before_the_budget_stops():
    reader = FrameReader(frame_budget=1)
    big = frame(0x2, b"x" * 300)
    assert reader.receive(big[:100]) == []   # its header spent that call's budget
    # The rest of its payload is no header: this call's one frame is the first ping.
    events = reader.receive(big[100:] + pings(2))
    assert events[0] == Message(False, b"x" * 300) and ping_numbers(events[1:]) == [0]
    assert reader.held
    assert ping_numbers(reader.resume()) == [1]


def test_skipped_frames_after_a_failure_count_against_the_budget_too():
    reader = FrameReader(max_message_size=10, frame_budget=2)
    junk = frame(0x2, b"x" * 50) + pings(4) + frame(0x8, close_payload(4001))
    (failure,) = reader.receive(junk)
    assert type(failure) is Failure and failure.code == 1009
    assert reader.held            # after the bad frame, two pings skipped: the budget is spent
    assert reader.resume() == []  # two more pings skipped
    assert reader.held
    (close,) = reader.resume()
    assert type(close) is PeerClose and close.received == 4001
    assert not reader.held


def test_after_the_peer_closed_nothing_is_held():
    reader = FrameReader(frame_budget=1)
    events = reader.receive(frame(0x8, close_payload(1000)) + pings(3))
    assert [type(e) for e in events] == [PeerClose]
    assert not reader.held and reader.resume() == []


@pytest.mark.parametrize("budget", [0, -1])
def test_a_budget_below_one_is_refused(budget):
    with pytest.raises(ValueError, match="^frame_budget must be >= 1$"):
        FrameReader(frame_budget=budget)


def test_the_servers_budget_is_far_above_what_a_screen_sends_at_once():
    assert 32 <= FRAMES_PER_PASS <= 1024


# --- the session ---------------------------------------------------------------------------------


class Timer:
    def __init__(self, function):
        self.function = function
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class HubIO:
    """The hub's read watches and zero-delay timers, run by hand."""

    def __init__(self):
        self.reading = set()
        self.timers: list[Timer] = []

    def watch_read(self, fileno, callback):
        handle = object()
        self.reading.add(handle)
        return handle

    watch_write = watch_read

    def unwatch(self, handle):
        self.reading.discard(handle)

    unwatch_closing = unwatch

    def call_later(self, seconds, function, *args):
        assert seconds == 0
        timer = Timer(lambda: function(*args))
        self.timers.append(timer)
        return timer

    def next_pass(self) -> int:
        due, self.timers = self.timers, []
        for timer in due:
            if not timer.cancelled:
                timer.function()
        return len(due)


class Socket:
    def __init__(self):
        self.sent = []

    def send(self, data, flags=0):
        self.sent.append(bytes(data))
        return len(data)

    def fileno(self):
        return 7

    def recv_into(self, buffer):
        return 0

    def shutdown(self, how):
        pass

    def close(self):
        pass


def session_with(budget: int = 2, **context):
    io = HubIO()
    sock = Socket()
    messages = []
    session = WebSocketSession(sock, SessionContext(io=io, **context), peer="p", path="/echo",
                               reader=FrameReader(frame_budget=budget),
                               on_message=lambda _s, message: messages.append(message.data))
    session.start()
    return session, io, sock, messages


def test_a_held_connection_is_not_read_until_its_frames_are_parsed_in_later_passes():
    session, io, sock, messages = session_with(budget=2)
    assert len(io.reading) == 1
    session._received(b"".join(text(b"m%d" % n) for n in range(5)))
    assert messages == [b"m0", b"m1"]
    assert io.reading == set()     # nothing more is read while frames wait
    assert io.next_pass() == 1
    assert messages == [b"m0", b"m1", b"m2", b"m3"]
    assert io.reading == set()
    assert io.next_pass() == 1
    assert messages == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert len(io.reading) == 1    # all parsed: read again
    assert io.next_pass() == 0


def test_a_hold_is_not_a_stalled_frame_and_ends_with_the_frame_tracked_again():
    session, io, _sock, _messages = session_with(budget=1)
    session._received(text(b"a") + text(b"b") + text(b"unfinished")[:4])
    assert session._frame_started is None   # our hold, not the client's stall
    io.next_pass()                          # "b"; the half frame's bytes are still held
    assert session._frame_started is None and not io.reading
    io.next_pass()                          # nothing whole is left: read again
    assert io.reading and session._frame_started is not None   # now a half frame waits on the client


def test_a_connection_closed_while_held_cancels_its_pass():
    session, io, _sock, _messages = session_with(budget=1)
    session._received(text(b"a") + text(b"b"))
    (timer,) = io.timers
    session.abort()
    assert session.state is CLOSED and timer.cancelled and io.reading == set()
    io.next_pass()
    assert io.reading == set()


def test_flow_control_and_the_budget_each_keep_reading_off_until_both_let_go():
    session, io, _sock, messages = session_with(budget=1)
    session._received(text(b"a") + text(b"b"))
    session._pause_reading()       # our writes backed up meanwhile
    io.next_pass()
    assert messages == [b"a", b"b"] and io.reading == set()   # parsed, but flow control holds it
    session._resume_reading()
    assert len(io.reading) == 1
    session._pause_reading()
    session._received(text(b"c") + text(b"d"))
    session._resume_reading()
    assert io.reading == set()     # the budget still holds it
    io.next_pass()
    assert messages == [b"a", b"b", b"c", b"d"] and len(io.reading) == 1


def test_a_failure_in_a_held_pass_ends_only_that_connection():
    session, io, sock, _messages = session_with(budget=1)

    def broken(_session, _message):
        raise RuntimeError("a bug")

    session._received(text(b"a") + text(b"b"))
    session.on_message = broken
    io.next_pass()
    assert session.state is CLOSED and session.close_code == 1011
