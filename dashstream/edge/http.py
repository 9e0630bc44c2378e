"""Small HTTP pieces for the WSGI app: errors as exceptions, responses, auth, JSON bodies.

Each check raises ``HTTPError`` with the specific status and a one-line reason; the app
turns it into a text response. Nothing here touches streams, so a refused request
cannot leave a stream half-changed.

The one bearer-token parser (``bearer_token``) and constant-time comparison
(``same_token``) for every endpoint that takes a token: publish and reload here, the
subscriber token in ``admission.py``, ``/metrics`` (``app.metrics_response``). Importing this
module loads no eventlet (``admission`` is imported by ``dashstream.config``): the body
reader asks ``runtime`` for its deadline only when it runs.
"""

from __future__ import annotations

import hmac
import json
from typing import Any, Iterable

from producer.values import BadValue, json_kind, parse_json


class HTTPError(Exception):
    def __init__(self, status: str, reason: str, headers: list[tuple[str, str]] | None = None,
                 quiet: bool = False):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []
        self.quiet = quiet  # logged at debug level (repeats that could flood the log)


def respond(start_response, status: str, body: str | bytes, content_type: str,
            headers: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    data = body.encode() if isinstance(body, str) else body
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))), *headers])
    return [data]


def respond_json(start_response, status: str, payload: Any) -> list[bytes]:
    return respond(start_response, status, json.dumps(payload) + "\n", "application/json",
                   [("Cache-Control", "no-store")])


def require_method(environ: dict, *allowed: str) -> None:
    method = environ.get("REQUEST_METHOD", "GET")
    if method not in allowed:
        raise HTTPError("405 Method Not Allowed", f"{method} is not allowed here; use {' or '.join(allowed)}",
                        [("Allow", ", ".join(allowed))])


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header (the scheme in any case,
    spaces around the token ignored), or ``None``: no header, another scheme, no token."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    credentials = credentials.strip()
    return credentials if scheme.lower() == "bearer" and credentials else None


def same_token(expected: str, presented: str | None) -> bool:
    """Constant time (``hmac.compare_digest``), so response timing does not tell an attacker
    how many leading characters were right; bytes, so no input can raise."""
    if presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode("utf-8", "surrogateescape"))


def require_bearer(environ: dict, token: str | None, what: str) -> None:
    """``Authorization: Bearer TOKEN``, compared in constant time. The token is never
    echoed or logged, whichever way the check goes."""
    if not token:
        raise HTTPError("403 Forbidden", f"{what} is off: start the server with --publish-token")
    if not same_token(token, bearer_token(environ.get("HTTP_AUTHORIZATION"))):
        raise HTTPError("401 Unauthorized", "missing or wrong bearer token",
                        [("WWW-Authenticate", 'Bearer realm="dashstream"')])


def read_json_object(environ: dict, limit: int, timeout: float | None = None, bare_as: str | None = None) -> dict:
    """The request body as a JSON object: 415 not JSON, 413 over ``limit`` bytes, 408 not
    all sent within ``timeout`` seconds (a body shorter than its Content-Length must not
    hold a connection forever), 400 a broken chunked encoding, not JSON as every source's
    payload must be (``producer.values.parse_json``: the parser's reason, ``NaN``, a number
    out of range, nesting too deep) or not an object. ``bare_as``: a bare number or string is
    taken as ``{bare_as: value}`` (``POST /publish`` with ``42``, as sources take it)."""
    content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise HTTPError("415 Unsupported Media Type",
                        f"Content-Type must be application/json, got {content_type or 'none'!r}")
    too_large = HTTPError("413 Content Too Large", f"body over the {limit}-byte limit (--max-publish-size)",
                          [("Connection", "close")])
    declared = environ.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise too_large  # refused before reading a byte of it
    from dashstream import runtime  # here, not at the top: see the module's opening comment

    deadline = runtime.Timeout(timeout) if timeout else None
    try:
        body = environ["wsgi.input"].read(limit + 1)
    except runtime.Timeout as expired:
        if expired is not deadline:
            raise
        raise HTTPError("408 Request Timeout", f"the body did not arrive within {timeout:g}s",
                        [("Connection", "close")]) from None
    except (ValueError, OSError) as error:  # eventlet's ChunkReadError is a ValueError
        raise HTTPError("400 Bad Request", f"unreadable body: {error}", [("Connection", "close")]) from None
    finally:
        if deadline is not None:
            deadline.cancel()
    if len(body) > limit:
        raise too_large
    try:
        value = parse_json(body)
    except BadValue as error:
        raise HTTPError("400 Bad Request", str(error)) from None
    if bare_as is not None and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return {bare_as: value}
    if not isinstance(value, dict):
        kinds = "a JSON object, number or string" if bare_as is not None else "a JSON object"
        raise HTTPError("400 Bad Request", f"body must be {kinds}, got {json_kind(value)}")
    return value
