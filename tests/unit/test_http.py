"""The HTTP helpers (``dashstream.edge.http``): the one bearer parser, the constant-time
comparison, the bearer check of publish and reload, and the JSON body reader.

Mutants left alive on purpose (mutmut 3.8.1, no test could tell them apart): ``bearer_token``'s
``authorization or ""`` as ``or "XXXX"`` (no space, so no credentials: None either way);
``"utf-8"`` as ``"UTF-8"`` (codec names ignore case); ``CONTENT_LENGTH or ""`` as ``or "XXXX"``
(neither is digits, so neither is a declared length)."""

from __future__ import annotations

import io

import pytest

from dashstream import runtime
from dashstream.edge.http import (
    HTTPError,
    bearer_token,
    read_json_object,
    require_bearer,
    require_method,
    respond,
    respond_json,
    same_token,
)

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
        assert wrong.value.status == "401 Unauthorized" and wrong.value.reason == "missing or wrong bearer token"
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


class Start:
    """A fake ``start_response``: what it was called with."""

    def __call__(self, status, headers):
        self.status, self.headers = status, headers


def test_an_http_error_is_its_reason_and_is_logged_unless_quiet():
    error = HTTPError("400 Bad Request", "no 'variable' field")
    assert str(error) == "no 'variable' field" and error.headers == [] and error.quiet is False
    assert HTTPError("429 Too Many Requests", "slow down", quiet=True).quiet is True


def test_a_response_states_its_type_and_length_then_the_extra_headers():
    start = Start()
    assert respond(start, "200 OK", "héllo", "text/plain; charset=utf-8", [("X-A", "1")]) == ["héllo".encode()]
    assert start.status == "200 OK"
    assert start.headers == [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "6"), ("X-A", "1")]
    assert respond(start, "204 No Content", b"", "text/plain") == [b""]
    assert start.headers == [("Content-Type", "text/plain"), ("Content-Length", "0")]


def test_a_json_response_is_one_line_never_cached():
    start = Start()
    assert respond_json(start, "503 Service Unavailable", {"ready": False}) == [b'{"ready": false}\n']
    assert start.status == "503 Service Unavailable"
    assert start.headers == [("Content-Type", "application/json"), ("Content-Length", "17"),
                             ("Cache-Control", "no-store")]


def test_a_method_not_allowed_is_405_naming_the_ones_that_are():
    require_method({"REQUEST_METHOD": "POST"}, "POST")
    require_method({}, "GET", "HEAD")  # no method is a GET
    with pytest.raises(HTTPError) as refused:
        require_method({}, "POST")
    assert refused.value.reason == "GET is not allowed here; use POST"
    with pytest.raises(HTTPError) as refused:
        require_method({"REQUEST_METHOD": "DELETE"}, "GET", "HEAD")
    assert refused.value.status == "405 Method Not Allowed"
    assert refused.value.reason == "DELETE is not allowed here; use GET or HEAD"
    assert refused.value.headers == [("Allow", "GET, HEAD")]


class Unread:
    """A body that must not be read."""

    def read(self, size=-1):
        pytest.fail("the body was read")


class Endless:
    """A chunked body (no Content-Length) that never ends; the sizes asked for."""

    def __init__(self):
        self.asked = []

    def read(self, size=-1):
        assert size is not None and size >= 0, "an unbounded read of a body"
        self.asked.append(size)
        return b"7" * size


def refusal(environ, limit=100, **kw) -> HTTPError:
    with pytest.raises(HTTPError) as refused:
        read_json_object(environ, limit, **kw)
    return refused.value


def test_a_body_without_a_content_type_is_415_saying_none():
    error = refusal({"wsgi.input": Unread()})
    assert error.status == "415 Unsupported Media Type"
    assert error.reason == "Content-Type must be application/json, got 'none'"


def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read():
    error = refusal({"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "101", "wsgi.input": Unread()})
    assert error.status == "413 Content Too Large"
    assert error.reason == "body over the 100-byte limit (--max-publish-size)"
    assert error.headers == [("Connection", "close")]


def test_an_undeclared_body_is_read_one_byte_past_the_limit_at_most():
    body = Endless()
    error = refusal({"CONTENT_TYPE": "application/json", "wsgi.input": body})
    assert error.status == "413 Content Too Large" and error.headers == [("Connection", "close")]
    assert body.asked and max(body.asked) <= 101
    exact = b'{"variable": "' + b"x" * 84 + b'"}'  # exactly the limit
    assert len(exact) == 100
    environ = {"CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(exact)}
    assert read_json_object(environ, 100) == {"variable": "x" * 84}


def test_a_body_that_does_not_arrive_in_time_is_408():
    class Stalled:
        def read(self, size=-1):
            runtime.sleep(2)
            return b"{}"

    error = refusal({"CONTENT_TYPE": "application/json", "wsgi.input": Stalled()}, timeout=0.05)
    assert error.status == "408 Request Timeout" and error.reason == "the body did not arrive within 0.05s"
    assert error.headers == [("Connection", "close")]
    # In time, the deadline is cancelled with the read: nothing fires later.
    environ = {"CONTENT_TYPE": "application/json", "wsgi.input": io.BytesIO(b'{"variable": 1}')}
    assert read_json_object(environ, 100, timeout=0.05) == {"variable": 1}
    runtime.sleep(0.1)


def test_no_timeout_or_zero_sets_no_deadline_on_the_body():
    class Yielding:
        """A body that arrives after the reader yields to the hub once."""

        def read(self, size=-1):
            runtime.sleep(0)
            return b'{"variable": 1}'

    for no_deadline in (None, 0):
        environ = {"CONTENT_TYPE": "application/json", "wsgi.input": Yielding()}
        assert read_json_object(environ, 100, timeout=no_deadline) == {"variable": 1}


def test_someone_elses_timeout_passes_through_the_body_reader():
    theirs = runtime.Timeout()
    theirs.cancel()

    class Interrupted:
        def read(self, size=-1):
            raise theirs

    with pytest.raises(runtime.Timeout) as raised:
        read_json_object({"CONTENT_TYPE": "application/json", "wsgi.input": Interrupted()}, 100, timeout=5)
    assert raised.value is theirs


def test_a_broken_chunked_body_is_400_and_closes():
    class Broken:
        def read(self, size=-1):
            raise ValueError("invalid chunk length")

    error = refusal({"CONTENT_TYPE": "application/json", "wsgi.input": Broken()})
    assert error.status == "400 Bad Request" and error.reason == "unreadable body: invalid chunk length"
    assert error.headers == [("Connection", "close")]


def test_a_bare_number_or_string_is_taken_only_where_asked():
    assert read_json_object(body(b"42"), 100, bare_as="variable") == {"variable": 42}
    assert read_json_object(body(b'"up"'), 100, bare_as="variable") == {"variable": "up"}
    assert read_json_object(body(b'{"variable": 1}'), 100, bare_as="variable") == {"variable": 1}
    error = refusal(body(b"true"), bare_as="variable")  # a boolean is no number here
    assert error.status == "400 Bad Request"
    assert error.reason == "body must be a JSON object, number or string, got a boolean"
    assert refusal(body(b"42")).reason == "body must be a JSON object, got a number"
