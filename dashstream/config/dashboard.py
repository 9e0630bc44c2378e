"""One wall of tiles, as the server's config defines it: ``[dashboard]`` or
``[dashboards.NAME]`` -> ``Dashboard`` (``walls.py`` reads the several walls, playlists and
screens around it).

The page asks ``GET /dashboard.json[?dashboard=NAME]`` for this layout and subscribes to
every tile's stream over one WebSocket (``/ws?streams=...``). Validation happens at start,
so a typo never reaches a screen: every error names the file, the wall, the tile (its
position and stream) and the key, with the allowed values, and the server exits 2. File
shape (every key of every kind: README, "The wall of tiles")::

    [dashboard]
    title = "Operations"
    columns = 3                 # optional; otherwise the page chooses from the screen's shape
    locale = "de-DE"            # optional: number formats; default: the browser's
    timezone = "Europe/Berlin"  # optional: clock, "since" times, chart axes; default: the browser's
    theme = "dark"              # or "light"

    [[dashboard.tiles]]
    kind = "number"             # default; or gauge, list, text, status, clock, chart
    stream = "signups"          # a stream defined in this file or on the command line (not for clock)
    label = "Sign-ups today"    # default: the stream's name (a clock's: "Time")
    format = "compact"          # number, compact, percent, duration, bytes
    warn = 100                  # optional thresholds; with below = true low values are bad
    crit = 50
    below = true
    stale_after = 3600          # optional: seconds without a new value before the tile says
                                # STALE; default: the stream's own stale_after; 0: never

Each kind takes its own keys (``KINDS``); a key another kind takes is an error that names
the kind and its keys. ``to_json`` lists every key of the tile's kind with its default
filled in, except ``stale_after`` when the tile does not set it (the page then uses the
stream's, which it learns on connect).
"""

from __future__ import annotations

import math
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from dashstream.streams.log import MAX_STREAMS
from producer.keys import flag, text


class DashboardError(ValueError):
    """A bad wall; the message names where."""


@dataclass(frozen=True)
class Tile:
    """One tile: the keys every kind has, and ``settings``, every key of its kind (defaults
    filled in)."""

    kind: str
    label: str
    stream: str | None = None  # None only for a clock
    alert: bool = False
    stale_after: float | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.settings[key]


THEMES = ("dark", "light")


@dataclass(frozen=True)
class Dashboard:
    title: str = "dashstream"
    columns: int | None = None
    tiles: tuple[Tile, ...] = field(default_factory=tuple)
    name: str = "default"
    locale: str | None = None
    timezone: str | None = None
    theme: str = "dark"

    @property
    def streams(self) -> list[str]:
        """The streams its tiles show, in tile order."""
        return [tile.stream for tile in self.tiles if tile.stream is not None]

    def to_json(self) -> dict:
        return {"name": self.name, "title": self.title, "columns": self.columns, "locale": self.locale,
                "timezone": self.timezone, "theme": self.theme, "tiles": [_tile_json(tile) for tile in self.tiles]}


def _tile_json(tile: Tile) -> dict:
    fields: dict[str, Any] = {"kind": tile.kind}
    if tile.stream is not None:
        fields["stream"] = tile.stream
    fields["label"] = tile.label
    if tile.kind != "clock":
        fields["alert"] = tile.alert
    fields.update({key: list(value) if isinstance(value, tuple) else value for key, value in tile.settings.items()})
    if tile.stale_after is not None:
        fields["stale_after"] = tile.stale_after
    return fields


# --- value checks: each returns the value checked or raises ValueError with the rule ------


def _number(value: Any) -> float:
    """Any finite number: a threshold may be negative (producer.base.number may not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"must be a number, got {value!r}")
    return value


def _seconds(value: Any) -> float:
    """A quiet time in seconds; 0 turns the quiet check off for this tile."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a number of seconds >= 0 (0: never stale for being quiet), got {value!r}")
    return float(value)


def _compare(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a number of seconds >= 0 (0: against the previous value), got {value!r}")
    return value


def _window(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a number of seconds > 0, got {value!r}")
    return value


def _bounded_int(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer from {low} to {high}, got {value!r}")
        return value
    return check


def _one_of(*allowed: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in allowed or not isinstance(value, str):
            raise ValueError(f"must be one of {', '.join(allowed)}, got {value!r}")
        return value
    return check


CURRENCY = re.compile(r"^[A-Z]{3}\Z")


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not CURRENCY.match(value):
        raise ValueError(f"must be an ISO 4217 currency code, 3 upper-case letters (EUR, USD), got {value!r}")
    return value


def _name(value: Any) -> str:
    """A message field or a column: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return value


def _names(value: Any) -> tuple[str, ...]:
    """``columns``: at least one field name, each once."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a list of at least one field name, got {value!r}")
    for item in value:
        _name(item)
    twice = sorted({item for item in value if value.count(item) > 1})
    if twice:
        raise ValueError(f"names {twice[0]!r} twice")
    return tuple(value)


def _words(value: Any) -> tuple[str, ...]:
    """A status tile's ok/warn/crit: the values (strings) that mean it."""
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"must be a list of non-empty strings, got {value!r}")
    return tuple(value)


LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*\Z")


def _locale(value: Any) -> str:
    if not isinstance(value, str) or not LOCALE.match(value):
        raise ValueError(f"must be a BCP 47 language tag such as 'de-DE' or 'en-US', got {value!r}")
    return value


def _timezone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be an IANA time zone name such as 'Europe/Berlin' or 'UTC', got {value!r}")
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"no time zone named {value!r}; an IANA name such as 'Europe/Berlin' or 'UTC'") from None
    return value


# --- the kinds and their keys -------------------------------------------------------------


class Key:
    """A tile key: its check and its default (``REQUIRED``: the tile must set it)."""

    __slots__ = ("check", "default")

    def __init__(self, check: Callable[[Any], Any], default: Any = None):
        self.check = check
        self.default = default


REQUIRED = object()
FORMATS = ("number", "compact", "percent", "duration", "bytes")
KIND_NAMES = ("number", "gauge", "list", "text", "status", "clock", "chart")

# Every kind with a stream: kind, stream, label, alert, stale_after (checked in _parse_tile).
_COMMON = ("kind", "stream", "label", "alert", "stale_after")
_FORMAT = {"format": Key(_one_of(*FORMATS), "number"), "decimals": Key(_bounded_int(0, 10)),
           "currency": Key(_currency)}
_NUMERIC = {"unit": Key(text, ""), **_FORMAT, "warn": Key(_number), "crit": Key(_number), "below": Key(flag, False)}
KINDS: dict[str, dict[str, Key]] = {
    "number": {**_NUMERIC, "chart": Key(flag, True), "compare": Key(_compare)},
    "gauge": {**_NUMERIC, "min": Key(_number, 0), "max": Key(_number, REQUIRED)},
    "list": {"field": Key(_name, "rows"), "columns": Key(_names), "limit": Key(_bounded_int(1, 50), 10), **_FORMAT},
    "text": {"field": Key(_name, "variable")},
    "status": {"field": Key(_name, "variable"), "ok": Key(_words, ()), "warn": Key(_words, ()),
               "crit": Key(_words, ())},
    "clock": {"seconds": Key(flag, False), "date": Key(flag, True)},
    "chart": {**_NUMERIC, "window": Key(_window, 3600)},
}
_CLOCK_COMMON = ("kind", "label")  # a clock has no stream: no staleness, no alert


def allowed_keys(kind: str) -> list[str]:
    return sorted((*(_CLOCK_COMMON if kind == "clock" else _COMMON), *KINDS[kind]))


_WALL_KEYS = ("title", "columns", "locale", "timezone", "theme", "tiles")


def parse_dashboard(table: Any, where: str, streams: Iterable[str], name: str = "default",
                    header: str = "[dashboard]") -> Dashboard:
    """Validate one wall (``header``: its TOML table, named in every message) from ``where``
    (the file) against the defined ``streams``."""
    if not isinstance(table, Mapping):
        raise DashboardError(f"{where}: {header} must be a table")
    unknown = sorted(set(table) - set(_WALL_KEYS))
    if unknown:
        raise DashboardError(f"{where}: {header}, key {unknown[0]!r}: unknown key; "
                             f"allowed: {', '.join(sorted(_WALL_KEYS))}")
    checks = {"title": text, "columns": _bounded_int(1, 12), "locale": _locale, "timezone": _timezone,
              "theme": _one_of(*THEMES)}
    values = {}
    for key, check in checks.items():
        if key in table:
            try:
                values[key] = check(table[key])
            except ValueError as error:
                raise DashboardError(f"{where}: {header}, key {key!r}: {error}") from None
    tiles = table.get("tiles")
    tiles_header = f"[[{header[1:-1]}.tiles]]"
    if not isinstance(tiles, list) or not tiles:
        raise DashboardError(f"{where}: {header} needs at least one tile ({tiles_header})")
    known = set(streams)
    parsed, seen = [], set()
    for index, raw in enumerate(tiles, 1):
        tile = _parse_tile(raw, f"{where}: {header} tile {index}", known, tiles_header)
        if tile.stream is not None:
            if tile.stream in seen:
                raise DashboardError(f"{where}: {header} tile {index} ({tile.stream!r}), key 'stream': "
                                     "the stream already has a tile on this wall")
            seen.add(tile.stream)
        parsed.append(tile)
    if len(seen) > MAX_STREAMS:
        raise DashboardError(f"{where}: {header} has {len(seen)} tiles with a stream; at most {MAX_STREAMS} "
                             "(the streams one connection may carry)")
    return Dashboard(tiles=tuple(parsed), name=name, **values)


def _parse_tile(raw: Any, where: str, known: set[str], tiles_header: str) -> Tile:
    if not isinstance(raw, Mapping):
        raise DashboardError(f"{where}: must be a table ({tiles_header})")
    stream = raw.get("stream")
    place = f"{where} ({stream!r})" if isinstance(stream, str) else where
    kind = raw.get("kind", "number")
    if kind not in KIND_NAMES or not isinstance(kind, str):
        raise DashboardError(f"{place}, key 'kind': unknown kind {kind!r}; one of {', '.join(KIND_NAMES)}")
    own = KINDS[kind]
    if kind == "clock":
        if "stream" in raw:
            raise DashboardError(f"{place}, key 'stream': a clock shows the wall's time and takes no stream")
    elif stream is None:
        raise DashboardError(f"{where}, key 'stream': missing; every {kind!r} tile shows one stream "
                             "(only a clock needs none)")
    allowed = allowed_keys(kind)
    common: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    common_checks = {"stream": text, "label": text, "alert": flag, "stale_after": _seconds}
    for key, value in raw.items():
        if key == "kind":
            continue
        if key not in allowed:
            raise DashboardError(f"{place}, key {key!r}: not a key of a {kind!r} tile; allowed: {', '.join(allowed)}")
        check = own[key].check if key in own else common_checks[key]
        try:
            checked = check(value)
        except ValueError as error:
            raise DashboardError(f"{place}, key {key!r}: {error}") from None
        (settings if key in own else common)[key] = checked
    if stream is not None and stream not in known:
        raise DashboardError(f"{place}, key 'stream': no stream named {stream!r}; defined: {', '.join(sorted(known))}")
    for key, spec in own.items():
        if key not in settings:
            if spec.default is REQUIRED:
                raise DashboardError(f"{place}, key {key!r}: missing; a {kind!r} tile needs it")
            settings[key] = spec.default
    _check_between_keys(kind, settings, place)
    common.setdefault("label", "Time" if kind == "clock" else stream)
    return Tile(kind=kind, settings=settings, **common)


def _check_between_keys(kind: str, settings: dict[str, Any], place: str) -> None:
    """The rules between a tile's keys, each naming the key to change."""
    if settings.get("currency") is not None and settings["format"] != "number":
        raise DashboardError(f"{place}, key 'currency': only with format = \"number\" (the default), "
                             f"not with format = {settings['format']!r}")
    if kind == "gauge" and not settings["min"] < settings["max"]:
        raise DashboardError(f"{place}, key 'max': max ({settings['max']}) must be above min ({settings['min']})")
    if kind == "status":
        lists = {level: {word.casefold() for word in settings[level]} for level in ("ok", "warn", "crit")}
        for first, second in (("ok", "warn"), ("ok", "crit"), ("warn", "crit")):
            both = sorted(lists[first] & lists[second])
            if both:
                raise DashboardError(f"{place}, key {second!r}: {both[0]!r} is in {first} too "
                                     "(values are matched case-insensitively)")
    if "below" in settings:
        below, warn, crit = settings["below"], settings["warn"], settings["crit"]
        if warn is not None and crit is not None:
            if below and not crit < warn:
                raise DashboardError(f"{place}, key 'crit': with below = true (low is bad) crit ({crit}) must be "
                                     f"below warn ({warn})")
            if not below and not warn < crit:
                raise DashboardError(f"{place}, key 'crit': crit ({crit}) must be above warn ({warn}); set "
                                     "below = true if low values are the bad ones")
