"""Every figure in BENCHMARKS.md names the script that made it; each of those scripts runs here
at toy size, so none can rot unnoticed (one did: ``private_message_cost.py`` called
``PrivateStream`` with an argument it no longer takes, and two looked for the load client
where only ``../shared/bench`` put it). Figures at this size mean nothing: a script passes when
it ends with 0 and prints the line its figure is read from.

Not here: ``compare.sh`` and the harness (``test_benchmark_harness.py``), the stand-in servers
(``*_server.py``, ``*_peer.py``, ``gc_timing.py``: run by the scripts that use them), and
``hub_trace.py``'s measured run (it wraps ``server.py``; its options are checked).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support import ROOT, scaled

BENCHMARKS = ROOT / "benchmarks"

# script, toy arguments, a pattern its output must contain
SCRIPTS = [
    ("private_message_cost.py", [], r"µs CPU per message, best of 15 x 2,000: \d"),
    ("private_message_cost.py", ["--count", "--messages", "200"], r"^$"),
    ("private_walk_cost.py", ["--clients", "50", "--seconds", "1"], r"walk clients=50 messages=\d+"),
    ("private_walk_cost.py", ["--clients", "50", "--seconds", "1", "--floor"], r"floor clients=50 messages=\d+"),
    ("private_walk_cost.py", ["--clients", "50", "--seconds", "1", "--bare"], r"clients=50"),
    ("pass_cost.py", ["--subscribers", "20"], r"AF_UNIX socket pairs: [\d.]+ µs per delivery"),
    ("metrics_cost.py", ["--number", "200"], r"one scrape \(render\)"),
    ("logging_cost.py", ["--lines", "200"], r"dropped \d+ of 200"),
    ("handshake_cost.py", ["--count", "20"], r"refused with 429"),
    ("publish_rate.py", ["--count", "50"], r"a new connection per publish"),
    ("state_cost.py", ["--count", "50", "--streams", "2", "--history", "5"], r"restored from it"),
    ("keepalive_cost.py", ["--clients", "10", "--interval", "0.2", "--window", "0.5"], r"one small frame sent"),
    ("redis_command_cost.py", [], r"\| PING \|"),
    ("backplane_message_cost.py", ["--rate", "50", "--seconds", "0.5"], r"\| redis \| \d+ \|"),
    ("backplane_latency.py", ["--count", "10", "--rate", "40"], r"\| A → B, through Redis \| 10 \|"),
    ("slow_readers.py", ["--readers", "10", "--stuck", "2", "--rate", "5", "--duration", "1"],
     r"10 readers \+ 2 never reading \| [01]\.\d{3} "),
    ("backplane_scale.py", ["--conns", "20", "--rates", "10", "--warmup", "0.3", "--duration", "0.5"],
     r"\| 1 \| redis \| 20 \| 10 \|"),
    ("backplane_scale.py", ["--conns", "20", "--rates", "10", "--warmup", "0.3", "--duration", "0.5",
                            "--instances", "2", "--backplane", "memory"], r"\| 2 \| memory \| 20 \| 10 \|"),
    ("revision_cost.py", ["--figures", "handshake,private", "--rounds", "1", "--handshakes", "50",
                          "--private", "20", "--window", "1", "now=."], r"µs server CPU per handshake"),
    ("hub_trace.py", ["--help"], r"usage: python server.py"),
]
# Floods (a client sending as fast as it can, a ZeroMQ source of garbage): beside the rest of
# the suite they would load both cores for seconds and move other tests' latency checks.
FLOODS = [
    ("fragment_flood_gap.py", [], r"largest gap [\d.]+ s"),
    ("unmask_latency.py", ["--clients", "5", "--seconds", "1", "--rounds", "1"], r"dashstream _xor_mask"),
    ("fast_sources.py", ["--seconds", "1", "--rate", "1000"], r'"flood": "redis"'),
]


def _id(script: str, args: list) -> str:
    return f"{script}{' ' + ' '.join(args) if args else ''}"


CASES = [pytest.param(*case, id=_id(*case[:2])) for case in SCRIPTS] + [
    pytest.param(*case, id=_id(*case[:2]), marks=pytest.mark.alone) for case in FLOODS]


@pytest.fixture(scope="module")
def bench_home(tmp_path_factory):
    """A home of its own: the scripts build the load client there on first use, as a user's
    first run does (``common.load_client``)."""
    return tmp_path_factory.mktemp("bench-home")


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("script", "args", "pattern"), CASES)
def test_the_benchmark_script_runs_at_toy_size(bench_home, tmp_path, script, args, pattern):
    # A temporary folder of its own, to see that the script leaves no server log behind (the
    # ones starting servers through tests/support.ServerProcess left one per server in /tmp).
    env = {**os.environ, "BENCH_HOME": str(bench_home), "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=scaled(150))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(pattern, result.stdout, re.MULTILINE), result.stdout + result.stderr
    assert not list(tmp_path.glob("dashstream-server-*.log"))
