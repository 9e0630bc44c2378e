"""Stream definitions: from a TOML file (``--config``) or ``--stream`` flags to ``StreamSpec``s.

A spec only says *what* a stream is (name, source, options); ``streams.py`` turns specs
into running streams. Every error names the file, the stream and the key, because the
person reading it is editing that file.

File shape (see streams.example.toml)::

    [streams.office]        # subscribe at /ws/office
    source = "random-walk"  # or "publish"
    shared = true           # random-walk only: one walk for every screen
    min_wait = 0.5
    history = 100
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

STREAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_STREAM = "default"


class StreamConfigError(ValueError):
    """A bad stream definition; the message names where it is."""


@dataclass(frozen=True)
class StreamSpec:
    name: str
    source: str
    shared: bool
    # Keyword arguments for the source's producer (e.g. RandomWalk's min_wait).
    options: Mapping[str, Any] = field(default_factory=dict)
    # Messages kept for resume; None means the server-wide --history.
    history: int | None = None


# --- value checks: each returns the value or raises ValueError with the reason -----------


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a number >= 0, got {value!r}")
    return float(value)


def _positive_number(value: Any) -> float:
    if _number(value) <= 0:
        raise ValueError(f"must be a number > 0, got {value!r}")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be an integer >= 0, got {value!r}")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


def _positive(value: Any) -> int:
    if _count(value) < 1:
        raise ValueError(f"must be an integer >= 1, got {value!r}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


# Per source: the keys a stream of that source accepts (besides `source`), with checks.
# Adding a source (Redis, SQL, ZeroMQ) means adding its keys here and its producer.
COMMON_KEYS: dict[str, Callable[[Any], Any]] = {"history": _positive}
SOURCE_KEYS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "random-walk": {"shared": _flag, "min_wait": _number, "max_wait": _number,
                    "min_step": _count, "max_step": _count, "start": _integer},
    "publish": {},
    "ticker": {"rate": _positive_number, "start": _integer, "step": _integer},
}
# Bounds checked as a pair: (low key, high key).
PAIRED_KEYS = {"random-walk": [("min_wait", "max_wait"), ("min_step", "max_step")]}
# Sources whose values exist once, for everyone (no private variant).
ALWAYS_SHARED = {"publish", "ticker"}


def spec_from_table(name: str, table: Mapping[str, Any], where: str,
                    defaults: Mapping[str, Any] | None = None) -> StreamSpec:
    """Validate one stream's table. ``where`` prefixes every message (file name)."""

    def fail(key: str | None, reason: str) -> StreamConfigError:
        place = f"{where}: stream {name!r}" + (f", key {key!r}" if key else "")
        return StreamConfigError(f"{place}: {reason}")

    if not STREAM_NAME.match(name):
        raise fail(None, "a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if not isinstance(table, Mapping):
        raise fail(None, "must be a table ([streams.NAME])")
    source = table.get("source")
    if source is None:
        raise fail("source", f"missing; one of {', '.join(SOURCE_KEYS)}")
    if source not in SOURCE_KEYS:
        raise fail("source", f"unknown source {source!r}; one of {', '.join(SOURCE_KEYS)}")
    allowed = {**COMMON_KEYS, **SOURCE_KEYS[source]}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key == "source":
            continue
        if key not in allowed:
            raise fail(key, f"unknown key for source {source!r}; allowed: {', '.join(sorted(allowed)) or 'none'}")
        try:
            values[key] = allowed[key](value)
        except ValueError as error:
            raise fail(key, str(error)) from None
    options = {**{k: v for k, v in (defaults or {}).items() if k in SOURCE_KEYS[source]}, **values}
    for low, high in PAIRED_KEYS.get(source, []):
        if low in options and high in options and options[low] > options[high]:
            raise fail(low, f"{low} ({options[low]}) must not exceed {high} ({options[high]})")
    history = options.pop("history", None)
    shared = options.pop("shared", source in ALWAYS_SHARED)
    return StreamSpec(name=name, source=source, shared=bool(shared), options=options, history=history)


TOP_LEVEL_KEYS = ("streams", "dashboard")


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
                                "only [streams.NAME] tables and [dashboard]")
    return document


def load_stream_file(path: str, defaults: Mapping[str, Any] | None = None) -> list[StreamSpec]:
    """Read ``[streams.NAME]`` tables from a TOML file."""
    document = read_config_table(path)
    streams = document.get("streams", {})
    if not isinstance(streams, Mapping) or not streams:
        raise StreamConfigError(f"{path}: no streams; define at least one [streams.NAME] table")
    return [spec_from_table(name, table, path, defaults) for name, table in streams.items()]


def parse_stream_flag(text: str, defaults: Mapping[str, Any] | None = None) -> StreamSpec:
    """``--stream NAME=SOURCE[:shared]``, e.g. ``office=random-walk:shared`` or ``sales=publish``.
    (Not a comma: the environment variable lists several specs separated by commas.)"""
    name, equals, rest = text.partition("=")
    if not equals or not rest:
        raise StreamConfigError(f"--stream: expected NAME=SOURCE[:shared], got {text!r}")
    source, *flags = rest.split(":")
    table: dict[str, Any] = {"source": source}
    for flag in flags:
        if flag != "shared":
            raise StreamConfigError(f"--stream: unknown flag {flag!r} in {text!r}; the only flag is 'shared'")
        table["shared"] = True
    return spec_from_table(name, table, "--stream", defaults)
