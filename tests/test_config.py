"""Configuration: the option table, env fallbacks, precedence, stream specs."""

from __future__ import annotations

import re

import pytest

from dashstream.config import OPTIONS, Config, parse_config
from dashstream.stream_specs import StreamConfigError, load_stream_file, parse_stream_flag
from tests.support import ROOT

pytestmark = pytest.mark.timeout(10)


def test_every_option_is_a_config_field_and_a_readme_row_with_its_env_and_default():
    readme = (ROOT / "README.md").read_text()
    rows = {match.group(1): match.group(0) for match in re.finditer(r"^\| `(--[a-z-]+)[^`]*` \|.*$", readme, re.M)}
    fields = Config.__dataclass_fields__
    for option in OPTIONS:
        assert option.dest in fields, option.flag
        assert option.flag in rows, f"README options table lacks {option.flag}"
        assert f"`{option.env}`" in rows[option.flag], f"README row for {option.flag} lacks {option.env}"
    assert set(rows) == {option.flag for option in OPTIONS}, "README lists an option the server lacks"


def test_command_line_wins_over_environment_which_wins_over_default():
    assert parse_config([], {}).port == 5000
    assert parse_config([], {"DASHSTREAM_PORT": "6000"}).port == 6000
    assert parse_config(["--port", "7000"], {"DASHSTREAM_PORT": "6000"}).port == 7000


def test_switches_and_repeatable_options_from_the_environment():
    assert parse_config([], {"DASHSTREAM_NO_ECHO": "true"}).echo is False
    assert parse_config([], {"DASHSTREAM_NO_ECHO": "0"}).echo is True
    config = parse_config([], {"DASHSTREAM_STREAM": "a=publish, b=random-walk:shared"})
    assert [(s.name, s.source, s.shared) for s in config.streams] == [
        ("a", "publish", True), ("b", "random-walk", True), ("default", "random-walk", False)]
    # the command line replaces the environment's list rather than adding to it
    config = parse_config(["--stream", "c=publish"], {"DASHSTREAM_STREAM": "a=publish"})
    assert [s.name for s in config.streams] == ["c", "default"]


def test_the_publish_token_never_appears_in_the_config_repr():
    assert "s3cret" not in repr(parse_config(["--publish-token", "s3cret"], {}))


def test_default_stream_takes_the_walk_options():
    spec = {s.name: s for s in parse_config(["--min-wait", "2", "--max-wait", "3"], {}).streams}["default"]
    assert (spec.source, spec.shared, spec.options["min_wait"], spec.options["max_wait"]) == (
        "random-walk", False, 2.0, 3.0)


# The example file's PostgreSQL stream reads its URL from the environment (url_env).
EXAMPLE_ENV = {"ORDERS_DATABASE_URL": "postgresql://dashboard:secret@127.0.0.1:5432/shop"}


def test_example_file_uses_every_key_of_every_source():
    from dashstream.stream_specs import COMMON_KEYS, SOURCE_KEYS

    text = (ROOT / "streams.example.toml").read_text()
    specs = {spec.name: spec for spec in load_stream_file(str(ROOT / "streams.example.toml"), environ=EXAMPLE_ENV)}
    assert {spec.source for spec in specs.values()} == set(SOURCE_KEYS)
    assert any(spec.shared and spec.source == "random-walk" for spec in specs.values())
    for key in [*COMMON_KEYS, *(key for keys in SOURCE_KEYS.values() for key in keys)]:
        assert re.search(rf"^{key} = ", text, re.M), f"streams.example.toml does not show {key!r}"


@pytest.mark.parametrize("flag", ["office", "office=", "office=walk", "office=random-walk:private",
                                  "=publish", "sales=publish:shared"])
def test_bad_stream_flags_are_refused_with_a_reason(flag):
    with pytest.raises(StreamConfigError) as error:
        parse_stream_flag(flag)
    assert "--stream" in str(error.value)
