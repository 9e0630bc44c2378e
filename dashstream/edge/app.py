"""The WSGI application: routes for the page, the WebSocket paths and the HTTP API.

Routing (eventlet's examples/websocket.py shape: one app, split by path):

    GET  /                the dashboard page (index.html)
    WS   /                the default stream
    WS   /ws/NAME         a named stream
    WS   /ws?streams=a,b  several streams on one socket
    WS   /echo            echo diagnostic endpoint (unless --no-echo)
    GET  /sse/NAME        the stream NAME as Server-Sent Events
    GET  /healthz         JSON health of the process, including open connections
    GET  /readyz          200 when ready to serve data; 503 while shutting down, a source or the backplane is down
    GET  /streams         JSON: every stream, its subscribers, state and last message
    GET  /metrics         Prometheus text format (optionally behind --metrics-token)
    GET  /status          the operator's HTML status page (same token rule as /metrics)
    GET  /dashboard.json  the wall of tiles from [dashboard] (404 without one)
    POST /publish/NAME    publish a JSON object to a `publish` stream (bearer token)
    POST /reload          tell every page that understands control messages to reload

Every refusal happens before the upgrade (or before a stream is touched), with a
specific status and a one-line body. An upgrade request passes ``Admission`` (rate 429,
origin 403, token 401, capacity 503) before the endpoint checks the handshake. A HEAD
request gets the headers of the GET answer and no body.

After the upgrade the connection is a session (``ws_session.py``) that this app keeps in
``sessions`` (for health, reload and shutdown) until it ends.

With several instances sharing streams through Redis (``--backplane``), the backplane
(``backplane.py``) answers for the fleet: a publish or a reload reaches every instance's
screens, /streams sums the subscribers over instances, and while Redis is away publish and
reload answer 503 and /readyz 503.

Logging never includes the query string: it may carry the subscriber token.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from dashstream import runtime
from dashstream.backplane.memory import MemoryBackplane
from dashstream.edge.admission import Admission
from dashstream.edge.forwarded import ProxyPolicy
from dashstream.edge.http import HTTPError, read_json_object, require_bearer, require_method, respond, respond_json
from dashstream.edge.subscribe_query import (
    event_id_resume,
    multi_stream_targets,
    parse_query,
    single_resume,
    wants_control,
)
from dashstream.edge.upgrade import WebSocketEndpoint, wants_websocket
from dashstream.messages import DEFAULT_STREAM, BadFields, ControlMessage
from dashstream.ops.log_output import LogLimiter, suppressed_note
from dashstream.ops.metrics import Metrics, metrics_response
from dashstream.ops.status_page import RateSampler, last_values, status_response
from dashstream.protocol.deflate import Deflater, Inflater
from dashstream.protocol.frames import FrameReader, Message
from dashstream.sessions.session import Session, SessionContext, describe_peer
from dashstream.sessions.sse import SSESession
from dashstream.sessions.sse import response_head as sse_head
from dashstream.sessions.websocket import WebSocketSession

if TYPE_CHECKING:  # pragma: no cover - the configuration sits above the edge (it checks edge rules)
    from dashstream.config.options import Config
from dashstream.streams.log import LogUnavailable
from dashstream.streams.stream import DOWN, SharedStream, Stream

log = logging.getLogger("dashstream.http")
connection_log = logging.getLogger("dashstream.connection")

RELOAD = ControlMessage({"control": "reload"})
TEXT = "text/plain; charset=utf-8"


class DashApp:
    """Routes requests; owns the set of open sessions."""

    def __init__(self, config: Config, streams: dict[str, Stream], index_path: Path, context: SessionContext,
                 metrics: Metrics | None = None, backplane=None):
        self.config = config
        self.streams = streams
        self.backplane = backplane or MemoryBackplane()
        self.index_path = index_path
        self.context = context
        context.on_closed = self._session_closed
        self.metrics = metrics
        self.sessions: set[Session] = set()
        self.draining = False
        self.started = time.time()
        self.refused_connections = 0
        # From a trusted proxy the client is the right-most untrusted X-Forwarded-For entry:
        # rate limits and every log line use that address.
        self.proxies = ProxyPolicy(config.trusted_proxies)
        self.admission = Admission(
            allowed_origins=config.allowed_origins, token=config.token,
            max_connections=config.max_connections,
            handshake_rate=config.handshake_rate, handshake_burst=config.handshake_burst, proxies=self.proxies)
        # One line per client address and status a minute for refused requests: a client
        # hammering 404s must not be able to flood the log (the rest are counted).
        self._refusal_lines = LogLimiter(60.0)
        self._endpoint = WebSocketEndpoint(self._open_websocket, compression=config.compression,
                                           send_buffer=config.send_buffer)
        # Exact paths; prefixes are matched after these.
        self._routes: dict[str, Callable[[dict, Callable], Iterable[bytes]]] = {
            "/": self._page,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/streams": self._streams,
            "/reload": self._reload,
            "/dashboard.json": self._dashboard,
            "/metrics": self._metrics,
            "/status": self._status,
        }
        self._status_rates = RateSampler()  # /status's messages per minute, from its earlier views

    # --- WSGI entry -------------------------------------------------------------------

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            if self.draining:
                raise HTTPError("503 Service Unavailable", "server is shutting down", [("Retry-After", "1")])
            if wants_websocket(environ):
                return self._websocket(path, environ, start_response)
            body = self._http(path, environ, start_response)
        except HTTPError as error:
            self._log_refusal(method, path, error, environ)
            body = respond(start_response, error.status, error.reason + "\n", TEXT, error.headers)
        except Exception as error:  # noqa: BLE001 - a bug must cost one request, not leak a traceback
            # One line with the peer; eventlet would otherwise log nothing (log_output off)
            # and answer an empty 500. The path is logged without its query (the token).
            log.error("%s %s failed peer=%s: %r", method, path, self._peer(environ), error,
                      extra={"peer": self._peer(environ), "path": path, "method": method, "status": 500})
            body = respond(start_response, "500 Internal Server Error", "internal error\n", TEXT)
        # HEAD: the GET answer's headers (Content-Length included), no body (RFC 9110 9.3.2).
        return [] if method == "HEAD" else body

    def _log_refusal(self, method: str, path: str, error: HTTPError, environ: dict) -> None:
        if self.metrics is not None:
            kind = "handshake" if wants_websocket(environ) or path.startswith("/sse/") else "http"
            self.metrics.refused(error.status, kind)
            if path.startswith("/publish/"):
                self.metrics.published(error.status)
        peer = self._peer(environ)
        suppressed = self._refusal_lines.allow((peer.rsplit(":", 1)[0], error.status))
        if suppressed is None:
            return
        # The path only: a query string may carry a token (logs.py escapes what it holds).
        log.log(logging.DEBUG if error.quiet else logging.INFO, "%s %s → %s (%s) peer=%s%s",
                method, path, error.status, error.reason, peer, suppressed_note(suppressed),
                extra={"peer": peer, "path": path, "method": method, "status": int(error.status.split()[0]),
                       **({"suppressed": suppressed} if suppressed else {})})

    def _peer(self, environ: dict) -> str:
        """The client for the log: its address and port, or, behind a trusted proxy, the
        forwarded address and the proxy it came through."""
        socket_peer = _peer(environ)
        client = self.proxies.from_environ(environ)
        return f"{client.address} via {socket_peer}" if client.forwarded else socket_peer

    # --- plain HTTP -----------------------------------------------------------------

    def _http(self, path: str, environ: dict, start_response) -> Iterable[bytes]:
        route = self._routes.get(path)
        if route is not None:
            return route(environ, start_response)
        if path.startswith("/publish/"):
            return self._publish(path[len("/publish/"):], environ, start_response)
        if path.startswith("/sse/"):
            return self._sse(path[len("/sse/"):], environ)
        if path == "/echo" and self.config.echo or path == "/ws" \
                or path.startswith("/ws/") and path[4:] in self.streams:
            raise HTTPError("426 Upgrade Required", "this is a WebSocket endpoint; connect with a WebSocket client",
                            [("Upgrade", "websocket"), ("Connection", "Upgrade")])
        raise HTTPError("404 Not Found", f"no such path: {path}")

    def _page(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        return respond(start_response, "200 OK", self.index_path.read_bytes(), "text/html; charset=utf-8",
                       [("Cache-Control", "no-cache")])

    def _healthz(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        return respond_json(start_response, "200 OK", self.health())

    def health(self) -> dict:
        return {"status": "ok", "connections": len(self.sessions),
                "producers": sum(stream.producers for stream in self.streams.values()),
                "uptime": round(time.time() - self.started, 3), **self.backplane.health_fields()}

    def _readyz(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        # (While shutting down every request, this one too, is answered 503 before routing.)
        down = sorted(name for name, stream in self.streams.items() if stream.state == DOWN)
        backplane_down = self.backplane.not_ready()
        if backplane_down:
            status, payload = "503 Service Unavailable", {"ready": False, "reason": backplane_down}
        elif down:
            status, payload = "503 Service Unavailable", {"ready": False, "reason": "source down",
                                                          "streams_down": down}
        else:
            status, payload = "200 OK", {"ready": True}
        return respond_json(start_response, status, payload)

    def _streams(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        return respond_json(start_response, "200 OK",
                            self.backplane.describe_streams([stream.describe() for stream in self.streams.values()]))

    def _dashboard(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        if self.config.dashboard is None:
            raise HTTPError("404 Not Found", "no [dashboard] is configured; the page shows one stream")
        return respond_json(start_response, "200 OK", self.config.dashboard.to_json())

    def _metrics(self, environ: dict, start_response) -> Iterable[bytes]:
        if self.metrics is None:
            raise HTTPError("404 Not Found", "no metrics in this server")
        status, headers, body = metrics_response(environ, self.metrics, self.config.metrics_token)
        return respond(start_response, status, body, dict(headers).pop("Content-Type"),
                       [header for header in headers if header[0] != "Content-Type"])

    def _status(self, environ: dict, start_response) -> Iterable[bytes]:
        described = self.backplane.describe_streams([stream.describe() for stream in self.streams.values()])
        status, headers, body = status_response(environ, described, last_values(self.streams),
                                                self.config.metrics_token, self._status_rates)
        return respond(start_response, status, body, dict(headers).pop("Content-Type"),
                       [header for header in headers if header[0] != "Content-Type"])

    def connection_counts(self) -> dict[str, int]:
        """Open sessions by transport (websocket, sse), for /metrics."""
        counts = {"websocket": 0, "sse": 0}
        for session in self.sessions:
            counts[session.kind] = counts.get(session.kind, 0) + 1
        return counts

    def _reload(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "POST")
        require_bearer(environ, self.config.publish_token, "reload")
        try:
            reloaded = self.backplane.reload(self.reload_here)
        except LogUnavailable as error:
            raise _unavailable(error) from None
        return respond_json(start_response, "200 OK", {"reloaded": reloaded})

    def reload_here(self) -> int:
        """Send the reload to this instance's control clients; how many there were."""
        receivers = [session for session in self.sessions if session.control]
        for session in receivers:
            session.send_control(RELOAD)
        return len(receivers)

    def _publish(self, name: str, environ: dict, start_response) -> Iterable[bytes]:
        """Checks in the order a client can fix them; the stream is touched only at the end,
        and only with a message that is completely checked and encoded."""
        require_method(environ, "POST")
        require_bearer(environ, self.config.publish_token, "publishing")
        stream = self.streams.get(name)
        if not isinstance(stream, SharedStream) or stream.source != "publish":
            raise HTTPError("404 Not Found", f"no publish stream named {name!r}")
        fields = read_json_object(environ, self.config.max_publish_size, self.config.header_timeout)
        try:
            entry = stream.publish_from_outside(fields)
        except BadFields as error:
            raise HTTPError("400 Bad Request", str(error)) from None
        except LogUnavailable as error:
            raise _unavailable(error) from None
        if self.metrics is not None:
            self.metrics.published(200)
        return respond_json(start_response, "200 OK", {"stream": name, "seq": entry.seq, "epoch": entry.epoch})

    def _sse(self, name: str, environ: dict) -> Iterable[bytes]:
        """A Server-Sent Events stream: the same admission as a WebSocket, then a session."""
        require_method(environ, "GET")
        stream = self.streams.get(name)
        if stream is None:
            raise HTTPError("404 Not Found", f"no stream named {name!r}")
        refusal = self.admission.check(environ)
        if refusal is not None:
            raise HTTPError(refusal.status, refusal.reason, list(refusal.headers), refusal.quiet)
        try:
            query = parse_query(environ.get("QUERY_STRING", ""))
            resume = event_id_resume(environ.get("HTTP_LAST_EVENT_ID") or query.get("last_event_id", [None])[0])
            sock, _ = environ["dashstream.hand_off"]()
        except BaseException:
            self.admission.release()
            raise
        session = SSESession(sock, self.context, peer=self._peer(environ), path=environ.get("PATH_INFO", ""),
                             control=wants_control(query))
        self._opened(session, environ)
        try:
            session.write(sse_head(self._cors_origin(environ)), count=0)
            session.start()
            self.backplane.welcome(session)
            stream.subscribe(session, resume)
        except BaseException:
            session.abort()
            raise
        return runtime.written_by_hand()

    def _cors_origin(self, environ: dict) -> str | None:
        """EventSource from another origin (a page opened from disk sends ``null``) needs
        this header; the Origin passed admission, so it is allowed."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            return None
        return origin if self.config.allowed_origins else "*"

    def note_refused_connection(self, address: str) -> None:
        """The request pool closed a connection: its address has too many waiting."""
        self.refused_connections += 1

    # --- WebSocket --------------------------------------------------------------------

    def _websocket(self, path: str, environ: dict, start_response) -> Iterable[bytes]:
        refusal = self.admission.check(environ)
        if refusal is not None:
            raise HTTPError(refusal.status, refusal.reason, list(refusal.headers), refusal.quiet)
        try:  # a capacity slot is now ours: the session gives it back when it ends
            environ["dashstream.route"] = self._websocket_route(path, environ)
            return self._endpoint(environ, start_response)
        finally:
            if "dashstream.session" not in environ:
                self.admission.release()  # refused before the upgrade

    def _websocket_route(self, path: str, environ: dict) -> tuple:
        """Decide what an upgrade request gets, before upgrading: 404 if nothing."""
        query = parse_query(environ.get("QUERY_STRING", ""))
        control = wants_control(query)
        if path == "/echo" and self.config.echo:
            return "echo", [], control, False
        if path == "/ws":
            targets = [(self.streams[name], resume) for name, resume in multi_stream_targets(query, self.streams)]
            return "stream", targets, control, True
        if path == "/":
            name = DEFAULT_STREAM
        elif path.startswith("/ws/") and path[4:] in self.streams:
            name = path[4:]
        else:
            raise HTTPError("404 Not Found", f"no WebSocket endpoint at {path}")
        return "stream", [(self.streams[name], single_resume(query))], control, False

    def _open_websocket(self, sock, environ: dict, params, reply: bytes, buffered: bytes) -> None:
        """The upgrade happened: build the session, answer 101, subscribe it."""
        kind, targets, control, multi = environ["dashstream.route"]
        echo = kind == "echo"
        config = self.config
        reader = FrameReader(max_message_size=config.max_message_size, keep_messages=echo,
                             inflater=Inflater(params) if params is not None else None)
        session = WebSocketSession(sock, self.context, peer=self._peer(environ), path=environ.get("PATH_INFO", "/"),
                                   control=control, reader=reader,
                                   deflater=Deflater(params) if params is not None else None,
                                   on_message=_echo if echo else None)
        self._opened(session, environ)
        try:
            session.write(reply, count=0)
            session.start(buffered)
            if not echo:
                self.backplane.welcome(session)
            for stream, resume in targets:
                if session.closed:
                    break
                stream.subscribe(session, resume, multi)
        except BaseException:
            session.abort()  # the socket is ours now: end it, give its capacity back
            raise

    def _opened(self, session: Session, environ: dict) -> None:
        environ["dashstream.session"] = session
        self.sessions.add(session)
        # Debug: the close line says all of it (peer, path, duration, sent, code), and a line
        # per handshake is a cost a reconnect storm would pay twice.
        connection_log.debug("open peer=%s path=%s", session.peer, session.path, extra=session.log_fields())

    def _session_closed(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            self.admission.release()
        duration = self.context.clock() - session.opened
        connection_log.info("close peer=%s path=%s duration=%.1fs sent=%d code=%s%s", session.peer, session.path,
                            duration, session.sent, session.close_code or "-",
                            f" reason={session.close_reason!r}" if session.close_reason else "",
                            extra=session.log_fields(duration_s=round(duration, 3), sent=session.sent,
                                                     code=session.close_code, transport=session.kind,
                                                     **({"reason": session.close_reason}
                                                        if session.close_reason else {})))


def _unavailable(error: LogUnavailable) -> HTTPError:
    return HTTPError("503 Service Unavailable", error.reason, [("Retry-After", str(error.retry_after))])


def _echo(session: WebSocketSession, message: Message) -> None:
    session.send_message(message)


def _peer(environ: dict) -> str:
    return describe_peer((environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")))

