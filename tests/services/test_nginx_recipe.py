"""The README's nginx recipe (deploy/nginx.conf) with Debian's real nginx in front of two
real dashstream processes: https and wss through it, an idle connection kept open by
pings past nginx's read timeout (set short here), 1001 through nginx when an upstream
stops, a browser showing live data over https, the handshake limit seeing the real
client address (X-Forwarded-For), and Server-Sent Events through nginx.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import time
import urllib.error
import urllib.request

import pytest
import websocket  # websocket-client

from tests.nginx import DEPLOY_CONF, NginxProcess, self_signed_certificate
from tests.support import ARTIFACTS, ROOT, ServerProcess, scaled, wait_until

pytestmark = pytest.mark.timeout(90)


# A shared stream that speaks often, so a client sees data within a second.
FAST = ("--stream", "office=random-walk:shared", "--min-wait", "0.05", "--max-wait", "0.2")
# Keepalive faster than the test's nginx read timeout (3 s): a ping every second.
PINGS = ("--ping-interval", "1", "--ping-timeout", "5")
READ_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def deploy(certificate, request):
    """``deploy(*dashstream_args, read_timeout=...)``: two dashstream instances and nginx in
    front of them, all stopped after the test. A failure shows the servers' logs (conftest);
    nginx's error and access logs are kept in test-artifacts/nginx-TEST.log."""
    started: list = []

    def start(*args: str, read_timeout: float = READ_TIMEOUT) -> tuple[NginxProcess, list[ServerProcess]]:
        upstreams = [ServerProcess(*args) for _ in range(2)]
        started.extend(upstreams)
        for upstream in upstreams:
            upstream.start()
        proxy = NginxProcess((upstreams[0].port, upstreams[1].port), *certificate, read_timeout=f"{read_timeout:g}s")
        started.append(proxy)
        proxy.start()
        return proxy, upstreams

    yield start
    for process in reversed(started):
        if isinstance(process, NginxProcess):
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / f"nginx-{request.node.name}.log").write_text(process.output())
        process.stop()
        if isinstance(process, ServerProcess):
            process.discard_log()


def connect(proxy: NginxProcess, path: str = "/ws/office", **options) -> websocket.WebSocket:
    return websocket.create_connection(proxy.wss + path, timeout=scaled(5),
                                       sslopt={"ca_certs": str(proxy.cert)}, **options)


def epoch_of(upstream: ServerProcess, stream: str = "office") -> str:
    with urllib.request.urlopen(upstream.http + "/streams", timeout=5) as answer:
        return next(s["epoch"] for s in json.load(answer)["streams"] if s["name"] == stream)


# --- the recipe itself ----------------------------------------------------------------------------


def test_readme_shows_deploy_nginx_conf_verbatim():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", readme, re.S)
    assert blocks, "README has no ```nginx block"
    assert DEPLOY_CONF.read_text() in blocks, "README's nginx block differs from deploy/nginx.conf"


def test_the_recipe_has_what_the_issue_asks_for():
    conf = DEPLOY_CONF.read_text()
    for needed in ("proxy_http_version 1.1;", "map $http_upgrade $connection_upgrade",
                   "proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $connection_upgrade;",
                   "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;", "proxy_buffering off;",
                   "listen 443 ssl;", "ssl_certificate "):
        assert needed in conf, needed
    assert len(re.findall(r"^\s*server 127\.0\.0\.1:\d+", conf, re.M)) == 2
    # every proxy_read_timeout is above the default --ping-interval (20 s)
    timeouts = [int(t) for t in re.findall(r"proxy_read_timeout (\d+)s;", conf)]
    assert timeouts and min(timeouts) > 20


# --- through the real nginx ----------------------------------------------------------------------------


def test_wss_clients_through_nginx_get_data_from_both_instances(deploy):
    proxy, upstreams = deploy(*FAST, *PINGS)
    clients = [connect(proxy) for _ in range(4)]
    try:
        epochs = set()
        for client in clients:
            first, second = json.loads(client.recv()), json.loads(client.recv())
            assert second["seq"] == first["seq"] + 1 and "variable" in first
            epochs.add(first["epoch"])
        # least_conn spread four screens over both instances
        assert epochs == {epoch_of(upstream) for upstream in upstreams}
    finally:
        for client in clients:
            client.close()


def test_plain_http_is_redirected_to_https(deploy):
    proxy, _ = deploy(*FAST)
    request = urllib.request.Request(f"http://127.0.0.1:{proxy.http_port}/?stream=office", method="GET")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(request, timeout=5)
    assert answer.value.code == 301
    assert answer.value.headers["Location"] == "https://127.0.0.1/?stream=office"


def idle_echo(proxy: NginxProcess, seconds: float) -> tuple[bool, int]:
    """An /echo client that sends nothing for ``seconds`` but pongs (websocket-client answers
    each ping as it reads it), then checks its connection still echoes: (alive, pings seen)."""
    client = connect(proxy, "/echo")
    pings = 0
    try:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            client.settimeout(left)
            try:
                opcode, _ = client.recv_data_frame(control_frame=True)
            except websocket.WebSocketTimeoutException:
                break
            except (websocket.WebSocketConnectionClosedException, ConnectionError, ssl.SSLError):
                return False, pings
            if opcode != websocket.ABNF.OPCODE_PING:
                return False, pings  # /echo sends nothing unasked: a close frame, or a bug
            pings += 1
        client.settimeout(scaled(5))
        try:
            client.send("still here")
            return client.recv() == "still here", pings
        except (websocket.WebSocketException, ConnectionError, ssl.SSLError):
            return False, pings
    finally:
        client.abort()
        client.shutdown()


def test_pings_keep_an_idle_connection_open_past_nginx_read_timeout(deploy):
    proxy, _ = deploy(*FAST, *PINGS)
    alive, pings = idle_echo(proxy, 2.5 * READ_TIMEOUT)
    assert alive and pings >= 4, (alive, pings)


def test_without_pings_nginx_closes_the_idle_connection(deploy):
    """The test above can fail: the same idle client is cut by nginx when no pings flow."""
    proxy, _ = deploy(*FAST, "--ping-interval", "0")
    started = time.monotonic()
    assert idle_echo(proxy, 2.5 * READ_TIMEOUT) == (False, 0)
    # cut by nginx's read timeout, not by anything else later
    assert READ_TIMEOUT - 0.5 < time.monotonic() - started < 2.5 * READ_TIMEOUT


def test_sigterm_of_an_upstream_gives_its_clients_1001_through_nginx(deploy):
    proxy, upstreams = deploy(*FAST, *PINGS)
    clients = [connect(proxy) for _ in range(4)]
    try:
        by_epoch = {}
        for client in clients:
            by_epoch.setdefault(json.loads(client.recv())["epoch"], []).append(client)
        stopping, staying = upstreams
        doomed, survivors = by_epoch[epoch_of(stopping)], by_epoch[epoch_of(staying)]
        assert doomed and survivors
        stopping.signal()
        for client in doomed:
            while True:  # data may still be in flight ahead of the close frame
                opcode, payload = client.recv_data(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    break
            assert int.from_bytes(payload[:2], "big") == 1001, payload
            assert payload[2:] == b"server shutting down"
        assert stopping.wait() == 0
        for client in survivors:  # the other instance's screens never noticed
            seqs = [json.loads(client.recv())["seq"] for _ in range(3)]
            assert seqs == sorted(seqs)
        # a screen reconnecting now lands on the instance that is still up
        again = connect(proxy)
        try:
            assert json.loads(again.recv())["epoch"] == epoch_of(staying)
        finally:
            again.close()
    finally:
        for client in clients:
            client.abort()
            client.shutdown()


@pytest.mark.browser
def test_the_page_over_https_through_nginx_shows_live_data(deploy):
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    proxy, _ = deploy(*FAST, *PINGS)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            # The test's self-signed certificate: the browser is told to accept it, as a
            # screen would trust a real one.
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 720})
            page = context.new_page()
            page.on("console", lambda m: m.type == "error" and problems.append(m.text))
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(proxy.https + "/?stream=office", wait_until="load")
            page.wait_for_function("document.body.dataset.state === 'live'", timeout=scaled(10) * 1000)
            first = page.text_content("#variable")
            page.wait_for_function(f"document.getElementById('variable').textContent !== {json.dumps(first)}",
                                   timeout=scaled(10) * 1000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "nginx-page-over-https.png"))
            assert page.evaluate("location.protocol") == "https:"
            context.close()
        finally:
            browser.close()
    assert not problems, problems


# --- waiting for the new core ------------------------------------------------------------------------


def tls_handshake_from(proxy: NginxProcess, source: str, path: str = "/echo") -> int:
    """A WebSocket handshake through nginx from the loopback address ``source`` (127.0.0.2 is
    as remote to dashstream's --trusted-proxy 127.0.0.1 as any other machine): the status."""
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=scaled(5), source_address=(source, 0))
    with proxy.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n" not in head:
            chunk = tls.recv(1024)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ", 2)[1])


def test_the_handshake_limit_sees_the_real_client_address_through_nginx(deploy):
    # Only nginx's own address is trusted, so clients on 127.0.0.2 and .3 count as remote.
    proxy, upstreams = deploy("--trusted-proxy", "127.0.0.1", "--handshake-rate", "0.1", "--handshake-burst", "2")
    # two instances, two buckets each: at most 4 handshakes before every further one is refused
    statuses = [tls_handshake_from(proxy, "127.0.0.2") for _ in range(6)]
    assert statuses.count(101) <= 4 and statuses[-1] == 429, statuses
    assert tls_handshake_from(proxy, "127.0.0.3") == 101  # someone else behind the same nginx
    # Logging is asynchronous: wait for the lines, then check none names the proxy itself.
    logs = wait_until(lambda: (lambda text: text if "peer=127.0.0.2" in text and "peer=127.0.0.3" in text else None)(
        upstreams[0].output() + upstreams[1].output()), message="log lines naming the real clients")
    assert "peer=127.0.0.1:" not in logs


def test_server_sent_events_through_nginx_arrive_as_they_are_sent(deploy):
    proxy, _ = deploy(*FAST)
    request = urllib.request.Request(proxy.https + "/sse/office", headers={"Accept": "text/event-stream"})
    with urllib.request.urlopen(request, timeout=scaled(5), context=proxy.ssl_context()) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        arrivals = []
        while len(arrivals) < 5:
            line = stream.readline()
            if line.startswith(b"data: "):
                arrivals.append((time.monotonic(), json.loads(line[6:])))
    seqs = [message["seq"] for _, message in arrivals]
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    # unbuffered: each event came on its own, not in one burst when a buffer filled
    assert arrivals[-1][0] - arrivals[0][0] > 0.1
