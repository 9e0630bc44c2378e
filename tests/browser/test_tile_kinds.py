"""Every tile kind and every number format in Chromium, against a real server started with a
TOML file: number (with its change indicator), gauge, list (also fed by a real SQLite query
with ``rows = 5``), text, status, clock (in the wall's time zone, and ``?tz=``), chart (with
time labels in that zone); formats by Intl.NumberFormat in the wall's locale."""

from __future__ import annotations

import re
import sqlite3
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.browser.kinds_wall import by_stream, nbsp, put, running_server, streams_toml
from tests.support import scaled, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

FORMAT_STREAMS = ["s_number", "s_small", "s_compact", "s_percent", "s_duration", "s_bytes", "s_decimals",
                  "s_unit", "s_currency"]
KIND_STREAMS = ["orders", "visits", "cpu", "customers", "notice", "api", "latency"]
TOKYO = ZoneInfo("Asia/Tokyo")


def config(database) -> str:
    return streams_toml(KIND_STREAMS + FORMAT_STREAMS) + f"""
[streams.top5]
source = "sql"
url = "sqlite:///{database}"
query = "SELECT name, total, country FROM customers ORDER BY total DESC"
rows = 5
interval = 0.3

[dashboards.kinds]
title = "Every kind"
locale = "en-US"
timezone = "Asia/Tokyo"

[[dashboards.kinds.tiles]]
stream = "orders"
compare = 0

[[dashboards.kinds.tiles]]
stream = "visits"
compare = 1

[[dashboards.kinds.tiles]]
kind = "gauge"
stream = "cpu"
format = "percent"
max = 100
warn = 70
crit = 90

[[dashboards.kinds.tiles]]
kind = "list"
stream = "customers"
label = "Top customers"
columns = ["name", "total"]
currency = "EUR"
limit = 4

[[dashboards.kinds.tiles]]
kind = "text"
stream = "notice"

[[dashboards.kinds.tiles]]
kind = "status"
stream = "api"
ok = ["up"]
warn = ["degraded"]
crit = ["down"]

[[dashboards.kinds.tiles]]
kind = "clock"
label = "Tokyo"
seconds = true

[[dashboards.kinds.tiles]]
kind = "chart"
stream = "latency"
unit = "ms"
window = 60

[dashboards.top]
title = "Top five"

[[dashboards.top.tiles]]
kind = "list"
stream = "top5"
columns = ["name", "total"]
decimals = 0

[dashboards.formats]
title = "Formats"
locale = "en-US"
tiles = [
  {{ stream = "s_number" }},
  {{ stream = "s_small" }},
  {{ stream = "s_compact", format = "compact" }},
  {{ stream = "s_percent", format = "percent" }},
  {{ stream = "s_duration", format = "duration" }},
  {{ stream = "s_bytes", format = "bytes" }},
  {{ stream = "s_decimals", decimals = 2 }},
  {{ stream = "s_unit" }},
  {{ stream = "s_currency", currency = "USD" }},
]

[dashboards.formats_de]
title = "Formate"
locale = "de-DE"
tiles = [
  {{ stream = "s_number" }},
  {{ stream = "s_currency", currency = "EUR" }},
  {{ stream = "s_compact", format = "compact" }},
  {{ stream = "s_percent", format = "percent" }},
  {{ stream = "s_bytes", format = "bytes" }},
  {{ stream = "s_duration", format = "duration" }},
]
"""


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    path = tmp_path_factory.mktemp("sql") / "shop.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (name TEXT, total REAL, country TEXT)")
        db.executemany("INSERT INTO customers VALUES (?, ?, ?)", [
            ("Acme", 900, "DE"), ("Globex", 800, "US"), ("Initech", 700, "US"), ("Umbrella", 600, "UK"),
            ("Hooli", 500, "US"), ("Stark", 400, "US")])
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, database):
    with running_server(tmp_path_factory.mktemp("kinds"), config(database)) as server:
        yield server


def open_wall(page, server, wall: str, query: str = "") -> None:
    page.goto(f"{server.http}/d/{wall}{query}")
    wait_until(lambda: page.evaluate("document.body.dataset.link") == "live", 5, message="the wall live")


def tile(page, name: str) -> dict:
    return by_stream(page)[name]


def test_number_shows_the_change_against_the_previous_value_and_n_seconds_ago(server, page):
    open_wall(page, server, "kinds")
    assert page.text_content("#title") == "Every kind"
    put(server, "orders", 100)
    shown = wait_until(lambda: (t := tile(page, "orders"))["value"] == "100" and t, 3, message="orders 100")
    assert shown["kind"] == "number" and shown["change"] is None   # nothing to compare with yet
    put(server, "orders", 130)
    shown = wait_until(lambda: (t := tile(page, "orders"))["value"] == "130" and t, 3, message="orders 130")
    assert (shown["change"], shown["direction"]) == ("▲ +30 vs previous", "up")
    put(server, "orders", 125.5)
    shown = wait_until(lambda: (t := tile(page, "orders"))["value"] == "125.5" and t, 3, message="orders 125.5")
    assert (shown["change"], shown["direction"]) == ("▼ −4.5 vs previous", "down")

    # compare = 1: against the newest value at least 1 s older than the last one.
    put(server, "visits", 10)
    wait_until(lambda: tile(page, "visits")["value"] == "10", 3, message="visits 10")
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > scaled(1.1), 3, interval=0.05, message="1.1 s")
    put(server, "visits", 15)
    put(server, "visits", 17)
    shown = wait_until(lambda: (t := tile(page, "visits"))["value"] == "17" and t, 3, message="visits 17")
    assert (shown["change"], shown["state"]) == ("▲ +7 vs 1 s ago", "live")


def test_gauge_draws_value_and_thresholds_between_min_and_max(server, page):
    open_wall(page, server, "kinds")
    put(server, "cpu", 76.5)
    shown = wait_until(lambda: (t := tile(page, "cpu"))["value"] == "76.5%" and t, 3, message="cpu 76.5")
    assert (shown["kind"], shown["percent"], shown["min"], shown["max"]) == ("gauge", 76.5, "0%", "100%")
    assert shown["zones"] == [["warn", 70, 20], ["crit", 90, 10]]
    assert (shown["state"], shown["cue"], shown["detail"]) == ("warn", "warn", "warning: ≥ 70%")
    put(server, "cpu", 140)   # beyond max: the bar is full, the value says what it is
    shown = wait_until(lambda: (t := tile(page, "cpu"))["value"] == "140%" and t, 3, message="cpu 140")
    assert (shown["percent"], shown["state"], shown["level"]) == (100, "crit", "crit")


def test_list_shows_the_chosen_columns_of_a_messages_rows_and_follows_changes(server, page):
    open_wall(page, server, "kinds")
    rows = [{"name": n, "total": t, "country": "DE"} for n, t in
            [("Acme GmbH", 125000.5), ("Globex", 98200), ("Initech", 40310.25), ("Umbrella", 12000), ("Hooli", 9.9)]]
    put(server, "customers", {"variable": 5, "rows": rows})
    shown = wait_until(lambda: (t := tile(page, "customers"))["rows"] and t, 3, message="the list")
    assert shown["kind"] == "list" and shown["columns"] == ["name", "total"]
    # limit = 4 of the five; EUR in en-US; the country column is not chosen.
    assert [[nbsp(c) for c in row] for row in shown["rows"]] == [
        ["Acme GmbH", "€125,000.50"], ["Globex", "€98,200.00"], ["Initech", "€40,310.25"], ["Umbrella", "€12,000.00"]]
    assert shown["state"] == "live" and shown["label"] == "Top customers"
    put(server, "customers", {"variable": 1, "rows": [{"name": "Stark", "total": 5}]})
    shown = wait_until(lambda: (t := tile(page, "customers"))["rows"] == [["Stark", "€5.00"]] and t, 3,
                       message="the new list")


def test_a_sql_source_with_rows_5_feeds_a_list_tile_updated_when_a_row_changes(server, page, database):
    open_wall(page, server, "top")
    expected = [["Acme", "900"], ["Globex", "800"], ["Initech", "700"], ["Umbrella", "600"], ["Hooli", "500"]]
    shown = wait_until(lambda: (t := tile(page, "top5"))["rows"] == expected and t, 5, message="the five rows")
    assert shown["columns"] == ["name", "total"]
    with sqlite3.connect(database) as db:
        db.execute("UPDATE customers SET total = 950 WHERE name = 'Stark'")
    expected = [["Stark", "950"], ["Acme", "900"], ["Globex", "800"], ["Initech", "700"], ["Umbrella", "600"]]
    wait_until(lambda: tile(page, "top5")["rows"] == expected, 5, message="the changed row on screen")


def test_text_wraps_at_the_largest_size_that_fits(server, page):
    open_wall(page, server, "kinds")
    put(server, "notice", "Deploy freeze")
    short = wait_until(lambda: (t := tile(page, "notice"))["value"] == "Deploy freeze" and t, 3, message="short")
    long_text = "Deploy freeze until 14:00: the release train leaves on Thursday, talk to the on-call first"
    put(server, "notice", long_text)
    long = wait_until(lambda: (t := tile(page, "notice"))["value"] == long_text and t, 3, message="long")
    assert long["kind"] == "text" and long["valuePx"] < short["valuePx"]
    fit = page.evaluate("""() => {
      const tile = document.querySelector('[data-tile="notice"]');
      const line = tile.querySelector('.value-line').getBoundingClientRect();
      const room = tile.querySelector('.value-room').getBoundingClientRect();
      const size = parseFloat(getComputedStyle(tile.querySelector('.value-line')).fontSize);
      return { inside: line.top >= room.top - 1 && line.bottom <= room.bottom + 1 && line.left >= room.left - 1
                 && line.right <= room.right + 1, lines: Math.round(line.height / (size * 1.1)),
               fills: line.height / room.height };
    }""")
    # Wrapped over several lines, inside its room, and filling most of it (the largest size).
    assert fit["inside"] and fit["lines"] >= 3 and fit["fills"] > 0.6, fit


@pytest.mark.parametrize("value, state, word, status", [
    ("up", "live", "OK", "ok"), ("Degraded", "warn", "WARNING", "warn"), ("DOWN", "crit", "CRITICAL", "crit"),
    ("maintenance", "warn", "UNKNOWN", "unknown")])
def test_status_maps_a_string_to_ok_warn_crit_in_words_and_colour(server, page, value, state, word, status):
    open_wall(page, server, "kinds")
    put(server, "api", value)
    shown = wait_until(lambda: (t := tile(page, "api"))["value"] == value and t, 3, message=f"api {value}")
    assert (shown["kind"], shown["state"], shown["cue"], shown["word"], shown["status"]) == \
        ("status", state, state, word, status)
    if status == "unknown":
        assert shown["detail"] == "unknown status: maintenance"
    colour = page.evaluate("getComputedStyle(document.querySelector('[data-tile=api] [data-field=status]')).color")
    expected = {"ok": "--ok", "warn": "--warn", "crit": "--crit", "unknown": "--warn"}[status]
    assert colour == page.evaluate(f"""(() => {{ const probe = document.createElement('i');
        probe.style.color = 'var({expected})'; document.body.appendChild(probe);
        const c = getComputedStyle(probe).color; probe.remove(); return c; }})()""")


def clock_reads(page) -> dict:
    return tile(page, "clock")


@pytest.mark.parametrize("query, zone", [("", "Asia/Tokyo"), ("?tz=America/New_York", "America/New_York")])
def test_clock_shows_the_time_of_the_walls_time_zone(server, page, query, zone):
    open_wall(page, server, "kinds", query)
    shown = wait_until(lambda: (t := clock_reads(page))["value"] and t, 3, message="the clock")
    now = datetime.now(ZoneInfo(zone))
    # Within 2 s of the zone's time (the machine runs on another zone: UTC).
    candidates = {(now + timedelta(seconds=d)).strftime("%H:%M:%S") for d in (-2, -1, 0, 1, 2)}
    assert shown["value"] in candidates, (shown["value"], candidates)
    assert shown["tz"] == zone and shown["label"] == "Tokyo" and shown["kind"] == "clock"
    assert shown["date"] == f"{now:%A}, {now:%B} {now.day}"
    assert shown["stream"] is None and shown["state"] is None   # no stream, no state


def test_chart_draws_the_window_with_time_labels_in_the_walls_zone(server, page):
    open_wall(page, server, "kinds")
    for value in (82, 97, 88, 120, 91):
        put(server, "latency", value)
    shown = wait_until(lambda: (t := tile(page, "latency"))["value"] == "91" and t["points"] >= 5 and t, 3,
                       message="the chart")
    assert shown["kind"] == "chart" and shown["unit"] == "ms" and shown["max"] == "max 120"
    # window = 60: a label every 15 s, each a time of the last minute in Tokyo.
    now = datetime.now(TOKYO)
    assert 3 <= len(shown["axis"]) <= 5, shown["axis"]
    for label in shown["axis"]:
        assert re.fullmatch(r"\d\d:\d\d:\d\d", label), label
        at = now.replace(hour=int(label[:2]), minute=int(label[3:5]), second=int(label[6:]))
        gap = (now - at).total_seconds() % 86400
        assert gap <= 62 and int(label[6:]) % 15 == 0, (label, now)


FORMATS_EN = {"s_number": "1,234,567.89", "s_small": "1234.5", "s_compact": "1.2M", "s_percent": "42.5%",
              "s_duration": "1 h 20 min", "s_bytes": "1.5 MB", "s_decimals": "3.14", "s_unit": "12.5",
              "s_currency": "$1,234,567.89"}
FORMATS_DE = {"s_number": "1.234.567,89", "s_currency": "1.234.567,89 €", "s_compact": "1,2 Mio.",
              "s_percent": "42,5 %", "s_bytes": "1,5 MB", "s_duration": "1 h 20 min"}
VALUES = {"s_number": 1234567.89, "s_small": 1234.5, "s_compact": 1234567.89, "s_percent": 42.5,
          "s_duration": 4800, "s_bytes": 1500000, "s_decimals": 3.14159, "s_currency": 1234567.89}


@pytest.mark.parametrize("wall, expected", [("formats", FORMATS_EN), ("formats_de", FORMATS_DE)])
def test_every_format_in_the_walls_locale(server, page, wall, expected):
    for stream, value in VALUES.items():
        put(server, stream, value)
    put(server, "s_unit", {"variable": 12.5, "unit": "°C"})
    open_wall(page, server, wall)

    def shown():
        seen = {name: nbsp(t["value"]) for name, t in by_stream(page).items()}
        return seen == expected and seen

    try:
        wait_until(shown, 3, message="every format")
    except AssertionError:
        assert {name: nbsp(t["value"]) for name, t in by_stream(page).items()} == expected
    if wall == "formats":
        # A message's own unit shows when the tile sets none; a currency brings its own symbol.
        assert tile(page, "s_unit")["unit"] == "°C" and tile(page, "s_currency")["unit"] == ""
