"""Configuring the sources of issue 11: keys declared by the source classes, the rules between
them, url_env, missing drivers, and passwords that never show."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dashstream.config.options import parse_config
from dashstream.config.stream_specs import (
    COMMON_KEYS,
    SOURCE_KEYS,
    StreamConfigError,
    parse_stream_flag,
    spec_from_table,
)
from producer import SOURCES
from producer.base import Source
from producer.urls import SecretUrl, redact_url
from tests.support import ROOT, SERVER, ServerProcess, scaled

pytestmark = pytest.mark.timeout(20)

DRIVERS = ("redis", "psycopg2", "zmq")


def spec(table: dict, environ: dict | None = None, name: str = "s"):
    return spec_from_table(name, table, "streams.toml", environ=environ or {})


def refused(table: dict, environ: dict | None = None) -> str:
    with pytest.raises(StreamConfigError) as error:
        spec(table, environ)
    return str(error.value)


# --- the registry --------------------------------------------------------------------------


def test_every_source_declares_its_kind_and_keys_and_the_specs_read_them_from_the_classes():
    assert set(SOURCES) == {"random-walk", "publish", "ticker", "sql", "redis", "zmq"}
    for kind, cls in SOURCES.items():
        assert issubclass(cls, Source) and cls.kind == kind
        assert set(SOURCE_KEYS[kind]) == set(cls.key_names())
    assert set(COMMON_KEYS) == {"history", "stale_after"}
    assert {driver.module for cls in SOURCES.values() for driver in cls.drivers()} == set(DRIVERS)


def test_importing_the_sources_imports_no_driver():
    code = ("import sys, producer, dashstream.config.stream_specs; "
            f"print([m for m in {DRIVERS!r} if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                            timeout=scaled(10), check=True)
    assert result.stdout.strip() == "[]"


# --- valid tables --------------------------------------------------------------------------


def test_a_sql_stream_with_defaults_filled_in():
    got = spec({"source": "sql", "url": "sqlite:///srv/app/app.db", "query": "SELECT 1 AS variable"})
    assert (got.source, got.shared, got.history, got.stale_after) == ("sql", True, None, None)
    assert got.options == {"url": "sqlite:///srv/app/app.db", "query": "SELECT 1 AS variable", "interval": 5.0}
    assert isinstance(got.options["url"], SecretUrl)


def test_a_postgres_stream_with_listen_and_every_common_key():
    got = spec({"source": "sql", "url": "postgresql://u@db:5432/app", "query": "SELECT 1 AS variable",
                "interval": 2, "listen": "changes", "stale_after": 30, "history": 5})
    assert got.options["interval"] == 2.0 and got.options["listen"] == "changes"
    assert (got.stale_after, got.history) == (30.0, 5)


def test_redis_and_zmq_streams():
    assert spec({"source": "redis", "url": "redis://127.0.0.1:6379/0", "channel": "orders"}).options == {
        "url": "redis://127.0.0.1:6379/0", "channel": "orders"}
    assert spec({"source": "redis", "url": "rediss://h/1", "pattern": "orders.*", "latest_key": "k"}).options[
        "pattern"] == "orders.*"
    assert spec({"source": "zmq", "url": "tcp://127.0.0.1:5557"}).options == {"url": "tcp://127.0.0.1:5557",
                                                                               "topic": ""}
    assert spec({"source": "zmq", "url": "ipc:///tmp/feed", "topic": "temp"}).options["topic"] == "temp"


@pytest.mark.parametrize("source", ["random-walk", "publish"])
def test_stale_after_is_a_key_of_every_source(source):
    assert spec({"source": source, "stale_after": 1.5}).stale_after == 1.5


def test_url_env_reads_the_url_from_the_environment():
    got = spec({"source": "redis", "url_env": "ORDERS_REDIS", "channel": "o"},
               environ={"ORDERS_REDIS": "redis://:pw@10.0.0.5:6379/2"})
    assert got.options["url"] == "redis://:pw@10.0.0.5:6379/2" and "url_env" not in got.options


def test_stream_flags_still_work_and_url_sources_need_a_file():
    assert parse_stream_flag("office=random-walk:shared").shared is True
    with pytest.raises(StreamConfigError, match="--stream: stream 'orders', key 'url': missing; a 'redis' source"):
        parse_stream_flag("orders=redis")


# --- refused tables ------------------------------------------------------------------------


@pytest.mark.parametrize("table, environ, message", [
    ({"source": "kafka"}, {}, "key 'source': unknown source 'kafka'; one of random-walk, publish, ticker, sql, redis, zmq"),
    ({"source": 5}, {}, "key 'source': unknown source 5"),
    ({"source": "sql", "url": "sqlite:///x.db"}, {}, "key 'query': missing; a 'sql' source needs it"),
    ({"source": "sql", "query": "SELECT 1"}, {},
     "key 'url': missing; a 'sql' source needs url (or url_env, naming an environment variable that holds it)"),
    ({"source": "sql", "url": "sqlite:///x.db", "url_env": "X", "query": "q"}, {"X": "sqlite:///y.db"},
     "key 'url_env': give url or url_env, not both"),
    ({"source": "sql", "url": "mysql://h/db", "query": "q"}, {},
     "key 'url': URL 'mysql://h/db' must start with sqlite: or postgresql: or postgres:"),
    ({"source": "sql", "url": "sqlite://host/x.db", "query": "q"}, {}, "key 'url': a sqlite URL names a file"),
    ({"source": "sql", "url": "sqlite://", "query": "q"}, {}, "key 'url': a sqlite URL names a file"),
    ({"source": "sql", "url": "", "query": "q"}, {}, "key 'url': must not be empty"),
    ({"source": "sql", "url": "sqlite:///x.db", "query": "  "}, {}, "key 'query': must not be empty"),
    ({"source": "sql", "url": "sqlite:///x.db", "query": "q", "interval": 0}, {}, "key 'interval': must be a number > 0"),
    ({"source": "sql", "url": "sqlite:///x.db", "query": "q", "interval": "5"}, {}, "key 'interval': must be a number"),
    ({"source": "sql", "url": "sqlite:///x.db", "query": "q", "listen": "c"}, {},
     "key 'listen': LISTEN needs a postgresql:// URL, not sqlite:"),
    ({"source": "sql", "url": "postgresql://h/db", "query": "q", "listen": "x" * 64}, {},
     "key 'listen': a PostgreSQL channel name is at most 63 bytes, got 64"),
    ({"source": "sql", "url": "postgresql://h:99999/db", "query": "q"}, {}, "key 'url': cannot parse URL"),
    ({"source": "redis", "url": "redis://h"}, {},
     "key 'channel': give exactly one of channel (SUBSCRIBE) and pattern (PSUBSCRIBE)"),
    ({"source": "redis", "url": "redis://h", "channel": "a", "pattern": "b*"}, {}, "key 'channel': give exactly one"),
    ({"source": "redis", "url": "http://h", "channel": "a"}, {},
     "key 'url': URL 'http://h' must start with redis: or rediss: or unix:"),
    ({"source": "redis", "url": "redis://h", "channel": "a", "colour": "red"}, {},
     "key 'colour': unknown key for source 'redis'; allowed: channel, history, latest_key, pattern, stale_after, url, "
     "url_env"),
    ({"source": "zmq", "url": "tcp://127.0.0.1"}, {}, "key 'url': a tcp:// URL needs a host and a port"),
    ({"source": "zmq", "url": "tcp://127.0.0.1:5557", "topic": 1}, {}, "key 'topic': must be a string, got 1"),
    ({"source": "zmq", "url_env": "FEED"}, {}, "key 'url_env': environment variable FEED is not set"),
    ({"source": "zmq", "url_env": "FEED"}, {"FEED": " "}, "key 'url_env': environment variable FEED is not set"),
    ({"source": "zmq", "url_env": "not a name"}, {}, "key 'url_env': must be an environment variable name"),
    ({"source": "zmq", "url_env": "FEED"}, {"FEED": "udp://h:1"},
     "key 'url_env': environment variable FEED: URL 'udp://h:1' must start with tcp: or ipc:"),
    ({"source": "publish", "stale_after": 0}, {}, "key 'stale_after': must be a number > 0, got 0"),
    ({"source": "publish", "stale_after": True}, {}, "key 'stale_after': must be a number > 0, got True"),
    ({"source": "random-walk", "min_step": 5, "max_step": 1}, {}, "key 'min_step': min_step (5) must not exceed"),
])
def test_bad_tables_name_the_file_the_stream_and_the_key(table, environ, message):
    text = refused(table, environ)
    assert text.startswith("streams.toml: stream 's', ") and message in text, text


def test_a_password_never_appears_in_an_error():
    text = refused({"source": "redis", "url_env": "R", "channel": "c"}, {"R": "http://user:hunter2@h:1/"})
    assert "hunter2" not in text and "http://user:***@h:1/" in text
    text = refused({"source": "sql", "url": "postgresql://u:hunter2@h:notaport/db", "query": "q"})
    assert "hunter2" not in text and "u:***@h" in text


# --- drivers -------------------------------------------------------------------------------


@pytest.mark.parametrize("table, module, key, extra", [
    ({"source": "redis", "url": "redis://h", "channel": "c"}, "redis", "source", "redis"),
    ({"source": "zmq", "url": "tcp://h:1"}, "zmq", "source", "zmq"),
    ({"source": "sql", "url": "postgresql://h/db", "query": "q"}, "psycopg2", "url", "sql"),
])
def test_a_missing_driver_is_refused_with_the_pip_line_that_adds_it(monkeypatch, table, module, key, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what `import` and find_spec see for a missing package
    text = refused(table)
    assert f"key {key!r}: needs the Python package {module!r}, which is not installed: " \
           f"pip install 'dashstream[{extra}]'" in text


def test_sqlite_needs_no_driver(monkeypatch):
    for module in DRIVERS:
        monkeypatch.setitem(sys.modules, module, None)
    assert spec({"source": "sql", "url": "sqlite:///x.db", "query": "q"}).source == "sql"


@pytest.mark.parametrize("url, path", [
    ("sqlite:///srv/app/app.db", "/srv/app/app.db"),
    ("sqlite:////srv/app/app.db", "/srv/app/app.db"),  # SQLAlchemy's spelling: not 'invalid uri authority'
    ("sqlite:data/app.db", "data/app.db"),
    ("sqlite:///srv/my%20app.db", "/srv/my app.db"),
])
def test_sqlite_urls_name_the_file(url, path):
    from producer.sql import sqlite_path

    assert sqlite_path(url) == path


def without_drivers(tmp_path) -> str:
    """server.py as a user without any driver installed would run it."""
    wrapper = tmp_path / "server_without_drivers.py"
    wrapper.write_text(
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})  # this tree, as `python server.py` in it would import\n"
        f"for module in {DRIVERS!r}:\n"
        "    sys.modules[module] = None  # ImportError on import, as if not installed\n"
        f"sys.argv[0] = {str(SERVER)!r}\n"
        f"runpy.run_path({str(SERVER)!r}, run_name='__main__')\n")
    return str(wrapper)


def test_the_server_exits_2_naming_file_stream_key_and_pip_line_when_a_driver_is_missing(tmp_path):
    config = tmp_path / "streams.toml"
    config.write_text('[streams.orders]\nsource = "redis"\nurl = "redis://127.0.0.1:6379/0"\nchannel = "orders"\n')
    result = subprocess.run([sys.executable, without_drivers(tmp_path), "--config", str(config)], cwd=ROOT,
                            capture_output=True, text=True, timeout=scaled(10))
    assert result.returncode == 2, result.stderr
    assert f"{config}: needs redis (dashstream[redis]) for 'orders': pip install" in result.stderr
    assert "pip install 'dashstream[redis]'" in result.stderr and "Traceback" not in result.stderr


def test_the_random_walk_works_without_any_driver(tmp_path):
    from websockets.sync.client import connect

    server = ServerProcess(server=without_drivers(tmp_path)).start()
    try:
        with connect(server.ws + "/", open_timeout=scaled(5)) as ws:
            assert "variable" in ws.recv(timeout=scaled(5))
    finally:
        server.stop()
        server.discard_log()


# --- passwords -----------------------------------------------------------------------------


@pytest.mark.parametrize("url, shown", [
    ("postgresql://dash:s3cret@db:5432/app", "postgresql://dash:***@db:5432/app"),
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("redis://user:p%40ss@h/0", "redis://user:***@h/0"),
    ("postgresql://dash@db/app?sslmode=require&password=s3cret", "postgresql://dash@db/app?sslmode=require&password=***"),
    ("redis://h/0?PASSWORD=s3cret", "redis://h/0?PASSWORD=***"),
    ("postgresql://dash@db/app?sslmode=require", "postgresql://dash@db/app?sslmode=require"),
    ("tcp://127.0.0.1:5557", "tcp://127.0.0.1:5557"),
    ("sqlite:///srv/app/app.db", "sqlite:///srv/app/app.db"),
    ("postgresql://dash:s3cret@db:bad/app", "postgresql://dash:***@db:bad/app"),
])
def test_redact_url_hides_passwords_in_userinfo_and_query(url, shown):
    assert redact_url(url) == shown


def test_a_secret_url_hides_its_password_in_repr_and_knows_its_secrets():
    url = SecretUrl("redis://:s%33cret@h/0?password=other")
    assert "cret" not in repr(url) and "other" not in repr(url)
    assert str(url) == "redis://:s%33cret@h/0?password=other"
    assert set(url.secrets) == {"s%33cret", "s3cret", "other"}
    assert SecretUrl("tcp://h:1").secrets == ()


def test_the_config_repr_never_shows_a_url_password(tmp_path):
    config = tmp_path / "streams.toml"
    config.write_text('[streams.o]\nsource = "redis"\nurl = "redis://:hunter2@h:6379/0"\nchannel = "o"\n')
    assert "hunter2" not in repr(parse_config(["--config", str(config)], {}))


def test_the_extras_pin_each_driver_and_all_is_their_union():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert sorted(extras["all"]) == sorted(extras["sql"] + extras["redis"] + extras["zmq"])
    assert all("==" in requirement for requirement in extras["all"])
    assert not any(requirement.startswith("hiredis") for requirement in extras["all"] + extras["test"])
    from producer import SOURCES

    for driver in {driver for cls in SOURCES.values() for driver in cls.drivers()}:
        assert driver.extra in extras, driver
