"""dashstream under the load harness's server contract (benchmarks/harness/harness.py).

    bash benchmarks/compare.sh          # runs it beside the reference peers (BENCHMARKS.md)
    python benchmarks/harness/harness.py --cwd . --server "python benchmarks/harness_peer.py" \
        --url ws://127.0.0.1:5105/ws/bench --label dashstream --scenario S2

The harness sets PORT, SHAPE and RATE; every scenario uses the stream ``bench`` at
``/ws/bench``:

* ``RATE=0`` (S1 idle, S4 handshakes): a ``publish`` stream nobody publishes to;
* ``SHAPE=B`` (S2 broadcast): a shared ``ticker`` stream at RATE messages a second on the
  peers' fixed-tick schedule (a tick more than one interval late is skipped, no catch-up);
* ``SHAPE=A`` (S3 private streams): a private random walk per client, waits uniform in
  [0, 2/RATE).

Everything else is the project's defaults, except what a load test from one address needs:
the per-address handshake limit off and ``--max-connections 19900`` (the fd limit here is
20,000). Extra arguments are passed to ``server.py`` (e.g. to compare an option);
``--entry SCRIPT`` first runs another entry point instead (``benchmarks/nagle_on_server.py``).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def stream_table(shape: str, rate: float) -> str:
    if rate <= 0:
        return 'source = "publish"\n'
    if shape == "A":
        return f'source = "random-walk"\nshared = false\nmin_wait = 0.0\nmax_wait = {2.0 / rate!r}\n'
    return f'source = "ticker"\nrate = {rate!r}\n'


def write_config(shape: str, rate: float) -> Path:
    """The TOML file with the one stream ``bench``. One file per
    stream table, written whole and replaced, not one per start: the server reads it after
    this process has become it (``execv``), so nothing is left to remove a file of its own,
    and a file per start left thousands in the temporary folder."""
    table = "[streams.bench]\n" + stream_table(shape, rate)
    digest = hashlib.sha256(table.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"dashstream-bench-{digest}.toml"
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(table)
    partial.replace(path)  # whole, for a server of another run reading it at this moment
    return path


def server_options(extra: list[str]) -> list[str]:
    """``server.py``'s options for the harness's PORT, SHAPE and RATE, then ``extra``."""
    shape = os.environ.get("SHAPE", "B").upper()
    rate = float(os.environ.get("RATE", "10"))
    config = write_config(shape, rate)
    return ["--host", "127.0.0.1", "--port", os.environ.get("PORT", "5105"),
            "--config", str(config), "--handshake-rate", "0", "--max-connections", "19900",
            "--log-level", os.environ.get("LOG_LEVEL", "info"), *extra]


def main() -> None:
    extra = sys.argv[1:]
    entry = ROOT / "server.py"
    if extra[:1] == ["--entry"]:
        entry, extra = ROOT / extra[1], extra[2:]
    os.execv(sys.executable, [sys.executable, str(entry), *server_options(extra)])


if __name__ == "__main__":
    main()
