"""URLs of sources and backplanes: parsed once, never shown with their password."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any, Callable

from producer.keys import Key, env_name, nonempty_text

_USERINFO = re.compile(r"(//[^/@:?#]*:)[^/@?#]*@")
_SECRET_PARAMETERS = {"password", "pass", "passwd", "sslpassword"}


def redact_url(url: str) -> str:
    """``scheme://user:password@host/...`` → ``scheme://user:***@host/...``; a password in
    the query string (``?password=``, which libpq and redis-py accept) is hidden too."""
    redacted = _USERINFO.sub(r"\1***@", str(url))
    try:
        parts = urllib.parse.urlsplit(redacted)
    except ValueError:
        return redacted
    if not parts.query:
        return redacted
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if not any(name.lower() in _SECRET_PARAMETERS for name, _ in pairs):
        return redacted
    query = "&".join(f"{name}={'***' if name.lower() in _SECRET_PARAMETERS else value}" for name, value in pairs)
    return urllib.parse.urlunsplit(parts._replace(query=query))


class SecretUrl(str):
    """A URL whose ``repr`` hides its password, so a spec or a config printed whole (in a
    log line, a traceback, a test failure) cannot leak it. ``str()`` is the real URL, for
    the driver."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(redact_url(self))

    @property
    def redacted(self) -> str:
        return redact_url(self)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The literal secrets in it, for scrubbing a driver's error text."""
        found = []
        try:
            parts = urllib.parse.urlsplit(str(self))
            if parts.password:
                found += [parts.password, urllib.parse.unquote(parts.password)]
            query = urllib.parse.parse_qsl(parts.query)
            found += [value for name, value in query if name.lower() in _SECRET_PARAMETERS]
        except ValueError:
            pass
        return tuple(secret for secret in found if secret)


def scrub(message: str, secrets: tuple[str, ...]) -> str:
    """``message`` without any of ``secrets`` in it (a driver may quote its DSN)."""
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


def _url_check(schemes: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> SecretUrl:
        url = SecretUrl(nonempty_text(value).strip())
        parse_url(url, schemes)
        return url

    return check


def parse_url(url: str, schemes: tuple[str, ...]) -> urllib.parse.SplitResult:
    """Split ``url`` and check its scheme; ValueError (password hidden) when it will not do."""
    shown = redact_url(url)
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or out of range
    except ValueError as error:
        raise ValueError(f"cannot parse URL {shown!r}: {error}") from None
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"URL {shown!r} must start with {' or '.join(s + ':' for s in schemes)}")
    return parts


def url_keys(schemes: tuple[str, ...], example: str) -> tuple[Key, ...]:
    """The ``url`` and ``url_env`` keys of a source that connects to one of ``schemes``."""
    return (
        Key("url", _url_check(schemes), f"where to connect, e.g. {example}"),
        Key("url_env", env_name, "read the URL from this environment variable instead (URLs with a password)"),
    )
