"""The frame reader's limits that scale or count (protocol/frames.py): the fragment bound
follows --max-message-size (Autobahn 9.3.x/9.4.x with a raised limit), and a stream
socket's data budget."""

from __future__ import annotations

from dashstream.protocol.frames import (
    DEFAULT_MAX_FRAGMENTS,
    FRAME_COST,
    STREAM_SOCKET_DATA_BUDGET,
    Failure,
    FrameReader,
    Message,
    fragment_limit,
)
from tests.ws_frames import fragmented
from tests.ws_frames import frame as client_frame


def test_the_fragment_bound_scales_with_the_message_limit():
    assert fragment_limit(64 * 1024) == DEFAULT_MAX_FRAGMENTS
    assert fragment_limit(256 * 1024) == DEFAULT_MAX_FRAGMENTS
    assert fragment_limit(4 << 20) == 65536
    assert fragment_limit(32 << 20) == 524288
    assert FrameReader(max_message_size=32 << 20).max_fragments == 524288
    assert FrameReader(max_fragments=7).max_fragments == 7
    # A whole number of fragments whatever the limit: one more per full 64 bytes.
    assert fragment_limit((4 << 20) + 63) == 65536 and type(fragment_limit((4 << 20) + 63)) is int


def test_autobahn_9_3_1_four_mebibytes_in_64_byte_fragments_passes_with_a_raised_limit():
    payload = b"*" * (4 << 20)
    data = fragmented(0x1, payload, 64)
    reader = FrameReader(max_message_size=4 << 20)
    events = []
    for at in range(0, len(data), 1 << 16):
        events += reader.receive(data[at:at + (1 << 16)])
    assert events == [Message(True, payload)]
    binary = FrameReader(max_message_size=16 << 20, keep_messages=False)  # 9.4.1, a stream socket's reader
    assert binary.receive(fragmented(0x2, payload, 64)) == [Message(False, None)]


def test_tiny_fragments_stay_bounded_with_the_default_limit():
    reader = FrameReader()  # 64 KiB: 4,096 fragments at most, as before
    (failure,) = reader.receive(fragmented(0x1, b"a" * 5000, 1))
    assert isinstance(failure, Failure) and failure.code == 1009 and "4096 fragments" in failure.reason
    empty = FrameReader(max_message_size=4 << 20)  # empty fragments count: no endless message
    events = empty.receive(client_frame(0x1, b"", fin=False)
                           + b"".join(client_frame(0x0, b"", fin=False) for _ in range(65536)))
    assert [event.code for event in events] == [1009]


def test_a_stream_socket_closes_1008_past_its_data_budget():
    reader = FrameReader(keep_messages=False, data_budget=STREAM_SOCKET_DATA_BUDGET)
    size = 4000
    per_message = size + FRAME_COST
    allowed = STREAM_SOCKET_DATA_BUDGET // per_message
    events = reader.receive(b"".join(client_frame(0x1, b"a" * size) for _ in range(allowed)))
    assert events == [Message(True, None)] * allowed
    (failure,) = reader.receive(client_frame(0x1, b"a" * size))
    assert failure.code == 1008 and "reads no messages" in failure.reason
    pings = FrameReader(keep_messages=False, data_budget=100)
    assert len(pings.receive(b"".join(client_frame(0x9, b"p") for _ in range(1000)))) == 1000  # not data


def test_each_fragment_costs_its_frame_and_the_budget_may_be_spent_to_the_byte():
    size, pieces = 100, 3
    reader = FrameReader(keep_messages=False, data_budget=size + pieces * FRAME_COST)
    assert reader.receive(fragmented(0x2, b"a" * size, size // pieces + 1)) == [Message(False, None)]
    (failure,) = reader.receive(client_frame(0x2))  # one frame more: over by FRAME_COST
    assert failure.code == 1008 and f"over {size + pieces * FRAME_COST} bytes sent" in failure.reason


def test_empty_messages_are_counted_against_the_budget():
    reader = FrameReader(keep_messages=False, data_budget=STREAM_SOCKET_DATA_BUDGET)
    events = reader.receive(b"".join(client_frame(0x2) for _ in range(STREAM_SOCKET_DATA_BUDGET // FRAME_COST + 1)))
    assert isinstance(events[-1], Failure) and events[-1].code == 1008


def test_a_message_over_the_limit_is_still_1009_on_a_stream_socket():
    reader = FrameReader(keep_messages=False, data_budget=STREAM_SOCKET_DATA_BUDGET)
    (failure,) = reader.receive(client_frame(0x1, b"a" * 70000))
    assert failure.code == 1009
