"""A fast source beside a ticker: /healthz latency and the ticker's delivery during a flood.

    python benchmarks/fast_sources.py [--seconds 10] [--rate 60000]

The issue's targets, measured on the real server with a real redis-server: with a Redis
channel at 60,000 messages a second, and with a ZeroMQ publisher sending garbage in a tight
loop, ``/healthz`` answers within 100 ms (p99 and max printed) and a 20 msg/s ticker on another
stream delivers at least 95 % of its messages. The same measurement as
tests/services/test_fast_sources.py (which asserts it with a margin for a loaded machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e import wait_stream  # noqa: E402
from tests.services import RedisServer  # noqa: E402
from tests.services.test_fast_sources import CONFIG, coalesced, flood  # noqa: E402
from tests.support import ServerProcess, free_port  # noqa: E402


def summary(kind: str, figures: dict, extra: dict) -> dict:
    times = figures["healthz"]
    return {"flood": kind, "sent_per_s": round(figures["sent"] / figures["seconds"]),
            "healthz_probes": len(times), "healthz_p50_ms": round(times[len(times) // 2] * 1000, 1),
            "healthz_p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 1),
            "healthz_max_ms": round(times[-1] * 1000, 1),
            "ticker_delivered_pct": round(100 * figures["ticks"] / figures["expected"], 1), **extra}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=60000.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="dashstream-fast-"))
    redis = RedisServer().start()
    zmq_url = f"tcp://127.0.0.1:{free_port()}"
    (folder / "s.toml").write_text(CONFIG + f"""
[streams.flood]
source = "redis"
url = "{redis.url}"
channel = "flood"

[streams.garbage]
source = "zmq"
url = "{zmq_url}"
""")
    server = ServerProcess("--config", str(folder / "s.toml")).start()
    try:
        wait_stream(server, "flood", lambda s: s["state"] == "up", timeout=10)
        figures = flood(["redis", redis.url, "flood", str(args.rate), str(args.seconds)], server, args.seconds)
        print(json.dumps(summary("redis", figures, {"coalesced": coalesced(server, "flood")})))
        figures = flood(["zmq", zmq_url, str(args.seconds)], server, args.seconds)
        print(json.dumps(summary("zmq garbage", figures, {})))
        print(json.dumps({"loadavg": os.getloadavg()}))
    finally:
        server.stop()
        server.discard_log()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
