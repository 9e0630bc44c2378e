"""What the Redis backplane's modules share: the key names and the errors that mean "Redis
is away" (``redis.py``: store, tail, shared health, reload; ``fleet.py``: leases, presence).

    dashstream:{NAME}:log      a Redis Stream: the last ``history`` entries (id = seq)
    dashstream:{NAME}:meta     a hash: e = epoch, s = last seq
    dashstream:{NAME}:lease    the instance that runs the stream's producer (SET NX PX)
    dashstream:{NAME}:health   the producer's source state (state, reason, since, holder)
    dashstream:control         a Redis Stream every instance tails: reload, health, epoch, lease
    dashstream:presence:{ID}   a hash per instance: subscribers per stream (expires)
    dashstream:instances       a set of instance ids (presence hashes say which are alive)
    dashstream:screens         a hash: named screen -> what it shows and since when (JSON)
    dashstream:screens:presence:{ID}  the named screens connected to an instance (JSON, expires)
"""

from __future__ import annotations

from typing import Any

from dashstream.backplane import INSTALL

try:
    import redis
except ImportError as missing:  # pragma: no cover - config.py refuses --backplane without it
    raise ImportError(f"--backplane needs the Python package 'redis': {INSTALL}") from missing

PREFIX = "dashstream:"
CONTROL = PREFIX + "control"
INSTANCES = PREFIX + "instances"
SCREENS = PREFIX + "screens"
CONTROL_MAXLEN = 1000

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


def stream_key(name: str, part: str) -> str:
    return f"{PREFIX}{{{name}}}:{part}"


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
