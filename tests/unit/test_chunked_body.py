"""The bounded chunked body reader (server/chunked_body.py) and the body-framing check
(server/http_headers.py ``body_framing``), fed bytes."""

from __future__ import annotations

import io

import pytest

from dashstream.server.chunked_body import MAX_LINE, MAX_TRAILERS, ChunkedBody, ChunkError
from dashstream.server.http_headers import BadFraming, Headers, body_framing


def body(data: bytes) -> ChunkedBody:
    return ChunkedBody(io.BufferedReader(io.BytesIO(data)))


def test_chunks_extensions_and_trailers():
    assert body(b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n").read() == b"Wikipedia"
    assert body(b"A\r\n0123456789\r\n0\r\n\r\n").read(4) == b"0123"
    reader = body(b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\nNEXT")
    assert reader.read(100) == b"abcdef" and reader.done
    assert reader.rfile.read() == b"NEXT"  # nothing past the body is consumed


@pytest.mark.parametrize("data, reason", [
    (b"1" * (MAX_LINE + 10), "chunk line over"),
    (b"5\r\nabc", "ended inside a chunk"),
    (b"3\r\nabcdef\r\n0\r\n\r\n", "longer than its chunk size"),
    (b"-5\r\n", "hexadecimal"), (b"0x10\r\n", "hexadecimal"), (b"1_0\r\n", "hexadecimal"),
    (b"\r\n", "hexadecimal"), (b"1" * 17 + b"\r\n", "hexadecimal"),
    (b"0\r\n" + b"X: 1\r\n" * (MAX_TRAILERS + 1) + b"\r\n", "trailer lines"),
    (b"0\r\n" + b"X" * (MAX_LINE + 1), "chunk line over"),
    (b"", "before its last chunk"),
])
def test_broken_or_unbounded_framing_is_refused(data, reason):
    with pytest.raises(ChunkError, match=reason):
        body(data).read(1 << 20)


def test_a_trailer_count_at_the_limit_is_fine():
    assert body(b"1\r\nx\r\n0\r\n" + b"X: 1\r\n" * MAX_TRAILERS + b"\r\n").read() == b"x"


def test_content_length_values():
    assert body_framing(Headers([("Content-Length", "15")])).get("Content-Length") == "15"
    same = body_framing(Headers([("Host", "x"), ("Content-Length", "15"), ("content-length", "15")]))
    assert same.get_all("Content-Length") == ["15"] and same.get("Host") == "x"
    assert body_framing(Headers([("Content-Length", "15, 15")])).get_all("Content-Length") == ["15"]
    for values in (["15", "3"], ["15, 3"], ["x"], ["-1"], ["\u0661"], ["9" * 30], [""]):
        with pytest.raises(BadFraming) as error:
            body_framing(Headers([("Content-Length", value) for value in values]))
        assert error.value.status == 400, values


def test_transfer_codings():
    assert body_framing(Headers([("Transfer-Encoding", "Chunked")])).get("Transfer-Encoding") == "Chunked"
    for value in ("gzip, chunked", "chunked, chunked", "identity"):
        with pytest.raises(BadFraming) as error:
            body_framing(Headers([("Transfer-Encoding", value)]))
        assert error.value.status == 501
