"""Unit tests of one wall's config (dashstream/config/dashboard.py): the tile kinds, their
keys and defaults, the layout as the page reads it, and every refusal's whole message."""

from __future__ import annotations

import pytest

from dashstream.config.dashboard import (
    KIND_NAMES,
    KINDS,
    Dashboard,
    DashboardError,
    Tile,
    allowed_keys,
    parse_dashboard,
)
from dashstream.streams.log import MAX_STREAMS

STREAMS = ["signups", "orders", "default"]


def parsed(**table) -> Dashboard:
    return parse_dashboard(table, "wall.toml", STREAMS)


def error_of(table, header: str = "[dashboard]") -> str:
    with pytest.raises(DashboardError) as caught:
        parse_dashboard(table, "wall.toml", STREAMS, name="ops", header=header)
    return str(caught.value)


def tile_error(**tile) -> str:
    return error_of({"tiles": [tile]})


def one(**tile) -> dict:
    return parsed(tiles=[tile]).to_json()["tiles"][0]


NUMBER_DEFAULTS = {"unit": "", "format": "number", "decimals": None, "currency": None, "warn": None, "crit": None,
                   "below": False}


# --- what a wall and its tiles look like to the page --------------------------------------------------


def test_a_full_number_tile_and_the_defaults_of_a_bare_one():
    dashboard = parsed(title="Ops", columns=3, tiles=[
        {"stream": "signups", "label": "Sign-ups", "unit": "", "decimals": 0, "warn": 100, "crit": 50,
         "below": True, "chart": False},
        {"stream": "orders"}])
    assert dashboard.title == "Ops" and dashboard.columns == 3
    first, second = dashboard.tiles
    assert (first.kind, first.stream, first.label, first.alert, first.stale_after) == (
        "number", "signups", "Sign-ups", False, None)
    assert first["warn"] == 100 and first["crit"] == 50 and first["below"] is True and first["chart"] is False
    assert dashboard.to_json()["tiles"][1] == {"kind": "number", "stream": "orders", "label": "orders", "alert": False,
                                               **NUMBER_DEFAULTS, "chart": True, "compare": None}
    assert second == Tile(kind="number", label="orders", stream="orders", settings={
        **NUMBER_DEFAULTS, "chart": True, "compare": None})
    assert parsed(tiles=[{"stream": "orders"}]).title == "dashstream"
    assert parsed(tiles=[{"stream": "orders"}]).columns is None


def test_the_wall_as_the_page_reads_it():
    layout = parse_dashboard({"title": "T", "columns": 12, "locale": "de-DE", "timezone": "Europe/Berlin",
                              "theme": "light", "tiles": [{"stream": "orders", "decimals": 10}]},
                             "wall.toml", STREAMS, name="sales", header="[dashboards.sales]").to_json()
    assert layout == {"name": "sales", "title": "T", "columns": 12, "locale": "de-DE", "timezone": "Europe/Berlin",
                      "theme": "light", "tiles": [
                          {"kind": "number", "stream": "orders", "label": "orders", "alert": False,
                           **NUMBER_DEFAULTS, "decimals": 10, "chart": True, "compare": None}]}
    assert parsed(tiles=[{"kind": "clock"}]).to_json() == {
        "name": "default", "title": "dashstream", "columns": None, "locale": None, "timezone": None, "theme": "dark",
        "tiles": [{"kind": "clock", "label": "Time", "seconds": False, "date": True}]}
    assert parsed(columns=1, tiles=[{"stream": "orders", "decimals": 0}]).columns == 1
    assert Dashboard().to_json() == {"name": "default", "title": "dashstream", "columns": None, "locale": None,
                                     "timezone": None, "theme": "dark", "tiles": []}


def test_every_kind_with_its_defaults():
    assert one(kind="gauge", stream="orders", max=10) == {
        "kind": "gauge", "stream": "orders", "label": "orders", "alert": False, **NUMBER_DEFAULTS, "min": 0, "max": 10}
    assert one(kind="chart", stream="orders") == {
        "kind": "chart", "stream": "orders", "label": "orders", "alert": False, **NUMBER_DEFAULTS, "window": 3600}
    assert one(kind="list", stream="orders") == {
        "kind": "list", "stream": "orders", "label": "orders", "alert": False, "field": "rows", "columns": None,
        "limit": 10, "format": "number", "decimals": None, "currency": None}
    assert one(kind="text", stream="orders") == {
        "kind": "text", "stream": "orders", "label": "orders", "alert": False, "field": "variable"}
    assert one(kind="status", stream="orders") == {
        "kind": "status", "stream": "orders", "label": "orders", "alert": False, "field": "variable", "ok": [],
        "warn": [], "crit": []}
    assert one(kind="clock") == {"kind": "clock", "label": "Time", "seconds": False, "date": True}
    assert one(kind="number", stream="orders")["compare"] is None
    assert set(KINDS) == set(KIND_NAMES) == {"number", "gauge", "list", "text", "status", "clock", "chart"}


def test_every_kind_with_every_key_set():
    assert one(kind="number", stream="orders", label="Orders", alert=True, stale_after=60, unit="€",
               format="compact", decimals=1, warn=5, crit=9, below=False, chart=False, compare=3600) == {
        "kind": "number", "stream": "orders", "label": "Orders", "alert": True, "unit": "€", "format": "compact",
        "decimals": 1, "currency": None, "warn": 5, "crit": 9, "below": False, "chart": False, "compare": 3600,
        "stale_after": 60.0}
    assert one(kind="number", stream="orders", currency="EUR", compare=0)["currency"] == "EUR"
    assert one(kind="number", stream="orders", compare=0)["compare"] == 0
    assert one(kind="gauge", stream="orders", min=-5, max=5.5, warn=1, crit=2)["min"] == -5
    assert one(kind="chart", stream="orders", window=60.5, format="bytes")["window"] == 60.5
    assert one(kind="chart", stream="orders", window=0.5)["window"] == 0.5
    assert one(kind="list", stream="orders", field="top", columns=["name", "total"], limit=50, format="percent",
               decimals=2) == {
        "kind": "list", "stream": "orders", "label": "orders", "alert": False, "field": "top",
        "columns": ["name", "total"], "limit": 50, "format": "percent", "decimals": 2, "currency": None}
    assert one(kind="list", stream="orders", limit=1)["limit"] == 1
    assert one(kind="text", stream="orders", field="message")["field"] == "message"
    assert one(kind="status", stream="orders", ok=["up", "green"], warn=["degraded"], crit=["down"]) == {
        "kind": "status", "stream": "orders", "label": "orders", "alert": False, "field": "variable",
        "ok": ["up", "green"], "warn": ["degraded"], "crit": ["down"]}
    assert one(kind="clock", label="Berlin", seconds=True, date=False) == {
        "kind": "clock", "label": "Berlin", "seconds": True, "date": False}
    for format_ in ("number", "compact", "percent", "duration", "bytes"):
        assert one(stream="orders", format=format_)["format"] == format_


def test_the_allowed_keys_of_each_kind():
    assert allowed_keys("number") == ["alert", "below", "chart", "compare", "crit", "currency", "decimals", "format",
                                      "kind", "label", "stale_after", "stream", "unit", "warn"]
    assert allowed_keys("clock") == ["date", "kind", "label", "seconds"]
    assert allowed_keys("list") == ["alert", "columns", "currency", "decimals", "field", "format", "kind", "label",
                                    "limit", "stale_after", "stream"]


def test_warn_alone_or_crit_alone_is_fine():
    assert parsed(tiles=[{"stream": "orders", "warn": 3}]).tiles[0]["warn"] == 3
    assert parsed(tiles=[{"stream": "orders", "crit": 3, "below": True}]).tiles[0]["crit"] == 3
    assert parsed(tiles=[{"stream": "orders", "warn": 5, "crit": 2, "below": True}]).tiles[0]["below"]
    assert parsed(tiles=[{"stream": "orders", "warn": 2, "crit": 5}]).tiles[0]["crit"] == 5


def test_clocks_need_no_stream_and_several_may_share_a_wall():
    dashboard = parsed(tiles=[{"kind": "clock"}, {"kind": "clock", "label": "NYC"}, {"stream": "orders"}])
    assert [tile.stream for tile in dashboard.tiles] == [None, None, "orders"]
    assert dashboard.streams == ["orders"]


def test_at_most_one_connections_worth_of_streams():
    many = [f"s{i}" for i in range(MAX_STREAMS + 1)]
    with pytest.raises(DashboardError) as refused:
        parse_dashboard({"tiles": [{"stream": name} for name in many]}, "w.toml", many)
    assert str(refused.value) == (f"w.toml: [dashboard] has {MAX_STREAMS + 1} tiles with a stream; at most "
                                  f"{MAX_STREAMS} (the streams one connection may carry)")
    tiles = [{"stream": n} for n in many[:MAX_STREAMS]] + [{"kind": "clock"}]
    assert len(parse_dashboard({"tiles": tiles}, "w.toml", many).tiles) == MAX_STREAMS + 1


def test_locales_and_time_zones_that_are_fine():
    for locale in ("de", "de-DE", "en-US", "zh-Hant-TW", "es-419", "sr-Latn"):
        assert parsed(locale=locale, tiles=[{"kind": "clock"}]).locale == locale
    for zone in ("UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Asia/Kolkata"):
        assert parsed(timezone=zone, tiles=[{"kind": "clock"}]).timezone == zone


# --- every refusal, whole ---------------------------------------------------------------------------

P = "wall.toml: [dashboard] tile 1 ('orders')"  # the place of a tile of stream 'orders'
NUMERIC = "must be a number, got"


@pytest.mark.parametrize("tile, expected", [
    ({"stream": "nope"}, "wall.toml: [dashboard] tile 1 ('nope'), key 'stream': no stream named 'nope'; "
                         "defined: default, orders, signups"),
    ({"stream": "orders", "colour": "red"},
     f"{P}, key 'colour': not a key of a 'number' tile; allowed: alert, below, chart, compare, crit, currency, "
     "decimals, format, kind, label, stale_after, stream, unit, warn"),
    ({"kind": "gauge", "stream": "orders", "max": 9, "chart": True},
     f"{P}, key 'chart': not a key of a 'gauge' tile; allowed: alert, below, crit, currency, decimals, format, "
     "kind, label, max, min, stale_after, stream, unit, warn"),
    ({"kind": "text", "stream": "orders", "unit": "x"},
     f"{P}, key 'unit': not a key of a 'text' tile; allowed: alert, field, kind, label, stale_after, stream"),
    ({"kind": "status", "stream": "orders", "below": True},
     f"{P}, key 'below': not a key of a 'status' tile; allowed: alert, crit, field, kind, label, ok, stale_after, "
     "stream, warn"),
    ({"kind": "chart", "stream": "orders", "compare": 1},
     f"{P}, key 'compare': not a key of a 'chart' tile; allowed: alert, below, crit, currency, decimals, format, "
     "kind, label, stale_after, stream, unit, warn, window"),
    ({"kind": "list", "stream": "orders", "warn": 1},
     f"{P}, key 'warn': not a key of a 'list' tile; allowed: alert, columns, currency, decimals, field, format, "
     "kind, label, limit, stale_after, stream"),
    ({"kind": "clock", "alert": True},
     "wall.toml: [dashboard] tile 1, key 'alert': not a key of a 'clock' tile; allowed: date, kind, label, seconds"),
    ({"kind": "clock", "stale_after": 3},
     "wall.toml: [dashboard] tile 1, key 'stale_after': not a key of a 'clock' tile; allowed: date, kind, label, "
     "seconds"),
    ({"kind": "clock", "stream": "orders"},
     f"{P}, key 'stream': a clock shows the wall's time and takes no stream"),
    ({"kind": "dial", "stream": "orders"},
     f"{P}, key 'kind': unknown kind 'dial'; one of number, gauge, list, text, status, clock, chart"),
    ({"kind": 3, "stream": "orders"},
     f"{P}, key 'kind': unknown kind 3; one of number, gauge, list, text, status, clock, chart"),
    ({"label": "x"}, "wall.toml: [dashboard] tile 1, key 'stream': missing; every 'number' tile shows one stream "
                     "(only a clock needs none)"),
    ({"kind": "list"}, "wall.toml: [dashboard] tile 1, key 'stream': missing; every 'list' tile shows one stream "
                       "(only a clock needs none)"),
    ({"stream": 3}, "wall.toml: [dashboard] tile 1, key 'stream': must be a string, got 3"),
    ({"stream": "orders", "warn": 10, "crit": 5},
     f"{P}, key 'crit': crit (5) must be above warn (10); set below = true if low values are the bad ones"),
    ({"stream": "orders", "warn": 10, "crit": 10},
     f"{P}, key 'crit': crit (10) must be above warn (10); set below = true if low values are the bad ones"),
    ({"stream": "orders", "warn": 5, "crit": 10, "below": True},
     f"{P}, key 'crit': with below = true (low is bad) crit (10) must be below warn (5)"),
    ({"stream": "orders", "warn": 3, "crit": 3, "below": True},
     f"{P}, key 'crit': with below = true (low is bad) crit (3) must be below warn (3)"),
    ({"kind": "gauge", "stream": "orders", "max": 9, "warn": 5, "crit": 2},
     f"{P}, key 'crit': crit (2) must be above warn (5); set below = true if low values are the bad ones"),
    ({"stream": "orders", "decimals": 11}, f"{P}, key 'decimals': must be an integer from 0 to 10, got 11"),
    ({"stream": "orders", "decimals": -1}, f"{P}, key 'decimals': must be an integer from 0 to 10, got -1"),
    ({"stream": "orders", "decimals": True}, f"{P}, key 'decimals': must be an integer from 0 to 10, got True"),
    ({"stream": "orders", "decimals": 2.0}, f"{P}, key 'decimals': must be an integer from 0 to 10, got 2.0"),
    ({"stream": "orders", "warn": "high"}, f"{P}, key 'warn': {NUMERIC} 'high'"),
    ({"stream": "orders", "crit": float("nan")}, f"{P}, key 'crit': {NUMERIC} nan"),
    ({"stream": "orders", "crit": float("inf")}, f"{P}, key 'crit': {NUMERIC} inf"),
    ({"stream": "orders", "warn": True}, f"{P}, key 'warn': {NUMERIC} True"),
    ({"stream": "orders", "chart": "yes"}, f"{P}, key 'chart': must be true or false, got 'yes'"),
    ({"stream": "orders", "below": 1}, f"{P}, key 'below': must be true or false, got 1"),
    ({"stream": "orders", "alert": "on"}, f"{P}, key 'alert': must be true or false, got 'on'"),
    ({"stream": "orders", "label": 3}, f"{P}, key 'label': must be a string, got 3"),
    ({"stream": "orders", "unit": None}, f"{P}, key 'unit': must be a string, got None"),
    ({"stream": "orders", "format": "money"},
     f"{P}, key 'format': must be one of number, compact, percent, duration, bytes, got 'money'"),
    ({"stream": "orders", "format": ["number"]},
     f"{P}, key 'format': must be one of number, compact, percent, duration, bytes, got ['number']"),
    ({"stream": "orders", "currency": "eur"},
     f"{P}, key 'currency': must be an ISO 4217 currency code, 3 upper-case letters (EUR, USD), got 'eur'"),
    ({"stream": "orders", "currency": "EURO"},
     f"{P}, key 'currency': must be an ISO 4217 currency code, 3 upper-case letters (EUR, USD), got 'EURO'"),
    ({"stream": "orders", "currency": 978},
     f"{P}, key 'currency': must be an ISO 4217 currency code, 3 upper-case letters (EUR, USD), got 978"),
    ({"stream": "orders", "currency": "EUR", "format": "compact"},
     f"{P}, key 'currency': only with format = \"number\" (the default), not with format = 'compact'"),
    ({"kind": "list", "stream": "orders", "currency": "USD", "format": "percent"},
     f"{P}, key 'currency': only with format = \"number\" (the default), not with format = 'percent'"),
    ({"stream": "orders", "compare": -1},
     f"{P}, key 'compare': must be a number of seconds >= 0 (0: against the previous value), got -1"),
    ({"stream": "orders", "compare": True},
     f"{P}, key 'compare': must be a number of seconds >= 0 (0: against the previous value), got True"),
    ({"stream": "orders", "compare": float("inf")},
     f"{P}, key 'compare': must be a number of seconds >= 0 (0: against the previous value), got inf"),
    ({"stream": "orders", "compare": "1h"},
     f"{P}, key 'compare': must be a number of seconds >= 0 (0: against the previous value), got '1h'"),
    ({"kind": "gauge", "stream": "orders"}, f"{P}, key 'max': missing; a 'gauge' tile needs it"),
    ({"kind": "gauge", "stream": "orders", "max": 0}, f"{P}, key 'max': max (0) must be above min (0)"),
    ({"kind": "gauge", "stream": "orders", "min": 10, "max": 5}, f"{P}, key 'max': max (5) must be above min (10)"),
    ({"kind": "gauge", "stream": "orders", "max": "10"}, f"{P}, key 'max': {NUMERIC} '10'"),
    ({"kind": "gauge", "stream": "orders", "max": 10, "min": None}, f"{P}, key 'min': {NUMERIC} None"),
    ({"kind": "chart", "stream": "orders", "window": 0}, f"{P}, key 'window': must be a number of seconds > 0, got 0"),
    ({"kind": "chart", "stream": "orders", "window": False},
     f"{P}, key 'window': must be a number of seconds > 0, got False"),
    ({"kind": "chart", "stream": "orders", "window": True},
     f"{P}, key 'window': must be a number of seconds > 0, got True"),
    ({"kind": "chart", "stream": "orders", "window": float("nan")},
     f"{P}, key 'window': must be a number of seconds > 0, got nan"),
    ({"kind": "list", "stream": "orders", "limit": 0}, f"{P}, key 'limit': must be an integer from 1 to 50, got 0"),
    ({"kind": "list", "stream": "orders", "limit": 51}, f"{P}, key 'limit': must be an integer from 1 to 50, got 51"),
    ({"kind": "list", "stream": "orders", "columns": "name"},
     f"{P}, key 'columns': must be a list of at least one field name, got 'name'"),
    ({"kind": "list", "stream": "orders", "columns": []},
     f"{P}, key 'columns': must be a list of at least one field name, got []"),
    ({"kind": "list", "stream": "orders", "columns": ["name", ""]},
     f"{P}, key 'columns': must be a non-empty string, got ''"),
    ({"kind": "list", "stream": "orders", "columns": ["name", 2]},
     f"{P}, key 'columns': must be a non-empty string, got 2"),
    ({"kind": "list", "stream": "orders", "columns": ["name", "total", "name"]},
     f"{P}, key 'columns': names 'name' twice"),
    ({"kind": "list", "stream": "orders", "field": ""}, f"{P}, key 'field': must be a non-empty string, got ''"),
    ({"kind": "text", "stream": "orders", "field": 1}, f"{P}, key 'field': must be a non-empty string, got 1"),
    ({"kind": "status", "stream": "orders", "ok": "up"},
     f"{P}, key 'ok': must be a list of non-empty strings, got 'up'"),
    ({"kind": "status", "stream": "orders", "crit": ["down", 0]},
     f"{P}, key 'crit': must be a list of non-empty strings, got ['down', 0]"),
    ({"kind": "status", "stream": "orders", "warn": [""]},
     f"{P}, key 'warn': must be a list of non-empty strings, got ['']"),
    ({"kind": "status", "stream": "orders", "ok": ["up"], "crit": ["UP"]},
     f"{P}, key 'crit': 'up' is in ok too (values are matched case-insensitively)"),
    ({"kind": "status", "stream": "orders", "ok": ["up"], "warn": ["Up"]},
     f"{P}, key 'warn': 'up' is in ok too (values are matched case-insensitively)"),
    ({"kind": "status", "stream": "orders", "warn": ["slow", "late"], "crit": ["late"]},
     f"{P}, key 'crit': 'late' is in warn too (values are matched case-insensitively)"),
    ({"kind": "clock", "seconds": 1}, "wall.toml: [dashboard] tile 1, key 'seconds': must be true or false, got 1"),
    ({"kind": "clock", "date": "no"}, "wall.toml: [dashboard] tile 1, key 'date': must be true or false, got 'no'"),
    ({"stream": "orders", "stale_after": -1},
     f"{P}, key 'stale_after': must be a number of seconds >= 0 (0: never stale for being quiet), got -1"),
])
def test_every_tile_mistake_names_the_file_the_wall_the_tile_and_the_key(tile, expected):
    assert tile_error(**tile) == expected


@pytest.mark.parametrize("table, expected", [
    ({"tiles": [{"stream": "orders"}, {"label": "x"}]},
     "wall.toml: [dashboard] tile 2, key 'stream': missing; every 'number' tile shows one stream "
     "(only a clock needs none)"),
    ({"tiles": [{"stream": "orders"}, {"stream": "orders"}]},
     "wall.toml: [dashboard] tile 2 ('orders'), key 'stream': the stream already has a tile on this wall"),
    ({"tiles": [{"stream": "orders"}, {"kind": "chart", "stream": "orders"}]},
     "wall.toml: [dashboard] tile 2 ('orders'), key 'stream': the stream already has a tile on this wall"),
    ({"tiles": ["orders"]}, "wall.toml: [dashboard] tile 1: must be a table ([[dashboard.tiles]])"),
    ({"tiles": []}, "wall.toml: [dashboard] needs at least one tile ([[dashboard.tiles]])"),
    ({"tiles": {"stream": "orders"}}, "wall.toml: [dashboard] needs at least one tile ([[dashboard.tiles]])"),
    ({}, "wall.toml: [dashboard] needs at least one tile ([[dashboard.tiles]])"),
    ({"tiles": [{"stream": "orders"}], "colour": "dark"},
     "wall.toml: [dashboard], key 'colour': unknown key; allowed: columns, locale, theme, tiles, timezone, title"),
    ({"tiles": [{"stream": "orders"}], "columns": 0},
     "wall.toml: [dashboard], key 'columns': must be an integer from 1 to 12, got 0"),
    ({"tiles": [{"stream": "orders"}], "columns": 13},
     "wall.toml: [dashboard], key 'columns': must be an integer from 1 to 12, got 13"),
    ({"tiles": [{"stream": "orders"}], "title": 5}, "wall.toml: [dashboard], key 'title': must be a string, got 5"),
    ({"tiles": [{"stream": "orders"}], "theme": "blue"},
     "wall.toml: [dashboard], key 'theme': must be one of dark, light, got 'blue'"),
    ({"tiles": [{"stream": "orders"}], "locale": "de_DE"},
     "wall.toml: [dashboard], key 'locale': must be a BCP 47 language tag such as 'de-DE' or 'en-US', got 'de_DE'"),
    ({"tiles": [{"stream": "orders"}], "locale": "german-"},
     "wall.toml: [dashboard], key 'locale': must be a BCP 47 language tag such as 'de-DE' or 'en-US', "
     "got 'german-'"),
    ({"tiles": [{"stream": "orders"}], "locale": 7},
     "wall.toml: [dashboard], key 'locale': must be a BCP 47 language tag such as 'de-DE' or 'en-US', got 7"),
    ({"tiles": [{"stream": "orders"}], "timezone": "Europe/Bonn"},
     "wall.toml: [dashboard], key 'timezone': no time zone named 'Europe/Bonn'; an IANA name such as "
     "'Europe/Berlin' or 'UTC'"),
    ({"tiles": [{"stream": "orders"}], "timezone": "../etc/passwd"},
     "wall.toml: [dashboard], key 'timezone': no time zone named '../etc/passwd'; an IANA name such as "
     "'Europe/Berlin' or 'UTC'"),
    ({"tiles": [{"stream": "orders"}], "timezone": ""},
     "wall.toml: [dashboard], key 'timezone': no time zone named ''; an IANA name such as 'Europe/Berlin' or 'UTC'"),
    ({"tiles": [{"stream": "orders"}], "timezone": 1},
     "wall.toml: [dashboard], key 'timezone': must be an IANA time zone name such as 'Europe/Berlin' or 'UTC', "
     "got 1"),
])
def test_every_wall_mistake_names_the_file_the_wall_and_the_key(table, expected):
    assert error_of(table) == expected


def test_a_named_wall_is_named_in_its_messages():
    assert error_of({"tiles": []}, header="[dashboards.ops]") == (
        "wall.toml: [dashboards.ops] needs at least one tile ([[dashboards.ops.tiles]])")
    assert error_of({"tiles": [{"stream": "orders", "size": 2}]}, header="[dashboards.ops]").startswith(
        "wall.toml: [dashboards.ops] tile 1 ('orders'), key 'size': not a key of a 'number' tile; allowed: ")
    assert error_of({"tiles": [3]}, header="[dashboards.ops]") == (
        "wall.toml: [dashboards.ops] tile 1: must be a table ([[dashboards.ops.tiles]])")
    assert error_of({"theme": 1, "tiles": []}, header="[dashboards.ops]") == (
        "wall.toml: [dashboards.ops], key 'theme': must be one of dark, light, got 1")


def test_not_a_table():
    with pytest.raises(DashboardError) as refused:
        parse_dashboard(["x"], "w.toml", STREAMS)
    assert str(refused.value) == "w.toml: [dashboard] must be a table"

