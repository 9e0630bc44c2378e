"""``dashstream.server.first_read``: bytes taken from a socket given back first, and files
made only when used."""

from __future__ import annotations

import io
import socket

import pytest

from dashstream.server.first_read import OnDemand, Replay, replaying_reader

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def test_the_bytes_taken_come_first_then_the_socket(pair):
    ours, theirs = pair
    theirs.sendall(b"NE 2\nrest")
    reader = replaying_reader(ours, b"line 1\nLI")
    assert reader.readline() == b"line 1\n"
    assert reader.readline() == b"LINE 2\n"  # across the bytes taken and the socket
    assert reader.read(4) == b"rest"


def test_a_small_buffer_gets_the_bytes_taken_in_turns(pair):
    ours, _ = pair
    raw = Replay(ours, b"abcdef")
    buffer = bytearray(4)
    assert raw.readinto(buffer) == 4 and buffer == b"abcd"
    assert raw.readinto(buffer) == 2 and buffer[:2] == b"ef"


def test_the_error_the_first_read_met_is_met_once_after_the_bytes(pair):
    ours, theirs = pair
    theirs.sendall(b"later")
    raw = Replay(ours, b"x", ConnectionResetError("reset"))
    buffer = bytearray(16)
    assert raw.readinto(buffer) == 1
    with pytest.raises(ConnectionResetError):
        raw.readinto(buffer)
    assert raw.readinto(buffer) == 5 and buffer[:5] == b"later"


def test_the_reader_counts_as_one_of_the_sockets_files(pair):
    ours, _ = pair
    reader = replaying_reader(ours, b"x")
    ours.close()
    assert ours.fileno() != -1  # a file is still open: the descriptor stays (as makefile's)
    reader.close()
    assert ours.fileno() == -1


def test_a_file_on_demand_is_made_at_first_use_and_passes_everything_on():
    made = []

    def open_file():
        made.append(io.BytesIO(b"body"))
        return made[-1]

    lazy = OnDemand(open_file)
    assert not lazy.opened and not lazy.closed and made == []
    lazy.flush()  # nothing to flush: nothing made
    assert made == []
    assert lazy.read() == b"body" and lazy.opened and len(made) == 1
    assert lazy.tell() == 4 and len(made) == 1  # made once
    lazy.close()
    assert lazy.closed and made[0].closed


def test_closing_one_never_made_makes_nothing_and_then_it_is_closed():
    made = []
    lazy = OnDemand(lambda: made.append(1))
    lazy.close()
    assert lazy.closed and made == []
    with pytest.raises(ValueError):
        lazy.write(b"x")
    assert made == []


def test_the_reader_has_the_buffer_size_asked_and_meets_the_error_after_the_bytes(pair):
    ours, _ = pair
    reader = replaying_reader(ours, b"x" * 100, size=16)
    assert reader.peek(100) == b"x" * 16  # one buffer's worth at a time
    failing = replaying_reader(ours, b"", ConnectionResetError("reset"))
    with pytest.raises(ConnectionResetError):
        failing.read(1)


def test_the_socket_closes_when_the_last_of_its_files_does(pair):
    ours, _ = pair
    plain = ours.makefile("rb")
    replaying = replaying_reader(ours, b"x")
    ours.close()
    plain.close()
    assert ours.fileno() != -1  # the replaying reader still holds it
    replaying.close()
    assert ours.fileno() == -1


def test_a_file_never_made_is_open_until_closed_and_then_refuses_use():
    lazy = OnDemand(io.BytesIO)
    assert lazy.closed is False
    lazy.close()
    assert lazy.closed is True
    with pytest.raises(ValueError, match=r"^I/O operation on closed file$"):
        lazy.read()
