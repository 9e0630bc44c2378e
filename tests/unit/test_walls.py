"""Unit tests of several walls, playlists and named screens (dashstream/config/walls.py): which
wall is the default, what /dashboards.json lists, a POST /screens body, every refusal whole."""

from __future__ import annotations

import pytest

from dashstream.config.dashboard import DashboardError
from dashstream.config.walls import NO_WALLS, Playlist, Walls, parse_walls
from dashstream.sessions.screens import Assignment
from dashstream.streams.log import MAX_STREAMS

STREAMS = ["orders", "revenue", "default"]
OPS = {"title": "Ops", "tiles": [{"stream": "orders"}]}
SALES = {"title": "Sales", "tiles": [{"stream": "revenue"}, {"kind": "clock"}]}


def walls(**document) -> Walls:
    return parse_walls(document, "wall.toml", STREAMS)


def error_of(**document) -> str:
    with pytest.raises(DashboardError) as caught:
        parse_walls(document, "wall.toml", STREAMS)
    return str(caught.value)


def test_dashboard_is_the_default_wall_named_default_and_comes_first():
    parsed = walls(dashboards={"sales": SALES}, dashboard=OPS)
    assert list(parsed.dashboards) == ["default", "sales"]
    assert parsed.default == "default" and parsed.default_wall.title == "Ops"
    assert parsed.dashboards["sales"].name == "sales" and parsed.dashboards["default"].name == "default"


def test_without_dashboard_the_first_named_wall_in_file_order_is_the_default():
    parsed = walls(dashboards={"sales": SALES, "ops": OPS})
    assert parsed.default == "sales" and list(parsed.dashboards) == ["sales", "ops"]
    assert walls(dashboards={"ops": OPS, "sales": SALES}).default == "ops"


def test_no_wall_at_all():
    parsed = walls(streams={})
    assert parsed == NO_WALLS and parsed.default is None and parsed.default_wall is None
    assert parsed.to_json() == {"default": None, "dashboards": {}, "playlists": {}, "screens": {}}


def test_dashboards_json_lists_every_wall_playlist_and_screen():
    parsed = walls(dashboard=OPS, dashboards={"sales": SALES},
                   playlists={"lobby": {"dashboards": ["default", "sales"], "every": 30}},
                   screens={"lobby": {"playlist": "lobby"}, "hall": {"dashboard": "sales"}})
    body = parsed.to_json()
    assert body["default"] == "default"
    assert body["dashboards"] == {"default": parsed.dashboards["default"].to_json(),
                                  "sales": parsed.dashboards["sales"].to_json()}
    assert body["playlists"] == {"lobby": {"dashboards": ["default", "sales"], "every": 30}}
    assert body["screens"] == {"lobby": {"playlist": "lobby"}, "hall": {"dashboard": "sales"}}
    assert parsed.playlists["lobby"] == Playlist(("default", "sales"), 30)
    assert parsed.screens == {"lobby": Assignment(playlist="lobby"), "hall": Assignment(dashboard="sales")}


def test_a_playlist_may_show_a_wall_twice_and_every_is_5_to_86400_seconds():
    parsed = walls(dashboards={"ops": OPS, "sales": SALES},
                   playlists={"a": {"dashboards": ["ops", "sales", "ops"], "every": 5},
                              "b": {"dashboards": ["ops"], "every": 86400}, "c": {"dashboards": ["ops"], "every": 7.5}})
    assert [parsed.playlists[name].every for name in "abc"] == [5, 86400, 7.5]
    assert parsed.playlists["a"].dashboards == ("ops", "sales", "ops")


def test_a_post_body_is_checked_against_the_walls_and_playlists():
    parsed = walls(dashboards={"ops": OPS, "sales": SALES}, playlists={"lobby": {"dashboards": ["ops"], "every": 9}},
                   screens={"tv": {"dashboard": "ops"}})
    assert parsed.check_assignment({"dashboard": "sales"}) == Assignment(dashboard="sales")
    assert parsed.check_assignment({"playlist": "lobby"}) == Assignment(playlist="lobby")
    for body, reason in [
        ({"dashboard": "nope"}, ", key 'dashboard': no dashboard named 'nope'; defined: ops, sales"),
        ({"playlist": "ops"}, ", key 'playlist': no playlist named 'ops'; defined: lobby"),
        ({"dashboard": "ops", "playlist": "lobby"}, ": the body shows exactly one of \"dashboard\" or \"playlist\""),
        ({}, ": the body shows exactly one of \"dashboard\" or \"playlist\""),
        ({"wall": "ops"}, ", key 'wall': unknown key; allowed: dashboard, playlist"),
        ({"dashboard": 1}, ", key 'dashboard': must be a string, got 1"),
        (["ops"], ": the body must be an object with \"dashboard\" or \"playlist\""),
    ]:
        with pytest.raises(ValueError) as refused:
            parsed.check_assignment(body)
        assert str(refused.value) == reason
    assert Assignment(dashboard="a").to_json() == {"dashboard": "a"}
    assert Assignment(playlist="p").to_json() == {"playlist": "p"}


W = {"ops": OPS, "sales": SALES}
PLAY = {"lobby": {"dashboards": ["ops", "sales"], "every": 30}}


@pytest.mark.parametrize("document, expected", [
    ({"dashboards": ["ops"]}, "wall.toml: [dashboards] must hold tables [dashboards.NAME]"),
    ({"dashboards": {"ops": 3}}, "wall.toml: [dashboards.ops] must be a table"),
    ({"dashboards": {"o p": OPS}}, "wall.toml: [dashboards.o p]: a name is 1-64 letters, digits, '_' or '-'"),
    ({"dashboards": {"x" * 65: OPS}},
     f"wall.toml: [dashboards.{'x' * 65}]: a name is 1-64 letters, digits, '_' or '-'"),
    ({"dashboards": {"": OPS}}, "wall.toml: [dashboards.]: a name is 1-64 letters, digits, '_' or '-'"),
    ({"dashboard": OPS, "dashboards": {"default": SALES}},
     "wall.toml: [dashboards.default]: the name 'default' is [dashboard]'s; rename it"),
    ({"dashboards": {"ops": {"tiles": [{"stream": "nope"}]}}},
     "wall.toml: [dashboards.ops] tile 1 ('nope'), key 'stream': no stream named 'nope'; "
     "defined: default, orders, revenue"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": ["ops"], "every": 30, "shuffle": True}}},
     "wall.toml: [playlists.lobby], key 'shuffle': unknown key; allowed: dashboards, every"),
    ({"dashboards": W, "playlists": {"lobby": {"every": 30}}},
     "wall.toml: [playlists.lobby], key 'dashboards': missing; the walls to rotate, e.g. [\"ops\", \"sales\"]"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": [], "every": 30}}},
     "wall.toml: [playlists.lobby], key 'dashboards': must be a list of at least one wall's name, got []"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": "ops", "every": 30}}},
     "wall.toml: [playlists.lobby], key 'dashboards': must be a list of at least one wall's name, got 'ops'"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": ["ops", 2], "every": 30}}},
     "wall.toml: [playlists.lobby], key 'dashboards': must be a list of at least one wall's name, got ['ops', 2]"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": ["ops", "hr"], "every": 30}}},
     "wall.toml: [playlists.lobby], key 'dashboards': no dashboard named 'hr'; defined: ops, sales"),
    ({"playlists": {"lobby": {"dashboards": ["ops"], "every": 30}}},
     "wall.toml: [playlists.lobby], key 'dashboards': no dashboard named 'ops'; defined: (none)"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": ["ops"]}}},
     "wall.toml: [playlists.lobby], key 'every': missing; the seconds each wall shows (5-86400)"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": ["ops"], "every": 4.9}}},
     "wall.toml: [playlists.lobby], key 'every': must be a number of seconds from 5 to 86400, got 4.9"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": ["ops"], "every": 86401}}},
     "wall.toml: [playlists.lobby], key 'every': must be a number of seconds from 5 to 86400, got 86401"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": ["ops"], "every": True}}},
     "wall.toml: [playlists.lobby], key 'every': must be a number of seconds from 5 to 86400, got True"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": ["ops"], "every": "30"}}},
     "wall.toml: [playlists.lobby], key 'every': must be a number of seconds from 5 to 86400, got '30'"),
    ({"dashboards": W, "playlists": {"lobby": {"dashboards": ["ops"], "every": float("nan")}}},
     "wall.toml: [playlists.lobby], key 'every': must be a number of seconds from 5 to 86400, got nan"),
    ({"dashboards": W, "playlists": {"lob by": {"dashboards": ["ops"], "every": 9}}},
     "wall.toml: [playlists.lob by]: a name is 1-64 letters, digits, '_' or '-'"),
    ({"dashboards": W, "playlists": {"lobby": "ops"}}, "wall.toml: [playlists.lobby] must be a table"),
    ({"dashboards": W, "playlists": PLAY, "screens": {"tv": {}}},
     "wall.toml: [screens.tv]: a screen shows exactly one of \"dashboard\" or \"playlist\""),
    ({"dashboards": W, "playlists": PLAY, "screens": {"tv": {"dashboard": "ops", "playlist": "lobby"}}},
     "wall.toml: [screens.tv]: a screen shows exactly one of \"dashboard\" or \"playlist\""),
    ({"dashboards": W, "playlists": PLAY, "screens": {"tv": {"dashboard": "hr"}}},
     "wall.toml: [screens.tv], key 'dashboard': no dashboard named 'hr'; defined: ops, sales"),
    ({"dashboards": W, "playlists": PLAY, "screens": {"tv": {"playlist": "hall"}}},
     "wall.toml: [screens.tv], key 'playlist': no playlist named 'hall'; defined: lobby"),
    ({"dashboards": W, "screens": {"tv": {"playlist": "hall"}}},
     "wall.toml: [screens.tv], key 'playlist': no playlist named 'hall'; defined: (none)"),
    ({"dashboards": W, "screens": {"tv": {"dashboard": ["ops"]}}},
     "wall.toml: [screens.tv], key 'dashboard': must be a string, got ['ops']"),
    ({"dashboards": W, "screens": {"tv": {"wall": "ops"}}},
     "wall.toml: [screens.tv], key 'wall': unknown key; allowed: dashboard, playlist"),
    ({"dashboards": W, "screens": {"t.v": {"dashboard": "ops"}}},
     "wall.toml: [screens.t.v]: a name is 1-64 letters, digits, '_' or '-'"),
    ({"dashboards": W, "screens": {"tv": "ops"}}, "wall.toml: [screens.tv] must be a table"),
    ({"dashboards": W, "screens": "tv"}, "wall.toml: [screens] must hold tables [screens.NAME]"),
])
def test_every_mistake_names_the_file_the_table_and_the_key(document, expected):
    assert error_of(**document) == expected


def test_a_playlists_walls_fit_on_one_connection():
    names = [f"s{i}" for i in range(MAX_STREAMS + 1)]
    half = MAX_STREAMS // 2 + 1
    document = {"dashboards": {"a": {"tiles": [{"stream": name} for name in names[:half]]},
                               "b": {"tiles": [{"stream": name} for name in names[half:]]},
                               "c": {"tiles": [{"stream": name} for name in names[:MAX_STREAMS]]}},
                "playlists": {"ok": {"dashboards": ["a", "c"], "every": 10},
                              "big": {"dashboards": ["a", "b"], "every": 10}}}
    with pytest.raises(DashboardError) as refused:
        parse_walls(document, "w.toml", names)
    assert str(refused.value) == (f"w.toml: [playlists.big], key 'dashboards': its walls show {MAX_STREAMS + 1} "
                                  f"streams; at most {MAX_STREAMS} (the page subscribes to a playlist's streams on "
                                  "one connection)")
    del document["playlists"]["big"]
    assert parse_walls(document, "w.toml", names).playlists["ok"].dashboards == ("a", "c")
