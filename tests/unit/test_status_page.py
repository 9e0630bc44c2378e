"""ops/status_page.py without a server: the page as an operator reads it (parsed, not grepped:
the table's headings and each stream's cells, the fleet's lines, the page's title and
refresh), the rate from earlier views, the token rule, the answers to other methods, and
each stream's last value taken from its log."""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from dashstream.messages import Entry
from dashstream.ops.status_page import REFRESH, RateSampler, allowed, last_values, render, status_response

pytestmark = pytest.mark.timeout(30)

FLEET = {
    "streams": [{"name": "sales", "source": "publish", "shared": True, "subscribers": 7, "state": "up",
                 "reason": "", "since": 100.0, "dropped": 3, "slow_closed": 1, "last_seq": 10, "last_ts": 190.0,
                 "epoch": "e1", "producer": "host:5001:ab"},
                {"name": "<b>x</b>", "source": "sql", "shared": True, "subscribers": 0, "state": "down",
                 "reason": "could not connect <here>", "since": 150.0, "dropped": 0, "slow_closed": 0,
                 "last_seq": None, "last_ts": None, "epoch": "e2"}],
    "instance": "host:5001:ab", "instances": ["host:5001:ab", "host:5002:cd"],
    "backplane": {"state": "down", "reason": "Connection refused", "url": "redis://127.0.0.1:6379/0"},
}
HEADINGS = ["stream", "source state", "subscribers", "last value", "age", "msg/min", "dropped", "slow-closed"]


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Clock times on the page are local: UTC here, so 100.0 reads 00:01:40."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


# --- the page, parsed as a browser would -----------------------------------------------------------

VOID = {"meta", "br", "img", "input", "link", "hr"}
HTML_SPACE = " \t\n\f\r"


class Element:
    def __init__(self, tag: str, attrs: list[tuple[str, str | None]]):
        self.tag = tag
        self.attrs = dict(attrs)
        self.children: list[Element | str] = []

    def text(self) -> str:
        """What a reader sees of it (its text and its children's)."""
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def own_text(self) -> str:
        """Its text outside its children (a cell's main line, without its ``<small>`` detail)."""
        return "".join(child for child in self.children if isinstance(child, str))

    def all(self, tag: str, **attrs: str) -> list[Element]:
        found = []
        for child in self.children:
            if isinstance(child, Element):
                if child.tag == tag and all(child.attrs.get(key) == value for key, value in attrs.items()):
                    found.append(child)
                found.extend(child.all(tag, **attrs))
        return found

    def one(self, tag: str, **attrs: str) -> Element:
        (found,) = self.all(tag, **attrs)
        return found


class Page(HTMLParser):
    """The markup as a tree; every element closed in order (a stray or missing tag fails)."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", [])
        self._open = [self.root]
        self.feed(markup)
        self.close()
        assert self._open == [self.root], f"left open: {[e.tag for e in self._open[1:]]}"

    def handle_starttag(self, tag, attrs):
        element = Element(tag, attrs)
        self._open[-1].children.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_endtag(self, tag):
        assert self._open[-1].tag == tag, f"</{tag}> closes <{self._open[-1].tag}>"
        self._open.pop()

    def handle_data(self, data):
        self._open[-1].children.append(data)

    def handle_decl(self, decl):
        self.doctype = decl


def only_space_between(element: Element) -> None:
    """Nothing shows between the children of a table row or body (no stray text)."""
    stray = [child for child in element.children if isinstance(child, str) and child.strip(HTML_SPACE)]
    assert stray == [], stray


def table(page: Page) -> tuple[list[str], list[dict[str, Element]]]:
    """The headings, and each stream's row as heading -> cell."""
    only_space_between(page.root.one("body"))  # nothing shows around the heading, the fleet's lines, the table
    head = page.root.one("thead").one("tr")
    only_space_between(head)
    headings = [th.text() for th in head.all("th")]
    body = page.root.one("tbody")
    only_space_between(body)
    rows = []
    for tr in body.all("tr"):
        only_space_between(tr)
        cells = tr.all("td")
        assert len(cells) == len(headings)
        rows.append({"row": tr, **dict(zip(headings, cells))})
    return headings, rows


def shown(cell: Element) -> tuple[str, str]:
    """A cell's main line and its small detail line."""
    small = cell.all("small")
    return cell.own_text() + "".join(b.text() for b in cell.all("b")), "".join(s.text() for s in small)


def view(described, values=None, sampler=None, now=200.0) -> Page:
    return Page(render(described, values or {}, sampler or RateSampler(clock=Clock()), now=now))


def stream(name="s", **fields) -> dict:
    return {"name": name, "source": "walk", "shared": True, **fields}


# --- what the page shows ---------------------------------------------------------------------------


def test_the_page_has_a_title_a_refresh_and_the_time_it_was_made():
    page = view({"streams": []}, now=200.0)
    assert page.doctype.lower() == "doctype html"
    assert page.root.one("title").text() == "dashstream status"
    assert page.root.one("meta", **{"http-equiv": "refresh"}).attrs["content"] == str(REFRESH) == "5"
    assert page.root.one("h1").text() == "dashstream status at 00:03:20, refreshed every 5 s"
    headings, rows = table(page)
    assert headings == HEADINGS and rows == []


def test_a_server_without_streams_shows_an_empty_table():
    headings, rows = table(view({}))
    assert headings == HEADINGS and rows == []


def test_each_stream_shows_its_state_since_when_its_audience_value_age_and_losses():
    page = view(FLEET, {"sales": 42})
    headings, (sales, down) = table(page)
    assert headings == [*HEADINGS, "producer on"]
    assert shown(sales["stream"]) == ("sales", "publish")
    assert shown(sales["source state"]) == ("UP", "since 00:01:40 (2 min)")
    assert [sales[h].text() for h in HEADINGS[2:]] == ["7", "42", "10 s", "-", "3", "1"]
    assert sales["producer on"].text() == "host:5001:ab"
    assert sales["row"].attrs == {"data-stream": "sales", "data-state": "up"}  # what the colours key on
    assert shown(down["stream"]) == ("<b>x</b>", "sql")
    assert shown(down["source state"]) == ("SOURCE DOWN", "since 00:02:30 (50 s): could not connect <here>")
    assert [down[h].text() for h in HEADINGS[2:]] == ["0", "-", "-", "-", "0", "0"]
    assert down["producer on"].text() == "-"  # nobody runs it now
    assert down["row"].attrs == {"data-stream": "<b>x</b>", "data-state": "down"}


@pytest.mark.parametrize("state, word", [("up", "UP"), ("stale", "STALE"), ("down", "SOURCE DOWN"),
                                         ("starting", "STARTING"), ("paused", "PAUSED"), (None, "UP")])
def test_the_source_state_in_words(state, word):
    _, (row,) = table(view({"streams": [stream(state=state, since=150.0)]}))
    assert shown(row["source state"])[0] == word and row["row"].attrs["data-state"] == (state or "up")


def test_a_stream_without_a_since_or_a_reason_says_so_plainly():
    _, (row,) = table(view({"streams": [stream(reason="")]}))
    assert shown(row["source state"]) == ("UP", "since - (-)")


def test_missing_counts_read_zero_and_missing_values_a_dash():
    _, (row,) = table(view({"streams": [stream(subscribers=None, dropped=None, slow_closed=None)]}))
    assert [row[h].text() for h in HEADINGS[2:]] == ["0", "-", "-", "-", "0", "0"]


@pytest.mark.parametrize("value, text", [(0, "0"), (False, "False"), (21.5, "21.5"), ("", ""), (None, "-")])
def test_the_last_value_is_shown_as_it_is(value, text):
    _, (row,) = table(view({"streams": [stream()]}, {"s": value}))
    assert row["last value"].text() == text


@pytest.mark.parametrize("seconds, age", [
    (-3.0, "0 s"),  # a clock a little ahead
    (0.4, "0 s"), (89.0, "89 s"), (90.0, "2 min"), (3000.0, "50 min"), (5399.0, "90 min"),
    (5400.0, "1.5 h"), (720000.0, "200.0 h"),
])
def test_ages_in_seconds_minutes_and_hours(seconds, age):
    _, (row,) = table(view({"streams": [stream(since=1000.0, last_ts=1000.0)]}, now=1000.0 + seconds))
    assert row["age"].text() == age
    assert shown(row["source state"])[1] == f"since 00:16:40 ({age})"


def test_a_stream_described_without_its_source_shows_its_name_alone():
    _, (row,) = table(view({"streams": [{"name": "s", "shared": True}]}))
    assert shown(row["stream"]) == ("s", "")


def test_the_rate_starts_again_after_a_restart_numbers_anew():
    clock = Clock()
    sampler = RateSampler(clock=clock)
    view({"streams": [stream(last_seq=100, epoch="e1")]}, sampler=sampler)
    clock.now = 30.0
    _, (row,) = table(view({"streams": [stream(last_seq=5, epoch="e2")]}, sampler=sampler))
    assert row["msg/min"].text() == "-"


def test_a_private_stream_is_marked_and_has_no_rate():
    clock = Clock()
    sampler = RateSampler(clock=clock)
    described = {"streams": [stream("mine", shared=False, last_seq=None)]}
    view(described, sampler=sampler)
    clock.now = 30.0
    _, (row,) = table(view(described, sampler=sampler))
    assert shown(row["stream"]) == ("mine", "walk · private") and row["msg/min"].text() == "-"


def test_the_rate_shows_from_the_second_view_for_each_stream_apart():
    clock = Clock()
    sampler = RateSampler(clock=clock)
    for now, a, b in ((0.0, 10, 0), (30.0, 40, 5)):
        clock.now = now
        _, rows = table(view({"streams": [stream("a", last_seq=a, epoch="e1"), stream("b", last_seq=b, epoch="e1")]},
                             sampler=sampler))
    assert [row["msg/min"].text() for row in rows] == ["60.0", "10.0"]


def test_the_fleet_part_names_the_backplane_and_the_instances_this_one_first_marked():
    page = view(FLEET)
    backplane = page.root.one("p", id="backplane")
    assert backplane.attrs["data-state"] == "down"
    assert backplane.text() == "backplane redis://127.0.0.1:6379/0: DOWN: Connection refused"
    instances = page.root.one("p", id="instances")
    assert instances.text() == "instances (2): host:5001:ab, host:5002:cd"
    assert [(span.text(), span.attrs.get("class")) for span in instances.all("span")] == [
        ("host:5001:ab", "me"), ("host:5002:cd", None)]


@pytest.mark.parametrize("backplane", [{"state": "up", "url": "redis://r:6379/0", "reason": "old news"},
                                       {"url": "redis://r:6379/0"}])
def test_a_backplane_that_is_up_shows_no_reason(backplane):
    page = view({**FLEET, "backplane": backplane})
    line = page.root.one("p", id="backplane")
    assert line.attrs["data-state"] == "up" and line.text() == "backplane redis://r:6379/0: UP"


def test_a_fleet_without_a_backplane_description_says_down_without_an_address():
    line = view({**FLEET, "backplane": {"state": "down"}}).root.one("p", id="backplane")
    assert line.text() == "backplane : DOWN: "


def test_without_a_backplane_there_is_no_fleet_part():
    page = view({"streams": FLEET["streams"][:1]})
    headings, _ = table(page)
    assert page.root.all("p") == [] and headings == HEADINGS


def test_everything_shown_is_escaped():
    markup = render(FLEET, {"sales": "<img src=x>"}, RateSampler(clock=Clock()), now=200.0)
    assert "<b>x</b>" not in markup and "<img" not in markup
    _, (sales, down) = table(Page(markup))
    assert sales["last value"].text() == "<img src=x>" and shown(down["stream"])[0] == "<b>x</b>"


# --- the rate ----------------------------------------------------------------------------------------


def test_the_rate_comes_from_earlier_views_and_restarts_with_a_new_epoch():
    clock = Clock()
    rates = RateSampler(clock=clock)
    assert rates.sample("s", 10, "e1") is None  # one view: nothing to compare with
    clock.now = 30.0
    assert rates.sample("s", 40, "e1") == 60.0  # 30 messages in 30 s
    clock.now = 100.0
    assert rates.sample("s", 110, "e1") == 60.0  # older samples beyond the minute are let go
    clock.now = 105.0
    assert rates.sample("s", 1, "e2") is None  # a new numbering


def rates_at(views) -> list[float | None]:
    clock = Clock()
    rates = RateSampler(clock=clock)
    found = []
    for clock.now, seq in views:
        found.append(rates.sample("s", seq, "e1"))
    return found


def test_a_second_view_a_second_later_has_a_rate():
    assert rates_at([(0.0, 0), (0.5, 1), (1.0, 2)]) == [None, None, 120.0]


def test_two_views_far_apart_still_give_a_rate():
    assert rates_at([(0.0, 0), (300.0, 50)]) == [None, 10.0]


def test_the_rate_is_over_the_last_minute_of_views():
    # A burst then a quiet minute: the burst is let go once a newer view is a minute old.
    assert rates_at([(0.0, 0), (70.0, 700), (140.0, 770)])[-1] == 60.0
    assert rates_at([(0.0, 0), (10.0, 100), (70.0, 160)])[-1] == 60.0  # exactly a minute: let go
    assert rates_at([(0.0, 0), (20.0, 10), (40.0, 50)])[-1] == 75.0  # all within the minute


def test_nothing_published_yet_counts_from_zero():
    assert rates_at([(0.0, None), (30.0, 10)]) == [None, 20.0]


# --- the answer --------------------------------------------------------------------------------------


def test_the_page_is_answered_as_html_that_is_never_cached():
    status, headers, body = status_response({"REQUEST_METHOD": "GET"}, FLEET, {"sales": 42}, None,
                                            RateSampler(clock=Clock()), now=200.0)
    assert status == "200 OK"
    assert dict(headers)["Content-Type"] == "text/html; charset=utf-8"  # the route takes it by this name
    assert {name.lower(): value for name, value in headers}["cache-control"] == "no-store"
    page = Page(body.decode("utf-8"))
    assert page.root.one("h1").text() == "dashstream status at 00:03:20, refreshed every 5 s"
    _, (sales, _) = table(page)
    assert sales["last value"].text() == "42" and sales["age"].text() == "10 s"


@pytest.mark.parametrize("environ", [{}, {"REQUEST_METHOD": "HEAD"}])
def test_head_and_a_request_without_a_method_are_answered_as_get(environ):
    status, _, body = status_response(environ, {"streams": []}, {}, None, RateSampler(clock=Clock()), now=200.0)
    assert status == "200 OK" and Page(body.decode()).root.one("title").text() == "dashstream status"


def test_without_a_time_given_the_page_is_made_at_the_wall_clock():
    described = {"streams": [stream(last_ts=time.time() - 30)]}
    before = time.strftime("%H:%M:%S", time.localtime())
    _, _, body = status_response({}, described, {}, None, RateSampler(clock=Clock()))
    after = time.strftime("%H:%M:%S", time.localtime())
    page = Page(body.decode())
    assert page.root.one("h1").text() in {f"dashstream status at {t}, refreshed every 5 s" for t in (before, after)}
    _, (row,) = table(page)
    assert row["age"].text() in {"30 s", "31 s"}


def test_other_methods_are_refused_with_what_is_allowed():
    status, headers, body = status_response({"REQUEST_METHOD": "POST"}, FLEET, {}, None, RateSampler())
    assert status == "405 Method Not Allowed"
    assert dict(headers)["Content-Type"] == "text/plain; charset=utf-8"
    assert {name.lower(): value for name, value in headers}["allow"] == "GET, HEAD"
    assert body == b"POST is not allowed here; use GET or HEAD\n"


def test_without_the_token_the_answer_says_how_to_give_it():
    status, headers, body = status_response({"REQUEST_METHOD": "GET"}, FLEET, {}, "t", RateSampler())
    assert status == "401 Unauthorized"
    assert dict(headers)["Content-Type"] == "text/plain; charset=utf-8"
    assert ("WWW-Authenticate", 'Bearer realm="dashstream status"') in headers
    assert body == b"/status needs 'Authorization: Bearer TOKEN' or ?token=TOKEN (--metrics-token)\n"
    status, _, _ = status_response({"QUERY_STRING": "token=t"}, FLEET, {}, "t", RateSampler(clock=Clock()), now=1.0)
    assert status == "200 OK"


def test_the_token_rule_is_the_metrics_one_plus_the_query_for_browsers():
    assert allowed({}, None)
    assert allowed({"HTTP_AUTHORIZATION": "Bearer t"}, "t")
    assert allowed({"HTTP_AUTHORIZATION": "bearer  t "}, "t")  # the scheme in any case, spaces around
    assert allowed({"QUERY_STRING": "token=t&x=1"}, "t")
    assert allowed({"HTTP_AUTHORIZATION": "Basic dDp0", "QUERY_STRING": "token=t"}, "t")
    assert not allowed({"QUERY_STRING": "token=u"}, "t")
    assert not allowed({"HTTP_AUTHORIZATION": "Basic dDp0"}, "t")
    assert not allowed({"HTTP_AUTHORIZATION": "Bearer u", "QUERY_STRING": "token=t"}, "t")  # the header decides
    assert not allowed({}, "t")


# --- the last values ---------------------------------------------------------------------------------


def log_with(last: Entry | None):
    return SimpleNamespace(log=SimpleNamespace(last=last))


def test_each_shared_streams_last_value_comes_from_its_log():
    def entry(body: str) -> Entry:
        return Entry("s", 1, 1.0, "e1", body)

    streams = {
        "sales": log_with(entry(json.dumps({"variable": 42, "unit": "EUR"}))),
        "quiet": log_with(None),  # nothing published yet
        "mine": SimpleNamespace(),  # a private stream: no log
        "broken": log_with(entry("{not json")),
        "listed": log_with(entry("[1, 2]")),  # JSON, but not an object
        "plain": log_with(entry('{"unit": "EUR"}')),  # no variable
    }
    assert last_values(streams) == {"sales": 42, "broken": None, "listed": None, "plain": None}
