"""Unit tests of the request header reader (dashstream/http_headers.py).

mutmut (with tests/unit/test_chunked_body.py, which covers ``body_framing``): 249 of 261
mutants killed; the 12 left are equivalent: a header name's case in ``get``/``get_all``
(lookups ignore it: ``get_content_type``'s "CONTENT-TYPE", ``body_framing``'s four spellings
of Content-Length and Transfer-Encoding), "ISO-8859-1" for "iso-8859-1" (one codec, two
readers), ``split(";")`` with any maxsplit before ``[0]``, ``find``'s start ``None`` for 0,
``ready_head``'s bare-LF search ending one byte later (that byte is the CR of the CRLF
found), and ``body_framing`` joining codings with "XX,XX" (a list of two or more is never
"chunked" whatever joins it)."""

from __future__ import annotations

import io

import pytest

from dashstream.server import http_headers
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


@pytest.fixture
def empty_memo():
    """``environ_key``'s memo, emptied for the test and filled again after (in place: the
    server's protocol holds the same dict)."""
    memo = http_headers.ENVIRON_KEYS
    kept = dict(memo)
    memo.clear()
    yield memo
    memo.clear()
    memo.update(kept)


@pytest.mark.parametrize(("name", "key"), [
    ("Sec-WebSocket-Key", "HTTP_SEC_WEBSOCKET_KEY"),
    ("origin", "HTTP_ORIGIN"),
    ("X-Forwarded-For", "HTTP_X_FORWARDED_FOR"),
    ("X_Forwarded_For", ""),  # "_" would be confused with "-": eventlet leaves it out
    ("Content-Type", ""),  # CONTENT_TYPE, not HTTP_CONTENT_TYPE
    ("content-length", ""),
    ("Content-Types", "HTTP_CONTENT_TYPES"),
])
def test_environ_key_is_the_key_eventlet_gives_a_header(empty_memo, name, key):
    assert http_headers.environ_key(name) == key
    assert empty_memo == {name: key}  # remembered, by the name as sent


@pytest.mark.parametrize("name", ["Host", "Upgrade", "Sec-WebSocket-Key", "X_Under", "_", "Content-Type",
                                  "CONTENT-LENGTH", "X-Custom-Thing", "accept-encoding"])
def test_the_environ_keys_follow_eventlets_own_rule(name):
    """eventlet's get_environ (the full reader's path): ``formalize_key_naming``, then no
    ``HTTP_`` key for the two it puts under CONTENT_TYPE and CONTENT_LENGTH."""
    from eventlet import wsgi

    formal = wsgi.HttpProtocol.formalize_key_naming(None, name)
    expected = "" if not formal or formal in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + formal
    assert http_headers.environ_key(name) == expected


def test_the_memo_is_bounded_and_a_name_past_it_is_still_answered(empty_memo):
    for number in range(http_headers.ENVIRON_KEYS_KEPT):
        http_headers.environ_key(f"X-{number}")
    assert len(empty_memo) == http_headers.ENVIRON_KEYS_KEPT
    assert http_headers.environ_key("X-One-More") == "HTTP_X_ONE_MORE"
    assert "X-One-More" not in empty_memo and len(empty_memo) == http_headers.ENVIRON_KEYS_KEPT
