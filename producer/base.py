"""The Source interface: what every data source declares and does.

A source class declares, as class attributes:

* ``kind``: its name in a stream definition (``source = "redis"``);
* ``keys``: the configuration keys it takes, each with a check, a default and whether it is
  required; ``check(options)`` adds the rules that involve several keys;
* ``driver(options)``: the Python module it needs and the pip extra that installs it, so a
  missing driver is refused at start with the line that fixes it.

``stream_specs.py`` reads all of that from the classes (one registry: ``producer.SOURCES``),
so adding a source is one file here plus its tests.

At run time a source instance is driven by ``dashstream.supervisor``: ``events()`` is a
generator that connects, then yields

* a ``dict`` of fields (a value; it has ``variable``),
* ``Rejected(reason)``: a bad payload, counted and skipped,
* ``Health(state, reason)``: "connected" (``UP``) before any value has come, or ``DOWN``
  for a condition the source itself waits out (a query that returned no rows).

Raising means the source failed: the supervisor marks it down with the exception's text,
calls ``close()`` and runs ``events()`` again after a backoff. ``close()`` releases every
connection and may be called at any time, more than once (also when the server stops).

Drivers are imported inside ``events()``, never at module import: the server imports them
only after ``eventlet.monkey_patch()`` (a driver imported earlier keeps blocking sockets), and
a default install without any driver still runs the random walk.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator, Mapping

UP, DOWN, STALE = "up", "down", "stale"


@dataclass(frozen=True)
class Health:
    """A source's own word on its state: ``UP`` (connected) or ``DOWN`` with a reason."""

    state: str
    reason: str = ""


@dataclass(frozen=True)
class Rejected:
    """A payload that could not be used; the stream goes on."""

    reason: str



class ConfigProblem(ValueError):
    """A bad configuration value: ``key`` is the key to name in the message."""

    def __init__(self, key: str, reason: str):
        super().__init__(reason)
        self.key = key
        self.reason = reason


# --- key checks: each returns the (normalised) value or raises ValueError with the reason ---


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a number >= 0, got {value!r}")
    return float(value)


def positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a number > 0, got {value!r}")
    return float(value)


def count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be an integer >= 0, got {value!r}")
    return value


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


def positive(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be an integer >= 1, got {value!r}")
    return value


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value


def nonempty_text(value: Any) -> str:
    if not text(value).strip():
        raise ValueError("must not be empty")
    return value


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_name(value: Any) -> str:
    if not ENV_NAME.match(text(value)):
        raise ValueError(f"must be an environment variable name (letters, digits, '_'), got {value!r}")
    return value


@dataclass(frozen=True)
class Key:
    """One configuration key of a source."""

    name: str
    check: Callable[[Any], Any]
    help: str
    default: Any = None  # filled in when the key is absent (None: absent stays absent)
    required: bool = False


@dataclass(frozen=True)
class Driver:
    """The importable module a source needs, and the extra that installs it."""

    module: str
    extra: str

    @property
    def install(self) -> str:
        return f"pip install 'dashstream[{self.extra}]'"


# --- URLs: parsed once, and never shown with their password ---------------------------------


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
            found += [value for name, value in urllib.parse.parse_qsl(parts.query) if name.lower() in _SECRET_PARAMETERS]
        except ValueError:
            pass
        return tuple(secret for secret in found if secret)


def scrub(message: str, secrets: tuple[str, ...]) -> str:
    """``message`` without any of ``secrets`` in it (a driver may quote its DSN)."""
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


# --- the interface -----------------------------------------------------------------------------


class Source:
    """Base class of every source; see the module docstring for the contract."""

    kind: ClassVar[str]
    keys: ClassVar[tuple[Key, ...]] = ()
    # True: values arrive from outside (POST /publish): the supervisor runs no loop for it,
    # only the stale clock.
    passive: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = options

    # --- configuration (class level: no instance exists while a file is being read) ---

    @classmethod
    def key_names(cls) -> tuple[str, ...]:
        return tuple(key.name for key in cls.keys)

    @classmethod
    def check(cls, options: dict[str, Any]) -> None:
        """Rules that involve several keys; raise ``ConfigProblem(key, reason)``."""

    @classmethod
    def resolve(cls, options: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
        """Options as the source will get them (e.g. a URL read from the environment)."""
        return options

    @classmethod
    def driver(cls, options: Mapping[str, Any]) -> tuple[str, Driver] | None:
        """(key to name, driver) this configuration needs, or None."""
        return None

    @classmethod
    def drivers(cls) -> tuple[Driver, ...]:
        """Every driver the source can need (the Docker image checks each imports)."""
        return ()

    # --- run time ---

    def events(self) -> Iterator[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; idempotent."""

    def describe(self) -> str:
        """One line for log messages (never a password)."""
        return self.kind

    @property
    def secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a log line or a reason."""
        return ()


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


class UrlSource(Source):
    """A source that connects to a URL, given in the file (``url``) or, for URLs that carry
    a password, in an environment variable (``url_env``). Subclasses set ``schemes`` and
    put ``url_keys(schemes, example)`` in their ``keys``."""

    schemes: ClassVar[tuple[str, ...]] = ()


    @classmethod
    def resolve(cls, options: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
        if "url" in options and "url_env" in options:
            raise ConfigProblem("url_env", "give url or url_env, not both")
        if "url" not in options and "url_env" not in options:
            raise ConfigProblem("url", f"missing; a {cls.kind!r} source needs url "
                                       "(or url_env, naming an environment variable that holds it)")
        options = dict(options)
        variable = options.pop("url_env", None)
        if variable is not None:
            value = environ.get(variable)
            if value is None or not value.strip():
                raise ConfigProblem("url_env", f"environment variable {variable} is not set")
            try:
                options["url"] = _url_check(cls.schemes)(value)
            except ValueError as error:
                raise ConfigProblem("url_env", f"environment variable {variable}: {error}") from None
        return options

    @property
    def url(self) -> SecretUrl:
        return SecretUrl(self.options["url"])

    def describe(self) -> str:
        return f"{self.kind} {self.url.redacted}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.url.secrets
