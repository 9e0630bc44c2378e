"""The HTTP helpers (``dashstream.edge.http``): the one bearer parser, the constant-time
comparison, the bearer check of publish and reload, and the JSON body reader."""

from __future__ import annotations

import io

import pytest

from dashstream.edge.http import HTTPError, bearer_token, read_json_object, require_bearer, same_token

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("header, token", [
    (None, None), ("", None), ("Bearer abc", "abc"), ("bearer   abc ", "abc"), (" Bearer abc", "abc"),
    ("BEARER a b", "a b"), ("Basic YWJj", None), ("Bearer", None), ("Bearer   ", None), ("abc", None),
])
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def test_same_token_is_exact_and_never_raises():
    assert same_token("s3cret", "s3cret")
    assert not same_token("s3cret", None) and not same_token("s3cret", "s3cre") and not same_token("s3cret", "")
    assert not same_token("s3cret", "s3crét") and not same_token("s3cret", "s3cret\udcff")


def test_require_bearer_is_403_when_off_and_401_when_wrong():
    with pytest.raises(HTTPError) as off:
        require_bearer({"HTTP_AUTHORIZATION": "Bearer x"}, None, "publishing")
    assert off.value.status == "403 Forbidden" and "publishing is off" in off.value.reason
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Basic s3cret"}):
        with pytest.raises(HTTPError) as wrong:
            require_bearer(header, "s3cret", "reload")
        assert wrong.value.status == "401 Unauthorized"
        assert ("WWW-Authenticate", 'Bearer realm="dashstream"') in wrong.value.headers
    require_bearer({"HTTP_AUTHORIZATION": "bearer  s3cret "}, "s3cret", "reload")


def body(data: bytes, content_type: str = "application/json") -> dict:
    return {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data)}


def test_the_body_reader_takes_a_json_object():
    assert read_json_object(body(b'{"variable": 1}'), 100) == {"variable": 1}
    assert read_json_object(body(b'{"variable": 1}', "application/merge-patch+json; charset=utf-8"), 100)


@pytest.mark.parametrize("sent, status, reason", [
    ((b"{}", "text/plain"), "415 Unsupported Media Type", "got 'text/plain'"),
    ((b"x" * 101,), "413 Content Too Large", "100-byte limit"),
    ((b"{",), "400 Bad Request", "malformed JSON"),
    ((b'{"variable": NaN}',), "400 Bad Request", "NaN is not valid JSON"),
    ((b"[" * 100,), "400 Bad Request", "malformed JSON"),
    ((b"[1]",), "400 Bad Request", "got an array"),
    ((b"7",), "400 Bad Request", "got a number"),
    # The same JSON rules as a source's payload (producer.values.parse_json):
    ((b'{"variable": 1e400}',), "400 Bad Request", "1e400 is out of range"),
    ((b'{"variable": "\xff"}',), "400 Bad Request", "not UTF-8"),
])
def test_the_body_reader_refuses_with_a_reason(sent, status, reason):
    with pytest.raises(HTTPError) as refused:
        read_json_object(body(*sent), 100)  # a fresh body each run: a read one is empty
    assert refused.value.status == status and reason in refused.value.reason
