"""One running dashstream: ``Server(config, index_path).run()`` (uvicorn's ``Server`` and
``ServerState``).

``ServerState`` is what the parts of a running server share: the open sessions, whether it
is draining, its one ``Metrics`` object, its streams and its backplane. The app routes with
it, the backplane reads the sessions and streams from it, ``/metrics`` reads it at scrape
time. ``Server`` builds it once the port is bound (the backplane's instance name carries
the port), serves, and stops in the order its ``shutdown`` lists.

eventlet only through ``dashstream.runtime`` and ``serve.py`` (the listener, ``wsgi.server``,
the signals).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Callable

from dashstream import runtime
from dashstream.backplane import make_backplane
from dashstream.config.options import Config, resolve_walls
from dashstream.config.walls import NO_WALLS, Walls
from dashstream.edge.app import DashApp
from dashstream.messages import ControlMessage
from dashstream.ops.log_output import dropped_lines
from dashstream.ops.metrics import Metrics
from dashstream.protocol.frames import CLOSE_GOING_AWAY
from dashstream.server import serve
from dashstream.sessions.keepalive import Keepalive, Watchdog
from dashstream.sessions.screens import Screens
from dashstream.sessions.session import Session, SessionContext
from dashstream.streams.durable import NO_STATE, StateError, open_state
from dashstream.streams.stream import Stream, streams_from_config

logger = logging.getLogger("dashstream")

RELOAD = ControlMessage({"control": "reload"})


class ServerState:
    """The sessions, the draining flag, the one ``Metrics``, the streams and the backplane
    of one server. The metrics read the sessions and streams from here at scrape time."""

    def __init__(self, backplane, *, durable=NO_STATE, log_lines_dropped: Callable[[], int] | None = None,
                 process_metrics: bool = True, walls: Walls = NO_WALLS,
                 reread: Callable[[], Walls] | None = None):
        self.backplane = backplane
        # The walls, playlists and named screens (what each shows, its sessions): the file's
        # at start, a reload's afterwards (POST /reload re-reads the file).
        self.screens = Screens(walls)
        self.reread = reread  # the config file's walls read again (raises ValueError naming the mistake)
        self.durable = durable  # --state: the streams' file (streams/durable.py); NO_STATE: memory
        self.streams: dict[str, Stream] = {}
        self.sessions: set[Session] = set()  # open, every transport; a session leaves when it ends
        self.draining = False  # shutting down: every request is answered 503
        self.started = time.time()
        self.metrics = Metrics(connections=self.connection_counts, streams=self.stream_descriptions,
                               backplane=backplane.describe, log_lines_dropped=log_lines_dropped,
                               state=durable.describe, process=process_metrics)

    def connection_counts(self) -> dict[str, int]:
        """Open sessions by transport (websocket, sse), for /metrics."""
        counts = {"websocket": 0, "sse": 0}
        for session in self.sessions:
            counts[session.kind] = counts.get(session.kind, 0) + 1
        return counts

    def stream_descriptions(self) -> list[dict]:
        return [stream.describe() for stream in self.streams.values()]

    def rewall(self) -> None:
        """Read the file's walls, playlists and screens again (POST /reload); a file with a
        mistake raises ``ValueError`` and changes nothing. Valid assignments are kept."""
        if self.reread is not None:
            self.screens.rewall(self.reread())

    def reload_here(self, reread: bool = True) -> int:
        """Send the reload to this instance's control clients, after reading the walls
        again (``reread``: another instance's reload; a file with a mistake here is logged
        and the walls stay as they were); how many clients there were."""
        if reread:
            try:
                self.rewall()
            except ValueError as error:
                logger.error("reload: the walls stay as they were: %s", error)
        receivers = [session for session in self.sessions if session.control]
        for session in receivers:
            session.send_control(RELOAD)
        return len(receivers)


def session_context(config: Config, metrics: Metrics | None = None) -> SessionContext:
    """The limits, keepalives and watchdog every session shares, from the config."""
    keepalive = (Keepalive(config.ping_interval, config.ping_timeout, clock=runtime.monotonic, metrics=metrics)
                 if config.ping_interval > 0 else None)  # --ping-interval 0: no pings
    heartbeat = Keepalive(config.sse_heartbeat, config.sse_heartbeat, clock=runtime.monotonic)  # SSE comments
    resolution = min(0.1, heartbeat.resolution, *([keepalive.resolution] if keepalive is not None else []))
    # The lag sweep a quarter of --slow-timeout apart (at most 1 s): a subscriber too far
    # behind by ts is closed by 1.5 x --slow-timeout at the latest (session.check_lag).
    watchdog = Watchdog(resolution=resolution, clock=runtime.monotonic, sleep=runtime.sleep,
                        keepalives=(keepalive, heartbeat), lag_interval=min(1.0, config.slow_timeout / 4))
    return SessionContext(queue_size=config.queue_size, slow_timeout=config.slow_timeout,
                          write_timeout=config.write_timeout, close_timeout=config.close_timeout,
                          frame_timeout=config.frame_timeout, watchdog=watchdog, keepalive=keepalive,
                          heartbeat=heartbeat, clock=runtime.monotonic, metrics=metrics)


class Server:
    """Binds, serves ``index_path`` and the streams of ``config``, and stops on a signal."""

    def __init__(self, config: Config, index_path: Path):
        self.config = config
        self.index_path = index_path
        # Made by startup(), once the port is bound:
        self.listener = None
        self.state: ServerState | None = None
        self.app: DashApp | None = None

    def run(self) -> int:
        """Serve until a shutdown signal; return the process exit status (1: the port
        cannot be bound; 2: the --state file cannot be used)."""
        try:
            durable = open_state(self.config)  # before the port: a bad state file exits 2 at once
        except StateError as error:
            logger.error("%s", error)  # one line: "... ERROR dashstream: --state PATH: what, what to do"
            return 2
        try:
            self.listener = serve.listen(self.config)
        except serve.BindError as error:
            # A fatal start error: ERROR, through the log (the same line and format as the rest).
            logger.error("cannot start: %s", error)
            durable.close()
            return 1
        self.startup(durable)
        signum = serve.wait_for_signal()
        serve.force_exit_on_second_signal()
        started = runtime.monotonic()
        logger.info("%s received: shutting down", signal.Signals(signum).name)
        self.shutdown()
        logger.debug("shutdown took %.2fs", runtime.monotonic() - started)
        return 0

    def startup(self, durable=NO_STATE) -> None:
        """The state, the streams and the app; then the watchdog, the backplane, the sources
        and the HTTP server, in that order (a source's first value finds its stream ready)."""
        config = self.config
        port = self.listener.getsockname()[1]
        # The instance's name in the fleet (/healthz, /streams, leases): host, port and a
        # token, so a restarted instance never mistakes its predecessor's lease for its own.
        backplane = make_backplane(config.backplane, f"{socket.gethostname()}:{port}:{os.urandom(2).hex()}")
        state = self.state = ServerState(backplane, durable=durable, log_lines_dropped=dropped_lines,
                                         walls=config.walls, reread=lambda: resolve_walls(config))
        state.screens.restore(durable.saved_screens())  # --state: what each screen was switched to
        state.streams.update(streams_from_config(config, on_pass=state.metrics.fanout_pass, backplane=backplane,
                                                 durable=durable if durable.path is not None else None,
                                                 on_private=state.metrics.private_delivery))
        context = session_context(config, state.metrics)
        self.app = DashApp(config, state, self.index_path, context)
        runtime.spawn(context.watchdog.run)
        backplane.start(state)
        for stream in state.streams.values():
            stream.start()
        serve.serve_http(self.listener, self.app, config.header_timeout)
        host = serve.url_host(config.host)
        http, ws = ("https", "wss") if config.certfile is not None else ("http", "ws")
        logger.info("dashstream ready: page %s://%s:%d/  websocket %s://%s:%d/", http, host, port, ws, host, port)

    def shutdown(self) -> None:
        """Graceful stop, in this order:

        1. Stop accepting: close the listening socket, so new connections are refused.
        2. Drain: requests and handshakes still in flight are answered 503.
        3. Stop the sources, so no new value is queued behind a goodbye.
        4. Send every open session its goodbye (WebSocket: 1001 "server shutting down"), all
           at once, without blocking on any of them.
        5. Flush and wait: each session writes what it still holds and its close, until
           every one has ended (the peer answered, or its close deadline of
           ``--close-timeout`` passed, checked by the watchdog); drop what remains.
        6. Leave the backplane (with Redis: this instance's presence; its leases were given
           back in step 3, so another instance took over the sources at once).
        7. Write what the durable state (``--state``) has not written yet, and release its file.
        """
        state = self.state
        self.listener.close()
        state.draining = True
        for stream in state.streams.values():
            stream.stop()
        sessions = list(state.sessions)
        for session in sessions:
            session.close(CLOSE_GOING_AWAY, "server shutting down")
        deadline = runtime.monotonic() + 2 * self.config.close_timeout + 0.2
        while state.sessions and runtime.monotonic() < deadline:
            runtime.sleep(0.01)
        for session in list(state.sessions):
            session.abort()
        state.backplane.stop()
        state.durable.close()
        logger.info("stopped; closed %d connection(s)", len(sessions))
