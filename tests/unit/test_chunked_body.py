"""The bounded chunked body reader (server/chunked_body.py) and the body-framing check
(server/http_headers.py ``body_framing``), fed bytes.

Mutants left alive on purpose (mutmut 3.8.1, no test could tell them apart): ``_left = None``
for ``0`` (only ever read as ``not self._left``, true for both); ``size < 0`` as ``size <= 0``
or ``size < 1`` where ``want`` is worked out (a ``read(0)`` never enters the loop, so ``size``
there is never 0)."""

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
    assert reader.done is False  # a flag: False until the last chunk, then True
    assert reader.read(100) == b"abcdef" and reader.done is True
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
    (b"3", "before its last chunk"),  # a size line cut off by the end: not "over 4096 bytes"
    (b"3\r\nabc\r", "before its last chunk"),
])
def test_broken_or_unbounded_framing_is_refused(data, reason):
    with pytest.raises(ChunkError, match=reason):
        body(data).read(1 << 20)


class Recording(io.BufferedReader):
    """The buffered request file, and how much each ``readline`` may take."""

    def __init__(self, data: bytes):
        super().__init__(io.BytesIO(data))
        self.limits: list = []

    def readline(self, size=-1):
        self.limits.append(size)
        return super().readline(size)


def test_a_line_is_read_one_byte_past_its_bound_at_most_and_may_be_exactly_the_bound():
    size_line = b"3;" + b"e" * (MAX_LINE - 4) + b"\r\n"  # MAX_LINE bytes with its CRLF
    assert len(size_line) == MAX_LINE
    rfile = Recording(size_line + b"abc\r\n0\r\n\r\n")
    assert ChunkedBody(rfile).read() == b"abc"
    assert rfile.limits and all(limit == MAX_LINE + 1 for limit in rfile.limits)


def test_reads_stop_at_the_size_asked_across_chunks():
    reader = body(b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n")
    assert reader.read(5) == b"abc01" and reader.read(0) == b"" and not reader.done
    assert reader.read(None) == b"23456789abcdef" and reader.done and reader.read() == b""


def test_bare_lf_line_ends_and_sixteen_hex_digits_are_taken():
    assert body(b"3\nabc\n0\nX: 1\n\n").read() == b"abc"
    assert body(b"000000000000000A\r\n0123456789\r\n0\r\n\r\n").read() == b"0123456789"
    assert body(b"3 \t;x\r\nabc\r\n0\r\n\r\n").read() == b"abc"  # spaces before an extension


@pytest.mark.parametrize("size_line", [b"5\x0c\r\n", b"\x0b5\r\n", b"5X\r\n", b"X5\r\n"])
def test_a_chunk_size_is_hex_digits_and_blanks_only(size_line):
    with pytest.raises(ChunkError) as refused:
        body(size_line + b"abcde\r\n0\r\n\r\n").read()
    assert str(refused.value) == "a chunk size that is not 1 to 16 hexadecimal digits"


@pytest.mark.parametrize("data, reason", [
    (b"5\r\nabc", "the body ended inside a chunk"),
    (b"3\r\nabcdef\r\n0\r\n\r\n", "chunk data longer than its chunk size"),
    (b"", "the body ended before its last chunk"),
    (b"1" * (MAX_LINE + 10), f"a chunk line over {MAX_LINE} bytes"),
    (b"0\r\n" + b"X: 1\r\n" * (MAX_TRAILERS + 1) + b"\r\n", f"more than {MAX_TRAILERS} trailer lines"),
])
def test_each_refusal_reads_whole(data, reason):
    with pytest.raises(ChunkError) as refused:
        body(data).read()
    assert str(refused.value) == reason


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


def test_each_refusal_says_why_in_its_reason():
    """The reason is the 400/501 answer's one line (serve.GuardedHttpProtocol.send_error)."""
    cases = [([("Content-Length", "15"), ("Content-Length", "3")], 400, "two different Content-Length values"),
             ([("Content-Length", "x")], 400, "Content-Length must be a number of bytes"),
             ([("Transfer-Encoding", "gzip")], 501, "the only Transfer-Encoding understood is chunked")]
    for fields, status, reason in cases:
        with pytest.raises(BadFraming) as error:
            body_framing(Headers(fields))
        assert (error.value.status, str(error.value)) == (status, reason)


def test_content_length_digits_from_one_to_eighteen():
    for value in ("0", "7", "9" * 18):
        assert body_framing(Headers([("Content-Length", value)])).get("Content-Length") == value
    with pytest.raises(BadFraming):
        body_framing(Headers([("Content-Length", "9" * 19)]))


def test_only_spaces_and_tabs_around_a_length_or_a_coding_are_trimmed():
    # Around each comma-separated length: " \t" (OWS), nothing else: a form feed or a letter
    # stays and makes it no number.
    assert body_framing(Headers([("Content-Length", "15,\t 15 ")])).get_all("Content-Length") == ["15"]
    for value in ("15\x0c", "X15", "15X"):
        with pytest.raises(BadFraming):
            body_framing(Headers([("Content-Length", value)]))
    assert body_framing(Headers([("Transfer-Encoding", " \tchunked\t ")])).get("Transfer-Encoding") == " \tchunked\t "
    for value in ("chunked\x0c", "Xchunked", "chunkedX"):
        with pytest.raises(BadFraming):
            body_framing(Headers([("Transfer-Encoding", value)]))
    # Two Transfer-Encoding lines read as one comma list: "chunked" and "" is "chunked,".
    with pytest.raises(BadFraming):
        body_framing(Headers([("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "")]))


def test_one_plain_length_keeps_the_headers_and_a_merged_one_is_named_as_http_writes_it():
    headers = Headers([("Host", "x"), ("content-length", "15")])
    assert body_framing(headers) is headers
    merged = body_framing(Headers([("content-length", "15"), ("Host", "x"), ("CONTENT-LENGTH", "15")]))
    assert merged.items() == [("Host", "x"), ("Content-Length", "15")]
