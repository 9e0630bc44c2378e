"""The machine's facts and every version a benchmark run depends on, as one JSON object.

    python machine_facts.py --out raw/versions.json [--revisions a=rev,b=rev] [--mode M] [--pinning P]

Run with the benchmark venv's Python so the peers' library versions are the ones measured.
report.py prints the object as the report's "Machine and versions" section.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from importlib import metadata


def sh(command: str) -> str:
    try:
        return subprocess.run(command, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def facts(revisions: str = "", mode: str = "", pinning: str = "") -> dict:
    hypervisor = sh("lscpu | sed -n 's/^Hypervisor vendor:[[:space:]]*//p'")
    node = sh("node --version")
    out = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model() + (f" ({hypervisor} guest)" if hypervisor else ""),
        "cores": os.cpu_count(),
        "memory": sh("free -g | awk '/Mem:/{print $2\" GiB\"}'"),
        "kernel": platform.release(),
        "os": sh(". /etc/os-release 2>/dev/null && echo $PRETTY_NAME") or platform.platform(),
        "open files limit (hard)": sh("ulimit -Hn"),
        # The interpreter's own file (the venv's python links to it): its build matters
        # (BENCHMARKS.md, "Which Python"): a distribution's, a Docker image's, a source build.
        "python": f"{platform.python_version()} ({os.path.realpath(sys.executable)})",
        "eventlet": package_version("eventlet"),
        "greenlet": package_version("greenlet"),
        "websockets": package_version("websockets"),
        "matplotlib": package_version("matplotlib"),
        "node": node or "not found",
        "ws (npm)": sh("node -p \"require('ws/package.json').version\"") if node else "-",
        "cc": sh("cc --version | head -1"),
        "openssl (libcrypto)": sh("openssl version"),
    }
    for pair in filter(None, revisions.split(",")):
        label, _, rev = pair.partition("=")
        out[f"{label} revision"] = rev
    if mode:
        out["mode"] = mode
    if pinning:
        out["pinning"] = pinning
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--revisions", default="", help="label=revision pairs, comma-separated")
    ap.add_argument("--mode", default="")
    ap.add_argument("--pinning", default="")
    a = ap.parse_args()
    with open(a.out, "w") as f:
        json.dump(facts(a.revisions, a.mode, a.pinning), f, indent=1)


if __name__ == "__main__":
    main()
