"""eventlet's HTTP server, as the ``Server`` (``server.py``) uses it: bind, serve, signals.

eventlet-specific on purpose (with ``dashstream/runtime.py``, the only such places): the
listening socket, eventlet's ``wsgi.server`` and the wait for a shutdown signal. What the
server does with them, and the order of a shutdown, is ``server.py``'s. The HTTP side is
``wsgi.server`` with three things added where they must sit: a guarded request parser
(deadlines, limits, quiet failures), a request pool that bounds what waits for a request
overall and per address (``request_pool.py``), and the hand-off of an upgraded connection's
socket to its session, after which the HTTP server forgets it: no green thread stays parked
per WebSocket.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import resource
import signal
import socket
import ssl
import sys
import time
import urllib.parse
from collections import deque

import eventlet
import eventlet.hubs
from eventlet import patcher, wsgi
from eventlet.green import ssl as green_ssl
from eventlet.greenio import GreenSocket

from dashstream import runtime
from dashstream.config.options import Config
from dashstream.ops.log_output import without_query
from dashstream.server.chunked_body import ChunkedBody
from dashstream.server.first_read import OnDemand, replaying_reader
from dashstream.server.http_headers import (
    ENVIRON_KEYS,
    BadFraming,
    BadHeaders,
    ReadyHead,
    TooManyHeaders,
    body_framing,
    environ_key,
    read_headers,
    ready_head,
)
from dashstream.server.request_pool import FirstBytes, RequestPool

_original_socket = patcher.original("socket").socket

logger = logging.getLogger("dashstream")
http_logger = logging.getLogger("dashstream.http")

# Signals, with what each does. The first is a graceful stop; a second one while we are
# still stopping means "now": the process exits at once with status 1 (uvicorn's rule).
SHUTDOWN_SIGNALS = {
    signal.SIGTERM: "sent by docker stop, systemd and process managers",
    signal.SIGINT: "Ctrl-C in a terminal",
}

# Requests in progress at once (the page, health, publish, handshakes being answered),
# and from one client address; WebSockets and SSE streams are not counted once upgraded.
MAX_REQUESTS = 1024
MAX_REQUESTS_PER_ADDRESS = 64
# Sockets the server keeps beside --max-connections: requests in progress and waiting.
FD_HEADROOM = MAX_REQUESTS + 8192 + 64


class BindError(Exception):
    pass


class _HandedOff:
    """Stands in for a socket given to a session, so wsgi.server's clean-up touches nothing."""

    def shutdown(self, *_args):
        pass

    def close(self):
        pass


def _let_go(*_args) -> None:
    """A handed-off socket's green wrapper closes nothing any more (it would on garbage
    collection): the session owns the socket underneath."""


def _first_bytes(connection) -> tuple[bytes | None, OSError | None]:
    """What a new plain connection has sent so far, without waiting: one ``recv`` on the
    non-blocking socket under the green wrapper (None when nothing is there yet, ``b""`` at
    EOF), and the error that read met, if any, for the HTTP reader to meet in its turn."""
    try:
        count = connection.fd.recv_into(runtime.RECV_BUFFER)
    except BlockingIOError:
        return None, None
    except OSError as error:
        return b"", error
    return bytes(runtime.RECV_VIEW[:count]), None


class _Accepted(GreenSocket):
    """A plain connection as ``GuardedListener`` accepts it, with what it had sent by then
    (``early``, from ``_first_bytes``): read there instead of peeked at, so that telling
    whether it has spoken and reading its request take one system call, not two."""

    early: tuple[bytes | None, OSError | None] | None = None


class GuardedHttpProtocol(wsgi.HttpProtocol):
    """eventlet's request parser with the defences that must sit at the only depth that sees
    every connection (``wsgi.server(protocol=...)``; the docs call the argument deprecated,
    but it is still eventlet's one hook into request parsing):

    * a deadline for the request line and headers (``header_timeout``), so a client that
      dribbles its headers byte by byte, or connects and says nothing, is closed. eventlet's
      ``socket_timeout`` is per ``recv`` (one byte a second never trips it) and would also
      cut idle WebSockets, so it stays None and this deadline is cancelled as soon as the
      request is handed to the application (which bounds a body it reads the same way);
    * ``431`` for a header line over 8 KiB, headers over 64 KiB in all, or more than 100
      headers (eventlet answers the first two with ``400``), with a one-line body;
    * every other parse error, a broken TLS handshake or random bytes ends with at most a
      short plain answer and one log line with the peer, never a traceback, and a query
      string (the subscriber token may be in it) never reaches a log;
    * keep-alive for requests with a body (a publisher reuses its connection), but never a
      wait for a body the application did not read: such a connection is closed instead;
    * the body's framing checked before the application runs (``body_framing``): two
      different ``Content-Length`` values are ``400`` (RFC 9112 6.3), a transfer coding
      other than ``chunked`` is ``501``; a chunked body is read with bounded lines;
    * ``environ["dashstream.hand_off"]()``: the upgraded connection's socket, non-blocking,
      for a session to own; the HTTP server then lets go of it without closing it.

    An upgrade request whose whole head is in the connection's first bytes (nearly every
    WebSocket handshake: ``_first_bytes``, ``http_headers.ready_head``) skips what it would
    only pay for: no header deadline (there is nothing to wait for), no buffered reader and
    writer (``first_read.OnDemand``: made only if used, as for a refused upgrade's answer),
    and an environ built from the parsed head (``_upgrade_environ``). Every other request is
    read as before, its first bytes given back to the reader (``first_read.Replay``), so each
    limit and answer above is the same whichever way a request came.
    """

    header_timeout: float = 10.0
    _refused = False  # answered without reading everything the client sent
    _handed_off = False
    _header_deadline: eventlet.Timeout | None = None
    # A whole upgrade request found in the first bytes (head, request line, path), until its
    # environ is built, and what the client sent after its head.
    _ready: tuple[ReadyHead, str, str] | None = None
    _after_head = b""
    # A refused request may leave unread bytes; closing over them makes the kernel send
    # RST, which can destroy our answer before the client reads it (RFC 9112 section 9.6,
    # "tear-down"). So close our side and drain briefly first, as nginx and Apache do.
    LINGER_SECONDS = 1.0
    LINGER_BYTES = 256 * 1024

    @classmethod
    def configured(cls, header_timeout: float) -> type["GuardedHttpProtocol"]:
        return type(cls.__name__, (cls,), {"header_timeout": header_timeout})

    def setup(self):
        connection = self.connection = self.request
        if type(connection) is not _Accepted:
            super().setup()  # TLS: its handshake happens on the first read, as before
            return
        taken, error = connection.early or (None, None)
        connection.early = None
        if taken is None and error is None:  # it spoke later (FirstBytes): read it now
            taken, error = _first_bytes(connection)
        taken = taken or b""
        self._ready = self._upgrade_in(taken) if taken else None
        if self._ready is None:
            # eventlet's setup, with the bytes taken given back to the reader first.
            try:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, True)
            except (AttributeError, OSError):
                pass
            self.rfile = (replaying_reader(connection, taken, error) if taken or error
                          else connection.makefile("rb", self.rbufsize))
            self.wfile = connection.makefile("wb", self.wbufsize)
            return
        after_head = self._after_head = taken[self._ready[0].size:]
        size = self.wbufsize
        # The openers hold what they need, not this protocol (which holds them: a cycle
        # only the garbage collector would free, see ``finish``).
        self.rfile = OnDemand(lambda: replaying_reader(connection, after_head))
        self.wfile = OnDemand(lambda: connection.makefile("wb", size))

    @staticmethod
    def _upgrade_in(taken: bytes) -> tuple[ReadyHead, str, str] | None:
        """A whole upgrade request without a body at the start of ``taken``, which the full
        reader would take as it is (``parse_request``'s rules for the request line); None
        for anything else."""
        head = ready_head(taken)
        if head is None:
            return None
        requestline = str(head.request_line, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or words[0] != "GET" or words[2] != "HTTP/1.1":
            return None
        names = head.headers.by_name
        if "upgrade" not in names or "content-length" in names or "transfer-encoding" in names or "expect" in names:
            return None
        return head, requestline, words[1]

    def handle_one_request(self):
        self._refused = False
        ready, self._ready = self._ready, None
        if ready is None:
            self._header_deadline = eventlet.Timeout(self.header_timeout)
        try:
            if ready is not None:
                self._upgrade_from_first_bytes(*ready)
            else:
                super().handle_one_request()
        except eventlet.Timeout as timeout:
            if timeout is not self._header_deadline:
                raise
            # Idle keep-alive connections and browser preconnects end this way too: debug.
            http_logger.debug("closed peer=%s: no complete request within --header-timeout %gs",
                           self._peer(), self.header_timeout, extra={"peer": self._peer()})
            self.close_connection = True
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            http_logger.debug("TLS peer=%s left during the handshake", self._peer(), extra={"peer": self._peer()})
            self.close_connection = True
        except ssl.SSLError as error:  # e.g. plain http:// or ws:// sent to the TLS port
            http_logger.info("TLS failed peer=%s: %s", self._peer(), error.reason or error,
                             extra={"peer": self._peer()})
            self.close_connection = True
        except OSError as error:
            if not self._handed_off:
                http_logger.info("connection failed peer=%s: %s", self._peer(), error, extra={"peer": self._peer()})
            self.close_connection = True
        finally:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

    def parse_request(self):
        """The standard library's request-line rules, with the header block read by
        ``http_headers`` instead of the e-mail parser (the largest cost of a handshake)."""
        self.command = None
        self.request_version = version = self.default_request_version
        self.close_connection = True
        self.requestline = requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            try:
                if not version.startswith("HTTP/"):
                    raise ValueError
                numbers = version.split("/", 1)[1].split(".")
                if len(numbers) != 2 or not all(n.isdigit() and len(n) <= 10 for n in numbers):
                    raise ValueError
                number = int(numbers[0]), int(numbers[1])
            except (ValueError, IndexError):
                self.send_error(400, f"Bad request version ({version!r})")
                return False
            if number >= (2, 0):
                self.send_error(505, f"Invalid HTTP version ({version[5:]})")
                return False
            if number >= (1, 1):
                self.close_connection = False
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(400, f"Bad request syntax ({requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(400, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, "/" + path.lstrip("/") if path.startswith("//") else path
        try:
            self.headers = read_headers(self.rfile.readline)
        except (wsgi.HeaderLineTooLong, wsgi.HeadersTooLarge, TooManyHeaders) as error:
            limit = ("a header line is over 8 KiB" if isinstance(error, wsgi.HeaderLineTooLong)
                     else "the headers are over 64 KiB" if isinstance(error, wsgi.HeadersTooLarge) else str(error))
            self.send_error(431, limit)
            return False
        except BadHeaders as error:
            self.send_error(400, str(error))
            return False
        try:
            self.headers = body_framing(self.headers)
        except BadFraming as error:
            self.send_error(error.status, str(error))
            return False
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if self.headers.get("Expect", "").lower() == "100-continue" and self.request_version >= "HTTP/1.1":
            return self.handle_expect_100()
        return True

    def get_environ(self):
        # The request is complete: from here the application owns the connection's time.
        self._header_deadline.cancel()
        environ = super().get_environ()
        if "HTTP_UPGRADE" in environ:
            # An upgrade request either becomes a WebSocket or is refused; a refused client
            # will not send another request on this connection, so do not keep it open.
            self.close_connection = 1
        environ["dashstream.hand_off"] = self._hand_off
        if environ["eventlet.input"].chunked_input:
            # eventlet's chunk reader has no bound on a line (chunked_body.py). The original
            # stays as eventlet.input, so the connection is still closed after the answer.
            environ["wsgi.input"] = ChunkedBody(self.rfile)
        return environ

    def _upgrade_from_first_bytes(self, head: ReadyHead, requestline: str, path: str) -> None:
        """eventlet's ``handle_one_request`` and this class's ``parse_request``, for a request
        read and checked already (``_upgrade_in``)."""
        if self.server.max_http_version:
            self.protocol_version = self.server.max_http_version
        self.raw_requestline = head.request_line
        self.conn_state[2] = wsgi.STATE_REQUEST
        self.requestline, self.command, self.request_version = requestline, "GET", "HTTP/1.1"
        self.path = "/" + path.lstrip("/") if path.startswith("//") else path
        self.headers = head.headers
        # An upgrade either becomes a WebSocket or is refused: the connection ends either way.
        self.close_connection = 1
        self.environ = self._upgrade_environ()
        self.application = self.server.app
        self.server.outstanding_requests += 1
        try:
            self._answer_upgrade()
        except OSError as error:
            if error.errno not in wsgi.BROKEN_SOCK:
                raise
        finally:
            self.server.outstanding_requests -= 1

    def _upgrade_environ(self) -> dict:
        """eventlet's environ (``HttpProtocol.get_environ``) for an upgrade request read from
        its first bytes, with three differences nothing here can see: the keys that are the
        same for every request come from one copy made per server, SERVER_NAME and
        SERVER_PORT are the listener's address (eventlet asks the kernel for the
        connection's own, a system call per request), and there is no ``headers_raw`` (the
        header lines again, as a tuple nobody reads)."""
        environ = self._constant_environ().copy()
        environ["wsgi.errors"] = sys.stderr
        headers = self.headers
        raw_path, question, query = self.path.partition("?")
        environ["REQUEST_METHOD"] = self.command
        environ["RAW_PATH_INFO"] = raw_path
        environ["PATH_INFO"] = urllib.parse.unquote(raw_path, encoding="latin1")
        if question:
            environ["QUERY_STRING"] = query
        content_type = headers.by_name.get("content-type")
        environ["CONTENT_TYPE"] = content_type if content_type is not None else headers.get_content_type()
        environ["REMOTE_ADDR"], port = wsgi.addr_to_host_port(self.client_address)
        environ["REMOTE_PORT"] = str(port)
        keys = ENVIRON_KEYS
        for name, value in headers._headers:
            key = keys.get(name)
            if key is None:
                key = environ_key(name)
            if not key:
                continue
            value = value.strip(" \t\n\r")
            if key in environ:
                environ[key] += "," + value
            else:
                environ[key] = value
        environ["wsgi.input"] = environ["eventlet.input"] = wsgi.Input(self.rfile, "0", self.connection)
        environ["eventlet.posthooks"] = []
        environ["eventlet.set_idle"] = self._set_idle
        environ["dashstream.hand_off"] = self._hand_off
        return environ

    _constant: tuple | None = None  # (server, its constant environ keys)

    def _constant_environ(self) -> dict:
        server = self.server
        constant = type(self)._constant
        if constant is None or constant[0] is not server:
            name, port = wsgi.addr_to_host_port(server.address)
            environ = {"wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False,
                       "wsgi.run_once": False, "wsgi.url_scheme": "http"}  # plain: TLS never comes here
            environ.update(server.environ or {})
            environ.update({"SCRIPT_NAME": "", "SERVER_PROTOCOL": "HTTP/1.0", "SERVER_NAME": name,
                            "SERVER_PORT": str(port), "GATEWAY_INTERFACE": "CGI/1.1"})
            constant = type(self)._constant = (server, environ)
        return constant[1]

    def _set_idle(self):
        self.conn_state[2] = wsgi.STATE_IDLE

    def handle_one_response(self):
        application = self.application

        def guarded(environ, start_response):
            result = application(environ, start_response)
            request_input = environ["eventlet.input"]
            if request_input.chunked_input or request_input.position < (request_input.content_length or 0):
                # eventlet would now read (and wait for) the rest of the body to keep the
                # connection; an application that did not want it gets the connection closed.
                self.close_connection = 1
                self._refused = True  # unread bytes: linger before closing
            return result

        self.application = guarded
        try:
            super().handle_one_response()
        finally:
            self.application = application  # ``guarded`` holds this protocol: no cycle left

    def _answer_upgrade(self):
        """Run the application for an upgrade read from the first bytes. When it takes the
        socket (nearly always) nothing more is written, so eventlet's response machinery
        (two closures, three green-thread-local flag accesses, the write loop) is skipped;
        when it answers in HTTP instead (a refusal), what it said is replayed into eventlet's
        ``handle_one_response``, which writes it exactly as for any other request. (There is
        no body, so ``guarded``'s unread-body rule has nothing to do here.)"""
        environ = self.environ
        said: list = []  # the start_response calls
        written: list = []  # what the application wrote through start_response's write()
        failure = None

        def start_response(status, headers, exc_info=None):
            said.append((status, headers, exc_info))
            return written.append

        try:
            result = self.application(environ, start_response)
        except Exception as error:  # noqa: BLE001 - eventlet's answer to it is replayed below
            result, failure = None, error
        if self._handed_off:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            for hook, args, kwargs in environ["eventlet.posthooks"]:
                hook(environ, *args, **kwargs)
            return

        def replay(environ, start_response):
            if failure is not None:
                raise failure
            write = None
            for status, headers, exc_info in said:
                write = start_response(status, headers, exc_info)
            for data in written:
                write(data)
            return result

        self.application = replay
        super().handle_one_response()

    def _hand_off(self):
        """(socket, bytes already buffered): the connection, for a session to own, which
        writes every byte of the answer from now on."""
        self._handed_off = True
        self.close_connection = 1
        rfile = self.rfile
        ready = isinstance(rfile, OnDemand)  # an upgrade read from its first bytes (``setup``)
        if not ready:
            # So eventlet's response machinery adds nothing to what the session writes (an
            # undocumented flag of eventlet.wsgi; upstream WebSocketWSGI sets it too). A
            # ready upgrade's answer never reaches that machinery (``_answer_upgrade``), and
            # the flag is a green-thread local: setting it costs a lookup of its own.
            wsgi.WSGI_LOCAL.already_handled = True
        connection = self.connection
        connection.setblocking(False)  # green sockets: act non-blocking from now on
        if ready and not rfile.opened:
            buffered = self._after_head  # read with the head: no reader was ever made
        else:
            try:
                buffered = rfile.peek(65536) if rfile.raw is not None else b""
                if buffered:
                    rfile.read(len(buffered))
            except (OSError, ValueError):
                buffered = b""
        self.conn_state[1] = _HandedOff()
        if isinstance(connection, ssl.SSLSocket):
            return connection, buffered  # the TLS state lives in this object: keep it
        # A plain socket: the real socket under the green wrapper (already non-blocking:
        # send and recv raise BlockingIOError instead of waiting, as the session expects),
        # and the wrapper lets go of it, so nothing eventlet does with the wrapper later
        # (close on garbage collection) can touch it. (Making a new socket object from the
        # descriptor would cost a getsockname() system call: CPython checks the descriptor.)
        connection.close = _let_go
        return connection.fd, buffered

    def send_error(self, code, message=None, explain=None):
        """The stdlib's error page, as one plain line; logged without the request line."""
        phrase = self.responses.get(code, ("Error",))[0]
        # The stdlib's messages quote the client's request line: shorten it, keep it ASCII,
        # and cut any query string (it may hold the token) before it is logged or echoed.
        detail = without_query(message or phrase).encode("ascii", "backslashreplace").decode()[:200]
        body = f"{code} {phrase}: {detail}\n".encode()
        http_logger.info("%s peer=%s: %s", code, self._peer(), detail, extra={"peer": self._peer(), "status": code})
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
        http_logger.info("peer=%s: %s", self._peer(), without_query(format % args), extra={"peer": self._peer()})

    def finish(self):
        try:
            if self._handed_off:
                # The session owns the socket now: release the HTTP buffers, nothing more.
                for stream in (self.wfile, self.rfile):
                    try:
                        stream.close()
                    except (OSError, ValueError):
                        pass
                return
            if self._refused:
                self._linger()
            super().finish()
        finally:
            # The environ holds this protocol's methods (ours and eventlet's ``set_idle``)
            # while the protocol holds the environ: left alone, every request's protocol,
            # environ, headers and reader would wait for the cyclic garbage collector (about
            # 27 objects a handshake, and the collections they trigger: BENCHMARKS.md).
            self.environ = None

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


class _Ready(Exception):
    """Thrown into ``GuardedListener.accept`` waiting on the listener: a connection that
    was silent has spoken."""


class GuardedListener:
    """The listening socket as wsgi.server sees it: it hands over only connections that
    have sent something, and it survives a full descriptor table.

    * A connection that has sent nothing holds no request-pool slot and no green thread:
      ``TCP_DEFER_ACCEPT`` (Linux) keeps it in the kernel until its first bytes (for about
      ``silent_timeout``), and once accepted it waits in ``FirstBytes`` (a hub
      watcher, closed after ``silent_timeout``, which is --header-timeout) before
      ``accept`` returns it to wsgi.server. A connection whose bytes are already there
      (nearly all, with TCP_DEFER_ACCEPT) is returned at once, by the green thread that
      called ``accept``; one that speaks later wakes that thread while it waits on the
      listener.
    * ``accept`` failing with EMFILE/ENFILE would end eventlet's accept loop for good (it
      re-raises any errno it does not know): instead, log it (once a second at most), wait
      a moment for descriptors to free, and go on accepting.
    * A plain TCP listener accepts on the socket under its green wrapper (``_accept_plain``):
      what eventlet's ``GreenSocket.accept`` does, without turning the family and type into
      enum members and setting the new socket non-blocking twice (an ``ioctl`` each). It
      reads what the connection has sent right away (``_Accepted.early``): that says
      whether it has spoken, and is the request the protocol then parses."""

    silent_timeout: float = 10.0

    def __init__(self, sock, silent_timeout: float | None = None):
        self._sock = sock
        self._warned = 0.0
        if silent_timeout is not None:
            self.silent_timeout = silent_timeout
        self._ready: deque = deque()
        self._waiter = None  # the green thread in accept() while it waits on the listener
        raw = getattr(sock, "fd", None)
        self._raw = raw if type(sock) is GreenSocket and type(raw) is _original_socket else None
        if self._raw is not None:
            self._family, self._type, self._proto = int(raw.family), int(raw.type), raw.proto
        self.first_bytes = FirstBytes(self._became_ready, timeout=self.silent_timeout, io=runtime)
        defer = getattr(socket, "TCP_DEFER_ACCEPT", None)
        if defer is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, defer, max(1, math.ceil(self.silent_timeout)))
            except OSError:
                pass  # not a TCP socket, or a kernel without it: FirstBytes still holds the line

    def accept(self):
        """The next connection that has sent its first bytes (for wsgi.server)."""
        ready = self._ready
        while not ready:
            self._waiter = runtime.getcurrent()
            try:
                sock, address = self._accept_one()
            except _Ready:
                continue
            finally:
                self._waiter = None
            early = getattr(sock, "early", None)  # read at accept: it has spoken if anything came
            self.first_bytes.add(sock, address, ready=None if early is None else early != (None, None))
        return ready.popleft()

    def _became_ready(self, sock, address) -> None:
        """A connection has spoken: at once (from ``accept`` itself), or after waiting in
        FirstBytes (from the hub, while ``accept`` may be waiting on the listener)."""
        self._ready.append((sock, address))
        waiter = self._waiter
        if waiter is not None:
            eventlet.hubs.get_hub().schedule_call_global(0, self._wake, waiter)

    def _wake(self, waiter) -> None:
        if self._waiter is waiter:  # still waiting on the listener (not handling one)
            waiter.throw(_Ready())

    def _accept_one(self):
        while True:
            try:
                return self._sock.accept() if self._raw is None else self._accept_plain()
            except OSError as error:
                if error.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    raise
                now = time.monotonic()
                if now - self._warned > 1:
                    self._warned = now
                    logger.warning("accept failed: %s; raise the descriptor limit (ulimit -n) "
                                "or lower --max-connections", error.strerror)
                eventlet.sleep(0.05)

    def _accept_plain(self):
        raw = self._raw
        while True:
            try:
                fd, address = raw._accept()
            except BlockingIOError:
                eventlet.hubs.trampoline(raw, read=True, mark_as_closed=self._sock._mark_as_closed)
                continue
            eventlet.hubs.notify_opened(fd)  # the hub forgets whatever watched this number before
            sock = _original_socket(self._family, self._type, self._proto, fileno=fd)
            sock.setblocking(False)
            accepted = _Accepted(sock, set_nonblocking=False)
            accepted.early = _first_bytes(accepted)
            return accepted, address

    def __getattr__(self, name):
        return getattr(self._sock, name)


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
        logger.warning("file descriptor limit %d is below --max-connections; raise it (ulimit -n)", hard)


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
        logger.warning("second %s: exiting now", signal.Signals(signum).name)
        os._exit(1)

    for signum in SHUTDOWN_SIGNALS:
        signal.signal(signum, force)


# Nagle's algorithm off on every connection: a frame leaves the moment it is written, one
# segment each (README, "Nagle"); the fan-out writes each frame once per subscriber anyway.
CONNECTION_NODELAY = True


def connection_options(listener, send_buffer: int | None, nodelay: bool) -> None:
    """The socket options every connection starts with, set once on the listening socket:
    Linux (and the BSDs) copy a listener's options to each connection it accepts, so no
    connection pays two ``setsockopt`` calls of its own.

    * ``TCP_NODELAY`` (``nodelay``): see ``CONNECTION_NODELAY``;
    * ``SO_SNDBUF`` (``--send-buffer``): Linux autotunes a socket's send buffer up to
      megabytes; a fixed size bounds the kernel memory one stuck client can pin and makes it
      back up into its (bounded) queue within seconds, where the session notices it. An
      HTTP answer larger than it (the page, about 105 KiB) goes out in a few green sends."""
    if nodelay:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if send_buffer:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)


def listen(config: Config):
    """The listening socket for ``--host``/``--port`` (TLS-wrapped with ``--certfile``), with
    the descriptor limit raised for ``--max-connections``; ``BindError`` if the port cannot
    be had."""
    listener = bind(config.host, config.port)
    connection_options(listener, config.send_buffer, CONNECTION_NODELAY)
    if config.certfile is not None:
        # The files were checked when the options were parsed; this only wraps.
        listener = tls_context(config.certfile, config.keyfile).wrap_socket(listener, server_side=True)
    raise_fd_limit(config.max_connections + FD_HEADROOM)
    return listener


def serve_http(listener, app, header_timeout: float) -> None:
    """Serve ``app`` on ``listener`` with eventlet's WSGI server, in a green thread of its
    own, until the listener is closed."""
    pool = RequestPool(MAX_REQUESTS, MAX_REQUESTS_PER_ADDRESS, spawn=runtime.Workers().spawn_n)
    eventlet.spawn(
        wsgi.server, GuardedListener(listener, header_timeout), app,
        log=logging.getLogger("dashstream.wsgi"),
        log_output=False,  # connection and error lines come from our own loggers
        debug=False,  # eventlet's default writes tracebacks into the client's socket
        custom_pool=pool,
        socket_timeout=None,  # WebSockets idle for long; GuardedHttpProtocol bounds the headers
        protocol=GuardedHttpProtocol.configured(header_timeout),
    )
