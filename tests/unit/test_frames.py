"""The WebSocket protocol without a network: ``FrameReader`` fed bytes, and a
``WebSocketSession`` over an in-memory socket (what it writes back is parsed and checked).

The real-server half of the frame rules is tests/server/test_frame_rules.py (same frame builders,
tests/ws_frames.py).
"""

from __future__ import annotations

import random
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dashstream.protocol.deflate import DeflateParams, Inflater
from dashstream.protocol.frames import (
    Failure,
    FrameReader,
    Message,
    PeerClose,
    Ping,
    close_frame,
    text_frame,
    valid_close_code,
    xor_mask,
)
from dashstream.protocol.frames import frame as protocol_frame
from dashstream.sessions.session import SessionContext
from dashstream.sessions.websocket import WebSocketSession
from tests.ws_frames import (
    INVALID_CLOSE_CODES,
    VALID_CLOSE_CODES,
    close_payload,
    frame,
    is_valid_close_code,
    parse_frames,
    reference_mask,
    text,
)

pytestmark = pytest.mark.timeout(60)


class FakeSocket:
    """Takes every write whole (``sent``); has nothing to read."""

    def __init__(self):
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, data, flags=0) -> int:
        if self.closed:
            raise OSError(9, "send on a closed socket")
        self.sent.append(bytes(data))
        return len(data)

    def recv(self, size: int) -> bytes:
        return b""

    def recv_into(self, buffer) -> int:
        return 0  # nothing more: EOF

    def fileno(self) -> int:
        return -1

    def shutdown(self, how) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class RecordingReader(FrameReader):
    """A reader that also keeps every Failure it reported."""

    __slots__ = ("failures",)

    def __init__(self, **options):
        super().__init__(**options)
        self.failures = []

    def receive(self, data):
        events = super().receive(data)
        self.failures.extend(event for event in events if isinstance(event, Failure))
        return events


def run_frames(data: bytes, *, chunk_sizes=(), eof: bool = False, max_message_size: int = 200,
               inflater=None):
    """Feed ``data`` to an echo session in chunks; return (messages, ended, socket, failures)."""
    sock = FakeSocket()
    messages = []
    reader = RecordingReader(max_message_size=max_message_size, inflater=inflater)
    failures = reader.failures
    session = WebSocketSession(sock, SessionContext(close_timeout=0.5), peer="test", path="/echo", reader=reader,
                               on_message=lambda _s, m: messages.append(m.data.decode() if m.text else m.data))
    sizes = list(chunk_sizes)
    while data and not session.closed:
        size = sizes.pop(0) if sizes else len(data)
        chunk, data = data[:size], data[size:]
        session._received(chunk)
    if eof and not session.closed:
        session._peer_vanished()
    return messages, session.closed, sock, failures


def server_close_code(sock: FakeSocket) -> int | None:
    """Check every frame the server wrote is well formed; return its close code, if it sent one."""
    frames = parse_frames(b"".join(sock.sent))
    close_code = None
    for index, (first, opcode, masked, payload) in enumerate(frames):
        assert first & 0x80 and not first & 0x70, "server frames are final, with no RSV bits"
        assert not masked, "server frames are never masked"
        assert opcode in (0x1, 0x2, 0x8, 0x9, 0xA)
        if opcode == 0x8:
            assert index == len(frames) - 1, "nothing follows the server's close frame"
            assert len(payload) >= 2 and len(payload) <= 125
            close_code = struct.unpack("!H", payload[:2])[0]
            assert is_valid_close_code(close_code), close_code
            payload[2:].decode("utf-8")
    return close_code


# --- the reader alone -------------------------------------------------------------------------


def test_xor_mask_matches_the_rfc_reference():
    rng = random.Random(6455)
    for length in (0, 1, 3, 4, 5, 7, 64, 125, 1000, 65536 + 3):
        data = rng.randbytes(length)
        for offset in range(5):
            mask = rng.randbytes(4)
            assert xor_mask(data, mask, offset) == reference_mask(data, mask, offset)
    # Unmasking in pieces at any offset equals unmasking at once (how payloads are read).
    data, mask = rng.randbytes(1001), rng.randbytes(4)
    pieces = b"".join(xor_mask(data[at:at + 97], mask, at) for at in range(0, 1001, 97))
    assert pieces == reference_mask(data, mask)
    # The test frames (tests/ws_frames.py) are masked by the same reference.
    for length in (0, 1, 5, 300):
        data = rng.randbytes(length)
        assert frame(0x2, data, mask=mask).endswith(mask + reference_mask(data, mask))


def test_reader_events_one_byte_at_a_time():
    data = (text(b"one") + frame(0x9, b"ping?") + frame(0xA, b"pong!") + frame(0x2, b"\x00\x01", fin=False)
            + frame(0x9, b"") + frame(0x0, b"\x02") + text(b"") + frame(0x8, close_payload(4000, b"done")))
    reader = FrameReader()
    events = []
    for byte in data:
        events += reader.receive(bytes([byte]))
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Message", "Ping", "Pong", "Ping", "Message", "Message", "PeerClose"]
    assert events[0] == Message(True, b"one") and events[4] == Message(False, b"\x00\x01\x02")
    assert events[5] == Message(True, b"") and events[1].data == b"ping?" and events[2].data == b"pong!"
    assert (events[6].code, events[6].received, events[6].reason) == (4000, 4000, "done")
    assert reader.receive(text(b"after close")) == []  # nothing after the peer's close


def test_in_frame_says_whether_a_frame_is_half_received():
    reader = FrameReader()
    whole = text(b"hello")
    assert not reader.in_frame
    reader.receive(whole[:1])
    assert reader.in_frame  # a header byte
    reader.receive(whole[1:8])
    assert reader.in_frame  # header done, payload not
    reader.receive(whole[8:])
    assert not reader.in_frame
    reader.receive(text(b"ab", fin=False))
    assert not reader.in_frame  # a finished frame of an unfinished message: the frame deadline is met


def test_a_zero_length_frame_completes_at_its_header():
    reader = FrameReader()
    assert reader.receive(frame(0x9, b"")) and not reader.in_frame
    assert reader.receive(text(b""))[0] == Message(True, b"")


def test_an_empty_close_is_answered_with_1000_and_logged_as_1005():
    (close,) = FrameReader().receive(frame(0x8, b""))
    assert isinstance(close, PeerClose) and (close.code, close.received) == (1000, 1005)


@pytest.mark.parametrize("payload,reason", [
    (b"\x03", "one byte"), (close_payload(1005), "invalid close code"), (close_payload(1000, b"\xff"), "UTF-8"),
    (close_payload(1000, b"r" * 124), "over 125")])
def test_a_bad_close_frame_is_a_failure_after_which_the_peer_sends_nothing(payload, reason):
    """The peer has already sent its close: the session must not wait for another."""
    (failure,) = FrameReader().receive(frame(0x8, payload))
    assert isinstance(failure, Failure) and failure.code == 1002 and reason in failure.reason
    assert failure.peer_closed


def test_after_a_failure_the_reader_skips_to_the_peer_close():
    reader = FrameReader(max_message_size=10)
    events = reader.receive(frame(0x2, b"x" * 50) + text(b"ignored") + frame(0x9, b"ignored too"))
    assert [type(e) for e in events] == [Failure] and events[0].code == 1009 and not events[0].peer_closed
    assert reader.failed
    closes = reader.receive(frame(0x8, close_payload(4001)) + b"trailing junk")
    assert [(type(e), e.received) for e in closes] == [(PeerClose, 4001)]


def test_fragments_are_bounded_in_number():
    reader = FrameReader(max_fragments=10)
    events = reader.receive(text(b"a", fin=False) + b"".join(frame(0x0, b"a", fin=False) for _ in range(9)))
    assert events == []
    (failure,) = reader.receive(frame(0x0, b"a"))
    assert failure.code == 1009 and "10 fragments" in failure.reason


def test_an_unfinished_fragmented_message_costs_about_its_size():
    """Issue 10 item 3: 2-byte fragments up to the 64 KiB limit once cost 29x their size."""
    reader = FrameReader(max_fragments=1 << 20)
    data = text(b"ab", fin=False) + b"".join(frame(0x0, b"ab", fin=False) for _ in range(16000))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    reader.receive(data)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 3 * 32002, f"{grown} bytes held for 32,002 bytes of message"
    (message,) = reader.receive(frame(0x0, b"!"))
    assert message.data == b"ab" * 16001 + b"!"


def test_a_stream_socket_reader_checks_messages_without_keeping_them():
    reader = FrameReader(keep_messages=False)
    (message,) = reader.receive(text("κόσμε".encode()))
    assert message == Message(True, None)
    (failure,) = reader.receive(text(b"\xff"))
    assert failure.code == 1007


# --- a session driven by bytes ---------------------------------------------------------------


def test_in_memory_messages_pings_and_close():
    data = (text(b"one") + frame(0x9, b"ping?") + frame(0x2, b"\x00\x01", fin=False) + frame(0x0, b"\x02")
            + frame(0x8, close_payload(4000, b"done")))
    messages, ended, sock, failures = run_frames(data, chunk_sizes=[1] * 20)
    assert messages == ["one", b"\x00\x01\x02"]
    assert ended and not failures and sock.closed
    frames = parse_frames(b"".join(sock.sent))
    assert [(opcode, payload) for _, opcode, _, payload in frames] == [(0xA, b"ping?"), (0x8, close_payload(4000))]


def test_in_memory_early_utf8_failure_needs_no_more_bytes():
    # The fragment is not final and nothing follows: the decoder alone must reject it.
    for bad in (b"ok\xc3\x28", b"\xed\xa0", b"\xf4\x90", b"\xe0\x80"):
        messages, ended, sock, failures = run_frames(text(bad, fin=False), eof=True)
        assert ended and failures[0].code == 1007 and server_close_code(sock) == 1007, bad
    # A valid prefix cut at the boundary is not an error until the message ends.
    messages, ended, sock, failures = run_frames(text(b"ok\xe2\x82", fin=False))
    assert not ended and sock.sent == []


def test_in_memory_failure_waits_for_the_peer_close_skipping_the_bad_payload():
    data = frame(0x2, b"x" * 300) + text(b"ignored") + frame(0x8, close_payload(1000)) + b"trailing"
    messages, ended, sock, failures = run_frames(data, max_message_size=200)
    assert ended and failures[0].code == 1009 and server_close_code(sock) == 1009
    assert messages == [] and sock.closed


def test_in_memory_failure_without_a_peer_close_keeps_waiting():
    messages, ended, sock, failures = run_frames(text(b"hi", rsv=2))
    assert not ended and server_close_code(sock) == 1002  # the watchdog's close deadline ends it


def test_in_memory_bad_close_frame_is_answered_and_the_connection_closed_at_once():
    """Autobahn 7.3.6: a 126-byte close payload gets 1002 and the TCP close, no waiting."""
    messages, ended, sock, failures = run_frames(frame(0x8, close_payload(1000, b"r" * 124)))
    assert ended and server_close_code(sock) == 1002 and sock.closed


def deflated(data: bytes) -> bytes:
    """A permessage-deflate payload (RFC 7692 7.2.1: sync flush, trailing 00 00 FF FF removed)."""
    compressor = zlib.compressobj(wbits=-15)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_in_memory_permessage_deflate_is_limited_after_decompression():
    def run(data: bytes):
        return run_frames(data, max_message_size=1000, inflater=Inflater(DeflateParams()), eof=True)

    messages, _, _, failures = run(text(deflated("κόσμε".encode() * 50), rsv=4))
    assert messages == ["κόσμε" * 50] and not failures
    messages, _, sock, failures = run(frame(0x2, deflated(b"\0" * 100_000), rsv=4))  # 100 kB from ~100 bytes
    assert messages == [] and failures[0].code == 1009 and server_close_code(sock) == 1009
    messages, _, _, failures = run(text(deflated(b"ok"), rsv=4, fin=False) + frame(0x0, b"", rsv=4))
    assert messages == [] and failures[0].code == 1002  # RSV1 only on a message's first frame


def test_close_frames_built_by_the_server_stay_within_125_bytes_and_valid_utf8():
    payload = parse_frames(close_frame(1008, "é" * 200))[0][3]
    assert len(payload) <= 125 and payload[:2] == b"\x03\xf0"
    payload[2:].decode("utf-8")
    assert parse_frames(text_frame("x" * 70000))[0][3] == b"x" * 70000


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536])
def test_a_text_frame_is_the_same_frame_whatever_length_takes_which_path(length):
    text = "é" * (length // 2) + "x" * (length % 2)  # multi-byte UTF-8: the length is in bytes
    built = text_frame(text)
    assert built == protocol_frame(0x1, text.encode("utf-8"))
    assert parse_frames(built) == [(0x81, 0x1, False, text.encode("utf-8"))]  # final, unmasked, one frame


# Frames as a hypothesis strategy: mostly plausible, with every field sometimes wrong.
close_payloads = st.one_of(
    st.just(b""), st.binary(min_size=1, max_size=1),
    st.builds(lambda code, reason: close_payload(code, reason),
              st.one_of(st.sampled_from(VALID_CLOSE_CODES + INVALID_CLOSE_CODES), st.integers(0, 65535)),
              st.one_of(st.text(max_size=20).map(str.encode), st.binary(max_size=130))))
payloads = st.one_of(st.binary(max_size=260), st.text(max_size=80).map(str.encode))


def mostly(usual, *unusual, weight: int = 8):
    """A strategy that draws ``usual`` about ``weight`` times as often as each other value."""
    return st.sampled_from([usual] * weight + list(unusual))


frames_st = st.builds(
    lambda opcode, payload, close, fin, rsv, masked: frame(
        opcode, close if opcode == 0x8 else payload, fin=fin, rsv=rsv, masked=masked),
    opcode=st.builds(lambda usual, wild, use_wild: wild if use_wild else usual,
                     st.sampled_from([0x0, 0x0, 0x1, 0x1, 0x2, 0x2, 0x8, 0x9, 0xA]), st.integers(0, 15),
                     mostly(False, True, weight=6)),
    payload=payloads, close=close_payloads,
    fin=mostly(True, False, weight=2), rsv=mostly(0, 1, 2, 4), masked=mostly(True, False))
mutations = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert"]), st.integers(0, 2000),
                               st.binary(min_size=1, max_size=8)), max_size=3)


def mutate(data: bytes, edits) -> bytes:
    for kind, position, junk in edits:
        if not data:
            break
        at = position % len(data)
        if kind == "flip":
            data = data[:at] + bytes([data[at] ^ junk[0]]) + data[at + 1:]
        elif kind == "cut":
            data = data[:at]
        else:
            data = data[:at] + junk + data[at:]
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(frames_st, max_size=8), edits=mutations | st.just([]),
       chunk_sizes=st.lists(st.integers(1, 40), max_size=30), eof=st.booleans(),
       limit=st.sampled_from([8, 64, 200]))
def test_random_frame_sequences_never_escape_and_close_well(frames, edits, chunk_sizes, eof, limit):
    data = mutate(b"".join(frames), edits)
    messages, ended, sock, failures = run_frames(data, chunk_sizes=chunk_sizes, eof=eof, max_message_size=limit)
    close_code = server_close_code(sock)
    event(f"close code {close_code}" if close_code else ("peer vanished" if ended else "still open"))
    if ended and close_code is None:
        assert eof, "a connection ends without our close frame only when the peer vanished"
    if failures:
        assert close_code == failures[0].code and failures[0].code in (1002, 1007, 1009)
    for message in messages:
        assert len(message.encode() if isinstance(message, str) else message) <= limit


valid_messages = st.lists(st.one_of(st.text(max_size=60), st.binary(max_size=200)), max_size=6)


@settings(max_examples=100, deadline=None)
@given(messages=valid_messages, splits=st.lists(st.integers(1, 7), min_size=1, max_size=6),
       chunk_sizes=st.lists(st.integers(1, 40), max_size=30))
def test_valid_fragmented_messages_arrive_intact(messages, splits, chunk_sizes):
    data = b""
    for message, split in zip(messages, splits * len(messages)):
        raw = message.encode() if isinstance(message, str) else message
        pieces = [raw[i:i + split] for i in range(0, len(raw), split)] or [b""]
        for index, piece in enumerate(pieces):
            opcode = (0x1 if isinstance(message, str) else 0x2) if index == 0 else 0x0
            data += frame(opcode, piece, fin=index == len(pieces) - 1)
            data += frame(0x9, b"") if index == 0 else b""  # a ping between fragments is allowed
    received, ended, sock, failures = run_frames(data, chunk_sizes=chunk_sizes)
    assert received == messages and not ended and not failures
    assert server_close_code(sock) is None


# --- exact rules, boundaries and reasons ------------------------------------------------------


@pytest.mark.parametrize("data, code, reason", [
    (text(b"x", rsv=2), 1002, "RSV bits set without a negotiated extension"),
    (frame(0x3, b"x"), 1002, "reserved opcode 0x3"),
    (text(b"x", masked=False), 1002, "client frames must be masked"),
    (bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + b"mask", 1002,
     "payload length with the most significant bit set"),
    (frame(0x9, b"x", fin=False), 1002, "fragmented control frame"),
    (frame(0x9, b"p" * 126), 1002, "control frame payload over 125 bytes"),
    (frame(0x0, b"x"), 1002, "continuation frame without a message to continue"),
    (text(b"a", fin=False) + text(b"b"), 1002, "new data frame inside a fragmented message"),
    (frame(0x8, b"\x03"), 1002, "close frame payload of one byte"),
    (frame(0x8, close_payload(1004)), 1002, "invalid close code 1004"),
    (frame(0x8, close_payload(1000, b"\xff")), 1002, "close reason is not valid UTF-8"),
    (text(b"\xff"), 1007, "text message is not valid UTF-8"),
    (text(b"\xed\xa0", fin=False), 1007, "text message is not valid UTF-8"),
    (text(b"ab\xce"), 1007, "text message is not valid UTF-8"),
    (frame(0x2, b"x" * 11), 1009, "message exceeds 10 bytes"),
], ids=lambda value: "frame" if isinstance(value, bytes) else None)  # random masks: not in the test ids
def test_each_violation_has_its_code_and_reason(data, code, reason):
    (failure,) = FrameReader(max_message_size=10).receive(data)
    assert (failure.code, failure.reason) == (code, reason)
    assert failure.peer_closed is (data[0] & 0xF == 0x8)


def test_messages_of_exactly_the_limit_pass_across_fragments_and_messages():
    reader = FrameReader(max_message_size=10, max_fragments=3)
    for _ in range(2):  # the second message starts from zero again
        events = reader.receive(text(b"abcd", fin=False) + frame(0x0, b"efg", fin=False) + frame(0x0, b"hij"))
        assert events == [Message(True, b"abcdefghij")]
    (failure,) = reader.receive(text(b"abcdef", fin=False) + frame(0x0, b"ghijk"))
    assert failure.reason == "message exceeds 10 bytes"


def test_at_most_max_fragments_on_every_message():
    reader = FrameReader(max_fragments=2)
    for _ in range(2):
        assert reader.receive(text(b"a", fin=False) + frame(0x0, b"b")) == [Message(True, b"ab")]
    (failure,) = reader.receive(text(b"a", fin=False) + frame(0x0, b"b", fin=False) + frame(0x0, b"c"))
    assert (failure.code, failure.reason) == (1009, "message in more than 2 fragments")


def test_a_deflated_message_is_limited_after_decompression_across_fragments():
    compressed = deflated(b"z" * 30)
    half = len(compressed) // 2
    reader = FrameReader(max_message_size=30, inflater=Inflater(DeflateParams()))
    assert reader.receive(text(compressed[:half], rsv=4, fin=False) + frame(0x0, compressed[half:])) == [
        Message(True, b"z" * 30)]
    reader = FrameReader(max_message_size=29, inflater=Inflater(DeflateParams()))
    (failure,) = reader.receive(text(compressed[:half], rsv=4, fin=False) + frame(0x0, compressed[half:]))
    assert failure.code == 1009


@pytest.mark.parametrize("size", [0, 125, 126, 127, 65535, 65536])
def test_frames_of_every_length_form_parse_one_byte_at_a_time(size):
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    reader = FrameReader(max_message_size=1 << 20)
    data = frame(0x2, payload)
    events = []
    for at in range(0, min(len(data), 20)):
        events += reader.receive(data[at:at + 1])
    events += reader.receive(data[20:])
    assert events == [Message(False, payload)]


@pytest.mark.parametrize("size, header", [(125, b"\x82\x7d"), (126, b"\x82\x7e\x00\x7e"),
                                          (65535, b"\x82\x7e\xff\xff"),
                                          (65536, b"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00")])
def test_server_frames_use_the_shortest_length_form(size, header):
    built = protocol_frame(0x2, b"x" * size)
    assert built[:len(header)] == header and len(built) == len(header) + size
    assert parse_frames(built)[0][3] == b"x" * size


def test_a_compressed_frame_sets_rsv1():
    assert protocol_frame(0x1, b"x", rsv1=True)[0] == 0xC1 and protocol_frame(0x1, b"x")[0] == 0x81


def test_close_frames_cut_long_reasons_at_123_bytes_without_splitting_a_character():
    payload = parse_frames(close_frame(1000, "a" * 122 + "é"))[0][3]
    assert payload == b"\x03\xe8" + b"a" * 122  # the 2-byte é would make 124: dropped whole
    assert parse_frames(close_frame(1000, "a" * 123))[0][3] == b"\x03\xe8" + b"a" * 123
    assert parse_frames(close_frame(4000))[0][3] == b"\x0f\xa0"


@pytest.mark.parametrize("code, valid", [(999, False), (1000, True), (1004, False), (1011, True), (1014, True),
                                         (1015, False), (2999, False), (3000, True), (4999, True), (5000, False)])
def test_valid_close_codes(code, valid):
    assert valid_close_code(code) is valid


def test_after_a_failure_the_peer_close_is_read_even_in_pieces_and_short():
    reader = FrameReader(max_message_size=5)
    reader.receive(frame(0x2, b"x" * 10))
    whole = frame(0x8, close_payload(4002, b"r" * 100))
    assert reader.receive(whole[:50]) == []  # waits for the whole close frame
    (close,) = reader.receive(whole[50:])
    assert (close.code, close.received, close.reason) == (4002, 4002, "")
    for payload, received in ((b"", 1005), (b"\x03", 1005)):
        reader = FrameReader(max_message_size=5)
        reader.receive(frame(0x2, b"x" * 10))
        (close,) = reader.receive(frame(0x8, payload))
        assert close.received == received and close.code == received
    reader = FrameReader(max_message_size=5)
    reader.receive(frame(0x2, b"x" * 10))
    assert reader.receive(frame(0x8, b"c" * 126)) == []  # over 125: not a close that can be read, skipped
    assert [type(e) for e in reader.receive(frame(0x8, close_payload(1000)))] == [PeerClose]


def test_nothing_comes_out_of_an_empty_read_or_after_the_close():
    reader = FrameReader()
    assert reader.receive(b"") == [] and not reader.failed
    reader.receive(frame(0x8, b""))
    assert reader.failed and reader.receive(text(b"x")) == []


def test_events_compare_and_failures_default_to_an_open_peer():
    assert Message(True, b"a") == Message(True, b"a") and Message(True, b"a") != Message(False, b"a")
    assert Message(True, b"a") != "a" and repr(Message(True, b"a")) == "Message(text=True, data=b'a')"
    assert Failure(1002, "x").peer_closed is False
    assert repr(Failure(1002, "x")) == "Failure(1002, 'x', peer_closed=False)"


def test_a_reader_needs_a_positive_message_size():
    assert FrameReader(max_message_size=1).max_message_size == 1
    with pytest.raises(ValueError) as refused:
        FrameReader(max_message_size=0)
    assert str(refused.value) == "max_message_size must be >= 1"


# --- header boundaries, RSV bits and what the reader keeps ---------------------------------------


@pytest.mark.parametrize("header", [
    b"\x81\x00",  # the shortest header there is
    b"\x82\x7e\x00\x7e",  # 16-bit length, complete at its 4th byte
    b"\x82\x7f" + struct.pack("!Q", 70000),  # 64-bit length, complete at its 10th byte
], ids=["7-bit", "16-bit", "64-bit"])
def test_an_unmasked_header_fails_as_soon_as_its_last_byte_arrives(header):
    reader = FrameReader()
    assert reader.receive(header[:-1]) == []  # one byte short: still waiting
    (failure,) = reader.receive(header[-1:])
    assert (failure.code, failure.reason) == (1002, "client frames must be masked")


@pytest.mark.parametrize("rsv, inflater, opcode, reason", [
    (4, False, 0x1, "RSV bits set without a negotiated extension"),  # RSV1 needs permessage-deflate
    (2, False, 0x1, "RSV bits set without a negotiated extension"),
    (1, False, 0x2, "RSV bits set without a negotiated extension"),
    (2, True, 0x1, "RSV bits set without a negotiated extension"),  # deflate gives RSV1 a meaning, not 2 or 3
    (1, True, 0x2, "RSV bits set without a negotiated extension"),
    (5, True, 0x1, "RSV bits set without a negotiated extension"),
    (4, True, 0x9, "RSV bits set without a negotiated extension"),  # never on a control frame
    (4, True, 0x1, None),
    (4, True, 0x2, None),
])
def test_rsv_bits_are_refused_unless_permessage_deflate_gives_rsv1_a_meaning(rsv, inflater, opcode, reason):
    reader = FrameReader(inflater=Inflater(DeflateParams()) if inflater else None)
    events = reader.receive(frame(opcode, deflated(b"ok"), rsv=rsv))
    if reason is None:
        assert events == [Message(opcode == 0x1, b"ok")]
    else:
        assert [(e.code, e.reason) for e in events] == [(1002, reason)]


def test_a_control_frame_of_exactly_125_bytes_is_allowed():
    (ping,) = FrameReader().receive(frame(0x9, b"p" * 125))
    assert isinstance(ping, Ping) and ping.data == b"p" * 125


@pytest.mark.parametrize("frames, complaint", [
    ([], "the header alone"),
    ([text(b"abcdef", fin=False)], "with the fragment before it"),
    ([text(b"abcd", fin=False), frame(0x0, b"efgh", fin=False)], "with both fragments before it"),
], ids=["one frame", "two fragments", "three fragments"])
def test_a_message_too_big_is_refused_from_a_frame_header_before_its_payload(frames, complaint):
    reader = FrameReader(max_message_size=10)
    assert reader.receive(b"".join(frames)) == []
    sent = sum(len(f) - 6 for f in frames)  # payload bytes so far (6: a short masked header)
    opcode = 0x0 if frames else 0x2
    header = frame(opcode, b"x" * (11 - sent))[:6]  # the payload itself never arrives
    (failure,) = reader.receive(header)
    assert (failure.code, failure.reason) == (1009, "message exceeds 10 bytes"), complaint


def test_a_deflated_message_too_big_says_so_with_the_limit():
    reader = FrameReader(max_message_size=29, inflater=Inflater(DeflateParams()))
    (failure,) = reader.receive(text(deflated(b"z" * 30), rsv=4))
    assert (failure.code, failure.reason) == (1009, "message exceeds 29 bytes")


class RecordingInflater:
    """Decompresses nothing (returns its input) and records the limits it is given."""

    def __init__(self, tail: bytes = b""):
        self.limits: list[tuple[str, int]] = []
        self.tail = tail

    def decompress(self, data: bytes, limit: int) -> bytes:
        self.limits.append(("decompress", limit))
        return data

    def finish(self, limit: int) -> bytes:
        self.limits.append(("finish", limit))
        return self.tail


def test_the_inflater_is_only_ever_asked_for_what_is_left_of_the_limit():
    inflater = RecordingInflater(tail=b"!")
    reader = FrameReader(max_message_size=100, inflater=inflater)
    events = reader.receive(text(b"a" * 30, rsv=4, fin=False) + frame(0x0, b"b" * 20, fin=False)
                            + frame(0x0, b"c" * 5))
    assert events == [Message(True, b"a" * 30 + b"b" * 20 + b"c" * 5 + b"!")]
    assert inflater.limits == [("decompress", 100), ("decompress", 70), ("decompress", 50), ("finish", 45)]


def test_an_empty_close_has_an_empty_reason():
    (close,) = FrameReader().receive(frame(0x8, b""))
    assert (close.code, close.received, close.reason) == (1000, 1005, "")


@pytest.mark.parametrize("close", [
    frame(0x8, b""),  # read normally
    frame(0x8, b"\x03"),  # a bad close frame: the peer closed all the same
], ids=["good close", "bad close"])
def test_after_the_peer_close_the_reader_is_finished_and_keeps_nothing(close):
    reader = FrameReader()
    reader.receive(close)
    assert reader.failed and not reader.in_frame
    assert reader.receive(text(b"more") + b"\x81") == []
    assert reader.failed and not reader.in_frame  # nothing buffered after the close


def test_after_a_failure_a_close_of_exactly_125_bytes_is_read():
    reader = FrameReader(max_message_size=5)
    reader.receive(frame(0x2, b"x" * 10))
    (close,) = reader.receive(frame(0x8, close_payload(4003, b"r" * 123)))
    assert (type(close), close.code, close.received) == (PeerClose, 4003, 4003)


def test_after_a_failure_an_unmasked_close_is_read_as_it_is():
    """The reader only looks for the peer's code now; an unmasked close still says it."""
    reader = FrameReader(max_message_size=5)
    reader.receive(frame(0x2, b"x" * 10))
    (close,) = reader.receive(frame(0x8, close_payload(4001, b"bye"), masked=False))
    assert (close.code, close.received) == (4001, 4001)
    assert reader.failed and not reader.in_frame
    assert reader.receive(text(b"more")) == [] and not reader.in_frame


def test_a_compressed_binary_frame_sets_rsv1_and_keeps_its_opcode():
    assert protocol_frame(0x2, b"x", rsv1=True)[0] == 0xC2 and protocol_frame(0x8, b"", rsv1=True)[0] == 0xC8


def test_a_violation_carries_its_reason_as_its_message():
    """So that one escaping by mistake says what broke in the traceback."""
    from dashstream.protocol.frames import Violation

    violation = Violation(1002, "reserved opcode 0x3")
    assert (str(violation), violation.code, violation.reason) == ("reserved opcode 0x3", 1002, "reserved opcode 0x3")
