"""What one Redis command costs the server's process under eventlet, by the way it is sent:
redis-py's pooled client, a single-connection client, redis-py's bare ``Connection``, and a
green socket writing the protocol by hand (the floor). Why the backplane's tail and leased
producers use a connection of their own (dashstream/redis_backplane.py).

    python benchmarks/redis_command_cost.py --count 3000

CPU time of this process (``time.process_time``) per command, against a redis-server of its
own on 127.0.0.1; PING, the append-like EVALSHA and an XREAD of two empty streams.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import redis  # noqa: E402 - after monkey_patch, as the server imports it
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402

SCRIPT = "return {redis.call('hincrby', KEYS[1], 's', 1), 'x'}"


def per_call(function, count: int) -> float:
    start = time.process_time()
    for _ in range(count):
        function()
    return (time.process_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="dashstream-redis-cost-")
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                               "127.0.0.1", "--dir", folder, "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        options = dict(retry=Retry(NoBackoff(), 0), health_check_interval=0)
        url = f"redis://127.0.0.1:{port}/0"
        pooled = redis.Redis.from_url(url, **options)
        single = redis.Redis.from_url(url, single_connection_client=True, **options)
        bare = redis.Connection(host="127.0.0.1", port=port, **options)
        bare.connect()
        sha = pooled.script_load(SCRIPT)
        raw = socket.create_connection(("127.0.0.1", port))

        def bare_call(*words):
            bare.send_command(*words)
            return bare.read_response()

        def raw_ping():
            raw.sendall(b"*1\r\n$4\r\nPING\r\n")
            raw.recv(64)

        print(f"load average: {os.getloadavg()}; redis-py {redis.__version__}, RESP{bare.protocol}")
        print("| command | pooled client µs | single-connection client µs | bare Connection µs | raw socket µs |")
        print("| --- | --- | --- | --- | --- |")
        n = args.count
        print(f"| PING | {per_call(pooled.ping, n):.0f} | {per_call(single.ping, n):.0f} | "
              f"{per_call(lambda: bare_call('PING'), n):.0f} | {per_call(raw_ping, n):.0f} |")
        print(f"| EVALSHA | {per_call(lambda: pooled.evalsha(sha, 1, 'k'), n):.0f} | "
              f"{per_call(lambda: single.evalsha(sha, 1, 'k'), n):.0f} | "
              f"{per_call(lambda: bare_call('EVALSHA', sha, 1, 'k'), n):.0f} | |")
        streams = {"a": "0-0", "b": "0-0"}
        print(f"| XREAD | {per_call(lambda: pooled.xread(streams, count=10), n):.0f} | "
              f"{per_call(lambda: single.xread(streams, count=10), n):.0f} | "
              f"{per_call(lambda: bare_call('XREAD', 'COUNT', 10, 'STREAMS', 'a', 'b', '0-0', '0-0'), n):.0f} | |")
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
