"""Unit tests of the request header reader (dashstream/http_headers.py)."""

from __future__ import annotations

import io

import pytest

from dashstream.server.http_headers import (
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_LINE,
    BadHeaders,
    Headers,
    TooManyHeaders,
    read_headers,
    ready_head,
)


def read(block: bytes) -> Headers:
    return read_headers(io.BytesIO(block).readline)


def test_fields_in_order_with_case_insensitive_lookup():
    headers = read(b"Host: x\r\nUpgrade: websocket\r\nX-Twice: a\r\nx-twice: b\r\n\r\nbody")
    assert headers.items() == [("Host", "x"), ("Upgrade", "websocket"), ("X-Twice", "a"), ("x-twice", "b")]
    assert headers.get("upgrade") == headers["UPGRADE"] == "websocket"
    assert headers.get("x-twice") == "a"  # the first, as email.message.Message answers
    assert headers.get_all("X-TWICE") == ["a", "b"] and headers.get_all("nope", []) == []
    assert headers.get("missing") is None and headers.get("missing", "d") == "d"
    assert "host" in headers and "Host" in headers and "nope" not in headers and 3 not in headers
    assert list(headers) == headers.keys() == ["Host", "Upgrade", "X-Twice", "x-twice"]
    assert headers.values() == ["x", "websocket", "a", "b"] and len(headers) == 4
    assert headers._headers == headers.items()  # what eventlet's get_environ reads


def test_values_are_trimmed_and_may_be_empty_or_hold_colons():
    headers = read(b"A:  spaced \t\r\nB:\r\nC: http://x:80/\nD:x\nE: XX\r\nF: form\x0c\r\n\n")
    assert headers.items() == [("A", "spaced"), ("B", ""), ("C", "http://x:80/"), ("D", "x"), ("E", "XX"),
                               ("F", "form\x0c")]  # only spaces and tabs are HTTP's optional whitespace


def test_the_block_ends_at_an_empty_line_or_the_end():
    assert read(b"").items() == [] and read(b"\r\n").items() == [] and read(b"\n").items() == []
    assert read(b"A: 1\r\n").items() == [("A", "1")]


def test_latin1_bytes_are_kept():
    assert read(b"X: caf\xe9\r\n\r\n").get("x") == "caf\xe9"


NO_NAME = "a header line without a field name and a colon"
SPACE = "whitespace between a header field name and its colon"
FOLDED = "a folded header line (obsolete line folding is not accepted)"


@pytest.mark.parametrize("line, reason", [
    (b"no colon here\r\n", NO_NAME), (b": empty name\r\n", NO_NAME),
    (b"Name : space before colon\r\n", SPACE), (b"Name\t: tab\r\n", SPACE),
    (b"A: 1\r\n folded\r\n", FOLDED), (b"A: 1\r\n\tfolded\r\n", FOLDED)])
def test_what_http_forbids_is_refused(line, reason):
    with pytest.raises(BadHeaders) as refused:
        read(line + b"\r\n")
    assert str(refused.value) == reason


def test_at_most_max_headers():
    assert len(read(b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADERS)) + b"\r\n")) == MAX_HEADERS
    with pytest.raises(TooManyHeaders, match="Too many headers"):
        read(b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADERS + 1)) + b"\r\n")


@pytest.mark.parametrize("value, media", [(None, "text/plain"), ("", "text/plain"),
                                          ("application/json; charset=utf-8", "application/json"),
                                          ("Text/HTML", "text/html"), ("nonsense", "text/plain"),
                                          ("a/b; x=1; y=2", "a/b")])
def test_content_type_as_email_message_answers_it(value, media):
    headers = Headers([("Content-Type", value)] if value is not None else [])
    assert headers.get_content_type() == media


# --- a whole head in bytes already received (ready_head) ------------------------------------------

HANDSHAKE = (b"GET /ws/x?token=t HTTP/1.1\r\nHost: h:1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def test_a_whole_head_is_read_as_the_line_reader_reads_it():
    after = b"\x81\x85frame"
    head = ready_head(HANDSHAKE + after)
    assert head.request_line == b"GET /ws/x?token=t HTTP/1.1\r\n"
    assert head.size == len(HANDSHAKE) and (HANDSHAKE + after)[head.size:] == after
    full = io.BytesIO(HANDSHAKE)
    full.readline()
    assert head.headers.items() == read_headers(full.readline).items()
    assert head.headers.by_name["upgrade"] == "websocket" and head.headers.get("HOST") == "h:1"


def line_reader(data: bytes) -> tuple[list, int]:
    """What eventlet's line reader takes from ``data``: the fields, and the bytes it read."""
    stream = io.BytesIO(data)
    stream.readline()
    return read_headers(stream.readline).items(), stream.tell()


@pytest.mark.parametrize("data, fields", [
    (b"GET / HTTP/1.1\nA: 1\nB:2\n\nrest", [("A", "1"), ("B", "2")]),  # bare LF line ends
    (b"GET / HTTP/1.1\r\nA: 1\n\r\nrest", [("A", "1")]),  # mixed: the first empty line ends it
    (b"GET / HTTP/1.1\r\n\r\n", []),  # no header at all
    (b"GET / HTTP/1.1\r\nA: 1\r\r\nB: 2\r\n\r\n", [("A", "1"), ("B", "2")]),  # CR CR LF is no empty line
    (b"GET / HTTP/1.1\r\nA: x\n\nB: 2\r\n\r\n", [("A", "x")]),  # a bare empty line before a CRLF one
])
def test_the_head_ends_where_readline_finds_the_first_empty_line(data, fields):
    head = ready_head(data)
    assert (head.headers.items(), head.size) == line_reader(data) and head.headers.items() == fields


@pytest.mark.parametrize("data", [
    b"", b"GET / HTTP/1.1\r\nHost: x\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r",  # not all there yet
    b"GET / HTTP/1.1\r\nno colon\r\n\r\n", b"GET / HTTP/1.1\r\nA : 1\r\n\r\n",  # against the grammar
    b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", b"GET / HTTP/1.1\r\n: 1\r\n\r\n",
])
def test_a_head_not_all_there_or_against_the_rules_is_left_to_the_full_reader(data):
    assert ready_head(data) is None


def test_the_line_and_size_limits_are_eventlets():
    def header_line(length: int) -> bytes:  # a header line of ``length`` bytes, its CRLF included
        return b"X: " + b"v" * (length - 5) + b"\r\n"

    longest = b"GET / HTTP/1.1\r\n" + header_line(MAX_LINE - 1) + b"\r\n"
    assert ready_head(longest) is not None and ready_head(longest.replace(b"X: ", b"X: v", 1)) is None
    target = b"/" + b"a" * (MAX_LINE - 1 - len(b"GET / HTTP/1.1\r\n"))
    assert ready_head(b"GET " + target + b" HTTP/1.1\r\n\r\n") is not None  # a request line of MAX_LINE - 1
    assert ready_head(b"GET " + target + b"a HTTP/1.1\r\n\r\n") is None
    lines = [header_line(8000)] * 8  # 64,000 bytes
    fits = b"GET / HTTP/1.1\r\n" + b"".join(lines) + header_line(MAX_HEADER_BYTES - 64000 - 2) + b"\r\n"
    assert ready_head(fits) is not None  # header lines and the empty line: MAX_HEADER_BYTES exactly
    assert ready_head(fits.replace(b"X: ", b"X: v", 1)) is None  # one byte more
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADERS))
    assert len(ready_head(many + b"\r\n").headers) == MAX_HEADERS
    assert ready_head(many + b"Y: 1\r\n\r\n") is None


def test_latin1_bytes_are_kept_in_a_ready_head():
    head = ready_head(b"GET /caf\xe9 HTTP/1.1\r\nX: caf\xe9\r\n\r\n")
    assert head.request_line == b"GET /caf\xe9 HTTP/1.1\r\n" and head.headers.get("x") == "caf\xe9"


@pytest.mark.parametrize("data", [
    HANDSHAKE + HANDSHAKE,  # a second head behind the first: the first one ends it
    b"GET / HTTP/1.1\r\nA: 1\r\n\r\nbody\n\nmore",  # an empty-looking pair after the head
    b"GET / HTTP/1.1\r\nA: 1\n\nB: 2\n\nC: 3\r\n\r\n",  # two bare empty lines: the first ends it
    b"GET / HTTP/1.1\r\nA: x\n\n\r\n",  # a bare empty line right before a CRLF
    b"\n\nGET / HTTP/1.1\r\n\r\n",  # an empty request line, then the end at once
    b"\n\r\nA: 1\n\n",
    b"\n\r\n",
    b"GET / HTTP/1.1\r\nE: XX\r\nF: form\x0c\r\nG: tab\t\r\n\r\n",  # only CR/LF end a line; only SP/HT are trimmed
])
def test_a_ready_head_is_what_the_line_reader_reads(data):
    head = ready_head(data)
    fields, size = line_reader(data)
    assert (head.headers.items(), head.size) == (fields, size)
    assert head.request_line == data[:data.index(b"\n") + 1]
