"""The backplane's interface (``Backplane``, a Protocol) and its health.

* no ``--backplane`` (or ``memory://``): ``memory.MemoryBackplane``, one process, every
  stream's log in memory (``log.MemoryLog``), as a single instance has always run. It is on
  the same code path as Redis (the server asks it for logs, readiness, reloads and
  /streams), it just answers "nothing to share";
* ``redis://``, ``rediss://``, ``unix://``: ``redis.RedisBackplane``, one log per stream in
  Redis shared by every instance, one producer per stream across the fleet (a lease:
  ``fleet.py``), reloads and presence through Redis.

``Backplane`` lists every member the app, the server and the streams call; both backends
implement it (a test checks), and nothing else of a backend is called from outside.

``BackplaneHealth`` is the backplane's own state (``up``/``down``, since, reason): it tells
the clients that take control messages when it changes (``{"control": "backplane", ...}``),
and once on connect while it is down; publish, reload and /readyz refuse while it is down.
A failure is logged once when the state changes, never once per retry.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable, Protocol, runtime_checkable

from dashstream.messages import ControlMessage
from producer.base import DOWN, UP

logger = logging.getLogger("dashstream.backplane")


@runtime_checkable
class Backplane(Protocol):
    """What several instances share; see the module docstring."""

    kind: str  # "memory" or "redis"
    instance: str | None  # this instance's id in the fleet (None: no fleet)

    # --- building the streams (streams_from_config) ---

    def log_factory(self, spec: Any) -> Callable[..., Any] | None:
        """The shared stream's log factory, ``factory(name, *, history, clock, on_entry,
        on_hole)``; None: the memory log."""

    def runner_factory(self, spec: Any) -> Callable[[Any], Any] | None:
        """What runs the shared stream's source, ``runner(stream)`` (see ``streams.stream``);
        None: the plain supervisor."""

    # --- lifecycle (the server) ---

    def start(self, app: Any) -> None:
        """Before the streams start: connect (never fails; a backplane away is retried)."""

    def stop(self) -> None:
        """After the streams stopped: leave the fleet."""

    # --- what the app asks ---

    def welcome(self, session: Any) -> None:
        """A client just connected: tell it (if it takes control messages) that the backplane is down."""

    def not_ready(self) -> str | None:
        """Why /readyz must say 503, or None."""

    def health_fields(self) -> dict:
        """Fields /healthz adds."""

    def reload(self, here: Callable[[], int]) -> int:
        """POST /reload: reload every instance's control clients; ``here()`` reloads this
        one's. Returns how many were told; raises ``LogUnavailable`` while down."""

    def assign_screen(self, name: str, fields: dict, since: float, here: Callable[[], int]) -> None:
        """POST /screens/NAME: screen ``name`` shows ``fields`` (``{"dashboard": ...}`` or
        ``{"playlist": ...}``) from ``since`` on every instance; ``here()`` applies it to this
        one. Raises ``LogUnavailable`` while down."""

    def connected_screens(self, here: Callable[[str | None], dict[str, list[dict]]]) -> dict[str, list[dict]]:
        """/screens.json: screen name -> its connections over the fleet; ``here(instance)``
        gives this instance's."""

    def describe_streams(self, described: list[dict]) -> dict:
        """/streams's body from this instance's streams."""

    def describe(self) -> dict | None:
        """The backplane's metrics (None: none)."""


class BackplaneHealth:
    """Up or down, since when and why; broadcast to control clients on every change."""

    def __init__(self, name: str, sessions: Callable[[], Iterable[Any]] = tuple,
                 clock: Callable[[], float] = time.time, logger: logging.Logger = logger):
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


