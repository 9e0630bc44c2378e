"""Several walls, playlists and named screens from the config file -> ``Walls``.

``[dashboard]`` (one wall, as before) is the wall named ``default``; ``[dashboards.NAME]``
adds walls. The wall for ``/`` is ``[dashboard]`` if the file has it, else the first
``[dashboards.NAME]`` in file order. A playlist rotates walls on one screen; a screen is a
name a TV opens once (``/?screen=lobby``) and the server steers (``POST /screens/NAME``)::

    [dashboards.ops]
    title = "Operations"
    [[dashboards.ops.tiles]]
    stream = "orders"

    [playlists.lobby]
    dashboards = ["ops", "sales"]   # each a wall of this file
    every = 30                      # seconds per wall, 5-86400

    [screens.lobby]
    playlist = "lobby"              # or dashboard = "ops": exactly one of the two

Every error names the file, the table and the key, with the allowed values (exit 2). Pure:
no I/O (the caller reads the file).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from dashstream.config.dashboard import Dashboard, DashboardError, parse_dashboard
from dashstream.sessions.screens import Assignment
from dashstream.streams.log import MAX_STREAMS

WALL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
DEFAULT_WALL = "default"  # [dashboard]'s name
MIN_EVERY, MAX_EVERY = 5, 86400


@dataclass(frozen=True)
class Playlist:
    dashboards: tuple[str, ...]
    every: float

    def to_json(self) -> dict:
        return {"dashboards": list(self.dashboards), "every": self.every}


@dataclass(frozen=True)
class Walls:
    dashboards: Mapping[str, Dashboard] = field(default_factory=dict)  # in file order
    default: str | None = None  # the wall for / (None: no wall at all)
    playlists: Mapping[str, Playlist] = field(default_factory=dict)
    screens: Mapping[str, Assignment] = field(default_factory=dict)  # as configured

    @property
    def default_wall(self) -> Dashboard | None:
        return self.dashboards[self.default] if self.default is not None else None

    def to_json(self) -> dict:
        """``GET /dashboards.json`` (each wall exactly as ``/dashboard.json`` serves it)."""
        return {"default": self.default,
                "dashboards": {name: wall.to_json() for name, wall in self.dashboards.items()},
                "playlists": {name: playlist.to_json() for name, playlist in self.playlists.items()},
                "screens": {name: screen.to_json() for name, screen in self.screens.items()}}

    def check_assignment(self, body: Any) -> Assignment:
        """A ``POST /screens/NAME`` body -> the assignment; ValueError names what is wrong."""
        return _assignment(body, self, "the body")


NO_WALLS = Walls()


def _names_of(mapping: Mapping[str, Any]) -> str:
    return ", ".join(mapping) if mapping else "(none)"


def _tables(document: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    tables = document.get(key, {})
    if not isinstance(tables, Mapping):
        raise DashboardError(f"{where}: [{key}] must hold tables [{key}.NAME]")
    for name, table in tables.items():
        if not WALL_NAME.match(name):
            raise DashboardError(f"{where}: [{key}.{name}]: a name is 1-64 letters, digits, '_' or '-'")
        if not isinstance(table, Mapping):
            raise DashboardError(f"{where}: [{key}.{name}] must be a table")
    return tables


def parse_walls(document: Mapping[str, Any], where: str, streams: Iterable[str]) -> Walls:
    """The walls, playlists and screens of a config file's ``document`` (``where``: its
    name), checked against the defined ``streams``."""
    streams = list(streams)
    dashboards: dict[str, Dashboard] = {}
    if "dashboard" in document:
        dashboards[DEFAULT_WALL] = parse_dashboard(document["dashboard"], where, streams)
    for name, table in _tables(document, "dashboards", where).items():
        if name in dashboards:
            raise DashboardError(f"{where}: [dashboards.{name}]: the name {name!r} is [dashboard]'s; rename it")
        dashboards[name] = parse_dashboard(table, where, streams, name=name, header=f"[dashboards.{name}]")
    default = next(iter(dashboards), None)
    walls = Walls(dashboards=dashboards)  # what the playlists may name
    playlists = {name: _playlist(table, walls, f"{where}: [playlists.{name}]")
                 for name, table in _tables(document, "playlists", where).items()}
    walls = Walls(dashboards=dashboards, playlists=playlists)  # what the screens may name
    screens = {}
    for name, table in _tables(document, "screens", where).items():
        try:
            screens[name] = _assignment(table, walls, "a screen")
        except ValueError as error:
            raise DashboardError(f"{where}: [screens.{name}]{error}") from None
    return Walls(dashboards=dashboards, default=default, playlists=playlists, screens=screens)


def _playlist(table: Mapping[str, Any], walls: Walls, place: str) -> Playlist:
    unknown = sorted(set(table) - {"dashboards", "every"})
    if unknown:
        raise DashboardError(f"{place}, key {unknown[0]!r}: unknown key; allowed: dashboards, every")
    names = table.get("dashboards")
    if names is None:
        raise DashboardError(f"{place}, key 'dashboards': missing; the walls to rotate, e.g. [\"ops\", \"sales\"]")
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise DashboardError(f"{place}, key 'dashboards': must be a list of at least one wall's name, got {names!r}")
    for name in names:
        if name not in walls.dashboards:
            raise DashboardError(f"{place}, key 'dashboards': no dashboard named {name!r}; "
                                 f"defined: {_names_of(walls.dashboards)}")
    shown = {stream for name in names for stream in walls.dashboards[name].streams}
    if len(shown) > MAX_STREAMS:
        raise DashboardError(f"{place}, key 'dashboards': its walls show {len(shown)} streams; at most "
                             f"{MAX_STREAMS} (the page subscribes to a playlist's streams on one connection)")
    if "every" not in table:
        raise DashboardError(f"{place}, key 'every': missing; the seconds each wall shows ({MIN_EVERY}-{MAX_EVERY})")
    every = table["every"]
    if (isinstance(every, bool) or not isinstance(every, (int, float)) or not math.isfinite(every)
            or not MIN_EVERY <= every <= MAX_EVERY):
        raise DashboardError(f"{place}, key 'every': must be a number of seconds from {MIN_EVERY} to {MAX_EVERY}, "
                             f"got {every!r}")
    return Playlist(dashboards=tuple(names), every=every)


def _assignment(table: Any, walls: Walls, what: str) -> Assignment:
    """``{"dashboard": NAME}`` or ``{"playlist": NAME}``; ValueError(", key ...: reason")."""
    if not isinstance(table, Mapping):
        raise ValueError(f": {what} must be an object with \"dashboard\" or \"playlist\"")
    unknown = sorted(set(table) - {"dashboard", "playlist"})
    if unknown:
        raise ValueError(f", key {unknown[0]!r}: unknown key; allowed: dashboard, playlist")
    if len(table) != 1:
        raise ValueError(f": {what} shows exactly one of \"dashboard\" or \"playlist\"")
    (key, name), = table.items()
    known = walls.dashboards if key == "dashboard" else walls.playlists
    if not isinstance(name, str):
        raise ValueError(f", key {key!r}: must be a string, got {name!r}")
    if name not in known:
        raise ValueError(f", key {key!r}: no {key} named {name!r}; defined: {_names_of(known)}")
    return Assignment(**{key: name})
