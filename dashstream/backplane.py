"""The backplane: what several instances share, chosen by ``--backplane``'s URL scheme.

* no ``--backplane`` (or ``memory://``): ``MemoryBackplane``, one process, every stream's
  log in memory (``log.MemoryLog``), as a single instance has always run. It is on the same
  code path as Redis (the server asks it for logs, readiness, reloads and /streams), it just
  answers "nothing to share";
* ``redis://``, ``rediss://``, ``unix://``: ``redis_backplane.RedisBackplane``, one log per
  stream in Redis shared by every instance, one producer per stream across the fleet (a
  lease), reloads and presence through Redis.

``BackplaneHealth`` is the backplane's own state (``up``/``down``, since, reason): it tells
the clients that take control messages when it changes (``{"control": "backplane", ...}``),
and once on connect while it is down; publish, reload and /readyz refuse while it is down.
A failure is logged once when the state changes, never once per retry.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any, Callable, Iterable

from dashstream.session import ControlMessage
from producer.base import SecretUrl, parse_url, redact_url

log = logging.getLogger("dashstream.backplane")

UP, DOWN = "up", "down"
MEMORY = "memory://"
REDIS_SCHEMES = ("redis", "rediss", "unix")
INSTALL = "pip install 'dashstream[redis]'"


def parse_backplane_url(text: str) -> str:
    """``--backplane``'s value, checked: ``memory://`` or a Redis URL redis-py can use, with
    redis-py installed. Raises ValueError with the reason (the password never shown)."""
    text = text.strip()
    if text.lower() in ("memory", MEMORY):
        return MEMORY
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


class BackplaneHealth:
    """Up or down, since when and why; broadcast to control clients on every change."""

    def __init__(self, name: str, sessions: Callable[[], Iterable[Any]] = tuple,
                 clock: Callable[[], float] = time.time, logger: logging.Logger = log):
        self.name = name  # for log lines: the redacted URL
        self.sessions = sessions
        self.clock = clock
        self.log = logger
        self.state = DOWN
        self.reason = "connecting"
        self.since = clock()
        self._told = False  # the first state found is always reported, even "down"

    @property
    def up(self) -> bool:
        return self.state == UP

    def set(self, state: str, reason: str = "") -> bool:
        """Enter ``state``; only a change of state counts (a retry failing with other words
        is the same outage). Returns whether it changed."""
        if state == self.state and self._told:
            return False
        self._told = True
        self.state, self.reason, self.since = state, reason, self.clock()
        if state == UP:
            self.log.info("backplane %s is up", self.name)
        else:
            self.log.warning("backplane %s is down: %s; publishing is refused (503) and retried until it is back",
                             self.name, reason)
        message = self.message()
        for session in list(self.sessions()):
            session.send_control(message)
        return True

    def message(self) -> ControlMessage:
        return ControlMessage({"control": "backplane", "state": self.state, "since": self.since,
                               "reason": self.reason})

    def welcome(self, session: Any) -> None:
        """A client that just connected learns at once that the backplane is down."""
        if self.state != UP and session.control:
            session.send_control(self.message())

    def describe(self) -> dict:
        return {"state": self.state, "since": self.since, "reason": self.reason}


class MemoryBackplane:
    """Nothing shared: one process, logs in memory. The default."""

    kind = "memory"
    up = True
    instance = None

    def log_factory(self, spec: Any):
        return None  # SharedStream's default: MemoryLog

    def adopt(self, spec: Any, stream: Any) -> None:
        pass

    def start(self, app: Any) -> None:
        pass

    def stop(self) -> None:
        pass

    def welcome(self, session: Any) -> None:
        pass

    def not_ready(self) -> str | None:
        return None

    def health_fields(self) -> dict:
        return {}

    def reload(self, here: Callable[[], int]) -> int:
        return here()

    def describe_streams(self, described: list[dict]) -> dict:
        return {"streams": described}

    def describe(self) -> dict | None:
        return None  # no backplane metrics


def make_backplane(url: str | None, instance: str):
    """The backplane for ``--backplane URL`` (None: memory)."""
    if url is None or url == MEMORY:
        return MemoryBackplane()
    from dashstream.redis_backplane import RedisBackplane  # imports redis-py: after monkey_patch

    return RedisBackplane(url, instance=instance)
