"""The WSGI application: routes for the page, the WebSocket paths and the HTTP API.

Routing (eventlet's examples/websocket.py shape: one app, split by path), from one table
(``routes.py``; built in ``DashApp._route_table``):

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
    GET  /dashboard.json  the default wall of tiles ([dashboard]; no tiles without a wall); ?dashboard=NAME another
    GET  /dashboards.json every wall, playlist and screen of the config file
    GET  /d/NAME          the page, showing the wall NAME (as /?dashboard=NAME)
    GET  /screens.json    the named screens: what each shows since when, who is connected as it
    GET  /screens/NAME.json  what the screen NAME shows
    POST /screens/NAME    show another wall or playlist on the screen NAME (bearer token)
    POST /publish/NAME    publish a JSON object (or a bare number or string) to a `publish` stream (bearer token)
    POST /reload          tell every page that understands control messages to reload

Every refusal happens before the upgrade (or before a stream is touched), with a
specific status and a one-line body. An upgrade request passes ``Admission`` (rate 429,
origin 403, token 401, capacity 503) before the endpoint checks the handshake. A HEAD
request gets the headers of the GET answer and no body.

After the upgrade the connection is a session (``sessions/websocket.py``, ``sessions/sse.py``)
that this app keeps in the server's ``ServerState.sessions`` (for health, reload and
shutdown) until it ends. The app routes and answers, and keeps what only the edge needs
(admission's slots and rate buckets, the refusal log limiter); the sessions, the draining
flag, the metrics, the streams and the backplane are the ``ServerState`` it is given. That
class is the server's (``server/server.py``) and is not imported here: nothing imports
upward.

With several instances sharing streams through Redis (``--backplane``), the backplane
(``backplane/``) answers for the fleet: a publish or a reload reaches every instance's
screens, /streams sums the subscribers over instances, and while Redis is away publish and
reload answer 503 and /readyz 503.

Logging never includes the query string: it may carry the subscriber token.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, NamedTuple

from dashstream.edge.admission import Admission
from dashstream.edge.forwarded import ProxyPolicy
from dashstream.edge.http import (
    HTTPError,
    bearer_token,
    read_json_object,
    require_bearer,
    require_method,
    respond,
    respond_json,
    same_token,
)
from dashstream.edge.routes import Match, Route, RouteTable
from dashstream.edge.subscribe_query import (
    event_id_resume,
    multi_stream_targets,
    parse_query,
    recent_count,
    screen_name,
    single_resume,
    wants_control,
)
from dashstream.edge.upgrade import WebSocketEndpoint, wants_websocket
from dashstream.messages import DEFAULT_STREAM, BadFields, ControlMessage
from dashstream.ops.log_output import LogLimiter, fields_wanted, log_line, suppressed_note
from dashstream.ops.metrics import Metrics
from dashstream.ops.status_page import RateSampler, last_values, status_response
from dashstream.protocol.deflate import Deflater, Inflater
from dashstream.protocol.frames import FRAMES_PER_PASS, STREAM_SOCKET_DATA_BUDGET, FrameReader, Message
from dashstream.sessions.screens import UnknownScreen, stored_form
from dashstream.sessions.session import Session, SessionContext, describe_peer
from dashstream.sessions.sse import SSESession
from dashstream.sessions.sse import response_head as sse_head
from dashstream.sessions.sse import response_headers as sse_headers
from dashstream.sessions.websocket import WebSocketSession
from dashstream.streams.log import LogUnavailable, Resume
from dashstream.streams.stream import SharedStream, Stream
from producer.base import DOWN

if TYPE_CHECKING:  # pragma: no cover - the configuration sits above the edge (it checks edge rules)
    from dashstream.config.options import Config

logger = logging.getLogger("dashstream.http")
connection_logger = logging.getLogger("dashstream.connection")

TEXT = "text/plain; charset=utf-8"
# /dashboard.json without any wall in the config: a wall of no tiles (config.dashboard's
# ``Dashboard().to_json()``; the config sits above the edge, so it is spelled out here).
EMPTY_WALL = {"name": "default", "title": "dashstream", "columns": None, "locale": None, "timezone": None,
              "theme": "dark", "tiles": []}


class Subscribe(NamedTuple):
    """What a WebSocket route decided an upgrade gets, before upgrading."""

    targets: list[tuple[Stream, Resume | None]]
    multi: bool = False  # several streams on one socket: each message carries `stream`
    echo: bool = False  # the /echo diagnostic: no stream, messages come back


class DashApp:
    """Routes requests, from one table, with the ``ServerState`` it is given (the sessions,
    draining, metrics, streams and backplane: ``server/server.py``)."""

    def __init__(self, config: Config, state, index_path: Path, context: SessionContext):
        self.config = config
        self.state = state
        self.streams: dict[str, Stream] = state.streams
        self.backplane = state.backplane
        self.metrics = state.metrics
        self.index_path = index_path
        self.context = context
        context.on_closed = self._session_closed
        self._specs = {spec.name: spec for spec in config.streams}
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
        self._endpoint = WebSocketEndpoint(compression=config.compression)
        self._status_rates = RateSampler()  # /status's messages per minute, from its earlier views
        self.routes = self._route_table()

    def _route_table(self) -> RouteTable:
        """Every path: what plain HTTP gets, what an upgrade subscribes to (none: 404)."""
        echo = [Route("/echo", _upgrade_required, websocket=self._echo)] if self.config.echo else []
        return RouteTable([
            Route("/", self._page, websocket=self._default_stream),
            Route("/healthz", self._healthz),
            Route("/readyz", self._readyz),
            Route("/streams", self._streams),
            Route("/reload", self._reload),
            Route("/dashboard.json", self._dashboard),
            Route("/dashboards.json", self._dashboards),
            Route("/d/", self._wall_page, prefix=True),
            Route("/screens.json", self._screens),
            Route("/screens/", self._screen, prefix=True),
            Route("/metrics", self._metrics),
            Route("/status", self._status),
            *echo,
            Route("/ws", _upgrade_required, websocket=self._several_streams),
            Route("/ws/", self._named_stream_http, websocket=self._named_stream, prefix=True),
            Route("/sse/", self._sse, prefix=True, kind="handshake"),
            Route("/publish/", self._publish, prefix=True, kind="publish"),
        ], not_found=_no_such_path)

    # --- WSGI entry -------------------------------------------------------------------

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        route = self.routes.match(path)
        try:
            if self.state.draining:
                raise HTTPError("503 Service Unavailable", "server is shutting down", [("Retry-After", "1")])
            if wants_websocket(environ):
                return self._websocket(route, path, environ, start_response)
            body = route.http(environ, start_response)
        except HTTPError as error:
            self._log_refusal(method, path, route, error, environ)
            body = respond(start_response, error.status, error.reason + "\n", TEXT, error.headers)
        except Exception as error:  # noqa: BLE001 - a bug must cost one request, not leak a traceback
            # One line with the peer; eventlet would otherwise log nothing (log_output off)
            # and answer an empty 500. The path is logged without its query (the token).
            logger.error("%s %s failed peer=%s: %r", method, path, self._peer(environ), error,
                      extra={"peer": self._peer(environ), "path": path, "method": method, "status": 500})
            body = respond(start_response, "500 Internal Server Error", "internal error\n", TEXT)
        # HEAD: the GET answer's headers (Content-Length included), no body (RFC 9110 9.3.2).
        return [] if method == "HEAD" else body

    def _log_refusal(self, method: str, path: str, route: Match, error: HTTPError, environ: dict) -> None:
        if self.metrics is not None:
            kind = "handshake" if wants_websocket(environ) or route.kind == "handshake" else "http"
            self.metrics.refused(error.status, kind)
            if route.kind == "publish":
                self.metrics.published(error.status)
        peer = self._peer(environ)
        suppressed = self._refusal_lines.allow((peer.rsplit(":", 1)[0], error.status))
        if suppressed is None:
            return
        # The path only: a query string may carry a token (``ops/log_output.py`` escapes what it holds).
        logger.log(logging.DEBUG if error.quiet else logging.INFO, "%s %s → %s (%s) peer=%s%s",
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

    def _named_stream_http(self, name: str, environ: dict, start_response) -> Iterable[bytes]:
        if name in self.streams:
            return _upgrade_required(environ, start_response)
        return _no_such_path("/ws/" + name, environ, start_response)

    def _page(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        return respond(start_response, "200 OK", self.index_path.read_bytes(), "text/html; charset=utf-8",
                       [("Cache-Control", "no-cache")])

    def _healthz(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        return respond_json(start_response, "200 OK", self.health())

    def health(self) -> dict:
        return {"status": "ok", "connections": len(self.state.sessions),
                "producers": sum(stream.producers for stream in self.streams.values()),
                "uptime": round(time.time() - self.state.started, 3), **self.backplane.health_fields()}

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
        durable = self.state.durable.describe()
        if durable is not None:
            # A state file that cannot be written does not stop delivery (it goes on from
            # memory), so it never makes the server unready; it is said, for whoever watches.
            payload["state"] = durable["state"]
            if "reason" in durable:
                payload["state_reason"] = durable["reason"]
        return respond_json(start_response, status, payload)

    def _streams(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        return respond_json(start_response, "200 OK",
                            self.backplane.describe_streams([stream.describe() for stream in self.streams.values()]))

    @property
    def walls(self):
        """The walls, playlists and screens now (the file's; a reload's after POST /reload)."""
        return self.state.screens.walls

    def _dashboard(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        name = parse_query(environ.get("QUERY_STRING", "")).get("dashboard", [None])[0]
        walls = self.walls
        if name is None:
            # No wall: the page's answer is "no tiles" (the single view), and a healthy setup
            # logs no 404 (a kiosk's console shows it red on every load).
            wall = walls.default_wall
            return respond_json(start_response, "200 OK", wall.to_json() if wall is not None else EMPTY_WALL)
        wall = walls.dashboards.get(name)
        if wall is None:
            defined = ", ".join(walls.dashboards) or "(none)"
            return respond_json(start_response, "404 Not Found",
                                {"error": f"no dashboard named {name[:80]!r}; defined: {defined}"})
        return respond_json(start_response, "200 OK", wall.to_json())

    def _dashboards(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        body = self.walls.to_json()
        # What each screen shows now (a POST /screens/NAME may have changed the file's).
        body["screens"] = {name: assignment.to_json() for name, (assignment, _) in self.state.screens.assigned.items()}
        return respond_json(start_response, "200 OK", body)

    def _wall_page(self, name: str, environ: dict, start_response) -> Iterable[bytes]:
        """``/d/NAME``: the page, which reads the wall's name from its path (an unknown name
        is the page's to tell, as with ``/?dashboard=NAME``)."""
        return self._page(environ, start_response)

    def _screens(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "GET", "HEAD")
        screens = self.state.screens
        return respond_json(start_response, "200 OK",
                            screens.describe(self.backplane.connected_screens(screens.connected_here)))

    def _screen(self, name: str, environ: dict, start_response) -> Iterable[bytes]:
        """``GET /screens/NAME.json``: what it shows; ``POST /screens/NAME``: show another."""
        screens = self.state.screens
        if environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD"):
            if not name.endswith(".json"):
                raise HTTPError("404 Not Found", f"no such path: /screens/{name}; GET /screens/{name}.json "
                                "tells what the screen shows")
            try:
                assignment, _ = screens.assignment(name[:-len(".json")])
            except UnknownScreen as error:
                return respond_json(start_response, "404 Not Found", {"error": str(error)})
            return respond_json(start_response, "200 OK", {"name": name[:-len(".json")], **assignment.to_json()})
        require_method(environ, "GET", "HEAD", "POST")
        require_bearer(environ, self.config.publish_token, "steering screens")
        try:
            screens.assignment(name)
        except UnknownScreen as error:
            raise HTTPError("404 Not Found", str(error)) from None
        body = read_json_object(environ, self.config.max_publish_size, self.config.header_timeout)
        try:
            assignment = screens.walls.check_assignment(body)
        except ValueError as error:
            raise HTTPError("400 Bad Request", f"POST /screens/{name}{error}") from None
        since = time.time()
        told: list[int] = []

        def here() -> None:
            told.append(screens.assign(name, assignment, since))
            self.state.durable.save_screen(name, stored_form(assignment, since))  # --state (no backplane then)

        try:
            self.backplane.assign_screen(name, assignment.to_json(), since, here)
        except LogUnavailable as error:
            raise _unavailable(error) from None
        what = f"dashboard {assignment.dashboard!r}" if assignment.dashboard is not None \
            else f"playlist {assignment.playlist!r}"
        logger.info("screen %r now shows %s (%d session(s) here told) peer=%s", name, what, sum(told),
                    self._peer(environ), extra={"screen": name, **assignment.to_json(), "peer": self._peer(environ)})
        return respond_json(start_response, "200 OK", {"name": name, **assignment.to_json(), "since": since})

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

    def _reload(self, environ: dict, start_response) -> Iterable[bytes]:
        require_method(environ, "POST")
        require_bearer(environ, self.config.publish_token, "reload")
        try:
            self.state.rewall()  # the file read again: its walls, playlists and screens
        except ValueError as error:
            raise HTTPError("400 Bad Request", f"the config file has a mistake; nothing reloaded: {error}") from None
        try:
            reloaded = self.backplane.reload(lambda: self.state.reload_here(reread=False))
        except LogUnavailable as error:
            raise _unavailable(error) from None
        return respond_json(start_response, "200 OK", {"reloaded": reloaded})

    def _publish(self, name: str, environ: dict, start_response) -> Iterable[bytes]:
        """Checks in the order a client can fix them; the stream is touched only at the end,
        and only with a message that is completely checked and encoded."""
        require_method(environ, "POST")
        require_bearer(environ, self.config.publish_token, "publishing")
        stream = self.streams.get(name)
        if not isinstance(stream, SharedStream) or stream.source != "publish":
            raise HTTPError("404 Not Found", f"no publish stream named {name!r}")
        fields = read_json_object(environ, self.config.max_publish_size, self.config.header_timeout,
                                  bare_as="variable")
        try:
            entry = stream.publish_from_outside(fields)
        except BadFields as error:
            raise HTTPError("400 Bad Request", str(error)) from None
        except LogUnavailable as error:
            raise _unavailable(error) from None
        if self.metrics is not None:
            self.metrics.published(200)
        return respond_json(start_response, "200 OK", {"stream": name, "seq": entry.seq, "epoch": entry.epoch})

    def _sse(self, name: str, environ: dict, start_response) -> Iterable[bytes]:
        """A Server-Sent Events stream: the same admission as a WebSocket, then a session."""
        require_method(environ, "GET", "HEAD")
        stream = self.streams.get(name)
        if stream is None:
            raise HTTPError("404 Not Found", f"no stream named {name!r}")
        refusal = self.admission.check(environ)
        if refusal is not None:
            raise HTTPError(refusal.status, refusal.reason, list(refusal.headers), refusal.quiet)
        if environ.get("REQUEST_METHOD") == "HEAD":
            # The GET answer's headers, no stream: the capacity slot goes back at once.
            self.admission.release()
            start_response("200 OK", sse_headers(self._cors_origin(environ)))
            return []
        try:
            query = parse_query(environ.get("QUERY_STRING", ""))
            resume = event_id_resume(environ.get("HTTP_LAST_EVENT_ID") or query.get("last_event_id", [None])[0])
            recent = recent_count(query)
            screen = screen_name(query)
            sock, _ = environ["dashstream.hand_off"]()
        except BaseException:
            self.admission.release()
            raise
        session = SSESession(sock, self.context, peer=self._peer(environ), path=environ.get("PATH_INFO", ""),
                             control=wants_control(query))
        self._opened(session, screen, environ)
        try:
            session.write(sse_head(self._cors_origin(environ)), count=0)
            session.start()
            if session.closed:
                return []  # the client left (or reset) at once
            self.backplane.welcome(session)
            if session.control:
                session.send_control(self.stream_info(stream))
            stream.subscribe(session, resume, recent=recent)
        except BaseException:
            session.abort()
            raise
        return []  # the answer is the session's: the hand-off told the HTTP server so

    def stream_info(self, stream: Stream) -> ControlMessage:
        """What a page needs to judge a stream before its first value (README: "Message
        format"): its ``stale_after`` (None: quiet is never stale), its ``history`` (the most a
        ``?history=N`` can bring) and the server's clock ``now`` (the page's clock-offset
        estimate for a value's age). Control clients only, before the stream's backlog."""
        spec = self._specs.get(stream.name)
        history = stream.log.history_size if isinstance(stream, SharedStream) else 1
        return ControlMessage({"control": "stream", "stream": stream.name,
                               "stale_after": spec.stale_after if spec is not None else None,
                               "history": history, "now": time.time()})

    def _cors_origin(self, environ: dict) -> str | None:
        """EventSource from another origin (a page opened from disk sends ``null``) needs
        this header; the Origin passed admission, so it is allowed."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            return None
        return origin if self.config.allowed_origins else "*"

    # --- WebSocket --------------------------------------------------------------------

    def _websocket(self, route: Match, path: str, environ: dict, start_response) -> Iterable[bytes]:
        refusal = self.admission.check(environ)
        if refusal is not None:
            raise HTTPError(refusal.status, refusal.reason, list(refusal.headers), refusal.quiet)
        opened = False  # a capacity slot is now ours: once a session holds it, the session gives it back

        def open_session(sock, params, reply: bytes, buffered: bytes) -> None:
            nonlocal opened
            session = self._websocket_session(sock, environ, params, control, echo=subscribe.echo)
            self._opened(session, screen, environ)
            opened = True
            self._start_websocket(session, subscribe, recent, reply, buffered)

        try:
            # Decide what the upgrade gets before upgrading: 400 or 404 if nothing.
            query = parse_query(environ.get("QUERY_STRING", ""))
            control = wants_control(query)
            screen = screen_name(query)
            if route.websocket is None:
                raise HTTPError("404 Not Found", f"no WebSocket endpoint at {path}")
            subscribe = route.websocket(query)
            recent = recent_count(query)  # entries owed without a resume point (?history=N), checked now
            return self._endpoint.upgrade(environ, open_session)
        finally:
            if not opened:
                self.admission.release()  # refused before the upgrade

    def _default_stream(self, query: dict) -> Subscribe:
        return Subscribe([(self.streams[DEFAULT_STREAM], single_resume(query))])

    def _named_stream(self, name: str, query: dict) -> Subscribe:
        if name not in self.streams:
            raise HTTPError("404 Not Found", f"no WebSocket endpoint at /ws/{name}")
        return Subscribe([(self.streams[name], single_resume(query))])

    def _several_streams(self, query: dict) -> Subscribe:
        targets = [(self.streams[name], resume) for name, resume in multi_stream_targets(query, self.streams)]
        return Subscribe(targets, multi=True)

    def _echo(self, query: dict) -> Subscribe:
        return Subscribe([], echo=True)

    def _websocket_session(self, sock, environ: dict, params, control: bool, echo: bool) -> WebSocketSession:
        config = self.config
        reader = FrameReader(max_message_size=config.max_message_size, keep_messages=echo,
                             inflater=Inflater(params) if params is not None else None,
                             data_budget=None if echo else STREAM_SOCKET_DATA_BUDGET,
                             frame_budget=FRAMES_PER_PASS)
        return WebSocketSession(sock, self.context, peer=self._peer(environ), path=environ.get("PATH_INFO", "/"),
                                control=control, reader=reader,
                                deflater=Deflater(params) if params is not None else None,
                                on_message=_echo if echo else None)

    def _start_websocket(self, session: WebSocketSession, subscribe: Subscribe, recent: int, reply: bytes,
                         buffered: bytes) -> None:
        """The upgrade happened: answer 101, subscribe the session."""
        try:
            session.write(reply, count=0)
            session.start(buffered)
            if not subscribe.echo:
                self.backplane.welcome(session)
            for stream, resume in subscribe.targets:
                if session.closed:
                    break
                if session.control:  # the only sessions it goes to: not built for the others
                    session.send_control(self.stream_info(stream))
                stream.subscribe(session, resume, subscribe.multi, recent)
        except BaseException:
            session.abort()  # the socket is ours now: end it, give its capacity back
            raise

    def _opened(self, session: Session, screen: str | None = None, environ: dict | None = None) -> None:
        self.state.sessions.add(session)
        if screen is not None:
            # Registered as the named screen: POST /screens/NAME reaches it, /screens.json lists it.
            self.state.screens.join(screen, session, self.proxies.from_environ(environ).address, time.time())
        # Debug: the close line says all of it (peer, path, duration, sent, code), and a line
        # per handshake is a cost a reconnect storm would pay twice.
        if connection_logger.isEnabledFor(logging.DEBUG):
            connection_logger.debug("open peer=%s path=%s", session.peer, session.path, extra=session.log_fields())

    def _session_closed(self, session: Session) -> None:
        if session in self.state.sessions:
            self.state.sessions.discard(session)
            self.state.screens.leave(session)
            self.admission.release()
        if not connection_logger.isEnabledFor(logging.INFO):
            return
        duration = self.context.clock() - session.opened
        reason = session.close_reason
        # A line per connection: log_line (the pipeline's short way), its fields built only
        # for an output that shows them (--log-format json).
        fields = session.log_fields(duration_s=round(duration, 3), sent=session.sent, code=session.close_code,
                                    transport=session.kind, **({"reason": reason} if reason else {})) \
            if fields_wanted() else None
        log_line(connection_logger, logging.INFO, "close peer=%s path=%s duration=%.1fs sent=%d code=%s%s",
                 (session.peer, session.path, duration, session.sent, session.close_code or "-",
                  f" reason={reason!r}" if reason else ""), fields)


def _upgrade_required(environ: dict, start_response) -> Iterable[bytes]:
    raise HTTPError("426 Upgrade Required", "this is a WebSocket endpoint; connect with a WebSocket client",
                    [("Upgrade", "websocket"), ("Connection", "Upgrade")])


def _no_such_path(path: str, environ: dict, start_response) -> Iterable[bytes]:
    raise HTTPError("404 Not Found", f"no such path: {path}")


def metrics_response(environ: dict, metrics: Metrics, token: str | None) -> tuple[str, list[tuple[str, str]], bytes]:
    """``GET /metrics``: ``(status, headers, body)``. With ``--metrics-token``, the scraper
    must send ``Authorization: Bearer TOKEN`` (Prometheus: ``authorization: {credentials:
    ...}`` in the scrape config); compared in constant time, never logged. Its refusals are
    answers of the scrape endpoint, neither counted nor logged as refusals."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method not in ("GET", "HEAD"):
        return ("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", "text/plain; charset=utf-8")],
                f"{method} is not allowed here; use GET or HEAD\n".encode())
    if token is not None and not same_token(token, bearer_token(environ.get("HTTP_AUTHORIZATION"))):
        return ("401 Unauthorized", [("WWW-Authenticate", 'Bearer realm="dashstream metrics"'),
                                     ("Content-Type", "text/plain; charset=utf-8")],
                b"/metrics needs 'Authorization: Bearer TOKEN' (--metrics-token)\n")
    body, content_type = metrics.render(environ.get("HTTP_ACCEPT"))
    return "200 OK", [("Content-Type", content_type), ("Cache-Control", "no-store")], body


def _unavailable(error: LogUnavailable) -> HTTPError:
    return HTTPError("503 Service Unavailable", error.reason, [("Retry-After", str(error.retry_after))])


def _echo(session: WebSocketSession, message: Message) -> None:
    session.send_message(message)


def _peer(environ: dict) -> str:
    return describe_peer((environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")))

