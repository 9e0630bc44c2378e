"""Unit tests of the [dashboard] config (dashstream/dashboard.py) and its errors."""

from __future__ import annotations

import pytest

from dashstream.config.dashboard import Dashboard, DashboardError, Tile, parse_dashboard
from dashstream.streams.log import MAX_STREAMS

STREAMS = ["signups", "orders", "default"]


def parsed(**table) -> Dashboard:
    return parse_dashboard(table, "wall.toml", STREAMS)


def error_of(**table) -> str:
    with pytest.raises(DashboardError) as caught:
        parse_dashboard(table, "wall.toml", STREAMS)
    message = str(caught.value)
    assert message.startswith("wall.toml: ")
    return message


def test_a_full_dashboard():
    dashboard = parsed(title="Ops", columns=3, tiles=[
        {"stream": "signups", "label": "Sign-ups", "unit": "", "decimals": 0, "warn": 100, "crit": 50,
         "below": True, "chart": False},
        {"stream": "orders"}])
    assert dashboard.title == "Ops" and dashboard.columns == 3
    assert dashboard.tiles[0] == Tile("signups", "Sign-ups", "", 0, 100, 50, True, False)
    assert dashboard.tiles[1] == Tile("orders", "orders")  # label defaults to the stream's name
    assert dashboard.to_json()["tiles"][1] == {"stream": "orders", "label": "orders", "unit": "", "decimals": None,
                                               "warn": None, "crit": None, "below": False, "chart": True}
    assert parsed(tiles=[{"stream": "orders"}]).title == "dashstream"
    assert parsed(tiles=[{"stream": "orders"}]).columns is None


@pytest.mark.parametrize("table, expected", [
    ({"tiles": [{"stream": "nope"}]}, "tile 1 ('nope'), key 'stream': no stream named 'nope'"),
    ({"tiles": [{"stream": "orders", "colour": "red"}]}, "tile 1 ('orders'), key 'colour': unknown key"),
    ({"tiles": [{"stream": "orders"}, {"label": "x"}]}, "tile 2, key 'stream': missing"),
    ({"tiles": [{"stream": "orders", "warn": 10, "crit": 5}]},
     "tile 1 ('orders'), key 'crit': crit (5) must be above warn (10)"),
    ({"tiles": [{"stream": "orders", "warn": 10, "crit": 10}]}, "key 'crit'"),
    ({"tiles": [{"stream": "orders", "warn": 5, "crit": 10, "below": True}]}, "with below = true"),
    ({"tiles": [{"stream": "orders", "decimals": 11}]}, "key 'decimals': must be an integer from 0 to 10"),
    ({"tiles": [{"stream": "orders", "decimals": -1}]}, "key 'decimals'"),
    ({"tiles": [{"stream": "orders", "decimals": True}]}, "key 'decimals'"),
    ({"tiles": [{"stream": "orders", "warn": "high"}]}, "key 'warn': must be a number"),
    ({"tiles": [{"stream": "orders", "crit": float("nan")}]}, "key 'crit': must be a number"),
    ({"tiles": [{"stream": "orders", "chart": "yes"}]}, "key 'chart': must be true or false"),
    ({"tiles": [{"stream": "orders", "below": 1}]}, "key 'below': must be true or false"),
    ({"tiles": [{"stream": "orders", "label": 3}]}, "key 'label': must be a string"),
    ({"tiles": [{"stream": 3}]}, "tile 1, key 'stream': must be a string"),
    ({"tiles": [{"stream": "orders"}, {"stream": "orders"}]},
     "tile 2 ('orders'), key 'stream': the stream already has a tile"),
    ({"tiles": ["orders"]}, "tile 1: must be a table"),
    ({"tiles": []}, "at least one"),
    ({}, "at least one"),
    ({"tiles": [{"stream": "orders"}], "theme": "dark"}, "[dashboard], key 'theme': unknown key"),
    ({"tiles": [{"stream": "orders"}], "columns": 0}, "key 'columns': must be an integer from 1 to 12"),
    ({"tiles": [{"stream": "orders"}], "columns": 13}, "key 'columns'"),
    ({"tiles": [{"stream": "orders"}], "title": 5}, "key 'title': must be a string"),
])
def test_every_mistake_names_the_file_the_tile_and_the_key(table, expected):
    assert expected in error_of(**table)


def test_the_layout_as_the_page_reads_it():
    layout = parsed(title="T", columns=12, tiles=[{"stream": "orders", "decimals": 10}]).to_json()
    assert layout == {"title": "T", "columns": 12, "tiles": [
        {"stream": "orders", "label": "orders", "unit": "", "decimals": 10, "warn": None, "crit": None,
         "below": False, "chart": True}]}
    assert parsed(columns=1, tiles=[{"stream": "orders", "decimals": 0}]).columns == 1


def test_whole_messages():
    assert error_of(theme=1, tiles=[]) == ("wall.toml: [dashboard], key 'theme': unknown key; "
                                           "allowed: columns, tiles, title")
    assert error_of(tiles=[{"stream": "orders", "size": 2}]) == (
        "wall.toml: tile 1 ('orders'), key 'size': unknown key; allowed: below, chart, crit, decimals, label, "
        "stale_after, stream, unit, warn")
    assert error_of(tiles=[{"stream": "x"}]) == (
        "wall.toml: tile 1 ('x'), key 'stream': no stream named 'x'; defined: default, orders, signups")
    assert error_of(tiles=[{"stream": "orders", "warn": 9, "crit": 3}]) == (
        "wall.toml: tile 1 ('orders'), key 'crit': crit (3) must be above warn (9); set below = true if low "
        "values are the bad ones")
    assert error_of(tiles=[{"stream": "orders", "warn": 3, "crit": 3, "below": True}]) == (
        "wall.toml: tile 1 ('orders'), key 'crit': with below = true (low is bad) crit (3) must be below warn (3)")
    assert error_of(tiles=[{"stream": "orders", "decimals": 2.0}]).endswith("must be an integer from 0 to 10, got 2.0")


def test_warn_alone_or_crit_alone_is_fine():
    assert parsed(tiles=[{"stream": "orders", "warn": 3}]).tiles[0].warn == 3
    assert parsed(tiles=[{"stream": "orders", "crit": 3, "below": True}]).tiles[0].crit == 3
    assert parsed(tiles=[{"stream": "orders", "warn": 5, "crit": 2, "below": True}]).tiles[0].below


def test_at_most_one_connections_worth_of_tiles():
    many = [f"s{i}" for i in range(MAX_STREAMS + 1)]
    with pytest.raises(DashboardError) as refused:
        parse_dashboard({"tiles": [{"stream": name} for name in many]}, "w.toml", many)
    assert str(refused.value) == (f"w.toml: [dashboard] has {MAX_STREAMS + 1} tiles; at most {MAX_STREAMS} "
                                  "(the streams one connection may carry)")
    assert len(parse_dashboard({"tiles": [{"stream": n} for n in many[:MAX_STREAMS]]}, "w.toml", many).tiles) == 16


def test_not_a_table():
    with pytest.raises(DashboardError, match="must be a table"):
        parse_dashboard(["x"], "w.toml", STREAMS)
