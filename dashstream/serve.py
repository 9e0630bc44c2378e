"""Process lifecycle: bind, serve with eventlet's WSGI server, stop cleanly on a signal.

eventlet-specific on purpose (with ``websocket.py`` and the green threads in
``connection.py``/``streams.py``, the only such places).
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path

import eventlet
import eventlet.hubs
from eventlet import wsgi

from dashstream.app import DashApp
from dashstream.config import Config
from dashstream.streams import Stream
from dashstream.websocket import CLOSE_GOING_AWAY

log = logging.getLogger("dashstream")

# Signals, with what each does. The first is a graceful stop; a second one while we are
# still stopping means "now": the process exits at once with status 1 (uvicorn's rule).
SHUTDOWN_SIGNALS = {
    signal.SIGTERM: "sent by docker stop, systemd and process managers",
    signal.SIGINT: "Ctrl-C in a terminal",
}

# Plain HTTP requests and handshakes being refused still need a green thread each;
# this many are allowed on top of --max-connections WebSockets.
HTTP_HEADROOM = 128


class BindError(Exception):
    pass


def bind(host: str, port: int) -> socket.socket:
    """A listening socket *without* SO_REUSEPORT: ``eventlet.listen`` sets it by default,
    which lets a second instance silently share the port instead of failing."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return eventlet.listen((host, port), family=family, backlog=1024, reuse_port=False)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise BindError(f"port {port} on {host} is already in use") from None
        raise BindError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None


def raise_fd_limit(wanted: int) -> None:
    """Each connection is a file descriptor; the usual soft limit (1024) is far below
    --max-connections, so raise it towards the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if hard != resource.RLIM_INFINITY and hard < wanted:
        log.warning("file descriptor limit %d is below --max-connections; raise it (ulimit -n)", hard)


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def wait_for_signal() -> int:
    """Block this green thread until a shutdown signal arrives; return its number.

    Python runs signal handlers between bytecodes, but eventlet's hub may be asleep in
    epoll for a long time. ``set_wakeup_fd`` makes the kernel-level handler write the
    signal number into a pipe the hub watches, so we wake at once.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd)
    for signum in SHUTDOWN_SIGNALS:
        signal.signal(signum, lambda *_: None)  # the wakeup fd carries the news
    while True:
        eventlet.hubs.trampoline(read_fd, read=True)
        for signum in os.read(read_fd, 64):
            if signum in SHUTDOWN_SIGNALS:
                return signum


def force_exit_on_second_signal() -> None:
    def force(signum, _frame):
        log.warning("second %s: exiting now", signal.Signals(signum).name)
        os._exit(1)

    for signum in SHUTDOWN_SIGNALS:
        signal.signal(signum, force)


def shutdown(listener: socket.socket, app: DashApp, streams: dict[str, Stream], close_timeout: float) -> None:
    """Graceful stop, in this order:

    1. Stop accepting: close the listening socket, so new connections are refused.
    2. Drain: requests and handshakes still in flight are answered 503.
    3. Stop the producers, so no new values are queued.
    4. Send every open WebSocket a close frame (1001 "server shutting down"), all at once.
    5. Wait up to ``close_timeout`` for the peers' close frames; drop what remains.
    """
    listener.close()
    app.draining = True
    for stream in streams.values():
        stream.stop()
    connections = list(app.connections)
    closers = [eventlet.spawn(connection.close, CLOSE_GOING_AWAY, "server shutting down")
               for connection in connections]
    # Each close waits at most close_timeout for the send and again for the answer.
    with eventlet.Timeout(2 * close_timeout + 0.2, False):
        for closer in closers:
            closer.wait()
    log.info("stopped; closed %d connection(s)", len(connections))


def run(config: Config, streams: dict[str, Stream], index_path: Path) -> int:
    """Serve until a shutdown signal; return the process exit status."""
    try:
        listener = bind(config.host, config.port)
    except BindError as error:
        print(f"dashstream: {error}", file=sys.stderr)
        return 1
    raise_fd_limit(config.max_connections + HTTP_HEADROOM + 64)
    app = DashApp(config, streams, index_path)
    for stream in streams.values():
        stream.start()
    eventlet.spawn(
        wsgi.server, listener, app,
        log=logging.getLogger("dashstream.wsgi"),
        log_output=False,  # connection and error lines come from our own loggers
        debug=False,  # eventlet's default writes tracebacks into the client's socket
        max_size=config.max_connections + HTTP_HEADROOM,
        socket_timeout=None,
    )
    host, port = url_host(config.host), listener.getsockname()[1]
    log.info("dashstream ready: page http://%s:%d/  websocket ws://%s:%d/", host, port, host, port)
    signum = wait_for_signal()
    force_exit_on_second_signal()
    started = time.monotonic()
    log.info("%s received: shutting down", signal.Signals(signum).name)
    shutdown(listener, app, streams, config.close_timeout)
    log.debug("shutdown took %.2fs", time.monotonic() - started)
    return 0
