"""The shipped benchmark, end to end at toy size, so it cannot rot unnoticed: the C load client
builds with the system compiler, the harness drives dashstream through benchmarks/harness_peer.py
(S2 in a call of its own, S1, S3 and S4 in another, as compare.sh runs them), and report.py reads
back what the harness wrote. Figures at this size mean nothing; only that every part still fits.

Not the whole compare.sh: that installs a venv and the peers from the package registries, which
the suite must not need. tests/unit/test_benchmark_report.py covers the report and the plots.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT, free_port, scaled

HARNESS = ROOT / "benchmarks" / "harness"


@pytest.fixture(scope="module")
def wsload(tmp_path_factory):
    """The load client, built as every benchmark script builds it (``benchmarks/common.py``'s
    ``load_client``: the system compiler, into ``$BENCH_HOME/bin``), in a home of its own."""
    # By its path, under a name of its own: the scripts import it as a top-level ``common``.
    spec = importlib.util.spec_from_file_location("benchmarks_common", ROOT / "benchmarks" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENCH_HOME", str(tmp_path_factory.mktemp("bench-home")))
        return common.load_client()


# Not `alone`: at toy size (20 clients, 5 msg/s) it judges no rate, only that every part ran
# and each scenario delivered, so it runs beside the rest; it pins the server and the client
# to the cores this process may use, which the other tests share.


def run_harness(wsload, out, *args: str, server: str = "benchmarks/harness_peer.py", label: str = "dashstream") -> None:
    cpus = sorted(os.sched_getaffinity(0))
    command = [sys.executable, str(HARNESS / "harness.py"),
               "--server", f"{sys.executable} {server}", "--cwd", str(ROOT),
               "--url", f"ws://127.0.0.1:{free_port()}/ws/bench", "--label", label, "--runs", "1",
               "--out", str(out), "--c-client", str(wsload),
               "--server-cpu", str(cpus[0]), "--client-cpu", str(cpus[-1]),
               "--quiet-max", "-1", "--settle", "0.2", "--connect-concurrency", "20", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=scaled(120))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout, result.stdout + (out / f"{label}.server.log").read_text()


def records(out, label: str = "dashstream") -> list[dict]:
    lines = (out / f"{label}.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("type") != "meta"]


def test_harness_drives_dashstream_and_the_report_reads_it(wsload, tmp_path):
    run_harness(wsload, tmp_path, "--scenario", "S2", "--s2-conns", "20", "--s2-rates", "5",
                "--s2-warmup", "0.5", "--s2-duration", "1")
    run_harness(wsload, tmp_path, "--scenario", "S1,S3,S4", "--first-run", "1",
                "--s1-conns", "20", "--s1-hold", "0.5", "--s1-settle", "0.2",
                "--s3-conns", "20", "--s3-warmup", "0.5", "--s3-duration", "1",
                "--s4-duration", "1", "--s4-concurrency", "4")
    by_scenario = {r["scenario"]: r for r in records(tmp_path)}
    assert set(by_scenario) == {"S1", "S2", "S3", "S4"}
    s2 = by_scenario["S2"]
    # Delivered, not judged: the ladder's pass (95 % and a p99 under 100 ms) is a rate, which
    # a loaded machine may miss at any size.
    assert s2["client"]["opened"] == 20 and s2["client"]["delivered_ratio"] > 0.5, s2
    assert s2["client"]["client_cpu_pct_window"] is not None
    assert by_scenario["S1"]["client"]["opened"] == 20
    assert by_scenario["S3"]["client"]["delivered_ratio"] > 0.5
    assert by_scenario["S4"]["client"]["completed"] > 0

    report = tmp_path / "report.md"
    subprocess.run([sys.executable, str(HARNESS / "report.py"), "--results", str(tmp_path), "--out", str(report),
                    "--labels", "dashstream"], check=True, capture_output=True, timeout=scaled(30))
    text = report.read_text()
    for heading in ("## S1", "## S2", "## S3", "## S4"):
        assert heading in text
    assert "| dashstream | 20 |" in text


@pytest.mark.parametrize("server", ["benchmarks/harness/peers/eventlet_floor.py", "benchmarks/private_floor_server.py"])
def test_the_floors_serve_the_scenarios_they_measure(wsload, tmp_path, server):
    """The yardsticks of BENCHMARKS.md "Floors" (compare.sh's eventlet-floor peer, and
    revision_cost.py's ``floor=`` servers): private streams and handshakes at toy size, each
    message a JSON text with a ``seq`` (the client counts only those) and every handshake
    answered and closed."""
    run_harness(wsload, tmp_path, "--scenario", "S3,S4", "--s3-conns", "20", "--s3-warmup", "0.5",
                "--s3-duration", "1", "--s4-duration", "1", "--s4-concurrency", "4", server=server, label="floor")
    by_scenario = {r["scenario"]: r for r in records(tmp_path, "floor")}
    assert by_scenario["S3"]["client"]["opened"] == 20
    assert by_scenario["S3"]["client"]["delivered_ratio"] > 0.5, by_scenario["S3"]
    assert by_scenario["S4"]["client"]["completed"] > 0 and not by_scenario["S4"]["client"]["failed"], by_scenario["S4"]
