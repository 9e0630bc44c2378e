"""The session's write engine: the fast path, pending bytes, drop-oldest, slow and write
timeouts, and the close, with a scripted socket and with real (plain and TLS) sockets.

The scripted socket takes exactly as many bytes as the test allows and says "would block"
after that; the fake I/O records the writability watch and lets the test fire it.
The real-socket tests run eventlet's hub (``eventlet.sleep``) in this process, unpatched:
the session only asks the hub to watch descriptors.

Mutation testing (README's table): equivalent mutants of session.py are ``_handed`` starting
at 1 (every offset shifts alike), ``_mark_tick`` starting at None or -2 or set to None in
``write`` (extra marks at the same tick's time change nothing), ``"I"`` for ``"i"`` (a queue
length is never negative), ``len(marks) > 4`` (the marks are threes), ``_stream_names`` of
None (read only through ``or``) and ``_marks = ""`` for a closed session (it writes no more).
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import subprocess
import threading

import eventlet
import pytest

from dashstream import runtime
from dashstream.messages import encode_fields
from dashstream.protocol.frames import FrameReader
from dashstream.sessions.session import SessionContext
from dashstream.sessions.websocket import WebSocketSession
from dashstream.streams.fanout import Subscription
from dashstream.streams.log import MemoryLog
from tests.support import scaled
from tests.ws_frames import parse_frames

pytestmark = pytest.mark.timeout(30)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class ScriptedSocket:
    """``send`` takes up to ``room`` bytes (BlockingIOError at 0); records what went out."""

    def __init__(self, room: int = 1 << 30):
        self.room = room
        self.out = bytearray()
        self.sends: list[object] = []  # every buffer passed to send, as passed
        self.closed = False

    def send(self, data, flags=0) -> int:
        self.sends.append(data)
        if self.closed:
            raise OSError(9, "closed")
        if self.room <= 0:
            raise BlockingIOError()
        taken = min(self.room, len(data))
        self.out += bytes(data[:taken])
        self.room -= taken
        return taken

    def recv(self, size):
        return b""

    def recv_into(self, buffer):
        return 0  # nothing more: EOF

    def fileno(self):
        return 42

    def shutdown(self, how):
        pass

    def close(self):
        self.closed = True


class FakeIO:
    def __init__(self):
        self.writers = {}

    def watch_write(self, fileno, callback):
        handle = object()
        self.writers[handle] = callback
        return handle

    def watch_read(self, fileno, callback):
        return object()

    def unwatch(self, handle):
        self.writers.pop(handle, None)

    unwatch_closing = unwatch

    def writable(self):
        for callback in list(self.writers.values()):
            callback(42)


class FakeWatchdog:
    lag_interval = 1.0
    ticks = 0
    wall = 1000.0

    def __init__(self):
        self.watched = set()
        self.lagging = set()

    def track_lag(self, session):
        self.lagging.add(session)

    def watch(self, session):
        self.watched.add(session)

    def unwatch(self, session):
        self.watched.discard(session)


class Stream:
    """Enough of a stream for a subscription: counts drops and slow closes."""

    name = "s"

    def __init__(self):
        self.dropped = self.slow_closed = 0
        self.log = MemoryLog("s", epoch="E")

    def count_dropped(self):
        self.dropped += 1

    def count_slow_closed(self):
        self.slow_closed += 1

    def unsubscribe(self, subscription):
        pass

    def entry(self, value, size=0):
        return self.log.append(encode_fields({"variable": value, "pad": "x" * size}))


def make_session(sock, *, queue_size=100, slow_timeout=5.0, write_timeout=10.0, clock=None):
    clock = clock or Clock()
    io, watchdog, closed = FakeIO(), FakeWatchdog(), []
    ctx = SessionContext(queue_size=queue_size, slow_timeout=slow_timeout, write_timeout=write_timeout,
                         close_timeout=1.0, clock=clock, io=io, watchdog=watchdog, on_closed=closed.append)
    session = WebSocketSession(sock, ctx, peer="t", path="/", reader=FrameReader(keep_messages=False))
    stream = Stream()
    subscription = Subscription(session, stream)
    session.subscriptions.append(subscription)
    return session, subscription, stream, io, watchdog, clock, closed


def messages(data: bytes) -> list:
    """Server frames -> [(opcode, parsed JSON or payload)]."""
    result = []
    for _, opcode, _, payload in parse_frames(bytes(data)):
        result.append((opcode, json.loads(payload) if opcode == 1 else payload))
    return result


def test_fast_path_one_send_no_watch():
    sock = ScriptedSocket()
    session, subscription, stream, io, watchdog, _, _ = make_session(sock)
    for value in range(3):
        subscription.deliver(stream.entry(value))
    assert len(sock.sends) == 3 and not io.writers and not watchdog.watched
    assert [m["variable"] for _, m in messages(sock.out)] == [0, 1, 2]


def test_a_partial_write_finishes_before_the_next_frame():
    sock = ScriptedSocket(room=10)
    session, subscription, stream, io, watchdog, _, _ = make_session(sock)
    first = stream.entry(1, size=50)
    subscription.deliver(first)
    assert len(sock.out) == 10 and io.writers and session in watchdog.watched
    session.ping()  # a control frame queued behind the half-sent data frame
    subscription.deliver(stream.entry(2))
    sock.room = 1 << 20
    io.writable()
    assert [op for op, _ in messages(sock.out)] == [1, 0x9, 1]  # whole frames, in order
    assert bytes(sock.out).startswith(first.frame)
    assert not io.writers and session not in watchdog.watched


def test_would_block_on_the_first_byte_then_writable_again():
    sock = ScriptedSocket(room=0)
    session, subscription, stream, io, _, _, _ = make_session(sock)
    subscription.deliver(stream.entry(1))
    assert sock.out == b"" and io.writers
    io.writable()  # still full: nothing moves
    assert sock.out == b""
    sock.room = 1 << 20
    io.writable()
    assert [m["seq"] for _, m in messages(sock.out)] == [1] and not io.writers


def test_retries_pass_the_very_same_buffer_until_something_is_taken():
    """OpenSSL's rule for a TLS write that wants to be retried: the same buffer again."""
    sock = ScriptedSocket(room=0)
    session, subscription, stream, io, _, _, _ = make_session(sock)
    entry = stream.entry(1)
    subscription.deliver(entry)
    io.writable()
    io.writable()
    assert all(buffer is entry.frame for buffer in sock.sends)


def test_drop_oldest_while_bytes_are_pending_keeps_the_started_frame_and_flags_the_gap():
    sock = ScriptedSocket(room=5)
    session, subscription, stream, io, _, _, _ = make_session(sock, queue_size=3)
    for value in range(1, 11):
        subscription.deliver(stream.entry(value))
    assert stream.dropped == 7 and session.dropped == 7  # at most 3 pending, the started one included
    sock.room = 1 << 20
    io.writable()
    received = [m for _, m in messages(sock.out)]
    assert [m["seq"] for m in received] == [1, 9, 10]  # the started one, then the newest
    assert received[1].get("gap") is True and "gap" not in received[2] and "gap" not in received[0]


def test_a_subscriber_behind_for_slow_timeout_is_closed_1008_and_counted():
    sock = ScriptedSocket(room=5)
    session, subscription, stream, io, watchdog, clock, closed = make_session(sock, slow_timeout=5.0)
    subscription.deliver(stream.entry(1))
    for step in range(4):
        clock.now += 1
        sock.room += 3  # it drains a little now and then...
        io.writable()
        subscription.deliver(stream.entry(step + 2))
    assert session.state == "open"
    clock.now += 1.5  # ...but has not caught up for more than 5 s
    session.check_deadlines(clock.now)
    assert stream.slow_closed == 1 and session.close_code == 1008
    sock.room = 1 << 20
    io.writable()
    frames = messages(sock.out)
    assert frames[-1][0] == 0x8 and struct.unpack("!H", frames[-1][1][:2])[0] == 1008
    assert [op for op, _ in frames] == [1, 0x8]  # the started frame, then the close: no more data


def test_catching_up_resets_the_slow_clock():
    sock = ScriptedSocket(room=0)
    session, subscription, stream, io, _, clock, _ = make_session(sock, slow_timeout=5.0)
    for step in range(20):
        clock.now += 1
        subscription.deliver(stream.entry(step))
        sock.room = 1 << 20
        io.writable()  # it catches up every second
        sock.room = 0
        session.check_deadlines(clock.now)
    assert session.state == "open" and stream.slow_closed == 0


def test_no_progress_for_the_write_timeout_drops_the_socket():
    sock = ScriptedSocket(room=0)
    session, subscription, stream, io, _, clock, closed = make_session(sock, slow_timeout=60, write_timeout=10)
    subscription.deliver(stream.entry(1))
    clock.now += 10.5
    session.check_deadlines(clock.now)
    assert closed == [session] and session.close_code == 1006 and sock.closed and not io.writers


def test_a_resume_backlog_is_never_dropped():
    """Issue 10 item 7: a backlog longer than --queue-size is delivered whole."""
    sock = ScriptedSocket(room=0)
    session, subscription, stream, io, _, _, _ = make_session(sock, queue_size=5)
    entries = [stream.entry(value) for value in range(1, 51)]
    subscription.backlog(entries, False)
    for value in range(51, 54):
        subscription.deliver(stream.entry(value))
    sock.room = 1 << 30
    io.writable()
    assert [m["seq"] for _, m in messages(sock.out)] == list(range(1, 54))


# --- real sockets ------------------------------------------------------------------------------


def run_hub_until(condition, timeout=15.0):
    # The deadline only bounds a hang: these tests judge what happens, not how soon, and on
    # 3.12 niced beside the whole suite (tests/run.sh) a real TLS socket took over 5 s.
    deadline = runtime.monotonic() + scaled(timeout)
    while not condition():
        assert runtime.monotonic() < deadline, "timed out"
        eventlet.sleep(0.005)


def real_session(server_sock):
    server_sock.setblocking(False)
    ctx = SessionContext(queue_size=1000, slow_timeout=60, write_timeout=60, close_timeout=1.0)
    session = WebSocketSession(server_sock, ctx, peer="t", path="/", reader=FrameReader(keep_messages=False))
    stream = Stream()
    subscription = Subscription(session, stream)
    session.subscriptions.append(subscription)
    return session, subscription, stream


def read_all(sock, count_frames):
    data = b""
    while len(parse_complete(data)) < count_frames:
        chunk = sock.recv(1 << 16)
        assert chunk
        data += chunk
    return parse_complete(data)


def parse_complete(data):
    try:
        return parse_frames(data)
    except AssertionError:
        return []


def test_real_socket_that_stops_reading_then_reads_gets_every_frame_intact():
    server, client = socket.socketpair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    session, subscription, stream = real_session(server)
    for value in range(200):
        subscription.deliver(stream.entry(value, size=300))
    assert session._pending is not None, "the socket must have filled"
    received = []
    reader = threading.Thread(target=lambda: received.extend(read_all(client, 200)), daemon=True)
    reader.start()
    run_hub_until(lambda: session._pending is None)
    reader.join(5)
    assert [json.loads(payload)["variable"] for _, _, _, payload in received] == list(range(200))
    client.close()
    server.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


def test_tls_socket_that_stops_reading_then_reads_gets_every_frame_intact(certificate):
    certfile, keyfile = certificate
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    client_context = ssl.create_default_context()
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    connected = {}

    def connect():
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        connected["sock"] = client_context.wrap_socket(raw)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    raw_server, _ = listener.accept()
    raw_server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certfile, keyfile)
    tls = server_context.wrap_socket(raw_server, server_side=True)  # blocking handshake
    thread.join(5)
    session, subscription, stream = real_session(tls)
    for value in range(300):
        subscription.deliver(stream.entry(value, size=300))
    assert session._pending is not None, "the TLS socket must have asked to retry"
    received = []
    reader = threading.Thread(target=lambda: received.extend(read_all(connected["sock"], 300)), daemon=True)
    reader.start()
    run_hub_until(lambda: session._pending is None)
    reader.join(5)
    assert [json.loads(payload)["variable"] for _, _, _, payload in received] == list(range(300))
    connected["sock"].close()
    tls.close()
    listener.close()


class FlagsSocket(ScriptedSocket):
    """Records the flags of every send."""

    def __init__(self):
        super().__init__()
        self.flags: list[int] = []

    def send(self, data, flags=0) -> int:
        self.flags.append(flags)
        return super().send(data, flags)


def test_the_answer_to_the_peers_close_leaves_with_the_fin_and_our_own_close_does_not():
    from dashstream.sessions.session import MSG_MORE
    from tests.ws_frames import frame

    sock = FlagsSocket()
    session, _, _, _, _, _, closed = make_session(sock)
    session.start(frame(0x8, b"\x03\xe8"))  # the peer closes with 1000
    assert messages(sock.out) == [(0x8, b"\x03\xe8")] and sock.flags == [MSG_MORE]
    assert sock.closed and closed == [session]  # closed right after: the kernel sends both at once
    ours = FlagsSocket()
    session, *_ = make_session(ours)
    session.close(1001, "going away")  # we start: the peer's answer is awaited, nothing is held back
    assert ours.flags == [0] and not ours.closed


# --- the lag sweep (check_lag): judged by ts, the kernel asked only when it could matter ---


class Kernel:
    """``fcntl.ioctl(fd, TIOCOUTQ)`` as the session calls it: answers ``queued`` bytes, counts."""

    def __init__(self):
        self.queued = 0
        self.asked = 0

    def ioctl(self, fileno, request, buffer):
        self.asked += 1
        return struct.pack("i", self.queued)


def lag_session(monkeypatch, slow_timeout=5.0):
    from dashstream.sessions import session as session_module

    kernel, wall = Kernel(), Clock()
    wall.now = 1000.0
    monkeypatch.setattr(session_module.fcntl, "ioctl", kernel.ioctl)
    io, watchdog = FakeIO(), FakeWatchdog()
    ctx = SessionContext(slow_timeout=slow_timeout, clock=Clock(), wall_clock=wall, io=io, watchdog=watchdog)
    session = WebSocketSession(ScriptedSocket(), ctx, peer="t", path="/", reader=FrameReader(keep_messages=False))
    stream = Stream()
    subscription = Subscription(session, stream)
    session.subscriptions.append(subscription)

    def deliver_at(ts):
        """A data message handed to the kernel in a new watchdog tick at wall time ``ts``."""
        watchdog.ticks += 1
        watchdog.wall = ts
        subscription.deliver(stream.entry(ts))
        return len(stream.log.last.frame)

    return session, stream, kernel, wall, watchdog, deliver_at


def test_the_sweep_does_not_ask_the_kernel_while_nothing_handed_can_be_slow_timeout_old(monkeypatch):
    session, stream, kernel, wall, watchdog, deliver_at = lag_session(monkeypatch, slow_timeout=5.0)
    for second in range(5):
        deliver_at(1000.0 + second)
    assert session in watchdog.lagging
    wall.now = 1005.0  # the oldest mark is exactly slow_timeout old: it could not be closed yet
    assert session.check_lag(0.0) is True and kernel.asked == 0 and session.state == "open"


def test_once_the_oldest_mark_is_old_the_kernel_is_asked_and_a_reader_that_took_everything_starts_anew(
        monkeypatch):
    session, stream, kernel, wall, _, deliver_at = lag_session(monkeypatch, slow_timeout=5.0)
    for second in range(3):
        deliver_at(1000.0 + second)
    wall.now = 1006.0
    kernel.queued = 0  # the reader took every byte
    assert session.check_lag(0.0) is False and kernel.asked == 1 and session.state == "open"
    assert stream.slow_closed == 0
    # The next message starts a new mark: nothing asked of the kernel until it is old in turn.
    deliver_at(1006.5)
    wall.now = 1011.0
    assert session.check_lag(0.0) is True and kernel.asked == 1


def test_marks_taken_by_the_reader_are_trimmed_and_the_lag_is_the_oldest_untaken_one(monkeypatch):
    session, stream, kernel, wall, _, deliver_at = lag_session(monkeypatch, slow_timeout=5.0)
    sizes = [deliver_at(1000.0 + second) for second in range(4)]  # marks at 1000, 1001, 1002, 1003
    wall.now = 1006.5
    kernel.queued = sizes[2] + sizes[3]  # the first two messages were read, 1002 and 1003 were not
    assert session.check_lag(0.0) is True and kernel.asked == 1 and session.state == "open"
    # 1002 is now the oldest: 4.5 s, within slow_timeout; at 1007.5 it is 5.5 s behind.
    wall.now = 1007.5
    assert session.check_lag(0.0) is False and kernel.asked == 2
    assert session.close_code == 1008 and stream.slow_closed == 1


def test_a_reader_that_took_nothing_for_slow_timeout_is_closed_at_the_first_sweep_after(monkeypatch):
    session, stream, kernel, wall, _, deliver_at = lag_session(monkeypatch, slow_timeout=5.0)
    size = deliver_at(1000.0)
    kernel.queued = size
    wall.now = 1005.2
    assert session.check_lag(0.0) is False and kernel.asked == 1
    assert session.close_code == 1008 and stream.slow_closed == 1


def test_messages_within_one_lag_interval_are_one_mark_judged_by_its_newest_time(monkeypatch):
    session, stream, kernel, wall, _, deliver_at = lag_session(monkeypatch, slow_timeout=5.0)
    kernel.queued = deliver_at(1000.0) + deliver_at(1000.5)  # one mark: first 1000.0, newest 1000.5
    wall.now = 1005.2  # 5.2 s after the first, 4.7 s after the newest: not yet
    assert session.check_lag(0.0) is True and kernel.asked == 0
    wall.now = 1005.6
    assert session.check_lag(0.0) is False and kernel.asked == 1 and session.close_code == 1008


def test_a_subscriber_the_sweep_let_go_is_taken_back_by_its_next_message(monkeypatch):
    session, stream, kernel, wall, watchdog, deliver_at = lag_session(monkeypatch, slow_timeout=5.0)
    deliver_at(1000.0)
    wall.now = 1006.0
    assert session.check_lag(0.0) is False  # all taken
    watchdog.lagging.discard(session)  # as Watchdog.tick does with a False
    size = deliver_at(1006.5)
    assert session in watchdog.lagging
    kernel.queued = size  # this one is not read
    wall.now = 1011.6
    assert session.check_lag(0.0) is False and session.close_code == 1008


def test_a_closed_session_leaves_the_sweep_without_asking_the_kernel(monkeypatch):
    session, stream, kernel, wall, _, deliver_at = lag_session(monkeypatch, slow_timeout=5.0)
    deliver_at(1000.0)
    session.close(1000, "bye")
    wall.now = 1010.0
    assert session.check_lag(0.0) is False and kernel.asked == 0


def test_a_control_frame_in_a_new_tick_is_no_data_handed_and_makes_no_mark(monkeypatch):
    session, stream, kernel, wall, watchdog, deliver_at = lag_session(monkeypatch)
    watchdog.ticks += 1
    session.write(b"\x89\x00")  # a ping: always sent, never a reader's lag
    assert session not in watchdog.lagging
    wall.now = 1010.0
    assert session.check_lag(0.0) is False and kernel.asked == 0


def test_a_session_with_nothing_handed_is_let_go_by_the_sweep(monkeypatch):
    session, stream, kernel, wall, _, _ = lag_session(monkeypatch)
    wall.now = 1010.0
    assert session.check_lag(0.0) is False and kernel.asked == 0 and session.state == "open"


def test_a_socket_the_kernel_cannot_answer_for_leaves_the_sweep_open(monkeypatch):
    session, stream, kernel, wall, _, deliver_at = lag_session(monkeypatch)
    deliver_at(1000.0)

    def refuse(fileno, request, buffer):
        raise OSError(95, "not supported")

    from dashstream.sessions import session as session_module
    monkeypatch.setattr(session_module.fcntl, "ioctl", refuse)
    wall.now = 1010.0
    assert session.check_lag(0.0) is False and session.state == "open"
    # Dropped from the sweep for good: the next sweep has nothing to ask about.
    monkeypatch.setattr(session_module.fcntl, "ioctl", kernel.ioctl)
    assert session.check_lag(0.0) is False and kernel.asked == 0
    # Until its next message, which marks again as from nothing.
    deliver_at(1011.0)
    assert session in session.ctx.watchdog.lagging


def test_a_mark_within_lag_interval_of_the_newest_marks_start_joins_it_not_the_oldest(monkeypatch):
    session, stream, kernel, wall, _, deliver_at = lag_session(monkeypatch, slow_timeout=5.0)
    deliver_at(1000.0)                               # mark A: 1000.0
    second = deliver_at(1001.5)                      # mark B: first 1001.5
    third = deliver_at(1002.2)                       # 0.7 s after B's first: B's newest is 1002.2
    kernel.queued = second + third                   # A was read; B's two were not
    wall.now = 1006.8                                # 4.6 s after B's newest, 5.3 s after its first
    assert session.check_lag(0.0) is True and session.state == "open"


def test_a_lag_of_exactly_slow_timeout_is_not_yet_slow(monkeypatch):
    session, stream, kernel, wall, _, deliver_at = lag_session(monkeypatch, slow_timeout=5.0)
    deliver_at(1000.0)
    kernel.queued = deliver_at(1002.0)               # the first was read, the second not
    wall.now = 1007.0                                # the second is exactly 5 s behind
    assert session.check_lag(0.0) is True and session.state == "open" and kernel.asked == 1


@pytest.fixture
def real_lag_session():
    """A session on one end of a real socket pair (the kernel's own TIOCOUTQ, no fake) with
    one data message handed at wall time 1000.0, slow_timeout 5 s; yields (session, stream,
    wall, the peer's end)."""
    ours, theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        wall, watchdog = Clock(), FakeWatchdog()
        wall.now = 1000.0
        ctx = SessionContext(slow_timeout=5.0, clock=Clock(), wall_clock=wall, io=FakeIO(), watchdog=watchdog)
        session = WebSocketSession(ours, ctx, peer="t", path="/", reader=FrameReader(keep_messages=False))
        stream = Stream()
        subscription = Subscription(session, stream)
        session.subscriptions.append(subscription)
        watchdog.ticks, watchdog.wall = 1, 1000.0
        subscription.deliver(stream.entry(1))
        yield session, stream, wall, theirs
    finally:
        ours.close()
        theirs.close()


def test_the_kernels_own_answer_on_a_real_socket_closes_a_reader_that_took_nothing(real_lag_session):
    """Bytes a peer never read are still in the kernel's queue."""
    session, stream, wall, _ = real_lag_session
    wall.now = 1004.0
    assert session.check_lag(0.0) is True  # within slow_timeout: not asked
    wall.now = 1006.0
    assert session.check_lag(0.0) is False and session.close_code == 1008 and stream.slow_closed == 1


def test_the_kernels_own_answer_on_a_real_socket_lets_a_reader_that_took_everything_go(real_lag_session):
    session, stream, wall, theirs = real_lag_session
    theirs.recv(65536)
    wall.now = 1006.0
    assert session.check_lag(0.0) is False and session.state == "open"


def test_log_fields_name_the_peer_the_path_and_the_streams_even_after_they_are_left():
    session, subscription, stream, *_ = make_session(ScriptedSocket())
    other = Subscription(session, type("Other", (Stream,), {"name": "t"})())
    session.subscriptions.append(other)
    assert session.log_fields() == {"peer": "t", "path": "/", "stream": "s,t"}
    assert session.log_fields(code=1000) == {"peer": "t", "path": "/", "stream": "s,t", "code": 1000}
    session.close(1000, "bye")
    session._teardown()
    assert session.log_fields()["stream"] == "s,t"


def test_log_fields_of_a_session_on_no_stream_have_no_stream_key():
    session, subscription, stream, *_ = make_session(ScriptedSocket())
    session.subscriptions.clear()
    assert session.log_fields() == {"peer": "t", "path": "/"}
