"""deploy/nginx.conf run the way its header says: the Redis and dashstream command lines are
read from the file's comments (not copied here), started with only their ports and the
streams file swapped for the test's, with Debian's nginx serving the file itself in front.

The wall must not split: publishes that nginx spreads over both instances reach every
screen, whichever instance it is on, with one numbering; a shared walk is one walk.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.request

import pytest
import websocket  # websocket-client

from tests.nginx import DEPLOY_CONF, NginxProcess, self_signed_certificate
from tests.support import ROOT, free_port, scaled, wait_until

pytestmark = pytest.mark.timeout(120)

TOKEN = "recipe-token"
STREAMS = """\
[streams.sales]
source = "publish"

[streams.office]
source = "random-walk"
shared = true
min_wait = 0.05
max_wait = 0.2
"""


def header_commands() -> list[str]:
    """The command lines of the file's opening comment (``#   command``), in order."""
    header = DEPLOY_CONF.read_text().split("\n\n", 1)[0]
    return [line[4:].strip() for line in header.splitlines() if line.startswith("#   ")]


def test_the_recipe_says_at_its_top_that_its_instances_need_a_backplane():
    header = DEPLOY_CONF.read_text().split("\n\n", 1)[0]
    assert "need the same --backplane".upper() in header.upper()
    commands = header_commands()
    assert commands[0].startswith("redis-server "), commands
    instances = [command for command in commands if command.startswith("dashstream ")]
    upstream_servers = re.findall(r"^\s*server 127\.0\.0\.1:(\d+)", DEPLOY_CONF.read_text(), re.M)
    assert len(instances) == len(upstream_servers) == 2
    # every instance on the same backplane, on the port the upstream block names
    backplanes = {shlex.split(command)[shlex.split(command).index("--backplane") + 1] for command in instances}
    assert len(backplanes) == 1 and backplanes.pop().startswith("redis://127.0.0.1:6379/")
    assert [shlex.split(command)[-1] for command in instances] == upstream_servers


def test_readme_starts_redis_the_same_way_in_its_backplane_section():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Several instances (Redis backplane)\n", 1)[1].split("\n## ", 1)[0]
    assert header_commands()[0] in section


class Started:
    """The processes the header's commands started, stopped together."""

    def __init__(self):
        self.processes: list[tuple[subprocess.Popen, object]] = []

    def run(self, argv: list[str], cwd, env=None) -> subprocess.Popen:
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)
        self.processes.append((proc, log))
        return proc

    def output(self) -> str:
        texts = []
        for proc, log in self.processes:
            log.seek(0)
            texts.append(f"--- {proc.args[:3]} ---\n{log.read().decode(errors='replace')[-4000:]}")
        return "\n".join(texts)

    def stop(self) -> None:
        for proc, log in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(scaled(10))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log.close()


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def test_the_recipe_as_its_header_says_keeps_one_wall(tmp_path):
    redis_line, *instance_lines = header_commands()
    redis_port, ports = free_port(), [free_port(), free_port()]
    streams = tmp_path / "streams.toml"
    streams.write_text(STREAMS)
    started = Started()
    screens: list[websocket.WebSocket] = []
    proxy = None
    try:
        redis = shlex.split(redis_line.replace("--port 6379", f"--port {redis_port}"))
        started.run([*redis, "--save", "", "--appendonly", "no"], cwd=tmp_path)
        for line, shipped, port in zip(instance_lines, ("5001", "5002"), ports):
            words = shlex.split(line.replace(":6379/", f":{redis_port}/"))
            assert words[0] == "dashstream" and words[-2:] == ["--port", shipped], words
            words[words.index("streams.toml")] = str(streams)
            # `dashstream` is `python -m dashstream` of the suite's Python; the token by its
            # environment variable, as the recipe's commands leave publishing to the operator.
            started.run([sys.executable, "-m", "dashstream", *words[1:-1], str(port)], cwd=tmp_path,
                        env={**os.environ, "DASHSTREAM_PUBLISH_TOKEN": TOKEN, "DASHSTREAM_HANDSHAKE_RATE": "0"})
        for port in ports:
            wait_until(lambda port=port: ready(f"http://127.0.0.1:{port}/readyz"), timeout=15,
                       message=f"instance {port} ready (connected to Redis)")
        proxy = NginxProcess(tuple(ports), *self_signed_certificate(tmp_path)).start()

        # Two screens: least_conn puts the second on the other instance.
        for _ in range(2):
            screens.append(websocket.create_connection(proxy.wss + "/ws/sales", timeout=scaled(10),
                                                       sslopt={"ca_certs": str(proxy.cert)}))
        wait_until(lambda: all(subscribers(port, "sales") == 1 for port in ports), timeout=10,
                   message="one screen on each instance")
        # Four publishes through nginx: round-robin between the two when they tie.
        for value in range(1, 5):
            request = urllib.request.Request(proxy.https + "/publish/sales", method="POST",
                                             data=json.dumps({"variable": value}).encode(),
                                             headers={"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(request, timeout=scaled(5), context=proxy.ssl_context()) as answer:
                assert answer.status == 200
        for screen in screens:
            received = [json.loads(screen.recv()) for _ in range(4)]
            assert [message["variable"] for message in received] == [1, 2, 3, 4]
            assert [message["seq"] for message in received] == [1, 2, 3, 4]
            assert not any(message.get("gap") for message in received)
        # Both instances served publishes (the wall would have split without the backplane),
        # and both know the same log.
        served = [published_by(port) for port in ports]
        assert all(served), served
        assert {last_seq(port, "sales") for port in ports} == {4}
        # A shared walk is one walk: both instances report the same producer and epoch.
        assert len({stream_field(port, "office", "epoch") for port in ports}) == 1
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{started.output()}\n{proxy.output() if proxy else ''}") from None
    finally:
        for screen in screens:
            screen.close()
        if proxy is not None:
            proxy.stop()
        started.stop()


def streams_of(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/streams", timeout=5) as answer:
        return json.load(answer)["streams"]


def stream_field(port: int, name: str, field: str):
    return next(stream[field] for stream in streams_of(port) if stream["name"] == name)


def subscribers(port: int, name: str) -> int:
    """This instance's own screens of ``name``: its /metrics (``/streams`` sums the fleet)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    match = re.search(rf'^dashstream_stream_subscribers\{{stream="{name}"\}} (\S+)', text, re.M)
    return int(float(match[1])) if match else 0


def last_seq(port: int, name: str) -> int:
    return stream_field(port, name, "last_seq")


def published_by(port: int) -> int:
    """How many publishes this instance answered 200, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(int(float(value)) for value in
               re.findall(r'^dashstream_publish_requests_total\{status="200"\} (\S+)', text, re.M))
