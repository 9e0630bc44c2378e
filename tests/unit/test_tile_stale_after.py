"""Unit tests of a tile's ``stale_after`` (config/dashboard.py): accepted values, what
/dashboard.json lists, and each refusal's whole message (file, tile, key)."""

from __future__ import annotations

import pytest

from dashstream.config.dashboard import DashboardError, parse_dashboard

STREAMS = ["signups", "orders"]


def tiles(**tile):
    return parse_dashboard({"tiles": [{"stream": "orders", **tile}]}, "wall.toml", STREAMS)


def test_a_tile_may_set_its_own_stale_after():
    dashboard = tiles(stale_after=3600)
    assert dashboard.tiles[0].stale_after == 3600.0
    assert dashboard.to_json()["tiles"][0]["stale_after"] == 3600.0


def test_zero_means_never_stale_for_being_quiet():
    assert tiles(stale_after=0).tiles[0].stale_after == 0.0
    assert tiles(stale_after=2.5).tiles[0].stale_after == 2.5


def test_without_it_the_json_does_not_list_it():
    assert "stale_after" not in tiles().to_json()["tiles"][0]


@pytest.mark.parametrize("value", [-1, "1h", True, float("inf"), float("nan")])
def test_a_bad_stale_after_names_file_tile_and_key(value):
    with pytest.raises(DashboardError) as refused:
        tiles(stale_after=value)
    assert str(refused.value) == ("wall.toml: [dashboard] tile 1 ('orders'), key 'stale_after': must be a number "
                                  f"of seconds >= 0 (0: never stale for being quiet), got {value!r}")


def test_the_unknown_key_message_lists_stale_after():
    with pytest.raises(DashboardError) as refused:
        tiles(stale=3)
    assert str(refused.value) == ("wall.toml: [dashboard] tile 1 ('orders'), key 'stale': not a key of a 'number' "
                                  "tile; allowed: alert, below, chart, compare, crit, currency, decimals, format, "
                                  "kind, label, stale_after, stream, unit, warn")
