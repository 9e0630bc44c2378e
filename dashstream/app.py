"""The WSGI application: one dispatcher for the page, the WebSocket paths and the HTTP API.

Routing (eventlet's examples/websocket.py shape: one app, split by path):

    GET  /                the dashboard page (index.html)
    WS   /                the default stream
    WS   /ws/NAME         a named stream
    WS   /echo            echo diagnostic endpoint (unless --no-echo)
    GET  /healthz         JSON health, including open WebSocket connections
    GET  /streams         JSON: every stream, its subscribers and last message
    POST /publish/NAME    publish a JSON object to a `publish` stream (bearer token)
    POST /reload          tell every page that understands control messages to reload

Every refusal happens before the upgrade (or before a stream is touched), with a
specific status and a one-line body. An upgrade request passes ``Admission`` (rate 429,
origin 403, token 401, capacity 503) before the WebSocket endpoint checks the handshake.

Logging never includes the query string: it may carry the subscriber token.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Iterable
from urllib.parse import parse_qs

from dashstream.admission import Admission
from dashstream.config import Config
from dashstream.connection import Connection, Keepalive
from dashstream.hub import RESERVED_FIELDS, Envelope, Resume
from dashstream.httputil import (HTTPError, read_json_object, require_bearer, require_method, respond,
                                 respond_json)
from dashstream.stream_specs import DEFAULT_STREAM
from dashstream.streams import SharedStream, Stream
from dashstream.websocket import CLOSE_POLICY, DashWebSocket, WebSocketEndpoint, wants_websocket

log = logging.getLogger("dashstream.http")

RELOAD = {"control": "reload"}


class DashApp:
    """Routes requests; owns the set of open connections (for health, reload and shutdown)."""

    def __init__(self, config: Config, streams: dict[str, Stream], index_path: Path):
        self.config = config
        self.streams = streams
        self.index_path = index_path
        self.connections: set[Connection] = set()
        self.draining = False
        self.started = time.time()
        self.admission = Admission(
            allowed_origins=config.allowed_origins, token=config.token,
            max_connections=config.max_connections,
            handshake_rate=config.handshake_rate, handshake_burst=config.handshake_burst)
        self._endpoint = WebSocketEndpoint(self._run_websocket, compression=config.compression,
                                           send_buffer=config.send_buffer,
                                           max_message_size=config.max_message_size,
                                           close_timeout=config.close_timeout)
        self.keepalive = (Keepalive(config.ping_interval, config.ping_timeout)
                          if config.ping_interval > 0 else None)  # --ping-interval 0: no pings

    # --- WSGI entry -------------------------------------------------------------------

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if self.draining:
                raise HTTPError("503 Service Unavailable", "server is shutting down", [("Retry-After", "1")])
            if wants_websocket(environ):
                return self._websocket(path, environ, start_response)
            return self._http(path, environ, start_response)
        except HTTPError as error:
            # The path only: a query string may carry a token.
            log.log(logging.DEBUG if error.quiet else logging.INFO, "%s %s → %s (%s) peer=%s",
                    method, path, error.status, error.reason, _peer(environ))
            return respond(start_response, error.status, error.reason + "\n", "text/plain; charset=utf-8",
                           error.headers)
        except Exception as error:  # noqa: BLE001 - a bug must cost one request, not leak a traceback
            # One line with the peer; eventlet would otherwise log nothing (log_output off)
            # and answer an empty 500. The path is logged without its query (the token).
            log.error("%s %s failed peer=%s: %r", method, path, _peer(environ), error)
            return respond(start_response, "500 Internal Server Error", "internal error\n",
                           "text/plain; charset=utf-8")

    # --- plain HTTP -----------------------------------------------------------------

    def _http(self, path: str, environ: dict, start_response) -> Iterable[bytes]:
        if path == "/":
            require_method(environ, "GET", "HEAD")
            return respond(start_response, "200 OK", self.index_path.read_bytes(), "text/html; charset=utf-8",
                           [("Cache-Control", "no-cache")])
        if path == "/healthz":
            require_method(environ, "GET", "HEAD")
            return respond_json(start_response, "200 OK", self.health())
        if path == "/streams":
            require_method(environ, "GET", "HEAD")
            return respond_json(start_response, "200 OK",
                                {"streams": [stream.describe() for stream in self.streams.values()]})
        if path.startswith("/publish/"):
            return respond_json(start_response, "200 OK", self._publish(path[len("/publish/"):], environ))
        if path == "/reload":
            require_method(environ, "POST")
            require_bearer(environ, self.config.publish_token, "reload")
            return respond_json(start_response, "200 OK", {"reloaded": self._broadcast_control(RELOAD)})
        if path == "/echo" and self.config.echo or path.startswith("/ws/") and path[4:] in self.streams:
            raise HTTPError("426 Upgrade Required", "this is a WebSocket endpoint; connect with a WebSocket client",
                            [("Upgrade", "websocket"), ("Connection", "Upgrade")])
        raise HTTPError("404 Not Found", f"no such path: {path}")

    def health(self) -> dict:
        return {"status": "ok", "connections": len(self.connections),
                "producers": sum(stream.producers for stream in self.streams.values()),
                "uptime": round(time.time() - self.started, 3)}

    def _publish(self, name: str, environ: dict) -> dict:
        """Checks in the order a client can fix them; the stream is touched only at the end."""
        require_method(environ, "POST")
        require_bearer(environ, self.config.publish_token, "publishing")
        stream = self.streams.get(name)
        if not isinstance(stream, SharedStream) or stream.source != "publish":
            raise HTTPError("404 Not Found", f"no publish stream named {name!r}")
        fields = read_json_object(environ, self.config.max_publish_size)
        if "variable" not in fields:
            # Every message carries `variable`, so one-line pages never break.
            raise HTTPError("400 Bad Request", "the object must have a 'variable' field")
        reserved = sorted(RESERVED_FIELDS & fields.keys())
        if reserved:
            raise HTTPError("400 Bad Request", f"field {reserved[0]!r} is set by the server")
        envelope = stream.publish(fields)
        return {"stream": name, "seq": envelope.seq, "epoch": envelope.message["epoch"]}

    def _broadcast_control(self, message: dict) -> int:
        """Queue a control message for every connection that asked for them (``control=1``)."""
        envelope = Envelope(message)
        receivers = [connection for connection in self.connections if connection.control]
        for connection in receivers:
            connection.push(envelope)
        return len(receivers)

    # --- WebSocket --------------------------------------------------------------------

    def _websocket(self, path: str, environ: dict, start_response) -> Iterable[bytes]:
        refusal = self.admission.check(environ)
        if refusal is not None:
            raise HTTPError(refusal.status, refusal.reason, list(refusal.headers), refusal.quiet)
        try:  # a capacity slot is now ours, whatever happens below
            environ["dashstream.route"] = self._websocket_route(path, environ)
            return self._endpoint(environ, start_response)
        finally:
            # The endpoint returns when the WebSocket is over (or the handshake was refused).
            self.admission.release()

    def _websocket_route(self, path: str, environ: dict) -> tuple:
        """Decide what an upgrade request gets, before upgrading: 404 if nothing."""
        query = parse_qs(environ.get("QUERY_STRING", ""))
        control = query.get("control", ["0"])[0] in ("1", "true", "yes")
        if path == "/echo" and self.config.echo:
            return ("echo", None, None, control)
        if path == "/":
            name = DEFAULT_STREAM
        elif path.startswith("/ws/") and path[4:] in self.streams:
            name = path[4:]
        else:
            raise HTTPError("404 Not Found", f"no WebSocket endpoint at {path}")
        return ("stream", self.streams[name], self._resume_from_query(query), control)

    @staticmethod
    def _resume_from_query(query: dict) -> Resume | None:
        if "seq" not in query and "epoch" not in query:
            return None
        try:
            seq = int(query["seq"][0])
            epoch = query["epoch"][0]
        except (KeyError, ValueError):
            raise HTTPError("400 Bad Request", "resume needs both seq (an integer) and epoch") from None
        return Resume(seq, epoch)

    def _run_websocket(self, ws: DashWebSocket, environ: dict) -> None:
        try:
            self._serve_websocket(ws, environ)
        except Exception as error:  # noqa: BLE001 - after the upgrade no HTTP answer is possible
            log.error("websocket failed peer=%s path=%s: %r", _peer(environ), environ.get("PATH_INFO"), error)

    def _serve_websocket(self, ws: DashWebSocket, environ: dict) -> None:
        kind, stream, resume, control = environ["dashstream.route"]
        peer = _peer(environ)
        path = environ.get("PATH_INFO", "/")
        limits = dict(close_timeout=self.config.close_timeout, write_timeout=self.config.write_timeout,
                      keepalive=self.keepalive)
        if kind == "echo":
            connection = Connection(ws, peer, path, **limits,
                                    on_message=lambda conn, message: conn.ws.send(message))
            subscription = None
        else:
            connection = Connection(ws, peer, path, **limits, control=control)
            # The hub reports a laggard while publishing, so the close runs in its own green thread.
            subscription = stream.subscribe(
                resume, on_slow=lambda _subscription: connection.close_soon(CLOSE_POLICY, "subscriber too slow"))
        self.connections.add(connection)
        try:
            connection.serve(subscription)
        finally:
            self.connections.discard(connection)


def _peer(environ: dict) -> str:
    return f"{environ.get('REMOTE_ADDR')}:{environ.get('REMOTE_PORT')}"
