"""Unit tests for ``dashstream.stream_specs``: tables, files and ``--stream`` flags → ``StreamSpec``.

Every refusal is compared whole: it is what the person editing the file reads, and it must
name the file, the stream and the key. (The sources' own keys and rules: test_source_config.py.)
"""

from __future__ import annotations

import sys
import types

import pytest

from dashstream.config.stream_specs import (
    StreamConfigError,
    StreamSpec,
    driver_installed,
    load_stream_file,
    parse_stream_flag,
    read_config_table,
    spec_from_table,
)
from producer.base import Driver

pytestmark = pytest.mark.timeout(10)

SOURCES = "random-walk, publish, ticker, sql, redis, zmq"
WALK = {"min_wait": 0.5, "max_wait": 2.0, "min_step": 1, "max_step": 10}


def spec(table, name: str = "s", defaults=None, environ=None) -> StreamSpec:
    return spec_from_table(name, table, "streams.toml", defaults, {} if environ is None else environ)


def refused(call) -> str:
    with pytest.raises(StreamConfigError) as error:
        call()
    return str(error.value)


def write(tmp_path, text: str) -> str:
    path = tmp_path / "streams.toml"
    path.write_text(text)
    return str(path)


# --- names ------------------------------------------------------------------------------------

NAME_RULE = "a name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


@pytest.mark.parametrize("name", ["a", "Z", "7", "office.2nd_floor-east", "x" * 64])
def test_good_stream_names(name):
    assert spec({"source": "publish"}, name=name).name == name


@pytest.mark.parametrize("name", ["", "-a", ".a", "_a", "a b", "a/b", "x" * 65, "café"])
def test_bad_stream_names_are_refused_with_the_rule(name):
    assert refused(lambda: spec({"source": "publish"}, name=name)) == f"streams.toml: stream {name!r}: {NAME_RULE}"


# --- the table ----------------------------------------------------------------------------------


@pytest.mark.parametrize("table, message", [
    (5, "streams.toml: stream 's': must be a table ([streams.NAME])"),
    ("publish", "streams.toml: stream 's': must be a table ([streams.NAME])"),
    ({}, f"streams.toml: stream 's', key 'source': missing; one of {SOURCES}"),
    ({"history": 3}, f"streams.toml: stream 's', key 'source': missing; one of {SOURCES}"),
    ({"source": "kafka"}, f"streams.toml: stream 's', key 'source': unknown source 'kafka'; one of {SOURCES}"),
    ({"source": ["publish"]}, f"streams.toml: stream 's', key 'source': unknown source ['publish']; one of {SOURCES}"),
    ({"source": "publish", "colour": "red"},
     "streams.toml: stream 's', key 'colour': unknown key for source 'publish'; allowed: history, stale_after"),
    ({"source": "ticker", "min_wait": 1},
     "streams.toml: stream 's', key 'min_wait': unknown key for source 'ticker'; allowed: history, rate, "
     "stale_after, start, step"),
    ({"source": "publish", "history": 0}, "streams.toml: stream 's', key 'history': must be an integer >= 1, got 0"),
    ({"source": "publish", "stale_after": "1"},
     "streams.toml: stream 's', key 'stale_after': must be a number > 0, got '1'"),
    ({"source": "sql", "url": "sqlite:///x.db"},
     "streams.toml: stream 's', key 'query': missing; a 'sql' source needs it (the SELECT whose first row is the "
     "message; it must have a 'variable' column)"),
    ({"source": "random-walk", "min_wait": 3, "max_wait": 1},
     "streams.toml: stream 's', key 'min_wait': min_wait (3.0) must not exceed max_wait (1.0)"),
])
def test_bad_tables_are_refused_naming_the_file_the_stream_and_the_key(table, message):
    assert refused(lambda: spec(table)) == message


def test_the_common_keys_become_fields_of_the_spec_not_options():
    assert spec({"source": "publish", "history": 3, "stale_after": 2}) == StreamSpec(
        "s", "publish", shared=True, options={}, history=3, stale_after=2.0)
    assert spec({"source": "publish"}) == StreamSpec("s", "publish", shared=True, options={}, history=None,
                                                     stale_after=None)


def test_values_come_from_the_table_then_the_defaults_given_then_the_keys_own_defaults():
    # random-walk's `shared` key defaults to false; the walk options come from the command line.
    assert spec({"source": "random-walk"}, defaults=WALK) == StreamSpec("s", "random-walk", shared=False,
                                                                        options=WALK)
    assert spec({"source": "random-walk"}, defaults={**WALK, "shared": True}).shared is True
    got = spec({"source": "random-walk", "min_wait": 1, "shared": True, "start": 5}, defaults=WALK)
    assert (got.shared, got.options) == (True, {**WALK, "min_wait": 1.0, "start": 5})
    # A key's own default is filled in; keys without one stay absent.
    assert spec({"source": "zmq", "url": "tcp://h:1"}).options == {"url": "tcp://h:1", "topic": ""}
    assert spec({"source": "ticker"}).options == {}


def test_defaults_only_reach_sources_that_take_those_keys():
    assert spec({"source": "publish"}, defaults=WALK).options == {}
    assert spec({"source": "ticker"}, defaults={**WALK, "start": 9}).options == {"start": 9}


def test_a_source_without_a_shared_key_is_shared_and_shared_is_never_an_option():
    assert [spec({"source": source, **extra}).shared for source, extra in [
        ("publish", {}), ("ticker", {}), ("zmq", {"url": "tcp://h:1"})]] == [True, True, True]
    for shared in (True, False):
        got = spec({"source": "random-walk", "shared": shared})
        assert got.shared is shared and "shared" not in got.options


def test_url_env_is_read_from_the_environment_given_or_else_the_processs(monkeypatch):
    table = {"source": "zmq", "url_env": "FEED"}
    assert spec(table, environ={"FEED": "tcp://a:1"}).options["url"] == "tcp://a:1"
    monkeypatch.setenv("FEED", "tcp://b:2")
    assert spec_from_table("s", table, "streams.toml").options["url"] == "tcp://b:2"
    assert refused(lambda: spec(table, environ={})) == (
        "streams.toml: stream 's', key 'url_env': environment variable FEED is not set")


def test_a_missing_driver_names_the_key_and_the_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "zmq", None)  # what find_spec sees for a package that is not installed
    assert refused(lambda: spec({"source": "zmq", "url": "tcp://h:1"})) == (
        "streams.toml: stream 's', key 'source': needs the Python package 'zmq', which is not installed: "
        "pip install 'dashstream[zmq]'")


@pytest.mark.parametrize("module, installed", [
    ("json", True),
    ("email.mime", True),
    ("dashstream_no_such_module", False),
    ("dashstream_no_such_package.sub", False),  # find_spec raises ModuleNotFoundError for the parent
    ("dashstream_test_spec_less", False),  # in sys.modules without a spec: find_spec raises ValueError
])
def test_driver_installed_looks_without_importing(monkeypatch, module, installed):
    monkeypatch.setitem(sys.modules, "dashstream_test_spec_less", types.ModuleType("dashstream_test_spec_less"))
    assert driver_installed(Driver(module, "x")) is installed


# --- files ---------------------------------------------------------------------------------------


def test_a_file_gives_one_spec_per_table_in_order_with_the_defaults_and_environment(tmp_path):
    path = write(tmp_path, '[streams.b]\nsource = "random-walk"\nmax_step = 4\n\n'
                           '[streams.a]\nsource = "zmq"\nurl_env = "FEED"\n\n[streams.c]\nsource = "publish"\n')
    assert load_stream_file(path, WALK, {"FEED": "ipc:///tmp/feed"}) == [
        StreamSpec("b", "random-walk", shared=False, options={**WALK, "max_step": 4}),
        StreamSpec("a", "zmq", shared=True, options={"url": "ipc:///tmp/feed", "topic": ""}),
        StreamSpec("c", "publish", shared=True),
    ]


def test_a_files_errors_are_prefixed_with_its_path(tmp_path):
    path = write(tmp_path, '[streams.x]\nsource = "publish"\nhistory = -1\n')
    assert refused(lambda: load_stream_file(path)) == (
        f"{path}: stream 'x', key 'history': must be an integer >= 1, got -1")
    path = write(tmp_path, '[streams]\nx = 1\n')
    assert refused(lambda: load_stream_file(path)) == f"{path}: stream 'x': must be a table ([streams.NAME])"


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "[streams]\n", "streams = 1\n",
                                  '[dashboard]\ntitle = "x"\n'])
def test_a_file_without_streams_is_refused(tmp_path, text):
    path = write(tmp_path, text)
    assert refused(lambda: load_stream_file(path)) == f"{path}: no streams; define at least one [streams.NAME] table"


def test_read_config_table_returns_the_whole_document(tmp_path):
    path = write(tmp_path, '[streams.a]\nsource = "publish"\n\n[dashboard]\ntitle = "Ops"\n')
    assert read_config_table(path) == {"streams": {"a": {"source": "publish"}}, "dashboard": {"title": "Ops"}}


@pytest.mark.parametrize("text, reason", [
    ("a b\n", "not valid TOML: Expected '=' after a key in a key/value pair (at line 1, column 3)"),
    ("[streams\n", "not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 9)"),
    ('[zeta]\n[alpha]\n[streams.a]\nsource = "publish"\n',
     "unknown top-level key 'alpha'; only [streams.NAME], [dashboard], "
     "[dashboards.NAME], [playlists.NAME] and [screens.NAME] tables"),
    ('stream = "a=publish"\n', "unknown top-level key 'stream'; only [streams.NAME], [dashboard], "
     "[dashboards.NAME], [playlists.NAME] and [screens.NAME] tables"),
])
def test_a_bad_file_is_refused_with_its_path_and_why(tmp_path, text, reason):
    path = write(tmp_path, text)
    assert refused(lambda: read_config_table(path)) == f"{path}: {reason}"


def test_a_file_that_cannot_be_read_is_refused_with_the_systems_reason(tmp_path):
    assert refused(lambda: read_config_table(str(tmp_path / "missing.toml"))) == (
        f"{tmp_path / 'missing.toml'}: cannot read: No such file or directory")
    assert refused(lambda: read_config_table(str(tmp_path))) == f"{tmp_path}: cannot read: Is a directory"


# --- --stream flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("office=random-walk", StreamSpec("office", "random-walk", shared=False, options=WALK)),
    ("office=random-walk:shared", StreamSpec("office", "random-walk", shared=True, options=WALK)),
    ("office=random-walk:shared:shared", StreamSpec("office", "random-walk", shared=True, options=WALK)),
    ("sales=publish", StreamSpec("sales", "publish", shared=True)),
    ("beat=ticker", StreamSpec("beat", "ticker", shared=True)),
])
def test_good_stream_flags(text, expected):
    assert parse_stream_flag(text, WALK) == expected


@pytest.mark.parametrize("text, message", [
    ("office", "--stream: expected NAME=SOURCE[:shared], got 'office'"),
    ("office=", "--stream: expected NAME=SOURCE[:shared], got 'office='"),
    ("", "--stream: expected NAME=SOURCE[:shared], got ''"),
    ("office=random-walk:private", "--stream: unknown flag 'private' in 'office=random-walk:private'; "
                                   "the only flag is 'shared'"),
    ("office=random-walk:", "--stream: unknown flag '' in 'office=random-walk:'; the only flag is 'shared'"),
    ("=publish", f"--stream: stream '': {NAME_RULE}"),
    ("office=walk", f"--stream: stream 'office', key 'source': unknown source 'walk'; one of {SOURCES}"),
    ("a=b=c", f"--stream: stream 'a', key 'source': unknown source 'b=c'; one of {SOURCES}"),
    ("sales=publish:shared",
     "--stream: stream 'sales', key 'shared': unknown key for source 'publish'; allowed: history, stale_after"),
    ("orders=redis", "--stream: stream 'orders', key 'url': missing; a 'redis' source needs url (or url_env, "
                     "naming an environment variable that holds it)"),
])
def test_bad_stream_flags_are_refused_with_the_whole_reason(text, message):
    assert refused(lambda: parse_stream_flag(text, environ={})) == message

