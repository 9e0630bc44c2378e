"""Named screens: what each one shows, since when, and the sessions that are it.

A TV opened once at ``/?screen=lobby`` connects with ``screen=lobby`` in its query; the
session is registered here under that name (``join``) until it ends (``leave``). What a
screen shows (its *assignment*: a wall or a playlist) starts as ``[screens.NAME]`` says and
changes with ``POST /screens/NAME``: ``assign`` keeps it, with the time it began, and sends
``{"control": "screen", "screen": NAME, "dashboard": ...}`` (or ``"playlist"``) to every
session of that screen here. Across a fleet the backplane carries the change to the other
instances, which call ``assign`` too (``backplane/redis.py``); a screen's connected
addresses over the fleet come from the backplane's presence.

A reload of the file (``rewall``) keeps each steered assignment that still names a wall or
playlist of the new file, and takes the new file's for the others. Pure: no I/O, no eventlet;
the clock is injected.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from dashstream.messages import ControlMessage

# ``walls`` below is a ``config.walls.Walls`` (dashboards, playlists, screens,
# check_assignment); the configuration sits above the sessions and imports this module, so
# it is not named here.
Walls = Any


@dataclass(frozen=True)
class Assignment:
    """What a screen shows: a wall or a playlist (exactly one is set)."""

    dashboard: str | None = None
    playlist: str | None = None

    def to_json(self) -> dict:
        return {"dashboard": self.dashboard} if self.dashboard is not None else {"playlist": self.playlist}


class UnknownScreen(LookupError):
    """No screen of that name in the config; the message lists the configured ones."""


def screen_message(name: str, assignment: Assignment) -> ControlMessage:
    return ControlMessage({"control": "screen", "screen": name, **assignment.to_json()})


def assignment_from_json(fields: Mapping[str, Any]) -> Assignment | None:
    """An assignment as ``Assignment.to_json`` wrote it (in Redis, in the state file); None
    when it is not one."""
    if set(fields) == {"dashboard"} and isinstance(fields["dashboard"], str):
        return Assignment(dashboard=fields["dashboard"])
    if set(fields) == {"playlist"} and isinstance(fields["playlist"], str):
        return Assignment(playlist=fields["playlist"])
    return None


def stored_form(assignment: Assignment, since: float) -> str:
    """An assignment and its since as kept in Redis and in the ``--state`` file."""
    return json.dumps({**assignment.to_json(), "since": since})


def from_stored_form(body: str) -> tuple[Assignment, float] | None:
    """``stored_form`` read back; None when it is not one (another program's, a damaged row)."""
    try:
        fields = json.loads(body)
        since = float(fields.pop("since"))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    assignment = assignment_from_json(fields)
    return (assignment, since) if assignment is not None else None


class Screens:
    """This instance's view of the named screens (see the module docstring)."""

    def __init__(self, walls: Walls, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.walls = walls
        started = clock()
        # name -> (assignment, since); every configured screen has one.
        self.assigned: dict[str, tuple[Assignment, float]] = {
            name: (assignment, started) for name, assignment in walls.screens.items()}
        # screen name -> {session: (address, since)}: its sessions here
        self.sessions: dict[str, dict[Any, tuple[str, float]]] = {}
        self._screen_of: dict[Any, str] = {}  # session -> the screen it is

    # --- what a screen shows -----------------------------------------------------------------

    def _known(self, name: str) -> None:
        if name not in self.assigned:
            configured = ", ".join(self.assigned) if self.assigned else "(none)"
            raise UnknownScreen(f"no screen named {name!r}; configured: {configured}")

    def assignment(self, name: str) -> tuple[Assignment, float]:
        """``(assignment, since)``; ``UnknownScreen`` for a name the file does not define."""
        self._known(name)
        return self.assigned[name]

    def check(self, name: str, body: Any) -> Assignment:
        """A ``POST /screens/NAME`` body for a known screen -> the assignment (ValueError)."""
        self._known(name)
        return self.walls.check_assignment(body)

    def assign(self, name: str, assignment: Assignment, since: float | None = None) -> int:
        """Show ``assignment`` on screen ``name`` from ``since`` (default: now); tell its
        sessions here. Returns how many were told. A name the file does not know (another
        instance's newer file) is ignored: 0."""
        if name not in self.assigned or not self._valid(assignment):
            return 0
        since = self.clock() if since is None else since
        if self.assigned[name] == (assignment, since):
            return 0  # heard again (the backplane's copy after a reconnect): nothing new to tell
        self.assigned[name] = (assignment, since)
        message = screen_message(name, assignment)
        receivers = list(self.sessions.get(name, ()))
        for session in receivers:
            session.send_control(message)
        return len(receivers)

    def _valid(self, assignment: Assignment) -> bool:
        if assignment.dashboard is not None:
            return assignment.dashboard in self.walls.dashboards
        return assignment.playlist in self.walls.playlists

    def restore(self, stored: Mapping[str, str]) -> None:
        """At start: what the ``--state`` file kept (name -> ``stored_form``); a screen the
        file no longer defines, or a wall it no longer has, is ignored."""
        for name, body in stored.items():
            kept = from_stored_form(body)
            if kept is not None:
                self.assign(name, *kept)

    def rewall(self, walls: Walls) -> None:
        """A reloaded file: a screen steered away from the file's assignment (POST) keeps
        what it shows while the new file still has that wall or playlist; every other screen
        takes the new file's (keeping its since if that is what it shows already); screens
        the file no longer has are dropped."""
        now = self.clock()
        old_file, kept = self.walls.screens, dict(self.assigned)
        self.walls = walls
        self.assigned = {}
        for name, configured in walls.screens.items():
            old = kept.get(name)
            steered = old is not None and old[0] != old_file.get(name)
            if old is not None and (steered and self._valid(old[0]) or old[0] == configured):
                self.assigned[name] = old
            else:
                self.assigned[name] = (configured, now)

    # --- the sessions that are a screen --------------------------------------------------------

    def join(self, name: str, session: Any, address: str, since: float) -> None:
        """``session`` (from ``address``, opened at unix time ``since``) is screen ``name``."""
        self.leave(session)
        self.sessions.setdefault(name, {})[session] = (address, since)
        self._screen_of[session] = name

    def leave(self, session: Any) -> None:
        """``session`` ended (a session that never joined: nothing)."""
        name = self._screen_of.pop(session, None)
        if name is not None:
            members = self.sessions[name]
            del members[session]
            if not members:
                del self.sessions[name]

    def connected_here(self, instance: str | None) -> dict[str, list[dict]]:
        """Screen name -> its sessions here: ``{"address", "since", "instance"}``, oldest first."""
        return {name: [{"address": address, "since": since, "instance": instance}
                       for address, since in sorted(members.values(), key=lambda item: (item[1], item[0]))]
                for name, members in self.sessions.items() if members}

    def describe(self, connected: Mapping[str, list[dict]]) -> dict:
        """``GET /screens.json``: every configured screen, what it shows since when, and its
        connections (``connected``: this instance's, or the fleet's from the backplane)."""
        return {"screens": [{"name": name, **assignment.to_json(), "since": since,
                             "connected": list(connected.get(name, ()))}
                            for name, (assignment, since) in self.assigned.items()]}
