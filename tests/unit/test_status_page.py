"""ops/status_page.py without a server: the token rule, the fleet's part of the page, the
rate from earlier views, and data escaped."""

from __future__ import annotations

from dashstream.ops.status_page import RateSampler, allowed, render, status_response

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


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_fleet_part_names_instances_producers_and_the_backplane_state():
    page = render(FLEET, {"sales": 42}, RateSampler(clock=Clock()), now=200.0)
    assert 'id="backplane" data-state="down"' in page and "Connection refused" in page
    assert "instances (2): <span class=me>host:5001:ab</span>, <span>host:5002:cd</span>" in page
    assert '<td data-field="producer">host:5001:ab</td>' in page
    assert '<td class="num" data-field="subscribers">7</td>' in page
    assert '<td class="value" data-field="value">42</td>' in page
    assert '<td class="num" data-field="age">10 s</td>' in page
    assert "<th>producer on</th>" in page


def test_everything_shown_is_escaped():
    page = render(FLEET, {"sales": "<img src=x>"}, RateSampler(clock=Clock()), now=200.0)
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<img" not in page and "could not connect &lt;here&gt;" in page


def test_without_a_backplane_there_is_no_fleet_part():
    page = render({"streams": FLEET["streams"][:1]}, {}, RateSampler(clock=Clock()), now=200.0)
    assert 'id="instances"' not in page and "producer on" not in page


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


def test_the_token_rule_is_the_metrics_one_plus_the_query_for_browsers():
    assert allowed({}, None)
    assert allowed({"HTTP_AUTHORIZATION": "Bearer t"}, "t")
    assert allowed({"QUERY_STRING": "token=t&x=1"}, "t")
    assert not allowed({"QUERY_STRING": "token=u"}, "t")
    assert not allowed({"HTTP_AUTHORIZATION": "Basic dDp0"}, "t")
    status, headers, _ = status_response({"REQUEST_METHOD": "GET"}, FLEET, {}, "t", RateSampler())
    assert status.startswith("401") and ("WWW-Authenticate", 'Bearer realm="dashstream status"') in headers
