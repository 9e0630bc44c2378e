"""Stream definitions: from a TOML file (``--config``) or ``--stream`` flags to ``StreamSpec``s.

A spec only says *what* a stream is (name, source, options); ``streams/stream.py`` turns specs
into running streams. Every error names the file, the stream and the key, because the
person reading it is editing that file.

The keys a source takes, their checks and defaults, the rules between them and the driver
it needs are declared by the source class itself (``producer/base.py``), found by name in
``producer.SOURCES``; this module only applies them, in this order:

1. the table: a known ``source``, then each key known to that source and valid on its own;
2. defaults for the keys not given, then required keys;
3. ``resolve``: values that come from elsewhere (``url_env`` → the URL, from the environment);
4. ``check``: the source's rules between keys (``min_wait <= max_wait``, one of
   ``channel``/``pattern``, ``listen`` only with PostgreSQL);
5. the driver: a source whose Python package is not installed is refused with the
   ``pip install`` line that adds it. A file's streams are all read first, and every
   missing driver is named in one error (``missing_drivers_error``): one run tells the
   whole list, not one driver per run.

File shape (see streams.example.toml)::

    [streams.office]        # subscribe at /ws/office
    source = "random-walk"  # or "publish", "sql", "redis", "zmq"
    shared = true           # random-walk only: one walk for every screen
    min_wait = 0.5
    history = 100
    stale_after = 30        # any source: "stale" after 30 s without a value
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from producer import SOURCES
from producer.base import Driver
from producer.keys import ConfigProblem, positive, positive_number

STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


class StreamConfigError(ValueError):
    """A bad stream definition; the message names where it is."""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    source: str
    shared: bool
    # Keyword arguments for the source class (e.g. RandomWalk's min_wait, a SqlSource's url).
    # A URL is a producer.base.SecretUrl: its repr hides the password.
    options: Mapping[str, Any] = field(default_factory=dict)
    # Messages kept for resume; None means the server-wide --history.
    history: int | None = None
    # Seconds without a value after which the source is "stale"; None: never.
    stale_after: float | None = None


# Keys every source takes (besides `source`), with their checks.
COMMON_KEYS: dict[str, Callable[[Any], Any]] = {"history": positive, "stale_after": positive_number}
# Per source: the keys it accepts (besides `source` and COMMON_KEYS), with their checks.
SOURCE_KEYS: dict[str, dict[str, Callable[[Any], Any]]] = {
    kind: {key.name: key.check for key in cls.keys} for kind, cls in SOURCES.items()}


def driver_installed(driver: Driver) -> bool:
    """Whether the driver can be imported, without importing it: the server imports drivers
    only after monkey_patch, and this runs while the configuration is read."""
    try:
        return importlib.util.find_spec(driver.module) is not None
    except (ImportError, ValueError):
        return False


def spec_from_table(name: str, table: Mapping[str, Any], where: str,
                    defaults: Mapping[str, Any] | None = None,
                    environ: Mapping[str, str] | None = None,
                    missing: list[tuple[str, Driver]] | None = None) -> StreamSpec:
    """Validate one stream's table. ``where`` prefixes every message (file name). With a
    ``missing`` list, a driver that is not installed is added to it (stream name, driver)
    instead of refused, so that the caller can name them all at once."""

    def fail(key: str | None, reason: str) -> StreamConfigError:
        place = f"{where}: stream {name!r}" + (f", key {key!r}" if key else "")
        return StreamConfigError(f"{place}: {reason}")

    if not STREAM_NAME.match(name):
        raise fail(None, "a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if not isinstance(table, Mapping):
        raise fail(None, "must be a table ([streams.NAME])")
    source = table.get("source")
    if source is None:
        raise fail("source", f"missing; one of {', '.join(SOURCES)}")
    if not isinstance(source, str) or source not in SOURCES:
        raise fail("source", f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    cls = SOURCES[source]
    allowed = {**COMMON_KEYS, **SOURCE_KEYS[source]}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "source":
            continue
        if key not in allowed:
            raise fail(key, f"unknown key for source {source!r}; allowed: {', '.join(sorted(allowed))}")
        try:
            values[key] = allowed[key](value)
        except ValueError as error:
            raise fail(key, str(error)) from None
    history = values.pop("history", None)
    stale_after = values.pop("stale_after", None)
    options = {**{key.name: key.default for key in cls.keys if key.default is not None},
               **{k: v for k, v in (defaults or {}).items() if k in SOURCE_KEYS[source]},
               **values}
    for key in cls.keys:
        if key.required and key.name not in options:
            raise fail(key.name, f"missing; a {source!r} source needs it ({key.help})")
    try:
        options = cls.resolve(options, os.environ if environ is None else environ)
        cls.check(options)
    except ConfigProblem as problem:
        raise fail(problem.key, problem.reason) from None
    needed = cls.driver(options)
    if needed is not None and not driver_installed(needed[1]):
        key, driver = needed
        if missing is None:
            raise fail(key, f"needs the Python package {driver.module!r}, which is not installed: {driver.install}")
        missing.append((name, driver))
    # A source without a `shared` key exists once, for everyone (no private variant).
    shared = options.pop("shared", True)
    return StreamSpec(name=name, source=source, shared=bool(shared), options=options, history=history,
                      stale_after=stale_after)


TOP_LEVEL_KEYS = ("streams", "dashboard", "dashboards", "playlists", "screens")


def read_config_table(path: str) -> dict:
    """The whole TOML file; errors name the file."""
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise StreamConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise StreamConfigError(f"{path}: not valid TOML: {error}") from None
    unknown = set(document) - set(TOP_LEVEL_KEYS)
    if unknown:
        raise StreamConfigError(f"{path}: unknown top-level key {sorted(unknown)[0]!r}; "
                                "only [streams.NAME], [dashboard], [dashboards.NAME], [playlists.NAME] "
                                "and [screens.NAME] tables")
    return document


def load_stream_file(path: str, defaults: Mapping[str, Any] | None = None,
                     environ: Mapping[str, str] | None = None) -> list[StreamSpec]:
    """Read ``[streams.NAME]`` tables from a TOML file."""
    document = read_config_table(path)
    streams = document.get("streams", {})
    if not isinstance(streams, Mapping) or not streams:
        raise StreamConfigError(f"{path}: no streams; define at least one [streams.NAME] table")
    missing: list[tuple[str, Driver]] = []
    specs = [spec_from_table(name, table, path, defaults, environ, missing) for name, table in streams.items()]
    if missing:
        raise missing_drivers_error(path, missing)
    return specs


def missing_drivers_error(where: str, missing: list[tuple[str, Driver]]) -> StreamConfigError:
    """``FILE: needs psycopg2 (dashstream[sql]) for 'orders_db', redis (dashstream[redis])
    for 'orders', 'regions': pip install 'dashstream[sql,redis]'``: each driver once, in the
    order the file first needs it, with the streams that need it."""
    streams_of: dict[Driver, list[str]] = {}
    for name, driver in missing:
        streams_of.setdefault(driver, []).append(name)
    needs = ", ".join(f"{driver.name} (dashstream[{driver.extra}]) for {', '.join(map(repr, names))}"
                      for driver, names in streams_of.items())
    extras = ",".join(dict.fromkeys(driver.extra for driver in streams_of))
    return StreamConfigError(f"{where}: needs {needs}: pip install 'dashstream[{extras}]'")


def parse_stream_flag(text: str, defaults: Mapping[str, Any] | None = None,
                      environ: Mapping[str, str] | None = None) -> StreamSpec:
    """``--stream NAME=SOURCE[:shared]``, e.g. ``office=random-walk:shared`` or ``sales=publish``.
    (Not a comma: the environment variable lists several specs separated by commas.)
    Sources that need more than a name (a URL, a query) are defined in a file."""
    name, equals, rest = text.partition("=")
    if not equals or not rest:
        raise StreamConfigError(f"--stream: expected NAME=SOURCE[:shared], got {text!r}")
    source, *flags = rest.split(":")
    table: dict[str, Any] = {"source": source}
    for flag in flags:
        if flag != "shared":
            raise StreamConfigError(f"--stream: unknown flag {flag!r} in {text!r}; the only flag is 'shared'")
        table["shared"] = True
    return spec_from_table(name, table, "--stream", defaults, environ)
