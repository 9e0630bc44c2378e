"""The WebSocket upgrade (``dashstream.edge.upgrade``) in process: WSGI environ dicts, a fake
hand-off and a fake handler, no server and no socket."""

from __future__ import annotations

import pytest

from dashstream.edge.http import HTTPError
from dashstream.edge.upgrade import WebSocketEndpoint, accept_key, check_handshake, wants_websocket

pytestmark = pytest.mark.timeout(10)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example


def handshake(**overrides) -> dict:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket",
               "HTTP_SEC_WEBSOCKET_KEY": KEY, "HTTP_SEC_WEBSOCKET_VERSION": "13"}
    environ.update(overrides)
    return {name: value for name, value in environ.items() if value is not None}


class FakeSocket:
    def __init__(self):
        self.options = {}

    def setsockopt(self, level, name, value):
        self.options[(level, name)] = value


class HandOff:
    """``environ["dashstream.hand_off"]``: counts its calls, returns a fake socket."""

    def __init__(self, buffered: bytes = b""):
        self.sock = FakeSocket()
        self.buffered = buffered
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.sock, self.buffered


def test_the_accept_key_is_the_rfc_example():
    assert accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_wants_websocket_reads_the_upgrade_header_in_any_case():
    assert wants_websocket({"HTTP_UPGRADE": "WebSocket"})
    assert not wants_websocket({"HTTP_UPGRADE": "h2c"}) and not wants_websocket({})


def test_a_valid_handshake_passes():
    check_handshake(handshake())
    check_handshake(handshake(HTTP_CONNECTION="keep-alive, Upgrade", HTTP_UPGRADE=" WebSocket "))
    check_handshake(handshake(HTTP_CONNECTION="UPGRADE"))
    check_handshake(handshake(HTTP_CONNECTION="Upgrade ,keep-alive"))


@pytest.mark.parametrize("connection", ["", "keep-alive", "upgraded", "keep-alive, upgrade-insecure", "Upgrade2"])
def test_connection_must_name_the_upgrade_token(connection):
    with pytest.raises(HTTPError) as refused:
        check_handshake(handshake(HTTP_CONNECTION=connection))
    assert refused.value.status == "400 Bad Request" and "'Connection: Upgrade'" in refused.value.reason


@pytest.mark.parametrize("overrides, status, reason, header", [
    ({"REQUEST_METHOD": "POST"}, "405 Method Not Allowed", "must use GET", ("Allow", "GET")),
    ({"HTTP_CONNECTION": "keep-alive"}, "400 Bad Request", "'Connection: Upgrade'", None),
    ({"HTTP_UPGRADE": "websocket2"}, "400 Bad Request", "'Upgrade: websocket'", None),
    # hixie-75: no Sec-WebSocket-* headers at all (once crashed eventlet into a 500)
    ({"HTTP_SEC_WEBSOCKET_KEY": None, "HTTP_SEC_WEBSOCKET_VERSION": None}, "400 Bad Request", "hixie", None),
    # hixie-76: two keys
    ({"HTTP_SEC_WEBSOCKET_VERSION": None, "HTTP_SEC_WEBSOCKET_KEY1": "4 @1  46546xW%0l 1 5",
      "HTTP_SEC_WEBSOCKET_KEY2": "12998 5 Y3 1  .P00"}, "400 Bad Request", "hixie", None),
    ({"HTTP_SEC_WEBSOCKET_VERSION": "8"}, "426 Upgrade Required", "speaks 13", ("Sec-WebSocket-Version", "13")),
    ({"HTTP_SEC_WEBSOCKET_KEY": "c2hvcnQ="}, "400 Bad Request", "16 bytes in base64", None),
    ({"HTTP_SEC_WEBSOCKET_KEY": "not base64!"}, "400 Bad Request", "16 bytes in base64", None),
], ids=["post", "no-connection-upgrade", "wrong-upgrade", "hixie-75", "hixie-76", "version-8", "short-key",
        "bad-key"])
def test_bad_handshakes_are_refused_before_the_upgrade(overrides, status, reason, header):
    hand_off = HandOff()
    environ = handshake(**overrides, **{"dashstream.hand_off": hand_off})
    endpoint = WebSocketEndpoint()
    with pytest.raises(HTTPError) as refused:
        endpoint.upgrade(environ, lambda *args: pytest.fail("no handler for a refused handshake"))
    assert refused.value.status == status and reason in refused.value.reason
    # A refused upgrade closes its connection; the socket was never taken.
    assert ("Connection", "close") in refused.value.headers
    if header is not None:
        assert header in refused.value.headers
    assert hand_off.calls == 0


def test_the_upgrade_hands_the_socket_and_the_101_to_the_handler():
    hand_off = HandOff(buffered=b"\x81\x80early")
    received = []
    endpoint = WebSocketEndpoint()
    body = endpoint.upgrade(handshake(**{"dashstream.hand_off": hand_off}), lambda *args: received.append(args))
    assert body == []  # written by hand: wsgi adds no response of its own
    [(sock, params, reply, buffered)] = received
    assert sock is hand_off.sock and params is None and buffered == b"\x81\x80early"
    assert reply == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
    assert sock.options == {}  # the listener's options came with the socket (test_connection_options.py)


def test_the_endpoint_as_a_wsgi_app_uses_the_handler_it_was_made_with():
    received = []
    endpoint = WebSocketEndpoint(lambda *args: received.append(args))
    assert endpoint(handshake(**{"dashstream.hand_off": HandOff()}), None) == []
    assert len(received) == 1


def test_deflate_is_negotiated_only_when_the_server_allows_it():
    offer = {"HTTP_SEC_WEBSOCKET_EXTENSIONS": "permessage-deflate; client_max_window_bits"}
    for compression, expected in ((False, False), (True, True)):
        received = []
        WebSocketEndpoint(compression=compression).upgrade(
            handshake(**offer, **{"dashstream.hand_off": HandOff()}), lambda *args: received.append(args))
        [(_, params, reply, _)] = received
        assert (params is not None) is expected
        assert (b"Sec-WebSocket-Extensions: permessage-deflate" in reply) is expected


def test_a_bad_deflate_offer_is_declined_not_refused():
    received = []
    environ = handshake(HTTP_SEC_WEBSOCKET_EXTENSIONS="permessage-deflate; server_max_window_bits=7",
                        **{"dashstream.hand_off": HandOff()})
    WebSocketEndpoint(compression=True).upgrade(environ, lambda *args: received.append(args))
    [(_, params, reply, _)] = received
    assert params is None and b"Sec-WebSocket-Extensions" not in reply
