"""Debian's real nginx in front of dashstream, for tests: deploy/nginx.conf as shipped, with
only its addresses, certificate paths and timeouts swapped for the test's.

The README's config is used as it is, not a test copy of it: ``render_site`` replaces a
fixed list of literal values (each must occur exactly as often as expected, so a change to
the shipped file that the test does not know about fails loudly instead of testing
something else). nginx runs in the foreground as a master process with one worker, from
a temporary prefix that holds its configuration, pid, temp folders and access log; its
error log goes to the test's output.
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from tests.support import ROOT, free_port, scaled, wait_until

DEPLOY_CONF = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made with openssl (tests/run.sh installs it)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=30)
    return cert, key


def render_site(text: str, *, upstream_ports: tuple[int, int], https_port: int, http_port: int,
                cert: Path, key: Path, read_timeout: str) -> str:
    """deploy/nginx.conf with the test's values in place of the shipped ones."""
    replacements = [
        ("server 127.0.0.1:5001 ", f"server 127.0.0.1:{upstream_ports[0]} ", 1),
        ("server 127.0.0.1:5002 ", f"server 127.0.0.1:{upstream_ports[1]} ", 1),
        ("listen 80;", f"listen 127.0.0.1:{http_port};", 1),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;", 1),
        ("/etc/letsencrypt/live/dash.example.com/fullchain.pem", str(cert), 1),
        ("/etc/letsencrypt/live/dash.example.com/privkey.pem", str(key), 1),
        ("proxy_read_timeout 60s;", f"proxy_read_timeout {read_timeout};", 2),
    ]
    for old, new, times in replacements:
        found = text.count(old)
        assert found == times, f"deploy/nginx.conf: expected {old!r} {times} time(s), found {found}"
        text = text.replace(old, new)
    return text


def with_upstreams(site: str, ports: tuple[int, ...], round_robin: bool) -> str:
    """The rendered site with its upstream block listing ``ports`` (each as the shipped file
    lists its servers), balanced round-robin (no stickiness at all) or least_conn as shipped."""
    start = site.index("upstream dashstream {")
    end = site.index("}", start)
    lines = ["upstream dashstream {", *([] if round_robin else ["    least_conn;"]),
             *(f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in ports)]
    return site[:start] + "\n".join(lines) + "\n" + site[end:]


MAIN_CONF = """\
# The test's main configuration: everything in the prefix, nginx in the foreground.
{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 1024; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    include {prefix}/dashstream.conf;
}}
"""


class NginxProcess:
    """nginx with deploy/nginx.conf in front of two upstream ports (or any number, and
    round-robin: ``with_upstreams``); ``stop`` always cleans up."""

    def __init__(self, upstream_ports: tuple[int, ...], cert: Path, key: Path, read_timeout: str = "60s",
                 round_robin: bool = False):
        self.https_port = free_port()
        self.http_port = free_port()
        self.cert = cert
        self.prefix = Path(tempfile.mkdtemp(prefix="dashstream-nginx-"))
        (self.prefix / "tmp").mkdir()
        site = render_site(DEPLOY_CONF.read_text(), upstream_ports=(upstream_ports * 2)[:2],
                           https_port=self.https_port, http_port=self.http_port, cert=cert, key=key,
                           read_timeout=read_timeout)
        if len(upstream_ports) != 2 or round_robin:
            site = with_upstreams(site, tuple(upstream_ports), round_robin)
        (self.prefix / "dashstream.conf").write_text(site)
        # As root, workers would otherwise switch to "nobody", who cannot read the test's key.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.prefix / "nginx.conf").write_text(MAIN_CONF.format(prefix=self.prefix, user=user))
        self._log = tempfile.TemporaryFile()
        self.proc: subprocess.Popen | None = None

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def wss(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}"

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies nginx's certificate (the test's own CA is the certificate itself)."""
        return ssl.create_default_context(cafile=str(self.cert))

    def check_config(self) -> subprocess.CompletedProcess:
        return subprocess.run([NGINX, "-e", "stderr", "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                               "-t"], capture_output=True, text=True, timeout=scaled(20))

    def start(self) -> "NginxProcess":
        checked = self.check_config()
        assert checked.returncode == 0, checked.stderr
        self.proc = subprocess.Popen([NGINX, "-e", "stderr", "-p", str(self.prefix), "-c",
                                      str(self.prefix / "nginx.conf")],
                                     stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=10, message=f"nginx on port {self.https_port}")
        return self

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"nginx exited {self.proc.returncode}:\n{self.output()}"
        try:
            with urllib.request.urlopen(self.https + "/healthz", timeout=2, context=self.ssl_context()) as answer:
                return answer.status == 200
        except OSError:
            return False

    def output(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode(errors="replace")
        access = self.prefix / "access.log"
        if access.exists():
            text += "\n--- access.log ---\n" + access.read_text(errors="replace")[-5000:]
        return text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown: does not wait for open WebSockets
            try:
                self.proc.wait(scaled(5))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.prefix, ignore_errors=True)
