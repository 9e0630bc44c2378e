"""Replay a Dockerfile's build and run steps without a Docker engine.

No Docker engine runs where dashstream is developed, so the image is checked by doing
what the engine would do, as closely as a venv allows:

- the Dockerfile is read by ``dockerfile`` (BuildKit's own Go parser), and the build
  context by ``docker``'s .dockerignore matcher (the Docker SDK's port of the engine's);
- a temporary directory stands for the image's root file system: ``COPY`` copies exactly
  the context files it names (a file .dockerignore excludes is "not found", as in a real
  build), ``WORKDIR`` and ``ENV`` are tracked, ``RUN`` runs with the image's working
  directory and environment;
- a fresh venv stands for the base image's Python: its ``bin/`` takes the place of
  ``/usr/local/bin`` on PATH, so ``pip`` and ``python`` in ``RUN``, ``CMD`` and
  ``HEALTHCHECK`` are the venv's, and nothing leaks in from the test run's own packages.

- ``VOLUME`` is a directory of the image's file system that outlives the container; in
  the replay it is that directory under the stand-in root, and a path inside a volume in
  an ``ENV`` value (``DASHSTREAM_STATE=/var/lib/dashstream/state.db``) is mapped to it
  when a command runs, as the container would see its own file system there.

What the venv cannot stand for is said, not hidden: the base image's exact Python patch
release (the venv uses the test run's interpreter), the numeric ``USER`` (processes run
as the tester), and real network isolation. Anything the replay does not know how to do
faithfully raises ``Unsupported`` rather than being skipped, so a new kind of step in the
Dockerfile fails the tests until the replay learns it.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import dockerfile
from docker.utils.build import exclude_paths

# The python image's own environment that matters here (the rest is its build metadata).
BASE_IMAGE_ENV = {"LANG": "C.UTF-8"}
SYSTEM_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host settings that decide how pip reaches an index (a mirror, a proxy, a CA bundle).
# A real build would configure the same through the engine; they never reach CMD.
HOST_NETWORK_ENV_PREFIXES = ("PIP_", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                             "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_")
# Instructions that only describe the image; recorded for the tests to check.
METADATA = {"EXPOSE", "LABEL", "STOPSIGNAL", "USER"}
GLOB_CHARACTERS = set("*?[")


class ReplayError(AssertionError):
    """The build would fail (a missing file, a failing RUN)."""


class Unsupported(AssertionError):
    """The Dockerfile uses something this replay cannot do faithfully: teach it, don't skip it."""


def read_dockerignore(context: Path) -> list[str]:
    """The patterns, read as the Docker SDK reads them: no blank lines, no comments."""
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def build_context(context: Path) -> frozenset[str]:
    """Every path (files and folders, relative, '/'-separated) the engine would be sent."""
    return frozenset(exclude_paths(str(context), read_dockerignore(context)))


@dataclass
class Image:
    """The replayed image: a root file system in a directory, plus its run-time settings."""

    rootfs: Path
    venv: Path
    base: str = ""
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    metadata: dict[str, tuple[str, ...]] = field(default_factory=dict)
    healthcheck: tuple[str, ...] = ()
    healthcheck_flags: dict[str, str] = field(default_factory=dict)
    cmd: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()

    def path(self, container_path: str) -> Path:
        """Where a path inside the image lives on this machine ('..' stops at the image's
        root, as it does in the image)."""
        return self.rootfs / posixpath.normpath(posixpath.join("/", container_path)).lstrip("/")

    def run_env(self, overrides: dict[str, str] | None = None) -> dict[str, str]:
        """The container's environment: the base image's, the Dockerfile's ENV, then `-e`."""
        return {
            **BASE_IMAGE_ENV,
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{SYSTEM_PATH}",
            # A USER with no /etc/passwd entry gets HOME=/ from the engine.
            "HOME": str(self.rootfs),
            **{name: self._in_volume(value) for name, value in self.env.items()},
            **(overrides or {}),
        }

    def _in_volume(self, value: str) -> str:
        """An absolute path inside a declared volume, as this machine reaches it."""
        for volume in self.volumes:
            if value == volume or value.startswith(volume.rstrip("/") + "/"):
                return str(self.path(value))
        return value

    def popen(self, argv: tuple[str, ...] | list[str], env: dict[str, str] | None = None,
              **kwargs) -> subprocess.Popen:
        """Start ``argv`` as ``docker run`` would: in WORKDIR, with the container's env.
        ``python`` is found on the container's PATH, i.e. the venv's."""
        return subprocess.Popen(list(argv), cwd=self.path(self.workdir), env=self.run_env(env), **kwargs)


def replay_build(dockerfile_text: str, context: Path, rootfs: Path, venv: Path) -> Image:
    """Perform the Dockerfile's steps in ``rootfs`` with ``venv`` as the base image's Python."""
    image = Image(rootfs=rootfs, venv=venv)
    files = build_context(context)
    for command in dockerfile.parse_string(dockerfile_text):
        instruction = command.cmd.upper()
        where = f"Dockerfile line {command.start_line}: {command.original}"
        if command.flags and instruction not in ("HEALTHCHECK",):
            raise Unsupported(f"{where}: flags {command.flags} are not replayed")
        if instruction == "FROM":
            if image.base:
                raise Unsupported(f"{where}: multi-stage builds are not replayed")
            image.base = command.value[0]
        elif instruction == "ENV":
            image.env.update(_env_pairs(command.value, where))
        elif instruction == "WORKDIR":
            image.workdir = str(PurePosixPath(image.workdir, command.value[0]))
            image.path(image.workdir).mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            _copy(image, context, files, command.value, where)
        elif instruction == "RUN":
            _run(image, command, where)
        elif instruction == "HEALTHCHECK":
            image.healthcheck, image.healthcheck_flags = _healthcheck(command, where)
        elif instruction == "CMD":
            if not command.json:
                raise Unsupported(f"{where}: only the exec form (a JSON list) is replayed")
            image.cmd = command.value
        elif instruction == "VOLUME":
            for volume in command.value:
                if not volume.startswith("/"):
                    raise Unsupported(f"{where}: a volume must be an absolute path")
                image.path(volume).mkdir(parents=True, exist_ok=True)
                image.volumes += (str(PurePosixPath(volume)),)
        elif instruction in METADATA:
            image.metadata[instruction] = command.value
        else:
            raise Unsupported(f"{where}: {instruction} is not replayed")
    if not image.cmd:
        raise ReplayError("the Dockerfile has no CMD")
    return image


def _env_pairs(value: tuple[str, ...], where: str) -> dict[str, str]:
    pairs = dict(zip(value[::2], value[1::2]))
    for name, text in pairs.items():
        # The engine would expand $VARS and strip quotes; plain values need neither.
        if set(text) & set("$\"'\\"):
            raise Unsupported(f"{where}: {name}={text} needs quoting or expansion")
    return pairs


def _copy(image: Image, context: Path, files: frozenset[str], value: tuple[str, ...], where: str) -> None:
    *sources, destination = value
    if len(sources) > 1 and not destination.endswith("/"):
        raise ReplayError(f"{where}: with several sources the destination must end with '/'")
    target = PurePosixPath(image.workdir, destination)
    for source in sources:
        if GLOB_CHARACTERS & set(source):
            raise Unsupported(f"{where}: wildcards are not replayed")
        name = str(PurePosixPath(source))  # "dashstream/" -> "dashstream", "./x" -> "x"
        if name not in files:
            raise ReplayError(f"{where}: {source!r} is not in the build context "
                              "(missing, or excluded by .dockerignore)")
        if (context / name).is_dir():
            # COPY of a folder copies its contents, and only those the context holds.
            for relative in sorted(files):
                if relative.startswith(name + "/") and (context / relative).is_file():
                    _copy_file(context / relative, image.path(str(target / relative[len(name) + 1:])))
        elif destination.endswith("/"):
            _copy_file(context / name, image.path(str(target / PurePosixPath(name).name)))
        else:
            _copy_file(context / name, image.path(str(target)))


def _copy_file(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination)


def _run(image: Image, command, where: str) -> None:
    """Only ``pip install`` of relative paths and pinned names: it changes nothing on this
    machine but the venv. Anything else (useradd, apt-get, rm -rf /...) would run on the
    tester's machine instead of in an image, so it is refused."""
    argv = list(command.value) if command.json else shlex.split(" ".join(command.value))
    if argv[:2] != ["pip", "install"]:
        raise Unsupported(f"{where}: only `pip install ...` RUN steps are replayed")
    for word in argv[2:]:
        if (word in ("&&", "||", ";", "|") or word.startswith(("/", ">", "<")) or "$" in word
                or ".." in PurePosixPath(word).parts):
            raise Unsupported(f"{where}: {word!r}: shell syntax and absolute paths are not replayed")
    host_network = {name: value for name, value in os.environ.items()
                    if name.startswith(HOST_NETWORK_ENV_PREFIXES)}
    env = {**host_network, **image.run_env()}
    env["HOME"] = str(image.path("/root"))  # the build runs as root
    result = subprocess.run(argv, cwd=image.path(image.workdir), env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        raise ReplayError(f"{where}: exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def _healthcheck(command, where: str) -> tuple[tuple[str, ...], dict[str, str]]:
    kind, *argv = command.value
    if kind.upper() != "CMD" or not command.json:
        raise Unsupported(f"{where}: only `HEALTHCHECK [flags] CMD [exec form]` is replayed")
    flags = {}
    for flag in command.flags:
        name, _, value = flag.lstrip("-").partition("=")
        flags[name] = value
    return tuple(argv), flags


def make_venv(directory: Path) -> Path:
    """A fresh venv with pip, from the interpreter running the tests (not from its venv's
    packages: a venv made from a venv starts empty)."""
    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)
    return directory


def duration_seconds(text: str) -> float:
    """A HEALTHCHECK duration in the forms this Dockerfile uses: '500ms', '5s', '2m'."""
    match = re.fullmatch(r"(\d+)(ms|s|m)", text)
    if not match:
        raise Unsupported(f"duration {text!r} is not replayed")
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60}[match[2]]
