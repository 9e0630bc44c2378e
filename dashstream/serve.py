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
import ssl
import sys
import time
from pathlib import Path

import eventlet
import eventlet.hubs
from eventlet import wsgi
from eventlet.green import ssl as green_ssl

from dashstream.admission import without_query
from dashstream.app import DashApp
from dashstream.config import Config
from dashstream.streams import Stream
from dashstream.websocket import CLOSE_GOING_AWAY

log = logging.getLogger("dashstream")
http_log = logging.getLogger("dashstream.http")

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


class GuardedHttpProtocol(wsgi.HttpProtocol):
    """eventlet's request parser with three defences added at the only depth that sees
    every connection (``wsgi.server(protocol=...)``; the docs call the argument deprecated,
    but it is still eventlet's one hook into request parsing):

    * a deadline for the request line and headers (``header_timeout``), so a client that
      dribbles its headers byte by byte, or connects and says nothing, is closed. eventlet's
      ``socket_timeout`` is per ``recv`` (one byte a second never trips it) and would also
      cut idle WebSockets, so it stays None and this deadline is cancelled as soon as the
      request is handed to the application;
    * ``431`` for a header line over 8 KiB, headers over 64 KiB in all, or more than 100
      headers (eventlet answers the first two with ``400``), with a one-line body;
    * every other parse error, a broken TLS handshake or random bytes ends with at most a
      short plain answer and one log line with the peer, never a traceback, and a query
      string (the subscriber token may be in it) never reaches a log.
    """

    header_timeout: float = 10.0
    _refused = False  # answered without reading everything the client sent
    # A refused request may leave unread bytes; closing over them makes the kernel send
    # RST, which can destroy our answer before the client reads it (RFC 9112 section 9.6,
    # "tear-down"). So close our side and drain briefly first, as nginx and Apache do.
    LINGER_SECONDS = 1.0
    LINGER_BYTES = 256 * 1024

    @classmethod
    def configured(cls, header_timeout: float) -> type["GuardedHttpProtocol"]:
        return type(cls.__name__, (cls,), {"header_timeout": header_timeout})

    def handle_one_request(self):
        self._refused = False
        self._header_deadline = eventlet.Timeout(self.header_timeout)
        try:
            super().handle_one_request()
        except eventlet.Timeout as timeout:
            if timeout is not self._header_deadline:
                raise
            # Idle keep-alive connections and browser preconnects end this way too: debug.
            http_log.debug("closed peer=%s: no complete request within --header-timeout %gs",
                           self._peer(), self.header_timeout)
            self.close_connection = True
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            http_log.debug("TLS peer=%s left during the handshake", self._peer())
            self.close_connection = True
        except ssl.SSLError as error:  # e.g. plain http:// or ws:// sent to the TLS port
            http_log.info("TLS failed peer=%s: %s", self._peer(), error.reason or error)
            self.close_connection = True
        except OSError as error:
            http_log.info("connection failed peer=%s: %s", self._peer(), error)
            self.close_connection = True
        finally:
            self._header_deadline.cancel()

    def parse_request(self):
        try:
            return super().parse_request()
        except (wsgi.HeaderLineTooLong, wsgi.HeadersTooLarge) as error:
            limit = "a header line is over 8 KiB" if isinstance(error, wsgi.HeaderLineTooLong) \
                else "the headers are over 64 KiB"
            self.send_error(431, limit)
            return False

    def get_environ(self):
        # The request is complete: from here the application owns the connection's time.
        self._header_deadline.cancel()
        environ = super().get_environ()
        if "HTTP_UPGRADE" in environ:
            # An upgrade request either becomes a WebSocket or is refused; a refused client
            # will not send another request on this connection, so do not keep it open.
            self.close_connection = 1
        if environ.get("CONTENT_LENGTH", "0") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ:
            # No endpoint reads a request body, and eventlet would read (and wait for) it
            # after the response to keep the connection: close instead, skipping the body.
            self.close_connection = 1
            self._refused = True  # unread bytes: linger before closing
        return environ

    def send_error(self, code, message=None, explain=None):
        """The stdlib's error page, as one plain line; logged without the request line."""
        phrase = self.responses.get(code, ("Error",))[0]
        # The stdlib's messages quote the client's request line: shorten it, keep it ASCII,
        # and cut any query string (it may hold the token) before it is logged or echoed.
        detail = without_query(message or phrase).encode("ascii", "backslashreplace").decode()[:200]
        body = f"{code} {phrase}: {detail}\n".encode()
        http_log.info("%s peer=%s: %s", code, self._peer(), detail)
        self.close_connection = True
        self._refused = True
        try:
            self.wfile.write(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                             % (code, phrase.encode(), len(body), body))
            self.wfile.flush()
        except OSError:
            pass

    def log_message(self, format, *args):
        # The stdlib logs request lines to stderr from here; they may hold the token.
        http_log.info("peer=%s: %s", self._peer(), without_query(format % args))

    def finish(self):
        if self._refused:
            self._linger()
        super().finish()

    def _linger(self):
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            drained = 0
            with eventlet.Timeout(self.LINGER_SECONDS, False):
                while drained < self.LINGER_BYTES:
                    chunk = self.connection.recv(65536)
                    if not chunk:
                        break
                    drained += len(chunk)
        except OSError:
            pass

    def _peer(self) -> str:
        host, port = wsgi.addr_to_host_port(self.client_address)
        return f"{host}:{port}"


def tls_context(certfile: str, keyfile: str) -> ssl.SSLContext:
    """A server context for https:// and wss:// (TLS 1.2+, Python's default ciphers).
    eventlet's green context, so handshakes and reads yield to other clients; each
    connection's handshake happens on its first read, in its own green thread, within
    the header deadline (eventlet's accept does not handshake)."""
    context = green_ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    context.set_alpn_protocols(["http/1.1"])
    return context


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
    if config.certfile is not None:
        # The files were checked when the options were parsed; this only wraps.
        listener = tls_context(config.certfile, config.keyfile).wrap_socket(listener, server_side=True)
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
        socket_timeout=None,  # WebSockets idle for long; GuardedHttpProtocol bounds the headers
        protocol=GuardedHttpProtocol.configured(config.header_timeout),
    )
    host, port = url_host(config.host), listener.getsockname()[1]
    http, ws = ("https", "wss") if config.certfile is not None else ("http", "ws")
    log.info("dashstream ready: page %s://%s:%d/  websocket %s://%s:%d/", http, host, port, ws, host, port)
    signum = wait_for_signal()
    force_exit_on_second_signal()
    started = time.monotonic()
    log.info("%s received: shutting down", signal.Signals(signum).name)
    shutdown(listener, app, streams, config.close_timeout)
    log.debug("shutdown took %.2fs", time.monotonic() - started)
    return 0
