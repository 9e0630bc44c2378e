"""examples/office.toml, the wall the README's first streams command runs, on a bare install:
no driver importable (psycopg2, redis and pyzmq hidden), no environment variable. Its SQLite
file is made by examples/office_db.py, as the README says; every tile's stream delivers,
and a visitor signed in reaches the screen."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import websocket  # websocket-client

from tests.support import ROOT, SERVER, ServerProcess, http_get, publish, scaled, wait_until

pytestmark = pytest.mark.timeout(60)

DRIVERS = ("psycopg2", "redis", "zmq")
TOKEN = "s3cret"


def bare_install_server(folder) -> str:
    """server.py as a user without any driver would run it (imports fail as if not installed)."""
    wrapper = folder / "server_without_drivers.py"
    wrapper.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        f"for module in {DRIVERS!r}:\n"
        "    sys.modules[module] = None\n"
        f"sys.argv[0] = {str(SERVER)!r}\n"
        f"runpy.run_path({str(SERVER)!r}, run_name='__main__')\n")
    return wrapper


def test_readme_first_streams_command_runs_the_office_example():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Streams\n", 1)[1]
    first = re.search(r"```sh\n(.*?)\n", section)[1]
    assert first == ("python examples/office_db.py && "
                     "python server.py --config examples/office.toml --publish-token s3cret"), first
    assert "needs the drivers" in (ROOT / "streams.example.toml").read_text().split("\n\n", 1)[0]


def test_the_office_wall_runs_without_drivers_or_environment(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("office.db", "__pycache__"))
    made = subprocess.run([sys.executable, "examples/office_db.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=scaled(20))
    assert made.returncode == 0 and (tmp_path / "examples" / "office.db").exists(), made.stderr
    env = {key: value for key, value in os.environ.items() if not key.startswith("DASHSTREAM_")}
    server = ServerProcess("--config", "examples/office.toml", "--publish-token", TOKEN, cwd=tmp_path,
                           server=bare_install_server(tmp_path), env=env)
    try:
        server.start()
        layout = json.loads(http_get(server.http + "/dashboard.json")[2])
        streams = [tile["stream"] for tile in layout["tiles"]]
        assert streams == ["visitors", "coffee", "pattern", "office"]
        wall = websocket.create_connection(f"{server.ws}/ws?streams={','.join(streams)}", timeout=scaled(10))
        try:
            publish(server.http, "coffee", {"variable": 12}, TOKEN)
            seen: dict[str, list] = {}

            def every_stream_spoke() -> bool:
                message = json.loads(wall.recv())
                if "variable" in message:
                    seen.setdefault(message["stream"], []).append(message["variable"])
                return set(seen) == set(streams)

            wait_until(every_stream_spoke, timeout=15, interval=0, message=f"every tile's stream (have {seen})")
            assert seen["visitors"][-1] == 3 and seen["coffee"][-1] == 12
            subprocess.run([sys.executable, "examples/office_db.py", "--arrive", "Margaret"], cwd=tmp_path,
                           check=True, capture_output=True, timeout=scaled(20))

            def visitors() -> int | None:
                message = json.loads(wall.recv())
                return message.get("variable") if message.get("stream") == "visitors" else None

            assert wait_until(lambda: visitors() == 4, timeout=15, interval=0, message="the fourth visitor")
        finally:
            wall.close()
        assert "Traceback" not in server.output()
    finally:
        server.stop()
        server.discard_log()


def test_the_reference_file_on_a_bare_install_names_every_missing_driver_at_once(tmp_path):
    env = {"ORDERS_DATABASE_URL": "postgresql://dashboard@127.0.0.1:5432/shop"}
    result = subprocess.run([sys.executable, str(bare_install_server(tmp_path)), "--config",
                             str(ROOT / "streams.example.toml")], cwd=tmp_path, capture_output=True, text=True,
                            timeout=scaled(20), env={**os.environ, **env})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        "streams.example.toml: needs psycopg2 (dashstream[sql]) for 'orders_db', redis (dashstream[redis]) "
        "for 'orders', 'regions', pyzmq (dashstream[zmq]) for 'sensors': pip install 'dashstream[sql,redis,zmq]'"
    ), result.stderr
