"""The route table: every path the server answers, exact or by prefix, in one place.

A request's path is matched once (``RouteTable.match``): an exact path first, then the
prefixes, whose remainder is the stream's name (``/ws/NAME``, ``/sse/NAME``,
``/publish/NAME``). What the match gives back is ready to call: the name is bound into the
handlers by closure, so no handler parses the path again or reads the route from
``environ``.

A route has what a plain HTTP request gets (``http``) and, if the path is a WebSocket
endpoint, what an upgrade there subscribes to (``websocket``). Pure: no I/O, no eventlet.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, NamedTuple

# (environ, start_response) -> body; a prefix route's handler takes the name first.
HttpHandler = Callable[..., Iterable[bytes]]
# (query) -> what the upgrade subscribes to; a prefix route's takes the name first.
WebSocketHandler = Callable[..., object]


# The most prefix matches ``RouteTable`` keeps bound, and the longest path it keeps.
BOUND_KEPT = 256
BOUND_PATH_LENGTH = 200


class Route(NamedTuple):
    path: str
    http: HttpHandler
    websocket: WebSocketHandler | None = None  # None: not a WebSocket endpoint (an upgrade gets 404)
    prefix: bool = False  # matches every path that starts with ``path``; the rest is the name
    # How a refusal here is counted in /metrics: "http", "handshake" (a stream is asked
    # for, as by an upgrade) or "publish" (also counted as a publish answer).
    kind: str = "http"


class Match(NamedTuple):
    """A matched path: its handlers with the name bound in (``websocket`` None if the path
    is no WebSocket endpoint), and the route's kind."""

    http: Callable[[dict, Callable], Iterable[bytes]]
    websocket: Callable[[dict], object] | None
    kind: str


class RouteTable:
    """Exact paths, then prefixes in the order given; ``not_found(path, environ,
    start_response)`` answers the rest."""

    def __init__(self, routes: Iterable[Route], not_found: HttpHandler):
        self.exact: dict[str, Match] = {}  # ready to hand out: nothing to bind
        self.prefixes: list[Route] = []
        seen: set[str] = set()
        for route in routes:
            if route.path in seen:
                raise ValueError(f"route {route.path!r} is in the table twice")
            seen.add(route.path)
            if route.prefix:
                self.prefixes.append(route)
            else:
                self.exact[route.path] = Match(route.http, route.websocket, route.kind)
        self.not_found = not_found
        # Prefix matches already bound, by path: a wall's screens ask for the same few paths
        # again and again (every reconnect of every screen), and binding is two partials and
        # a Match each time. Paths are the client's to choose, so the memo is bounded in count
        # and in path length; past that a path is bound every time, as before.
        self._bound: dict[str, Match] = {}

    def match(self, path: str) -> Match:
        match = self.exact.get(path) or self._bound.get(path)
        if match is not None:
            return match
        match = self._bind(path)
        if len(self._bound) < BOUND_KEPT and len(path) <= BOUND_PATH_LENGTH:
            self._bound[path] = match
        return match

    def _bind(self, path: str) -> Match:
        for route in self.prefixes:
            if path.startswith(route.path):
                name = path[len(route.path):]
                websocket = functools.partial(route.websocket, name) if route.websocket is not None else None
                return Match(functools.partial(route.http, name), websocket, route.kind)
        return Match(functools.partial(self.not_found, path), None, "http")
