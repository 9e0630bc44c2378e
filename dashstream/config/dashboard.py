"""The wall of tiles, as the server's config defines it: ``[dashboard]`` -> ``Dashboard``.

The page asks ``GET /dashboard.json`` for this layout and subscribes to every tile's stream
over one WebSocket (``/ws?streams=...``). Validation happens at start, so a typo never
reaches a screen: every error names the file, the tile (its position and stream) and the
key, and the server exits 2. File shape::

    [dashboard]
    title = "Operations"
    columns = 3                 # optional; otherwise the page chooses from the screen's shape

    [[dashboard.tiles]]
    stream = "signups"          # a stream defined in this file or on the command line
    label = "Sign-ups today"    # default: the stream's name
    unit = ""
    decimals = 0                # optional: digits after the point
    warn = 100                  # optional thresholds; with below = true low values are bad
    crit = 50
    below = true
    chart = true                # sparkline of recent values (default true)
    stale_after = 3600          # optional: seconds without a new value before the tile says
                                # STALE; default: the stream's own stale_after; 0: never

``to_json`` lists every key of a tile, except ``stale_after`` when the tile does not set it
(the page then uses the stream's, which it learns on connect).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from dashstream.streams.log import MAX_STREAMS
from producer.keys import flag, text


class DashboardError(ValueError):
    """A bad ``[dashboard]``; the message names where."""


@dataclass(frozen=True)
class Tile:
    stream: str
    label: str
    unit: str = ""
    decimals: int | None = None
    warn: float | None = None
    crit: float | None = None
    below: bool = False
    chart: bool = True
    stale_after: float | None = None


@dataclass(frozen=True)
class Dashboard:
    title: str = "dashstream"
    columns: int | None = None
    tiles: tuple[Tile, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return {"title": self.title, "columns": self.columns, "tiles": [_tile_json(tile) for tile in self.tiles]}


def _tile_json(tile: Tile) -> dict:
    fields = asdict(tile)
    if fields["stale_after"] is None:
        del fields["stale_after"]
    return fields


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


def _bounded_int(low: int, high: int):
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be an integer from {low} to {high}, got {value!r}")
        return value
    return check


_TILE_KEYS = {"stream": text, "label": text, "unit": text, "decimals": _bounded_int(0, 10),
              "warn": _number, "crit": _number, "below": flag, "chart": flag,
              "stale_after": _seconds}
_DASHBOARD_KEYS = {"title", "columns", "tiles"}


def parse_dashboard(table: Any, where: str, streams: Iterable[str]) -> Dashboard:
    """Validate ``[dashboard]`` from ``where`` (the file) against the defined ``streams``."""
    if not isinstance(table, Mapping):
        raise DashboardError(f"{where}: [dashboard] must be a table")
    unknown = sorted(set(table) - _DASHBOARD_KEYS)
    if unknown:
        raise DashboardError(f"{where}: [dashboard], key {unknown[0]!r}: unknown key; "
                             f"allowed: {', '.join(sorted(_DASHBOARD_KEYS))}")
    title = table.get("title", "dashstream")
    if not isinstance(title, str):
        raise DashboardError(f"{where}: [dashboard], key 'title': must be a string, got {title!r}")
    columns = table.get("columns")
    if columns is not None:
        try:
            _bounded_int(1, 12)(columns)
        except ValueError as error:
            raise DashboardError(f"{where}: [dashboard], key 'columns': {error}") from None
    tiles = table.get("tiles")
    if not isinstance(tiles, list) or not tiles:
        raise DashboardError(f"{where}: [dashboard] needs at least one [[dashboard.tiles]] with a stream")
    if len(tiles) > MAX_STREAMS:
        raise DashboardError(f"{where}: [dashboard] has {len(tiles)} tiles; at most {MAX_STREAMS} "
                             "(the streams one connection may carry)")
    known = set(streams)
    parsed, seen = [], set()
    for index, raw in enumerate(tiles, 1):
        tile = _parse_tile(raw, f"{where}: tile {index}", known)
        if tile.stream in seen:
            raise DashboardError(f"{where}: tile {index} ({tile.stream!r}), key 'stream': "
                                 "the stream already has a tile")
        seen.add(tile.stream)
        parsed.append(tile)
    return Dashboard(title=title, columns=columns, tiles=tuple(parsed))


def _parse_tile(raw: Any, where: str, known: set[str]) -> Tile:
    if not isinstance(raw, Mapping):
        raise DashboardError(f"{where}: must be a table ([[dashboard.tiles]])")
    stream = raw.get("stream")
    place = f"{where} ({stream!r})" if isinstance(stream, str) else where
    if stream is None:
        raise DashboardError(f"{where}, key 'stream': missing; every tile shows one stream")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _TILE_KEYS:
            raise DashboardError(f"{place}, key {key!r}: unknown key; allowed: {', '.join(sorted(_TILE_KEYS))}")
        try:
            values[key] = _TILE_KEYS[key](value)
        except ValueError as error:
            raise DashboardError(f"{place}, key {key!r}: {error}") from None
    if stream not in known:
        raise DashboardError(f"{place}, key 'stream': no stream named {stream!r}; defined: {', '.join(sorted(known))}")
    below = values.get("below", False)
    warn, crit = values.get("warn"), values.get("crit")
    if warn is not None and crit is not None:
        if below and not crit < warn:
            raise DashboardError(f"{place}, key 'crit': with below = true (low is bad) crit ({crit}) must be "
                                 f"below warn ({warn})")
        if not below and not warn < crit:
            raise DashboardError(f"{place}, key 'crit': crit ({crit}) must be above warn ({warn}); set "
                                 "below = true if low values are the bad ones")
    values.setdefault("label", stream)
    return Tile(**values)
