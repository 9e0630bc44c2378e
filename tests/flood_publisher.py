"""A bounded flood for tests and benchmarks, in its own process (plain redis-py / pyzmq, no
eventlet):

    python tests/flood_publisher.py redis URL CHANNEL RATE SECONDS
    python tests/flood_publisher.py zmq URL SECONDS

``redis``: PUBLISHes ``{"variable": n}`` on CHANNEL at RATE messages a second (pipelines of
one 5 ms batch each, so the rate holds without one round trip per message). ``zmq``: binds a
PUB socket at URL and sends garbage (a frame that is not JSON) in a tight loop. Both print
``started`` once they send, stop after SECONDS whatever happens, and print the number of
messages sent as the last line.
"""

import sys
import time


def redis_flood(url: str, channel: str, rate: float, seconds: float) -> int:
    import redis

    client = redis.Redis.from_url(url)
    batch_span = 0.005
    per_batch = max(1, round(rate * batch_span))
    sent = 0
    start = time.monotonic()
    print("started", flush=True)
    while (now := time.monotonic()) - start < seconds:
        due = start + sent / rate  # when the next message is due: behind, send at once
        if due > now:
            time.sleep(due - now)
        pipe = client.pipeline(transaction=False)
        for n in range(sent, sent + per_batch):
            pipe.publish(channel, b'{"variable": %d}' % n)
        pipe.execute()
        sent += per_batch
    return sent


def zmq_flood(url: str, seconds: float) -> int:
    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.PUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDHWM, 100_000)
    socket.bind(url)
    sent = 0
    start = time.monotonic()
    print("started", flush=True)
    while time.monotonic() - start < seconds:
        for _ in range(1000):
            socket.send(b"\x00garbage, not json \xff")
        sent += 1000
    socket.close()
    context.term()
    return sent


def main() -> int:
    kind = sys.argv[1]
    if kind == "redis":
        sent = redis_flood(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    elif kind == "zmq":
        sent = zmq_flood(sys.argv[2], float(sys.argv[3]))
    else:
        raise SystemExit(f"unknown flood {kind!r}: redis or zmq")
    print(sent, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
