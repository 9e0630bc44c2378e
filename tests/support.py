"""Test helpers: a real server as a subprocess on a free port, and readiness polling.

pytest itself is never monkey-patched: the server runs as ``python server.py`` in its own
process, exactly as a user starts it (datasette's test_playwright.py shape).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, TypeVar

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "server.py"
ARTIFACTS = ROOT / "test-artifacts"

# One time unit for every wait in the suite; raise it on a slow machine.
TIME_SCALE = float(os.environ.get("DASHSTREAM_TEST_TIME_SCALE", "1"))

T = TypeVar("T")


def scaled(seconds: float) -> float:
    return seconds * TIME_SCALE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.02,
               message: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` (scaled)."""
    deadline = time.monotonic() + scaled(timeout)
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as error:  # noqa: BLE001 - polled: remember and retry
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                         + (f" (last error: {last_error!r})" if last_error else ""))


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """GET without raising on 4xx/5xx: (status, headers, body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def assert_refused_option(args, named: str, env: dict | None = None) -> None:
    """``python server.py ARGS`` must exit 2 at once, naming ``named`` (an option or an
    environment variable), without a traceback."""
    result = subprocess.run([sys.executable, str(SERVER), *args], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=scaled(10))
    assert result.returncode == 2, result.stderr
    assert named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def server_environment() -> dict:
    """A test server's environment before its test adds to it. The suite opens hundreds of
    WebSockets from one address, far past the per-address handshake limit; it is off unless a
    test turns it on (test_admission.py does, with --handshake-rate or this variable, like the
    command line winning over it here)."""
    return {"DASHSTREAM_HANDSHAKE_RATE": "0", **os.environ}


class ServerProcess:
    """``python server.py`` on 127.0.0.1 and a free port, with its output kept for failures."""

    # Every server started and not yet stopped, so a failing test can show the output of
    # all of them, module-scoped fixtures' servers included (conftest.py reports them).
    live: "set[ServerProcess]" = set()
    # Every log file made, for the end of the session to remove (conftest.py; a failure's
    # report has already shown the output it needs), or this process's exit when it is no
    # pytest session (the benchmark scripts that start servers through this class).
    logs: "list[str]" = []

    @classmethod
    def remove_logs(cls) -> None:
        for log in cls.logs:
            Path(log).unlink(missing_ok=True)
        cls.logs.clear()

    def __init__(self, *args: str, port: int | None = None, env: dict | None = None,
                 cwd: Path | None = None, python: str | None = None, server: Path | None = None):
        self.port = port or free_port()
        self.args = args
        self.env = {**server_environment(), **(env or {})}
        self.cwd = cwd or ROOT
        self.python = python or sys.executable
        self.server = server or SERVER
        self._log = tempfile.NamedTemporaryFile(prefix="dashstream-server-", suffix=".log", delete=False)
        ServerProcess.logs.append(self._log.name)
        self.proc: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> "ServerProcess":
        command = [self.python, str(self.server), "--host", "127.0.0.1", "--port", str(self.port), *self.args]
        warm = self._warm_process()
        if warm is not None and warm.can_fork(self.python, self.env):
            self.proc = warm.fork(command, self.env, self.cwd, self._log.name)
        else:
            self.proc = subprocess.Popen(command, cwd=self.cwd, env=self.env, stdout=self._log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ServerProcess.live.add(self)
        if wait:
            self.wait_ready()
        return self

    def _warm_process(self):
        """The warm process to fork this server from (tests/forked_servers.py), or None: only
        this checkout's server.py under this Python is forked."""
        if os.environ.get("DASHSTREAM_TEST_FORK", "1") == "0" or self.server != SERVER:
            return None
        from tests.forked_servers import warm_process

        return warm_process(sys.executable, server_environment(), ROOT)

    def wait_ready(self, timeout: float = 10.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                return self.health() is not None
            except OSError:
                return False

        try:
            wait_until(ready, timeout, message=f"server on port {self.port}")
        except RuntimeError as died:
            raise AssertionError(str(died)) from None
        except AssertionError:
            raise AssertionError(f"server not ready on port {self.port}:\n{self.output()}") from None

    def health(self) -> dict:
        status, _, body = http_get(self.http + "/healthz", timeout=2)
        assert status == 200, (status, body)
        return json.loads(body)

    def output(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 5.0) -> int:
        return self.proc.wait(scaled(timeout))

    def stop(self) -> None:
        """terminate → wait → kill, whatever state the process is in."""
        ServerProcess.live.discard(self)
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(scaled(5))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def discard_log(self) -> None:
        Path(self._log.name).unlink(missing_ok=True)

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def http_request(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Any method, without raising on 4xx/5xx: (status, headers, body)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def publish(base: str, stream: str, fields: dict | bytes, token: str | None,
            content_type: str = "application/json") -> tuple[int, bytes]:
    body = fields if isinstance(fields, bytes) else json.dumps(fields).encode()
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    status, _, answer = http_request(f"{base}/publish/{stream}", "POST", body, headers)
    return status, answer


class StreamWatcher:
    """A healthy subscriber on its own thread, recording every ``seq`` it receives: tests
    that attack a server check with it that other clients keep their streams."""

    def __init__(self, url: str, **options):
        import websocket  # websocket-client; imported here so support.py needs only the stdlib

        self.ws = websocket.create_connection(url, timeout=scaled(5), **options)
        self.seqs: list[int] = []
        self.arrivals: list[float] = []  # time.monotonic() of each
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                seq = json.loads(self.ws.recv())["seq"]
                self.arrivals.append(time.monotonic())
                self.seqs.append(seq)
        except BaseException as error:  # noqa: BLE001 - reported by check()
            if not self._stop.is_set():
                self.error = error

    def check(self, more: int = 2) -> None:
        """No gap so far, and at least ``more`` new messages arrive from now on."""
        seen = len(self.seqs)
        wait_until(lambda: self.error is not None or len(self.seqs) >= seen + more,
                   message=f"{more} more messages for the healthy client")
        assert self.error is None, f"healthy client failed: {self.error!r}"
        seqs = list(self.seqs)
        # Consecutive from the first one seen (the stream may have numbered a few values
        # before the watcher subscribed: it then starts from the last value, as any screen).
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap in the healthy client's stream"

    def close(self) -> None:
        """Leave abruptly, as a screen that is switched off does. A close handshake would
        send from this thread while the reader thread is inside ``recv``, which an ssl
        socket (the wss:// watcher) is not safe for."""
        self._stop.set()
        self.ws.abort()  # shutdown(): wakes the reader thread with EOF
        self._thread.join(scaled(5))
        self.ws.shutdown()


atexit.register(ServerProcess.remove_logs)
