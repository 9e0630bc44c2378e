"""The Source interface: what every data source declares and does.

A source class declares, as class attributes:

* ``kind``: its name in a stream definition (``source = "redis"``);
* ``keys``: the configuration keys it takes, each with a check, a default and whether it is
  required; ``check(options)`` adds the rules that involve several keys;
* ``driver(options)``: the Python module it needs and the pip extra that installs it, so a
  missing driver is refused at start with the line that fixes it.

``dashstream/config/stream_specs.py`` reads all of that from the classes (one registry:
``producer.SOURCES``), so adding a source is one file here plus its tests.

At run time a source instance is driven by ``dashstream.streams.supervisor``: ``events()``
is a generator that connects, then yields

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

from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Mapping

from producer.keys import ConfigProblem, Key
from producer.urls import SecretUrl, _url_check

# A source's (and a stream's) health states: defined here once, since sources yield Health;
# the supervisor, the streams, the backplane and the metrics import them from here.
UP, DOWN, STALE = "up", "down", "stale"
STATES = (UP, DOWN, STALE)
# The reason of the state a source is in before its first run has said anything.
STARTING = "starting"


@dataclass(frozen=True)
class Health:
    """A source's own word on its state: ``UP`` (connected) or ``DOWN`` with a reason."""

    state: str
    reason: str = ""


@dataclass(frozen=True)
class Rejected:
    """A payload that could not be used; the stream goes on."""

    reason: str


# --- key checks: each returns the (normalised) value or raises ValueError with the reason ---


@dataclass(frozen=True)
class Driver:
    """The importable module a source needs, the extra that installs it, and the name of
    the package on PyPI when it is not the module's (pyzmq installs ``zmq``)."""

    module: str
    extra: str
    package: str | None = None

    @property
    def name(self) -> str:
        return self.package or self.module

    @property
    def install(self) -> str:
        return f"pip install 'dashstream[{self.extra}]'"


# --- URLs: parsed once, and never shown with their password ---------------------------------


# --- the interface -----------------------------------------------------------------------------


class Source:
    """Base class of every source; see the module docstring for the contract."""

    kind: ClassVar[str]
    keys: ClassVar[tuple[Key, ...]] = ()
    # True: values arrive from outside (POST /publish): the supervisor runs no loop for it,
    # only the stale clock.
    passive: ClassVar[bool] = False
    # True: a value the stream's log did not take (the backplane refused it) is not skipped:
    # the run ends and the source starts again from the last value that was published, so a
    # shared random walk stays one walk (every step in range) whoever runs it.
    resume_after_refusal: ClassVar[bool] = False

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
