"""Unit tests of the named screens (dashstream/sessions/screens.py): assignments and since,
who is told of a switch, a reload's walls, the connections listed by /screens.json."""

from __future__ import annotations

import json

import pytest

from dashstream.config.walls import parse_walls
from dashstream.sessions.screens import Assignment, Screens, UnknownScreen, assignment_from_json, screen_message

STREAMS = ["orders", "revenue"]
OPS = {"tiles": [{"stream": "orders"}]}
SALES = {"tiles": [{"stream": "revenue"}]}


def walls(**extra):
    document = {"dashboards": {"ops": OPS, "sales": SALES},
                "playlists": {"lobby": {"dashboards": ["ops", "sales"], "every": 30}},
                "screens": {"tv": {"dashboard": "ops"}, "hall": {"playlist": "lobby"}}}
    document.update(extra)
    return parse_walls(document, "w.toml", STREAMS)


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Session:
    def __init__(self):
        self.told: list[dict] = []

    def send_control(self, message) -> None:
        self.told.append(json.loads(message.text))


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def screens(clock):
    return Screens(walls(), clock=clock)


def test_every_configured_screen_starts_with_the_files_assignment_since_the_start(screens):
    assert screens.assignment("tv") == (Assignment(dashboard="ops"), 1000.0)
    assert screens.assignment("hall") == (Assignment(playlist="lobby"), 1000.0)


def test_an_unknown_screen_names_the_configured_ones(screens):
    with pytest.raises(UnknownScreen) as refused:
        screens.assignment("lobby")
    assert str(refused.value) == "no screen named 'lobby'; configured: tv, hall"
    with pytest.raises(UnknownScreen) as refused:
        Screens(walls(screens={})).assignment("tv")
    assert str(refused.value) == "no screen named 'tv'; configured: (none)"
    with pytest.raises(UnknownScreen):
        screens.check("lobby", {"dashboard": "ops"})


def test_a_switch_tells_every_session_of_that_screen_and_no_other(screens, clock):
    first, second, other = Session(), Session(), Session()
    screens.join("tv", first, "10.0.0.1", 1.0)
    screens.join("tv", second, "10.0.0.2", 2.0)
    screens.join("hall", other, "10.0.0.3", 3.0)
    clock.now = 1500.0
    assert screens.assign("tv", screens.check("tv", {"dashboard": "sales"})) == 2
    assert first.told == second.told == [{"control": "screen", "screen": "tv", "dashboard": "sales"}]
    assert other.told == []
    assert screens.assignment("tv") == (Assignment(dashboard="sales"), 1500.0)
    assert screens.assign("hall", Assignment(dashboard="ops"), since=7.0) == 1
    assert other.told == [{"control": "screen", "screen": "hall", "dashboard": "ops"}]
    assert screens.assignment("hall") == (Assignment(dashboard="ops"), 7.0)


def test_the_same_assignment_heard_again_tells_nobody(screens):
    session = Session()
    screens.join("tv", session, "10.0.0.1", 1.0)
    assert screens.assign("tv", Assignment(playlist="lobby"), since=5.0) == 1
    assert screens.assign("tv", Assignment(playlist="lobby"), since=5.0) == 0  # the backplane's copy
    assert screens.assign("tv", Assignment(playlist="lobby"), since=6.0) == 1  # a new POST of the same
    assert len(session.told) == 2


def test_an_assignment_the_walls_do_not_have_or_for_an_unknown_screen_is_ignored(screens):
    session = Session()
    screens.join("tv", session, "10.0.0.1", 1.0)
    assert screens.assign("tv", Assignment(dashboard="hr")) == 0
    assert screens.assign("tv", Assignment(playlist="ops")) == 0
    assert screens.assign("lobby", Assignment(dashboard="ops")) == 0
    assert session.told == [] and screens.assignment("tv")[0] == Assignment(dashboard="ops")
    assert "lobby" not in screens.assigned


def test_a_session_that_left_is_not_told_and_not_listed(screens):
    staying, leaving = Session(), Session()
    screens.join("tv", staying, "10.0.0.1", 1.0)
    screens.join("tv", leaving, "10.0.0.2", 2.0)
    screens.leave(leaving)
    screens.leave(leaving)  # twice: nothing
    screens.leave(Session())  # never joined: nothing
    assert screens.assign("tv", Assignment(dashboard="sales")) == 1
    assert leaving.told == []
    screens.leave(staying)
    assert screens.sessions == {} and screens.connected_here("i1") == {}


def test_a_session_joining_again_is_in_one_screen(screens):
    session = Session()
    screens.join("tv", session, "10.0.0.1", 1.0)
    screens.join("hall", session, "10.0.0.1", 2.0)
    assert list(screens.sessions) == ["hall"]


def test_a_screen_name_not_configured_is_registered_for_a_later_reload(screens):
    session = Session()
    screens.join("lobby", session, "10.0.0.9", 4.0)
    assert screens.connected_here(None) == {"lobby": [{"address": "10.0.0.9", "since": 4.0, "instance": None}]}
    assert [screen["name"] for screen in screens.describe(screens.connected_here(None))["screens"]] == ["tv", "hall"]


def test_screens_json_lists_every_screen_its_assignment_since_and_connections_oldest_first(screens):
    screens.join("tv", Session(), "10.0.0.2", 20.0)
    screens.join("tv", Session(), "10.0.0.1", 10.0)
    screens.join("tv", Session(), "10.0.0.0", 20.0)
    connected = screens.connected_here("host:5000:ab")
    assert connected == {"tv": [{"address": "10.0.0.1", "since": 10.0, "instance": "host:5000:ab"},
                                {"address": "10.0.0.0", "since": 20.0, "instance": "host:5000:ab"},
                                {"address": "10.0.0.2", "since": 20.0, "instance": "host:5000:ab"}]}
    assert screens.describe(connected) == {"screens": [
        {"name": "tv", "dashboard": "ops", "since": 1000.0, "connected": connected["tv"]},
        {"name": "hall", "playlist": "lobby", "since": 1000.0, "connected": []}]}


def test_a_reload_keeps_valid_assignments_and_takes_the_files_for_the_rest(screens, clock):
    screens.assign("tv", Assignment(dashboard="sales"), since=1100.0)
    screens.assign("hall", Assignment(dashboard="ops"), since=1200.0)
    clock.now = 2000.0
    # The new file: no wall 'ops' any more, a new screen 'desk'; 'hall' keeps the playlist.
    screens.rewall(parse_walls({"dashboards": {"sales": SALES, "hr": OPS},
                                "playlists": {"lobby": {"dashboards": ["sales"], "every": 30}},
                                "screens": {"tv": {"dashboard": "hr"}, "hall": {"playlist": "lobby"},
                                            "desk": {"dashboard": "hr"}}}, "w.toml", STREAMS))
    assert screens.assigned == {"tv": (Assignment(dashboard="sales"), 1100.0),  # still valid: kept
                                "hall": (Assignment(playlist="lobby"), 2000.0),  # 'ops' is gone: the file's
                                "desk": (Assignment(dashboard="hr"), 2000.0)}
    assert list(screens.walls.dashboards) == ["sales", "hr"]
    # Not steered (the file's own): the next file's, with its since kept when it is the same.
    clock.now = 3000.0
    screens.rewall(parse_walls({"dashboards": {"sales": SALES, "hr": OPS},
                                "playlists": {"lobby": {"dashboards": ["sales"], "every": 30}},
                                "screens": {"tv": {"dashboard": "hr"}, "hall": {"dashboard": "sales"},
                                            "desk": {"dashboard": "hr"}}}, "w.toml", STREAMS))
    assert screens.assigned == {"tv": (Assignment(dashboard="sales"), 1100.0),  # steered: kept again
                                "hall": (Assignment(dashboard="sales"), 3000.0),  # the new file's
                                "desk": (Assignment(dashboard="hr"), 2000.0)}  # unchanged: its since
    screens.rewall(parse_walls({"dashboards": {"sales": SALES}}, "w.toml", STREAMS))
    assert screens.assigned == {}  # no screens in the file: none


def test_the_messages_and_the_stored_form():
    assert json.loads(screen_message("tv", Assignment(playlist="p")).text) == {
        "control": "screen", "screen": "tv", "playlist": "p"}
    assert assignment_from_json({"dashboard": "ops"}) == Assignment(dashboard="ops")
    assert assignment_from_json({"playlist": "lobby"}) == Assignment(playlist="lobby")
    for bad in ({}, {"dashboard": 1}, {"playlist": None}, {"dashboard": "a", "playlist": "b"}, {"wall": "a"}):
        assert assignment_from_json(bad) is None
