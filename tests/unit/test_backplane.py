"""Unit tests of dashstream/backplane.py: the --backplane URL check, the backplane's health
(broadcast on change, told on connect while down, logged once), and the memory default."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from dashstream.backplane import make_backplane, parse_backplane_url
from dashstream.backplane.base import BackplaneHealth
from dashstream.backplane.memory import MemoryBackplane
from dashstream.config.options import parse_config

pytestmark = pytest.mark.timeout(20)


# --- the URL ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "redis://:secret@cache:6380", "rediss://cache/2",
                                 "unix:///run/redis.sock", " redis://h/0 "])
def test_redis_urls_are_accepted(url):
    assert parse_backplane_url(url) == url.strip()


@pytest.mark.parametrize("url", ["memory", "memory://", "MEMORY://"])
def test_memory_is_the_one_process_default(url):
    assert parse_backplane_url(url) == "memory://"
    assert isinstance(make_backplane(parse_backplane_url(url), "i"), MemoryBackplane)
    assert isinstance(make_backplane(None, "i"), MemoryBackplane)


@pytest.mark.parametrize("url, reason", [
    ("http://cache:6379/0", "must start with redis: or rediss: or unix: or memory:"),
    ("cache:6379", "must start with"),
    ("redis://cache:port/0", "cannot parse URL"),
    ("redis://cache:99999/0", "cannot parse URL"),
    ("redis:///0", "names no host"),
    ("redis://cache/zero", "the path is the database number"),
    ("redis://cache/X1", "the path is the database number"),
    ("unix://", "names no socket"),
    ("memory://x", "memory:// takes nothing"),
])
def test_bad_urls_say_why(url, reason):
    with pytest.raises(ValueError) as error:
        parse_backplane_url(url)
    assert reason in str(error.value)


def test_a_redis_url_makes_a_redis_backplane_without_connecting_yet():
    from dashstream.backplane.redis import RedisBackplane

    made = make_backplane("redis://127.0.0.1:1/0", "me:1:ab")
    assert isinstance(made, RedisBackplane) and (made.url, made.instance) == ("redis://127.0.0.1:1/0", "me:1:ab")
    assert made.health_fields() == {"instance": "me:1:ab", "backplane": "down"}


def test_a_password_never_appears_in_the_reason():
    with pytest.raises(ValueError) as error:
        parse_backplane_url("redis://:hunter2@cache/zero")
    assert "hunter2" not in str(error.value) and "***" in str(error.value)
    assert "hunter2" not in repr(parse_backplane_url("redis://:hunter2@cache/0"))


def test_without_redis_py_the_option_is_refused_with_the_pip_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "redis", None)  # what find_spec sees for a missing package
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--backplane", "redis://127.0.0.1:6379/0"], {})
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --backplane: needs the Python package 'redis'" in err
    assert "pip install 'dashstream[redis]'" in err


def test_the_option_and_its_environment_variable():
    assert parse_config([], {}).backplane is None
    assert parse_config([], {"DASHSTREAM_BACKPLANE": "redis://h:1/0"}).backplane == "redis://h:1/0"
    assert parse_config(["--backplane", "redis://a/1"], {"DASHSTREAM_BACKPLANE": "redis://h:1/0"}).backplane == \
        "redis://a/1"
    assert "secret" not in repr(parse_config(["--backplane", "redis://:secret@h/0"], {}))


def test_a_bad_url_exits_2_naming_the_option_or_the_variable(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_config(["--backplane", "http://h/0"], {})
    assert exit_.value.code == 2 and "argument --backplane:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_config([], {"DASHSTREAM_BACKPLANE": "redis://h/x"})
    assert "DASHSTREAM_BACKPLANE (option --backplane)" in capsys.readouterr().err


# --- health -----------------------------------------------------------------------------------------


class Session:
    def __init__(self, control: bool = True):
        self.control = control
        self.sent: list[dict] = []

    def send_control(self, message):
        if self.control:
            self.sent.append(json.loads(message.text))


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        self.now += 1
        return self.now


def test_a_change_of_state_reaches_every_control_client_once(caplog):
    sessions = [Session(), Session(), Session(control=False)]
    health = BackplaneHealth("redis://h/0", sessions=lambda: sessions, clock=Clock())
    assert (health.state, health.reason, health.up) == ("down", "connecting", False)
    with caplog.at_level(logging.INFO, logger="dashstream.backplane"):
        assert health.set("up") is True
        assert health.set("up") is False
        assert health.set("down", "Connection refused") is True
        assert health.set("down", "Timeout connecting") is False  # the same outage, other words
        assert health.set("up") is True
    assert sessions[0].sent == sessions[1].sent == [
        {"control": "backplane", "state": "up", "since": 102.0, "reason": ""},
        {"control": "backplane", "state": "down", "since": 103.0, "reason": "Connection refused"},
        {"control": "backplane", "state": "up", "since": 104.0, "reason": ""}]
    assert sessions[2].sent == []
    lines = [r.getMessage() for r in caplog.records if r.name == "dashstream.backplane"]
    assert lines == ["backplane redis://h/0 is up",
                     "backplane redis://h/0 is down: Connection refused; publishing is refused (503) and retried "
                     "until it is back",
                     "backplane redis://h/0 is up"]
    assert health.describe() == {"state": "up", "since": 104.0, "reason": ""}


def test_the_first_state_is_reported_even_when_it_is_down(caplog):
    health = BackplaneHealth("redis://h/0", clock=Clock())
    with caplog.at_level(logging.INFO, logger="dashstream.backplane"):
        assert health.set("down", "Connection refused") is True
        assert health.set("down", "again") is False
    assert health.reason == "Connection refused"
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_a_client_that_connects_while_down_is_told_at_once():
    health = BackplaneHealth("x", clock=Clock())
    early, plain = Session(), Session(control=False)
    health.welcome(early)
    health.welcome(plain)
    assert early.sent == [{"control": "backplane", "state": "down", "since": 101.0, "reason": "connecting"}]
    assert plain.sent == []
    health.set("up")
    late = Session()
    health.welcome(late)
    assert late.sent == []


def test_the_memory_backplane_shares_nothing_and_is_always_ready():
    memory = MemoryBackplane()
    assert memory.up and memory.not_ready() is None and memory.health_fields() == {} and memory.describe() is None
    assert memory.log_factory(object()) is None
    assert memory.reload(lambda: 3) == 3
    described = [{"name": "a", "subscribers": 2}]
    assert memory.describe_streams(described) == {"streams": described}
    assert memory.runner_factory(object()) is None
    memory.start(None)
    memory.welcome(Session())
    memory.stop()
