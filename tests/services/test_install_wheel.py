"""The package as a user installs it: a wheel built from a clean copy of the tree, installed
into a fresh venv, run as the ``dashstream`` command from a folder that holds nothing else.

Checks that the wheel ships the page byte-for-byte as ``index.html`` at the top of the
repository (no drift: setup.py copies it at build time), that the command serves it and
a WebSocket stream, and that the command patches eventlet before it imports the server.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import pytest
import websocket  # websocket-client

from tests.support import ROOT, free_port, http_get, scaled, wait_until

pytestmark = pytest.mark.timeout(240)

# What a clean checkout does not have; everything else is copied, so a file the build
# needs but git does not track would still be caught by CI's fresh clone.
NOT_SOURCE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".venv*",
                                    "test-artifacts", "mutants", ".pytest_cache", ".hypothesis")


def uv() -> str:
    """The uv of the test extra (tests/run.sh installs with it): in this environment's bin/."""
    candidate = Path(sysconfig.get_path("scripts")) / "uv"
    found = str(candidate) if candidate.exists() else shutil.which("uv")
    assert found, "uv not found: install the test extra"
    return found


def make_venv(directory: Path) -> Path:
    """A fresh, empty venv of the interpreter running the tests, made by uv (a second where the
    venv module's ensurepip takes several). pip's own `pip install .` is what
    test_first_command.py (the README's line) and test_dockerfile.py (the image) run."""
    subprocess.run([uv(), "venv", "--quiet", "--python", sys.executable, str(directory)], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, env=UV_ENV, timeout=scaled(60))
    return directory


def uv_install(venv: Path, *what: str, compile_bytecode: bool = True) -> subprocess.CompletedProcess:
    env = UV_ENV if compile_bytecode else {k: v for k, v in UV_ENV.items() if k != "UV_COMPILE_BYTECODE"}
    return subprocess.run([uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *what],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env, timeout=scaled(180))


# Only this machine's Pythons; the test run's own venv stays out of it.
# Compiled to bytecode at install, as pip does (uv does not by default).
UV_ENV = {**{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}, "UV_PYTHON_DOWNLOADS": "never",
          "UV_COMPILE_BYTECODE": "1"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source") / "dashstream"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    (source / "dashstream" / "index.html").unlink(missing_ok=True)  # a stray local build's copy
    out = tmp_path_factory.mktemp("dist")
    # Built by uv, through the same PEP 517 backend (setuptools, in an isolated environment)
    # that `pip wheel` would call: 1.4 s of CPU where pip took 3.6.
    result = subprocess.run([uv(), "build", "--wheel", "--quiet", "-o", str(out), str(source)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, env=UV_ENV,
                            timeout=scaled(180))
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("dashstream-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    directory = make_venv(tmp_path_factory.mktemp("install") / "venv")
    result = uv_install(directory, str(wheel))
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def test_the_wheel_ships_the_root_page_unchanged_and_declares_the_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("dashstream/index.html") == (ROOT / "index.html").read_bytes()
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        record = archive.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
    assert "dashstream = dashstream.server.main:main" in entry_points
    assert "Requires-Dist: prometheus-client==0.26.0" in metadata
    assert "dashstream/index.html," in record  # pip uninstall removes it too
    assert not any(name.startswith("tests/") for name in names)


def test_the_source_tree_has_one_page():
    """The package's copy exists only in build output: a second copy checked in would drift."""
    tracked = subprocess.run(["git", "ls-files", "--", "*index.html"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode == 0:  # a checkout with git (CI's is a fresh clone)
        assert tracked.stdout.split() == ["index.html"]
    assert "dashstream/index.html" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_command_patches_eventlet_before_it_imports_anything_else():
    for entry in (ROOT / "dashstream" / "server" / "main.py", ROOT / "server.py"):
        tree = ast.parse(entry.read_text())
        body = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        first_two = [ast.unparse(node) for node in body[:2]]
        assert first_two == ["from dashstream import runtime", "runtime.monkey_patch()"], entry
    # runtime.py itself imports nothing that opens sockets before eventlet (stdlib helpers only)
    runtime = ast.parse((ROOT / "dashstream" / "runtime.py").read_text())
    before = []
    for node in runtime.body:
        if isinstance(node, ast.Import) and node.names[0].name == "eventlet":
            break
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            before.append(ast.unparse(node))
    assert before == ["from __future__ import annotations", "import _imp", "import functools", "import os",
                      "import sys", "import time", "import warnings", "from collections import deque",
                      "from typing import Any, Callable"]
    # and it turns greendns off before that import (eventlet reads the variable at import)
    assert "os.environ.setdefault('EVENTLET_NO_GREENDNS', 'yes')" in ast.unparse(runtime)
    # the packages' __init__ files (imported before main.py) import nothing
    for init in (ROOT / "dashstream" / "__init__.py", ROOT / "dashstream" / "server" / "__init__.py"):
        tree = ast.parse(init.read_text())
        assert not [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))], init


def test_installed_command_serves_the_page_and_a_stream(venv, tmp_path):
    command = venv / "bin" / "dashstream"
    assert command.exists()
    # The installed console script, imported as the venv runs it: patched before the server loads.
    probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import dashstream.server.main, eventlet.patcher;"
                            "print(eventlet.patcher.is_monkey_patched('socket'))"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=scaled(30))
    assert probe.stdout.split() == ["True"], probe.stdout + probe.stderr

    help_text = subprocess.run([str(command), "--help"], cwd=tmp_path, capture_output=True, text=True,
                               timeout=scaled(30))
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: dashstream"), help_text.stdout
    assert "--trusted-proxy" in help_text.stdout
    refused = subprocess.run([str(command), "--port", "0"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=scaled(30))
    assert refused.returncode == 2 and "--port" in refused.stderr and "Traceback" not in refused.stderr

    port = free_port()
    log = tempfile.TemporaryFile()
    # An empty working directory and no source tree on the path: only the installed package.
    server = subprocess.Popen([str(command), "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path,
                              stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)})
    try:
        def ready():
            assert server.poll() is None, f"dashstream exited {server.returncode}"
            try:
                return http_get(f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(ready, timeout=15, message="the installed dashstream command")
        status, headers, body = http_get(f"http://127.0.0.1:{port}/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert body == (ROOT / "index.html").read_bytes()
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=scaled(5))
        try:
            first, second = json.loads(ws.recv()), json.loads(ws.recv())
        finally:
            ws.close()
        assert isinstance(first["variable"], int) and second["seq"] == first["seq"] + 1
        server.terminate()
        assert server.wait(scaled(5)) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.seek(0)
        output = log.read().decode(errors="replace")
        log.close()
    assert "dashstream ready" in output and "Traceback" not in output, output


def test_python_m_dashstream_is_the_same_command(venv, tmp_path):
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "dashstream", "--log-format", "xml"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=scaled(30))
    assert result.returncode == 2 and "--log-format" in result.stderr and "usage: dashstream" in result.stderr


def test_an_editable_install_serves_the_checkouts_own_page(tmp_path):
    """tests/run.sh installs with ``uv pip install -e`` (setuptools' editable build, as pip's
    ``-e``): setup.py's build step must not need a package copy there, and the command finds
    the checkout's page."""
    source = tmp_path / "checkout"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    (source / "dashstream" / "index.html").unlink(missing_ok=True)
    directory = make_venv(tmp_path / "venv")
    # Not compiled: one import reads the page's path, and compiling every dependency to
    # bytecode was most of this test's CPU.
    result = uv_install(directory, "-e", str(source), compile_bytecode=False)
    assert result.returncode == 0, result.stdout + result.stderr
    found = subprocess.run([str(directory / "bin" / "python"), "-c",
                            "from dashstream.server.main import installed_page; print(installed_page())"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=scaled(30))
    assert found.stdout.strip() == str(source / "index.html"), found.stdout + found.stderr
    assert not (source / "dashstream" / "index.html").exists()
