"""The WSGI application: one dispatcher for the page, the WebSocket paths and health.

Routing (eventlet's examples/websocket.py shape: one app, split by path):

    GET /            the dashboard page (index.html)
    WS  /            the default stream
    WS  /ws/NAME     a named stream
    WS  /echo        echo diagnostic endpoint (unless --no-echo)
    GET /healthz     JSON health, including open WebSocket connections

Every refusal happens before the upgrade, with a specific status and a one-line body.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Iterable
from urllib.parse import parse_qs

from dashstream.config import Config
from dashstream.connection import Connection
from dashstream.hub import Resume
from dashstream.streams import Stream
from dashstream.websocket import CLOSE_POLICY, DashWebSocket, WebSocketEndpoint, wants_websocket

log = logging.getLogger("dashstream.http")

DEFAULT_STREAM = "default"


class HTTPError(Exception):
    def __init__(self, status: str, reason: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []


class DashApp:
    """Routes requests; owns the set of open connections (for health and shutdown)."""

    def __init__(self, config: Config, streams: dict[str, Stream], index_path: Path):
        self.config = config
        self.streams = streams
        self.index_path = index_path
        self.connections: set[Connection] = set()
        self.draining = False
        self.started = time.time()
        self._endpoint = WebSocketEndpoint(self._run_websocket, compression=False,
                                           max_message_size=config.max_message_size,
                                           close_timeout=config.close_timeout)

    # --- WSGI entry -------------------------------------------------------------------

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if self.draining:
                raise HTTPError("503 Service Unavailable", "server is shutting down",
                                [("Retry-After", "1")])
            if wants_websocket(environ):
                environ["dashstream.route"] = self._websocket_route(path, environ)
                return self._endpoint(environ, start_response)
            return self._http(path, method, environ, start_response)
        except HTTPError as error:
            log.info("%s %s → %s (%s)", method, path, error.status, error.reason)
            return self._respond(start_response, error.status, error.reason + "\n",
                                 "text/plain; charset=utf-8", error.headers)

    # --- plain HTTP -----------------------------------------------------------------

    def _http(self, path: str, method: str, environ: dict, start_response) -> Iterable[bytes]:
        if path == "/":
            self._require_method(method, "GET", "HEAD")
            return self._respond(start_response, "200 OK", self.index_path.read_bytes(),
                                 "text/html; charset=utf-8", [("Cache-Control", "no-cache")])
        if path == "/healthz":
            self._require_method(method, "GET", "HEAD")
            return self._json(start_response, "200 OK", self.health())
        if path == "/echo" and self.config.echo or path.startswith("/ws/") and path[4:] in self.streams:
            raise HTTPError("426 Upgrade Required", "this is a WebSocket endpoint; connect with a WebSocket client",
                            [("Upgrade", "websocket"), ("Connection", "Upgrade")])
        raise HTTPError("404 Not Found", f"no such path: {path}")

    def health(self) -> dict:
        return {"status": "ok", "connections": len(self.connections),
                "producers": sum(stream.producers for stream in self.streams.values()),
                "uptime": round(time.time() - self.started, 3)}

    # --- WebSocket --------------------------------------------------------------------

    def _websocket_route(self, path: str, environ: dict) -> tuple:
        """Decide what an upgrade request gets, before upgrading: 404 if nothing."""
        if path == "/echo" and self.config.echo:
            return ("echo", None, None)
        if path == "/":
            name = DEFAULT_STREAM
        elif path.startswith("/ws/") and path[4:] in self.streams:
            name = path[4:]
        else:
            raise HTTPError("404 Not Found", f"no WebSocket endpoint at {path}")
        return ("stream", self.streams[name], self._resume_from_query(environ))

    @staticmethod
    def _resume_from_query(environ: dict) -> Resume | None:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if "seq" not in query and "epoch" not in query:
            return None
        try:
            seq = int(query["seq"][0])
            epoch = query["epoch"][0]
        except (KeyError, ValueError):
            raise HTTPError("400 Bad Request", "resume needs both seq (an integer) and epoch") from None
        return Resume(seq, epoch)

    def _run_websocket(self, ws: DashWebSocket, environ: dict) -> None:
        kind, stream, resume = environ["dashstream.route"]
        peer = f"{environ.get('REMOTE_ADDR')}:{environ.get('REMOTE_PORT')}"
        path = environ.get("PATH_INFO", "/")
        if kind == "echo":
            connection = Connection(ws, peer, path, close_timeout=self.config.close_timeout,
                                    on_message=lambda conn, message: conn.ws.send(message))
            subscription = None
        else:
            connection = Connection(ws, peer, path, close_timeout=self.config.close_timeout)
            # The hub reports a laggard while publishing, so the close runs in its own green thread.
            subscription = stream.subscribe(
                resume, on_slow=lambda _subscription: connection.close_soon(CLOSE_POLICY, "subscriber too slow"))
        self.connections.add(connection)
        try:
            connection.serve(subscription)
        finally:
            self.connections.discard(connection)

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def _require_method(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HTTPError("405 Method Not Allowed", f"{method} is not allowed here",
                            [("Allow", ", ".join(allowed))])

    def _json(self, start_response, status: str, payload) -> list[bytes]:
        return self._respond(start_response, status, json.dumps(payload) + "\n", "application/json")

    @staticmethod
    def _respond(start_response, status: str, body: str | bytes, content_type: str,
                 headers: list[tuple[str, str]] | None = None) -> list[bytes]:
        data = body.encode() if isinstance(body, str) else body
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))),
                                *(headers or [])])
        return [data]
