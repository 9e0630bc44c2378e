"""The README's first command, as a new user runs it: read from README.md (never copied here,
so the test follows the README), run by ``sh`` in a clean copy of the checkout with the
system's PATH only (a stock Debian has ``python3`` and no ``python``; its pip refuses the
system's Python, PEP 668), and the page it serves is the checkout's page.

The command ends in a server that runs until stopped; it gets a free port through
``DASHSTREAM_PORT`` (the fallback of ``--port``), and the test stops the whole session it
started (the shell and the server under it) at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import websocket  # websocket-client

from tests.support import ROOT, free_port, http_get, scaled

pytestmark = pytest.mark.timeout(420)

# What the user's PATH has on a stock system: no pyenv, no venv of the suite's.
SYSTEM_PATH = "/usr/bin:/bin"


def first_command(readme: str) -> str:
    """The one line of the first ``sh`` block under "Two commands"."""
    section = readme.split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README's 'Two commands' has no sh block"
    lines = [line for line in block[1].splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_first_command_is_found_and_makes_a_venv():
    command = first_command((ROOT / "README.md").read_text())
    # The two things a stock Debian/Ubuntu needs: python3 (not python) makes the venv, and
    # pip runs from inside it.
    assert command.startswith("python3 -m venv "), command
    assert "activate" in command.split("pip install")[0], command


def clean_checkout(target: Path) -> Path:
    """What a fresh clone would hold, with the working tree's edits: git's tracked and
    untracked-but-not-ignored files (ignored ones, like venvs and build output, stay out)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, timeout=scaled(30))
    if listed.returncode != 0:  # no git: a source tarball, already clean
        shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(".venv*", "__pycache__", "*.egg-info"))
        return target
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_the_first_command_serves_the_page_from_a_clean_checkout(tmp_path):
    if not Path("/usr/bin/python3").exists():
        pytest.skip("no system python3 in /usr/bin")
    command = first_command((ROOT / "README.md").read_text())
    checkout = clean_checkout(tmp_path / "dashstream")
    port = free_port()
    # Only the system's PATH and a home of its own; the PIP_* settings are this machine's
    # way to the package index (a mirror, certificates), not a shortcut around the venv.
    env = {"PATH": SYSTEM_PATH, "HOME": str(tmp_path), "LANG": "C.UTF-8", "DASHSTREAM_PORT": str(port),
           **{key: value for key, value in os.environ.items() if key.startswith("PIP_")}}
    log = tempfile.TemporaryFile()
    shell = subprocess.Popen(["sh", "-c", command], cwd=checkout, env=env, stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def output() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")

    try:
        def serving() -> bool:
            try:
                return http_get(f"http://127.0.0.1:{port}/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        # pip install . builds the package and fetches eventlet: minutes on a slow mirror.
        # (Polled here rather than by wait_until, which would retry past the command's exit.)
        deadline = time.monotonic() + scaled(360)
        while not serving():
            assert shell.poll() is None, f"the first command exited {shell.returncode}:\n{output()}"
            assert time.monotonic() < deadline, f"the first command serves nothing after 360 s:\n{output()}"
            time.sleep(0.5)
        status, headers, body = http_get(f"http://127.0.0.1:{port}/")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert body == (ROOT / "index.html").read_bytes()
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=scaled(5))
        try:
            assert isinstance(json.loads(ws.recv())["variable"], int)
        finally:
            ws.close()
        # It ran in the venv it made, from the clean copy, not from anything of the suite's.
        assert (checkout / ".venv" / "bin" / "python").exists()
        assert "dashstream ready" in output(), output()
    finally:
        # The session it started: the shell and the server under it, whichever is still there.
        try:
            os.killpg(shell.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            shell.wait(scaled(10))
        except subprocess.TimeoutExpired:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
        log.close()
