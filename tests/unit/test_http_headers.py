"""Unit tests of the request header reader (dashstream/http_headers.py)."""

from __future__ import annotations

import io

import pytest

from dashstream.server.http_headers import MAX_HEADERS, BadHeaders, Headers, TooManyHeaders, read_headers


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
