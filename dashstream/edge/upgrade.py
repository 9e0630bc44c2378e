"""The WebSocket upgrade: eventlet's ``WebSocketWSGI`` with its unsafe defaults off, handing
the connection to a session.

* ``check_handshake`` answers bad upgrade requests with a specific HTTP status and a
  one-line reason *before* any upgrade (eventlet's ``WebSocketWSGI`` accepts hixie-75/76
  handshakes and answers most mistakes with a bare 400).
* ``WebSocketEndpoint`` (a ``WebSocketWSGI``) performs the RFC 6455 upgrade, negotiates
  permessage-deflate only when the server allows it (``protocol/deflate.py``; a bad offer is
  declined, never a 500), takes the socket from the HTTP server (``dashstream.hand_off``)
  and gives it to ``handler(sock, deflate_params, reply, buffered)``, which builds the
  session and returns at once: the HTTP server's green thread ends with the handshake.
  ``upgrade(environ, handler)`` takes this request's handler, a closure over what the
  route decided, so nothing travels through ``environ``; as a WSGI app (``__call__``) the
  endpoint uses the handler it was made with.

The 101 answer is the first thing the session writes, so it can never block the handshake's
green thread, and nothing can overtake it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Callable

from dashstream import runtime
from dashstream.edge.http import HTTPError
from dashstream.protocol import deflate

RFC6455_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"


def _refuse(status: str, reason: str, *headers: tuple[str, str]) -> HTTPError:
    # A refused upgrade closes its connection: the client meant to leave HTTP anyway.
    return HTTPError(status, reason, [("Connection", "close"), *headers])


def wants_websocket(environ: dict) -> bool:
    """Whether the request asks for a WebSocket at all (so it must not get a page)."""
    return "websocket" in environ.get("HTTP_UPGRADE", "").lower()


def check_handshake(environ: dict) -> None:
    """Raise ``HTTPError`` unless ``environ`` is a valid RFC 6455 opening handshake."""
    if environ.get("REQUEST_METHOD") != "GET":
        raise _refuse("405 Method Not Allowed", "a WebSocket upgrade must use GET", ("Allow", "GET"))
    connection = environ.get("HTTP_CONNECTION", "").lower()
    # A browser's "Upgrade" alone, or "keep-alive, Upgrade" (Firefox): a list of tokens.
    upgrading = connection == "upgrade" or "upgrade" in {token.strip() for token in connection.split(",")}
    if not upgrading or environ.get("HTTP_UPGRADE", "").strip().lower() != "websocket":
        raise _refuse("400 Bad Request", "a WebSocket upgrade needs 'Connection: Upgrade' "
                      "and 'Upgrade: websocket'")
    if "HTTP_SEC_WEBSOCKET_KEY1" in environ or "HTTP_SEC_WEBSOCKET_VERSION" not in environ:
        raise _refuse("400 Bad Request", "hixie-75/76 WebSocket handshakes are not supported; "
                      "use RFC 6455 (Sec-WebSocket-Version: 13)")
    if environ["HTTP_SEC_WEBSOCKET_VERSION"].strip() != SUPPORTED_VERSION:
        raise _refuse("426 Upgrade Required", "unsupported Sec-WebSocket-Version; this server speaks 13",
                      ("Sec-WebSocket-Version", SUPPORTED_VERSION))
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        # base64.b64decode(key, validate=True), without its wrapper's argument coercion.
        valid_key = len(binascii.a2b_base64(key, strict_mode=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise _refuse("400 Bad Request", "Sec-WebSocket-Key must be 16 bytes in base64")


def accept_key(key: str) -> bytes:
    return base64.b64encode(hashlib.sha1(key.encode() + RFC6455_GUID).digest())


# (socket, negotiated deflate parameters or None, the 101 answer to write first, bytes the
# client sent after its handshake)
Handler = Callable[[object, "deflate.DeflateParams | None", bytes, bytes], None]


class WebSocketEndpoint(runtime.WebSocketWSGI):
    """Upgrade a checked request and give its socket to ``handler``."""

    def __init__(self, handler: Handler | None = None, *, compression: bool = False):
        super().__init__(handler)
        self.support_legacy_versions = False
        self.compression = compression

    def __call__(self, environ, start_response):
        return self.upgrade(environ, self.handler)

    def upgrade(self, environ: dict, handler: Handler) -> list:
        """Upgrade and hand the socket to ``handler``; a bad handshake raises ``HTTPError``
        for the app to answer."""
        check_handshake(environ)
        params = deflate.negotiate(environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS")) if self.compression else None
        reply = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade",
                 b"Sec-WebSocket-Accept: " + accept_key(environ["HTTP_SEC_WEBSOCKET_KEY"].strip())]
        if params is not None:
            reply.append(b"Sec-WebSocket-Extensions: " + params.response().encode())
        # The socket's options (TCP_NODELAY, the --send-buffer clamp) came with it: the
        # listener's, copied by the kernel at accept (serve.py, ``connection_options``).
        sock, buffered = environ["dashstream.hand_off"]()
        handler(sock, params, b"\r\n".join(reply) + b"\r\n\r\n", buffered)
        return []  # the answer is the session's: the hand-off told the HTTP server so
