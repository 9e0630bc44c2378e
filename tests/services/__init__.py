"""Real services for tests: redis-server, PostgreSQL and a ZeroMQ publisher, each started by
the test on 127.0.0.1 and a free port, and stopped by it even when the test fails.

Each can be taken away and brought back on the same port, so a test can cause the outage a
wall screen has to survive: ``RedisServer.kill()`` (SIGKILL) and ``restart()``;
``PostgresServer.terminate_backends()`` (what a DBA's ``pg_terminate_backend`` or a failover
does to open connections) and ``stop()``/``start()`` (a full restart); a publisher process
stopped and started again.

PostgreSQL refuses to run as root (``initdb`` and ``postgres`` both exit: "cannot be run as
root"), and CI runs as root. So as root the cluster is made and run as an unprivileged system
user (``postgres``, which Debian's package creates, else ``nobody``) through ``setpriv``,
which only changes the user and then execs: the PID we hold is the server's own, so our
signals reach it. The cluster lives in a fresh directory that user owns, outside pytest's
root-only tmp folder. As any other user the binaries run as that user. Nothing is hidden
from the test: trust authentication on loopback and on a Unix socket in the cluster's
directory, exactly as a throwaway local cluster would be set up by hand.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import ROOT, free_port, scaled, wait_until

HERE = Path(__file__).resolve().parent


def _stop_process(proc: subprocess.Popen | None, signum: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """signal → wait → SIGKILL, whatever state the process is in."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signum)
    try:
        proc.wait(scaled(timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _tail(path: Path, size: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


# --- Redis -----------------------------------------------------------------------------------


class RedisServer:
    """``redis-server`` on 127.0.0.1 and a free port.

    No persistence by default (``--save ""``, no AOF): a restart comes back empty, as a
    cache does. ``persist=True`` turns on the append-only file (fsync every write) in the
    server's own directory, so a restart keeps the keys written before it.
    """

    def __init__(self, persist: bool = False, port: int | None = None):
        self.port = port or free_port()
        self.persist = persist
        self.dir = Path(tempfile.mkdtemp(prefix="dashstream-redis-"))
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command_line(self) -> list[str]:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persist
                       else ["--appendonly", "no"])
        return [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                "--bind", "127.0.0.1", "--dir", str(self.dir), "--save", "", *persistence,
                "--daemonize", "no", "--logfile", str(self.log)]

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self._answers, timeout=10, message=f"redis-server on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited {self.proc.returncode}:\n{_tail(self.log)}")
        return self.command("PING") == "PONG"

    def command(self, *words: str) -> str:
        """One command through ``redis-cli`` (its reply as text); raises when Redis is away."""
        result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "--no-raw", *words],
                                capture_output=True, text=True, timeout=scaled(5))
        reply = result.stdout.strip()
        if result.returncode != 0 or reply.startswith("Could not connect"):
            raise ConnectionError(reply or result.stderr)
        return reply.strip('"')

    def publish(self, channel: str, message: str) -> int:
        """PUBLISH; the number of subscribers that received it."""
        return int(self.command("PUBLISH", channel, message).removeprefix("(integer) "))

    def subscribers(self, channel: str) -> int:
        reply = self.command("PUBSUB", "NUMSUB", channel).splitlines()
        return int(reply[-1].split()[-1])

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to clients (the kernel closes their sockets)."""
        self.proc.kill()
        self.proc.wait(scaled(5))

    def restart(self) -> "RedisServer":
        """The same server again on the same port (and, with ``persist``, the same data)."""
        _stop_process(self.proc)
        return self.start()

    def stop(self) -> None:
        _stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self) -> str:
        return _tail(self.log)


# --- PostgreSQL --------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """Where ``initdb`` and ``postgres`` are: on PATH, else Debian's versioned folder (the
    newest), which the postgresql package does not put on PATH."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    if not candidates:
        raise AssertionError("PostgreSQL's initdb not found: tests/run.sh installs Debian's postgresql")
    return Path(candidates[-1]).parent


def _service_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as when we are root (it refuses root); None: run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise AssertionError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


class PostgresServer:
    """A throwaway PostgreSQL cluster: ``initdb`` into a temporary folder, then ``postgres``
    on 127.0.0.1 and a free port, with its Unix socket in that folder; trust authentication,
    superuser ``postgres``, database ``postgres``. ``fsync=off``: the data is disposable."""

    user = "postgres"
    database = "postgres"

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.bindir = postgres_bindir()
        self.runas = _service_user()
        self.dir = Path(tempfile.mkdtemp(prefix="dashstream-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        if self.runas is not None:
            os.chown(self.dir, self.runas.pw_uid, self.runas.pw_gid)
        self.proc: subprocess.Popen | None = None
        self._initdb()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _as_service_user(self, argv: list[str]) -> list[str]:
        if self.runas is None:
            return argv
        return ["setpriv", f"--reuid={self.runas.pw_uid}", f"--regid={self.runas.pw_gid}", "--init-groups",
                "--reset-env", *argv]

    def _initdb(self) -> None:
        result = subprocess.run(
            self._as_service_user([str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
                                   "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"]),
            cwd=self.dir, capture_output=True, text=True, timeout=scaled(60))
        if result.returncode != 0:
            raise AssertionError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self) -> "PostgresServer":
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=40", "-c", "log_min_messages=warning"]
        log = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(self._as_service_user(argv), cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        wait_until(self._accepts, timeout=20, interval=0.05, message=f"PostgreSQL on port {self.port}")
        return self

    def _accepts(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"postgres exited {self.proc.returncode}:\n{_tail(self.log)}")
        result = subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                 "-d", self.database, "-U", self.user], timeout=scaled(5))
        return result.returncode == 0

    def connect(self):
        """A psycopg2 connection for the test itself (autocommit), to change data under a source."""
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=self.database,
                                      connect_timeout=5)
        connection.autocommit = True
        return connection

    def execute(self, sql: str, *params) -> list[tuple]:
        """Run one statement on a fresh connection; its rows, if it returns any."""
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params or None)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def terminate_backends(self) -> int:
        """``pg_terminate_backend`` every other client connection; how many were ended."""
        rows = self.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
        return rows[0][0]

    def backends(self, application_name: str | None = None) -> int:
        """Open client connections (besides this query's), optionally of one application."""
        sql = ("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
               "AND backend_type = 'client backend'")
        if application_name is None:
            return self.execute(sql)[0][0]
        return self.execute(sql + " AND application_name = %s", application_name)[0][0]

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, the data stays for ``start()``."""
        _stop_process(self.proc, signal.SIGINT, timeout=20)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def output(self) -> str:
        return _tail(self.log)


# --- ZeroMQ ------------------------------------------------------------------------------------


class ZmqPublisher:
    """A PUB socket in a separate process (``tests/zmq_publisher.py``), bound to
    ``tcp://127.0.0.1:PORT``. It sends the JSON lines written to it as multipart messages
    (``[topic, payload]``, or ``[payload]`` when ``topic`` is None), repeating the last one
    every ``repeat`` seconds: a SUB socket that connects later (ZeroMQ's slow joiner) still
    gets it. ``stop()`` ends the process; ``start()`` brings a new one up on the same port."""

    def __init__(self, port: int | None = None, repeat: float = 0.1):
        self.port = port or free_port()
        self.repeat = repeat
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> "ZmqPublisher":
        self.proc = subprocess.Popen([sys.executable, str(HERE / "zmq_publisher.py"), self.url, str(self.repeat)],
                                     cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        ready = self.proc.stdout.readline()
        assert ready.strip() == "bound", f"zmq publisher did not start: {ready}{self.proc.stdout.read()}"
        return self

    def send(self, frames: list[str]) -> None:
        """Send these frames (text) from now on, repeated until the next ``send``."""
        self.proc.stdin.write(json.dumps(frames) + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.stdin.close()  # EOF: the publisher exits at once
        _stop_process(self.proc)
        self.proc.stdout.close()


# --- a source under eventlet, in its own process -----------------------------------------------


class SourceProcess:
    """``tests/source_runner.py``: sources run through the supervisor under eventlet, in a
    subprocess (pytest itself is never monkey-patched), printing one JSON line per event.
    ``streams`` maps stream names to TOML-shaped tables, exactly as in a config file."""

    def __init__(self, streams: dict[str, dict], ticker: float | None = None, env: dict | None = None):
        spec = {"streams": streams, "ticker": ticker}
        folder = Path(tempfile.mkdtemp(prefix="dashstream-source-"))
        self.path = folder / "events.jsonl"  # stdout: the events
        self.log = folder / "log.txt"  # stderr: the supervisor's log lines
        with open(self.path, "wb") as out, open(self.log, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(HERE / "source_runner.py"), json.dumps(spec)],
                                         cwd=ROOT, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err)
        self.started = time.monotonic()

    def events(self, kind: str | None = None, stream: str | None = None) -> list[dict]:
        events = []
        for line in self.path.read_text().splitlines():
            if line.strip():
                event = json.loads(line)
                if (kind is None or event["event"] == kind) and (stream is None or event.get("stream") == stream):
                    events.append(event)
        return events

    def values(self, stream: str | None = None) -> list[dict]:
        return [event["fields"] for event in self.events("value", stream)]

    def states(self, stream: str | None = None) -> list[str]:
        return [event["state"] for event in self.events("health", stream)]

    def state(self, stream: str | None = None) -> str | None:
        states = self.states(stream)
        return states[-1] if states else None

    def wait_for(self, predicate, timeout: float = 10.0, message: str = "an event"):
        def check():
            if self.proc.poll() is not None:
                raise AssertionError(f"source runner exited {self.proc.returncode}: {self.stderr()}")
            return predicate()

        try:
            return wait_until(check, timeout=timeout, message=message)
        except AssertionError as error:
            raise AssertionError(f"{error}\nevents: {self.events()}\nstderr: {self.stderr()}") from None

    def wait_state(self, state: str, stream: str | None = None, timeout: float = 10.0,
                   after: int = 0) -> dict:
        """The first health event with ``state`` among those after the first ``after`` ones."""
        def found():
            events = self.events("health", stream)[after:]
            return next((event for event in events if event["state"] == state), None)

        return self.wait_for(found, timeout, f"state {state!r} of {stream or 'the stream'}")

    def wait_value(self, predicate, stream: str | None = None, timeout: float = 10.0) -> dict:
        def found():
            return next((event for event in self.events("value", stream) if predicate(event["fields"])), None)

        return self.wait_for(found, timeout, f"a value of {stream or 'the stream'}")

    def max_tick_gap(self, since: float | None = None, span: float = 1.0) -> float:
        """The longest wait between two ticks of the runner's ticker from ``since`` (a
        monotonic time; default: the first tick) on, once the ticks cover ``span`` seconds.
        A source that holds the hub shows here as a gap."""
        def ticks() -> list[float]:
            return [event["t"] for event in self.events("tick") if since is None or event["t"] >= since]

        self.wait_for(lambda: len(ticks()) > 1 and ticks()[-1] - ticks()[0] >= span, timeout=span + 10,
                      message=f"{span} s of ticks")
        times = ticks()
        return max(later - earlier for earlier, later in zip(times, times[1:]))

    def stderr(self) -> str:
        return _tail(self.log)

    def stop(self) -> str:
        """SIGTERM: the runner stops its supervisors (closing connections) and exits 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        hung = False
        try:
            self.proc.wait(scaled(10))
        except subprocess.TimeoutExpired:
            hung = True
            self.proc.kill()
            self.proc.wait()
        log = _tail(self.log, 100_000)
        shutil.rmtree(self.path.parent, ignore_errors=True)
        # A source whose close() hangs would hang the server's shutdown too.
        assert not hung, f"the source runner did not stop within 10 s of SIGTERM:\n{log[-3000:]}"
        return log


def wait_port_closed(port: int, timeout: float = 5.0) -> None:
    def closed() -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            return probe.connect_ex(("127.0.0.1", port)) != 0

    wait_until(closed, timeout=timeout, message=f"port {port} closed")
