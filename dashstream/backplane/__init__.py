"""The backplane: what several instances share, chosen by ``--backplane``'s URL scheme.

* no ``--backplane`` (or ``memory://``): ``memory.MemoryBackplane``, one process, every
  stream's log in memory, as a single instance has always run. It is on the same code path
  as Redis (the server asks it for logs, readiness, reloads and /streams), it just answers
  "nothing to share";
* ``redis://``, ``rediss://``, ``unix://``: ``redis.RedisBackplane``, one log per stream in
  Redis shared by every instance, one producer per stream across the fleet (a lease),
  reloads and presence through Redis;
* ``redis+sentinel://HOST:26379,HOST2:26379/MASTER/DB``: the same, on the master that Redis
  Sentinel names (``sentinel.py``), found again at every reconnect after a failover.

This module only parses the URL and picks the backend; it imports redis-py only when a
Redis URL is chosen (after ``monkey_patch``), so ``dashstream.config`` can check the option
without loading any I/O library (broadcaster's ``_create_backend``).
"""

from __future__ import annotations

import importlib.util

from dashstream.backplane.memory import MemoryBackplane
from dashstream.backplane.sentinel import is_sentinel_url, parse_sentinel_url
from producer.urls import SecretUrl, parse_url, redact_url

MEMORY = "memory://"
REDIS_SCHEMES = ("redis", "rediss", "unix")
INSTALL = "pip install 'dashstream[redis]'"


def parse_backplane_url(text: str) -> str:
    """``--backplane``'s value, checked: ``memory://`` or a Redis URL redis-py can use, with
    redis-py installed. Raises ValueError with the reason (the password never shown)."""
    text = text.strip()
    if text.lower() in ("memory", MEMORY):
        return MEMORY
    if is_sentinel_url(text):
        parse_sentinel_url(text)  # raises naming what is wrong
        if importlib.util.find_spec("redis") is None:
            raise ValueError(f"needs the Python package 'redis', which is not installed: {INSTALL}")
        return SecretUrl(text)
    parts = parse_url(text, (*REDIS_SCHEMES, "memory"))
    shown = redact_url(text)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        raise ValueError(f"memory:// takes nothing after it, got {shown!r}")
    if scheme == "unix":
        if not parts.path:
            raise ValueError(f"{shown!r} names no socket: unix:///path/to/redis.sock")
    else:
        if not parts.hostname:
            raise ValueError(f"{shown!r} names no host: redis://HOST:6379/0")
        database = parts.path.lstrip("/")
        if database and not database.isdigit():
            raise ValueError(f"{shown!r}: the path is the database number (redis://HOST:6379/0), got {database!r}")
    if importlib.util.find_spec("redis") is None:
        raise ValueError(f"needs the Python package 'redis', which is not installed: {INSTALL}")
    return SecretUrl(text)


def make_backplane(url: str | None, instance: str):
    """The backplane for ``--backplane URL`` (None: memory)."""
    if url is None or url == MEMORY:
        return MemoryBackplane()
    from dashstream.backplane.redis import RedisBackplane  # imports redis-py: after monkey_patch

    return RedisBackplane(url, instance=instance)
