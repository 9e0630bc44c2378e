"""The data sources without their drivers, in fresh interpreters: importing the sources loads
no driver, a server whose config needs a missing driver exits 2 with the pip line, and the
random walk serves without any driver. The rules alone are tests/unit/test_source_config.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT, SERVER, ServerProcess, scaled
from tests.unit.test_source_config import DRIVERS

pytestmark = pytest.mark.timeout(20)


def test_importing_the_sources_imports_no_driver():
    code = ("import sys, producer, dashstream.config.stream_specs; "
            f"print([m for m in {DRIVERS!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=scaled(10), check=True)
    assert result.stdout.strip() == "[]"


def without_drivers(tmp_path) -> str:
    """server.py as a user without any driver installed would run it."""
    wrapper = tmp_path / "server_without_drivers.py"
    wrapper.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})  # this tree, as `python server.py` in it would import\n"
        f"for module in {DRIVERS!r}:\n"
        "    sys.modules[module] = None  # ImportError on import, as if not installed\n"
        f"sys.argv[0] = {str(SERVER)!r}\n"
        f"runpy.run_path({str(SERVER)!r}, run_name='__main__')\n")
    return str(wrapper)


def test_the_server_exits_2_naming_file_stream_key_and_pip_line_when_a_driver_is_missing(tmp_path):
    config = tmp_path / "streams.toml"
    config.write_text('[streams.orders]\nsource = "redis"\nurl = "redis://127.0.0.1:6379/0"\nchannel = "orders"\n')
    result = subprocess.run([sys.executable, without_drivers(tmp_path), "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=scaled(10))
    assert result.returncode == 2, result.stderr
    assert f"{config}: needs redis (dashstream[redis]) for 'orders': pip install" in result.stderr
    assert "pip install 'dashstream[redis]'" in result.stderr and "Traceback" not in result.stderr


def test_the_random_walk_works_without_any_driver(tmp_path):
    from websockets.sync.client import connect

    server = ServerProcess(server=without_drivers(tmp_path)).start()
    try:
        with connect(server.ws + "/", open_timeout=scaled(5)) as ws:
            assert "variable" in ws.recv(timeout=scaled(5))
    finally:
        server.stop()
        server.discard_log()
