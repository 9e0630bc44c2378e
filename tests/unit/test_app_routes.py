"""Routing (``dashstream.edge.routes`` and ``DashApp``) in process: WSGI environ dicts and a
fake ``start_response``; the upgrade's hand-off is a socket pair. No server subprocess: these
are the rules of which path gets what, not the process."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from dashstream.backplane.memory import MemoryBackplane
from dashstream.config.options import parse_config
from dashstream.edge.app import DashApp
from dashstream.edge.routes import Route, RouteTable
from dashstream.server.server import ServerState, session_context
from dashstream.streams.stream import streams_from_config

pytestmark = pytest.mark.timeout(10)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "routes-token"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


class Response:
    """A fake ``start_response``, and the answer it was given."""

    def __init__(self):
        self.status = None
        self.headers: dict[str, str] = {}
        self.body = b""

    def __call__(self, status, headers):
        self.status = status
        self.headers = dict(headers)

    @property
    def code(self) -> int:
        return int(self.status.split()[0])


def make_app(*args: str) -> DashApp:
    config = parse_config(["--stream", "office=random-walk:shared", "--stream", "sales=publish",
                           "--publish-token", TOKEN, "--handshake-rate", "0", *args], environ={})
    state = ServerState(MemoryBackplane(), process_metrics=False, walls=config.walls)
    state.streams.update(streams_from_config(config, on_pass=state.metrics.fanout_pass, backplane=state.backplane,
                                             on_private=state.metrics.private_delivery))
    return DashApp(config, state, ROOT / "index.html", session_context(config, state.metrics))


@pytest.fixture
def app() -> DashApp:
    return make_app()


def request(app: DashApp, path: str, method: str = "GET", query: str = "", **headers) -> Response:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "50000", **headers}
    if "dashstream.hand_off" not in environ:
        environ["dashstream.hand_off"] = lambda: pytest.fail("this request must not take the socket")
    response = Response()
    response.body = b"".join(app(environ, response))
    return response


def upgrade(app: DashApp, path: str, query: str = "", **headers) -> Response:
    return request(app, path, query=query, HTTP_CONNECTION="Upgrade", HTTP_UPGRADE="websocket",
                   HTTP_SEC_WEBSOCKET_KEY=KEY, HTTP_SEC_WEBSOCKET_VERSION="13", **headers)


# --- the table ---------------------------------------------------------------------------------


def test_a_route_table_matches_exact_paths_then_prefixes_with_the_name_bound():
    calls = []
    table = RouteTable([
        Route("/ws", lambda environ, start: calls.append(("exact", environ))),
        Route("/ws/", lambda name, environ, start: calls.append(("prefix", name)),
              websocket=lambda name, query: ("subscribe", name, query), prefix=True),
    ], not_found=lambda path, environ, start: calls.append(("none", path)))
    table.match("/ws").http({}, None)
    match = table.match("/ws/office")
    match.http({}, None)
    table.match("/wsx").http({}, None)
    assert calls == [("exact", {}), ("prefix", "office"), ("none", "/wsx")]
    assert match.websocket({"q": 1}) == ("subscribe", "office", {"q": 1})
    assert table.match("/ws").websocket is None and table.match("/wsx").websocket is None


def test_a_match_carries_its_routes_kind_and_an_unknown_path_counts_as_http():
    table = RouteTable([Route("/publish", print, kind="publish"),
                        Route("/sse/", print, prefix=True, kind="handshake")], not_found=print)
    assert table.match("/publish").kind == "publish"
    assert table.match("/sse/office").kind == "handshake"
    assert table.match("/elsewhere").kind == "http"


def test_a_prefix_match_is_bound_once_per_path_within_the_memos_bounds():
    from dashstream.edge import routes

    table = RouteTable([Route("/ws/", lambda name, environ, start: name, prefix=True)],
                       not_found=lambda path, environ, start: ("none", path))
    first = table.match("/ws/office")
    assert table.match("/ws/office") is first and first.http({}, None) == "office"
    assert table.match("/nowhere") is table.match("/nowhere")  # an unknown path too
    assert table.match("/ws/hall") is not first and table.match("/ws/hall").http({}, None) == "hall"
    # A path over the length bound is bound every time (and still right).
    long_path = "/ws/" + "x" * (routes.BOUND_PATH_LENGTH - 3)
    assert table.match(long_path) is not table.match(long_path)
    edge = "/ws/" + "x" * (routes.BOUND_PATH_LENGTH - 4)  # exactly at the bound: kept
    assert table.match(edge) is table.match(edge)
    assert table.match(long_path).http({}, None) == "x" * (routes.BOUND_PATH_LENGTH - 3)
    # At most BOUND_KEPT paths are kept: past that, each is bound anew.
    for number in range(routes.BOUND_KEPT):
        table.match(f"/ws/screen-{number}")
    assert len(table._bound) == routes.BOUND_KEPT
    assert table.match("/ws/one-more") is not table.match("/ws/one-more")
    assert table.match("/ws/one-more").http({}, None) == "one-more"


def test_a_path_cannot_be_in_the_table_twice():
    with pytest.raises(ValueError, match="'/a'"):
        RouteTable([Route("/a", print), Route("/a", print, prefix=True)], not_found=print)


# --- plain HTTP --------------------------------------------------------------------------------


def test_the_page_is_served_at_the_root(app):
    response = request(app, "/")
    assert response.status == "200 OK" and response.headers["Content-Type"].startswith("text/html")
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.body == (ROOT / "index.html").read_bytes()


def test_an_unknown_path_is_404_naming_it(app):
    response = request(app, "/nope")
    assert response.status == "404 Not Found" and response.body == b"no such path: /nope\n"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize("path", ["/ws", "/ws/office", "/echo"])
def test_a_websocket_endpoint_asked_for_by_plain_http_is_426(app, path):
    response = request(app, path)
    assert response.status == "426 Upgrade Required"
    assert response.headers["Upgrade"] == "websocket" and response.headers["Connection"] == "Upgrade"


def test_a_named_stream_that_does_not_exist_is_no_path_at_all(app):
    assert request(app, "/ws/nope").body == b"no such path: /ws/nope\n"


def test_head_gets_the_get_answers_headers_and_no_body(app):
    get, head = request(app, "/"), request(app, "/", method="HEAD")
    assert head.body == b"" and head.status == get.status
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.body))
    assert request(app, "/nope", method="HEAD").body == b""


@pytest.mark.parametrize("path, allowed", [("/healthz", "GET, HEAD"), ("/readyz", "GET, HEAD"),
                                           ("/streams", "GET, HEAD"), ("/dashboard.json", "GET, HEAD"),
                                           ("/", "GET, HEAD"), ("/reload", "POST"), ("/publish/sales", "POST")])
def test_a_wrong_method_is_405_with_allow(app, path, allowed):
    response = request(app, path, method="PUT")
    assert response.status == "405 Method Not Allowed" and response.headers["Allow"] == allowed


def test_health_readiness_and_streams_answer_json(app):
    health = request(app, "/healthz")
    assert health.headers["Content-Type"] == "application/json"
    assert json.loads(health.body)["connections"] == 0
    assert request(app, "/readyz").code in (200, 503)
    assert {"office", "sales"} <= {stream["name"] for stream in json.loads(request(app, "/streams").body)["streams"]}


def test_no_dashboard_is_an_empty_wall(app):
    # The page asks on every load: a healthy server without [dashboard] answers 200.
    response = request(app, "/dashboard.json")
    assert response.code == 200 and json.loads(response.body) == {
        "name": "default", "title": "dashstream", "columns": None, "locale": None, "timezone": None, "theme": "dark",
        "tiles": []}


def test_publish_needs_the_bearer_token_and_a_publish_stream(app):
    assert request(app, "/publish/sales", method="POST").code == 401
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    response = request(app, "/publish/office", method="POST", **bearer)
    assert response.code == 404 and response.body == b"no publish stream named 'office'\n"
    assert app.metrics.publishes == {"401": 1, "404": 1}
    assert app.metrics.refusals == {("http", "401"): 1, ("http", "404"): 1}


def test_an_sse_refusal_counts_as_a_handshake(app):
    response = request(app, "/sse/nope")
    assert response.body == b"no stream named 'nope'\n"
    assert app.metrics.refusals == {("handshake", "404"): 1}


def test_while_draining_every_request_is_503_with_retry_after(app):
    app.state.draining = True
    for response in (request(app, "/"), request(app, "/healthz"), upgrade(app, "/ws/office")):
        assert response.status == "503 Service Unavailable" and response.headers["Retry-After"] == "1"
        assert response.body == b"server is shutting down\n"


# --- upgrades ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nope", "/ws/nope", "/healthz", "/sse/office"])
def test_an_upgrade_where_there_is_no_websocket_is_404_and_gives_its_slot_back(app, path):
    response = upgrade(app, path)
    assert response.status == "404 Not Found" and response.body == f"no WebSocket endpoint at {path}\n".encode()
    assert app.admission.capacity.in_use == 0
    assert app.metrics.refusals == {("handshake", "404"): 1}


def test_no_echo_turns_the_echo_endpoint_off():
    app = make_app("--no-echo")
    assert upgrade(app, "/echo").body == b"no WebSocket endpoint at /echo\n"
    assert request(app, "/echo").body == b"no such path: /echo\n"


def test_a_bad_subscribe_query_is_refused_before_the_upgrade(app):
    response = upgrade(app, "/ws", query="resume=office:e:1")
    assert response.code == 400 and b"/ws needs ?streams=" in response.body
    assert upgrade(app, "/ws", query="streams=office,nope").body == b"no stream named 'nope'\n"
    assert upgrade(app, "/ws/office", query="seq=1").code == 400
    assert app.admission.capacity.in_use == 0


def test_admission_comes_before_the_route():
    app = make_app("--allowed-origin", "https://wall.example")
    response = upgrade(app, "/nope", HTTP_ORIGIN="https://elsewhere.example")
    assert response.code == 403


def test_an_upgrade_hands_the_socket_to_a_session_that_the_state_holds(app):
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(5)
    try:
        response = upgrade(app, "/ws/office", query="control=1", **{"dashstream.hand_off": lambda: (ours, b"")})
        assert response.status is None and response.body == b""  # the session wrote the 101 by hand
        head = theirs.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
        [session] = app.state.sessions
        assert session.control and session.path == "/ws/office" and app.admission.capacity.in_use == 1
        assert app.state.connection_counts() == {"websocket": 1, "sse": 0}
        assert app.state.reload_here() == 1
        session.abort()
        assert not app.state.sessions and app.admission.capacity.in_use == 0
    finally:
        theirs.close()
        ours.close()
