"""Configuration: the option table, env fallbacks, precedence, stream specs.

Direct calls only (``parse_config(argv, environ)``, ``build_parser()``): no server process.
Refusals are checked as whole lines, because the line is what the user reads.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from dashstream.config.options import OPTIONS, Config, build_parser, parse_config, resolve_streams, resolve_walls
from dashstream.config.stream_specs import StreamConfigError, StreamSpec, load_stream_file, parse_stream_flag
from dashstream.config.walls import NO_WALLS
from tests.support import ROOT

pytestmark = pytest.mark.timeout(10)

WALK = {"min_wait": 0.0, "max_wait": 1.0, "min_step": 1, "max_step": 10}
DEFAULT_SPEC = StreamSpec("default", "random-walk", shared=False, options=WALK)


@pytest.fixture
def refusal(capsys):
    """``refusal(argv, environ)``: parse_config must exit 2 with a usage line; returns the
    error line (the last line of stderr) without the ``python server.py: error: `` prefix."""

    def refuse(argv, environ=None, prog=None) -> str:
        with pytest.raises(SystemExit) as exited:
            if prog is None:
                parse_config(argv, environ or {})
            else:
                parse_config(argv, environ or {}, prog=prog)
        prog = prog or "python server.py"
        assert exited.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[0].startswith(f"usage: {prog} [-h] "), lines
        prefix = f"{prog}: error: "
        assert lines[-1].startswith(prefix), lines
        return lines[-1][len(prefix):]

    return refuse


def write(tmp_path, text: str, name: str = "streams.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --- the option table, the README and the help text ------------------------------------------


def test_every_option_is_a_config_field_and_a_readme_row_with_its_env_and_default():
    readme = (ROOT / "README.md").read_text()
    rows = {match.group(1): match.group(0) for match in re.finditer(r"^\| `(--[a-z-]+)[^`]*` \|.*$", readme, re.M)}
    fields = Config.__dataclass_fields__
    for option in OPTIONS:
        assert option.dest in fields, option.flag
        assert option.flag in rows, f"README options table lacks {option.flag}"
        assert f"`{option.env}`" in rows[option.flag], f"README row for {option.flag} lacks {option.env}"
    assert set(rows) == {option.flag for option in OPTIONS}, "README lists an option the server lacks"


# What --help says after "default" for every option: the value, or words where the value
# would say nothing ("none", "every origin"); a switch says whether its feature is on.
SHOWN_DEFAULTS = {
    "--host": "127.0.0.1", "--port": "5000", "--min-wait": "0.0", "--max-wait": "1.0", "--min-step": "1",
    "--max-step": "10", "--max-connections": "10000", "--no-echo": "on", "--close-timeout": "1.0",
    "--allowed-origin": "every origin", "--token": "none", "--handshake-rate": "50.0", "--handshake-burst": "1000",
    "--trusted-proxy": "127.0.0.0/8 and ::1 (loopback)", "--header-timeout": "10.0",
    "--certfile": "none: plain http/ws", "--keyfile": "none", "--ping-interval": "20.0", "--ping-timeout": "20.0",
    "--write-timeout": "10.0", "--max-message-size": "65536", "--log-level": "info", "--log-format": "text",
    "--metrics-token": "none: open", "--config": "none", "--stream": "none", "--history": "100",
    "--queue-size": "100", "--slow-timeout": "5.0", "--sse-heartbeat": "15.0", "--frame-timeout": "10.0",
    "--send-buffer": "65536", "--compression": "off", "--publish-token": "none", "--max-publish-size": "65536",
    "--backplane": "none: one process, streams in memory", "--state": "none: memory only", "--state-flush": "1.0",
}
SWITCHES = {"--no-echo", "--compression"}


@pytest.fixture
def help_text(monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal's width: one line per option
    return build_parser().format_help()


def test_the_help_shows_every_option_with_its_metavar_env_and_default(help_text):
    assert set(SHOWN_DEFAULTS) == {option.flag for option in OPTIONS}
    words = " ".join(help_text.split()) + " "  # a long option's help starts on the next line
    for option in OPTIONS:
        shown = f"{option.flag} {option.metavar}" if option.metavar else option.flag
        assert (option.metavar is None) is (option.flag in SWITCHES), option.flag
        expected = f"{option.help} [env {option.env}; default {SHOWN_DEFAULTS[option.flag]}]"
        assert f" {shown} {expected} " in words, option.flag
        assert f"[{shown}]" in help_text  # the usage line


def test_the_env_name_is_the_flag_in_capitals_after_the_prefix():
    assert {option.flag: option.env for option in OPTIONS if option.flag in (
        "--port", "--no-echo", "--max-message-size", "--trusted-proxy")} == {
        "--port": "DASHSTREAM_PORT", "--no-echo": "DASHSTREAM_NO_ECHO",
        "--max-message-size": "DASHSTREAM_MAX_MESSAGE_SIZE", "--trusted-proxy": "DASHSTREAM_TRUSTED_PROXY"}


def test_the_help_names_the_program_says_what_it_is_and_how_the_environment_ranks(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")
    assert build_parser().format_help().startswith("usage: python server.py [-h] [--host ADDR] [--port PORT] ")
    text = build_parser("dashstream").format_help()
    assert text.startswith("usage: dashstream [-h] ")
    assert "\n\ndashstream: push live data to dashboard screens over WebSockets.\n\n" in text
    assert text.endswith("\n\nEvery option can also be set by the environment variable shown; "
                         "the command line wins over the environment.\n")


def test_an_error_names_the_program_it_was_given(refusal):
    assert refusal(["--port", "0"], prog="dashstream") == "argument --port: must be 1-65535, got 0"


# --- defaults and precedence -------------------------------------------------------------------


def test_without_options_every_field_has_its_built_in_default():
    assert parse_config([], {}) == Config(streams=(DEFAULT_SPEC,))
    config = parse_config([], {})
    assert (config.host, config.port, config.echo, config.compression, config.log_level, config.log_format) == (
        "127.0.0.1", 5000, True, False, "info", "text")
    assert (config.allowed_origins, config.stream, config.config_file, config.walls) == ((), (), None, NO_WALLS)


def test_command_line_wins_over_environment_which_wins_over_default():
    assert parse_config([], {}).port == 5000
    assert parse_config([], {"DASHSTREAM_PORT": "6000"}).port == 6000
    assert parse_config(["--port", "7000"], {"DASHSTREAM_PORT": "6000"}).port == 7000


def test_the_process_environment_is_read_when_none_is_given(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHSTREAM_PORT", "6001")
    monkeypatch.setenv("ORDERS_FEED", "tcp://127.0.0.1:5557")  # a stream's url_env: the same environment
    path = write(tmp_path, '[streams.orders]\nsource = "zmq"\nurl_env = "ORDERS_FEED"\n')
    monkeypatch.setenv("DASHSTREAM_CONFIG", path)
    config = parse_config([])
    assert config.port == 6001
    assert str({spec.name: spec for spec in config.streams}["orders"].options["url"]) == "tcp://127.0.0.1:5557"


# (flag, value on the command line, what it becomes, value in the environment, what it becomes)
VALUES = [
    ("--host", "0.0.0.0", "0.0.0.0", "::", "::"),
    ("--port", "1", 1, "65535", 65535),
    ("--min-wait", "0.5", 0.5, "0", 0.0),
    ("--max-wait", "2", 2.0, "0.25", 0.25),
    ("--min-step", "0", 0, "3", 3),
    ("--max-step", "4", 4, "1", 1),
    ("--max-connections", "1", 1, "20000", 20000),
    ("--close-timeout", "0.25", 0.25, "3", 3.0),
    ("--token", "tok-1", "tok-1", "tok-2", "tok-2"),
    ("--handshake-rate", "0", 0.0, "7.5", 7.5),
    ("--handshake-burst", "1", 1, "20", 20),
    ("--header-timeout", "0.5", 0.5, "30", 30.0),
    ("--ping-interval", "0", 0.0, "5", 5.0),
    ("--ping-timeout", "1", 1.0, "2.5", 2.5),
    ("--write-timeout", "4", 4.0, "6", 6.0),
    ("--max-message-size", "1", 1, "1024", 1024),
    ("--log-level", "DEBUG", "debug", "Warning", "warning"),
    ("--log-format", "JSON", "json", "text", "text"),
    ("--metrics-token", "m1", "m1", "m2", "m2"),
    ("--history", "1", 1, "5", 5),
    ("--queue-size", "1", 1, "50", 50),
    ("--slow-timeout", "0.5", 0.5, "9", 9.0),
    ("--sse-heartbeat", "1", 1.0, "30", 30.0),
    ("--frame-timeout", "2", 2.0, "20", 20.0),
    ("--send-buffer", "4096", 4096, "1", 1),
    ("--publish-token", "p1", "p1", "p2", "p2"),
    ("--max-publish-size", "1", 1, "100", 100),
]
BY_FLAG = {option.flag: option for option in OPTIONS}


@pytest.mark.parametrize("flag, cli_text, cli_value, env_text, env_value", VALUES, ids=[row[0] for row in VALUES])
def test_every_option_from_the_command_line_and_from_the_environment(flag, cli_text, cli_value, env_text,
                                                                      env_value):
    option = BY_FLAG[flag]
    from_cli = getattr(parse_config([flag, cli_text], {}), option.dest)
    from_env = getattr(parse_config([], {option.env: env_text}), option.dest)
    both = getattr(parse_config([flag, cli_text], {option.env: env_text}), option.dest)
    assert (from_cli, from_env, both) == (cli_value, env_value, cli_value)
    assert type(from_cli) is type(cli_value) and type(from_env) is type(env_value)


def test_the_backplane_from_the_command_line_and_from_the_environment():
    assert parse_config([], {}).backplane is None
    assert parse_config(["--backplane", " redis://127.0.0.1:6379/0 "], {}).backplane == "redis://127.0.0.1:6379/0"
    assert parse_config([], {"DASHSTREAM_BACKPLANE": "MEMORY"}).backplane == "memory://"
    assert parse_config(["--backplane", "memory://"], {"DASHSTREAM_BACKPLANE": "redis://h/1"}).backplane == "memory://"


def test_a_secret_never_appears_in_the_config_repr():
    config = parse_config(["--publish-token", "s3cret", "--token", "t0ken", "--metrics-token", "m3trics",
                           "--backplane", "redis://:pa55word@127.0.0.1:6379/0"], {})
    assert not {"s3cret", "t0ken", "m3trics", "pa55word"} & set(re.findall(r"\w+", repr(config)))


# --- switches --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["1", "true", "yes", "on", " TRUE ", "Yes", "ON"])
def test_a_switch_is_turned_on_by_a_true_environment_value(text):
    config = parse_config([], {"DASHSTREAM_NO_ECHO": text, "DASHSTREAM_COMPRESSION": text})
    assert (config.echo, config.compression) == (False, True)


@pytest.mark.parametrize("text", ["0", "false", "no", "off", "", " Off ", "FALSE"])
def test_a_switch_stays_at_its_default_for_a_false_environment_value(text):
    config = parse_config([], {"DASHSTREAM_NO_ECHO": text, "DASHSTREAM_COMPRESSION": text})
    assert (config.echo, config.compression) == (True, False)


def test_a_switch_on_the_command_line_wins_over_a_false_environment_value():
    config = parse_config(["--no-echo", "--compression"], {"DASHSTREAM_NO_ECHO": "0", "DASHSTREAM_COMPRESSION": "no"})
    assert (config.echo, config.compression) == (False, True)


@pytest.mark.parametrize("env, message", [
    ({"DASHSTREAM_NO_ECHO": "maybe"}, "environment variable DASHSTREAM_NO_ECHO (option --no-echo): "
                                      "expected true/false, got 'maybe'"),
    ({"DASHSTREAM_COMPRESSION": "2"}, "environment variable DASHSTREAM_COMPRESSION (option --compression): "
                                      "expected true/false, got '2'"),
])
def test_a_switch_with_another_environment_value_is_refused(refusal, env, message):
    assert refusal([], env) == message


# --- repeatable options ------------------------------------------------------------------------


def test_a_repeatable_option_collects_every_use_in_order():
    config = parse_config(["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1",
                           "--trusted-proxy", "192.0.2.7"], {})
    assert config.trusted_proxies == ("10.0.0.0/8", "::1/128", "192.0.2.7/32")


def test_a_repeatable_option_replaces_its_built_in_default():
    assert parse_config(["--trusted-proxy", "10.0.0.0/8"], {}).trusted_proxies == ("10.0.0.0/8",)


def test_a_repeatable_option_from_the_environment_is_comma_separated_and_replaced_by_the_command_line():
    env = {"DASHSTREAM_TRUSTED_PROXY": " 10.0.0.0/8 ,, fd00::/8 , ,"}  # empty and blank items are skipped
    assert parse_config([], env).trusted_proxies == ("10.0.0.0/8", "fd00::/8")
    config = parse_config(["--trusted-proxy", "192.0.2.0/24", "--trusted-proxy", "::1"], env)
    assert config.trusted_proxies == ("192.0.2.0/24", "::1/128")
    assert parse_config([], {"DASHSTREAM_TRUSTED_PROXY": ""}).trusted_proxies == ()


def test_switches_and_repeatable_options_from_the_environment():
    assert parse_config([], {"DASHSTREAM_NO_ECHO": "true"}).echo is False
    assert parse_config([], {"DASHSTREAM_NO_ECHO": "0"}).echo is True
    config = parse_config([], {"DASHSTREAM_STREAM": "a=publish, b=random-walk:shared"})
    assert [(s.name, s.source, s.shared) for s in config.streams] == [
        ("a", "publish", True), ("b", "random-walk", True), ("default", "random-walk", False)]
    # the command line replaces the environment's list rather than adding to it
    config = parse_config(["--stream", "c=publish"], {"DASHSTREAM_STREAM": "a=publish"})
    assert [s.name for s in config.streams] == ["c", "default"]


@pytest.mark.parametrize("text, shown", [("none", "none"), (" NONE ", "none"), ("None", "none")])
def test_trusted_proxy_none_in_any_spelling(text, shown):
    assert parse_config(["--trusted-proxy", text], {}).trusted_proxies == (shown,)
    assert parse_config([], {"DASHSTREAM_TRUSTED_PROXY": text}).trusted_proxies == (shown,)


# --- refused values: each names the option (or the variable) and says why ------------------------


@pytest.mark.parametrize("argv, message", [
    (["--port", "0"], "argument --port: must be 1-65535, got 0"),
    (["--port", "65536"], "argument --port: must be 1-65535, got 65536"),
    (["--port", "http"], "argument --port: not an integer: 'http'"),
    (["--port", "1e3"], "argument --port: not an integer: '1e3'"),
    (["--min-step", "-1"], "argument --min-step: must be >= 0, got -1"),
    (["--max-step", "x"], "argument --max-step: not an integer: 'x'"),
    (["--max-connections", "0"], "argument --max-connections: must be >= 1, got 0"),
    (["--history", "-3"], "argument --history: must be >= 1, got -3"),
    (["--queue-size", "1.5"], "argument --queue-size: not an integer: '1.5'"),
    (["--min-wait", "soon"], "argument --min-wait: not a number: 'soon'"),
    (["--max-wait", "-0.5"], "argument --max-wait: must be a finite number >= 0, got -0.5"),
    (["--max-wait", "inf"], "argument --max-wait: must be a finite number >= 0, got inf"),
    (["--max-wait", "nan"], "argument --max-wait: must be a finite number >= 0, got nan"),
    (["--handshake-rate", "-1"], "argument --handshake-rate: must be a finite number >= 0, got -1"),
    (["--close-timeout", "0"], "argument --close-timeout: must be > 0"),
    (["--ping-timeout", "0.0"], "argument --ping-timeout: must be > 0"),
    (["--write-timeout", "-1"], "argument --write-timeout: must be a finite number >= 0, got -1"),
    (["--header-timeout", "never"], "argument --header-timeout: not a number: 'never'"),
    (["--log-level", "verbose"], "argument --log-level: must be one of debug, info, warning, error, got 'verbose'"),
    (["--log-format", "xml"], "argument --log-format: must be one of text, json, got 'xml'"),
    (["--trusted-proxy", "10.0.0.1/8"], "argument --trusted-proxy: '10.0.0.1/8' has host bits set; "
                                        "did you mean 10.0.0.0/8?"),
    (["--trusted-proxy", "proxy.example"], "argument --trusted-proxy: not an IP address or CIDR range: "
                                           "'proxy.example' (host names are not resolved, and a proxy is trusted "
                                           "whatever its port)"),
    (["--allowed-origin", "dash.example.com"], "argument --allowed-origin: an exact origin needs its scheme: "
                                               "https://dash.example.com or http://dash.example.com"),
    (["--token", "has space"], "argument --token: must be printable ASCII without spaces "
                               "(e.g. secrets.token_urlsafe(24))"),
    (["--metrics-token", ""], "argument --metrics-token: must be printable ASCII without spaces "
                              "(e.g. secrets.token_urlsafe(24))"),
    (["--certfile", "/nonexistent/cert.pem"], "argument --certfile: cannot read /nonexistent/cert.pem: "
                                              "No such file or directory"),
    (["--keyfile", "/"], "argument --keyfile: cannot read /: Is a directory"),
    (["--stream", "office"], "--stream: expected NAME=SOURCE[:shared], got 'office'"),
    (["--backplane", "redis://h/x"], "argument --backplane: 'redis://h/x': the path is the database number "
                                     "(redis://HOST:6379/0), got 'x'"),
    (["--backplane", "http://h"], "argument --backplane: URL 'http://h' must start with redis: or rediss: or unix: "
                                  "or memory:"),
])
def test_a_bad_value_is_refused_naming_the_option(refusal, argv, message):
    assert refusal(argv) == message


@pytest.mark.parametrize("env, message", [
    ({"DASHSTREAM_PORT": "0"}, "environment variable DASHSTREAM_PORT (option --port): must be 1-65535, got 0"),
    ({"DASHSTREAM_PORT": ""}, "environment variable DASHSTREAM_PORT (option --port): not an integer: ''"),
    ({"DASHSTREAM_MAX_PUBLISH_SIZE": "0"},
     "environment variable DASHSTREAM_MAX_PUBLISH_SIZE (option --max-publish-size): must be >= 1, got 0"),
    ({"DASHSTREAM_SLOW_TIMEOUT": "0"}, "environment variable DASHSTREAM_SLOW_TIMEOUT (option --slow-timeout): "
                                       "must be > 0"),
    ({"DASHSTREAM_ALLOWED_ORIGIN": "https://ok.example.com,dash.example.com"},
     "environment variable DASHSTREAM_ALLOWED_ORIGIN (option --allowed-origin): an exact origin needs its scheme: "
     "https://dash.example.com or http://dash.example.com"),
    ({"DASHSTREAM_TRUSTED_PROXY": "10.0.0.0/8, 10.0.0.1/8"},
     "environment variable DASHSTREAM_TRUSTED_PROXY (option --trusted-proxy): '10.0.0.1/8' has host bits set; "
     "did you mean 10.0.0.0/8?"),
])
def test_a_bad_environment_value_is_refused_naming_the_variable_and_the_option(refusal, env, message):
    assert refusal([], env) == message


def test_a_bad_environment_value_is_refused_even_when_the_command_line_sets_the_option(refusal):
    # The environment is read before the command line: a typo there is never silently ignored.
    assert refusal(["--port", "7000"], {"DASHSTREAM_PORT": "x"}) == (
        "environment variable DASHSTREAM_PORT (option --port): not an integer: 'x'")


# --- rules between options --------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--min-wait", "2", "--max-wait", "1"], "--min-wait (2.0) must not exceed --max-wait (1.0)"),
    (["--min-wait", "1.5"], "--min-wait (1.5) must not exceed --max-wait (1.0)"),
    (["--min-step", "5", "--max-step", "4"], "--min-step (5) must not exceed --max-step (4)"),
    (["--max-step", "0"], "--min-step (1) must not exceed --max-step (0)"),
    (["--trusted-proxy", "none", "--trusted-proxy", "10.0.0.0/8"],
     "--trusted-proxy none trusts no proxy: it cannot be combined with addresses or ranges"),
    (["--trusted-proxy", "::1", "--trusted-proxy", "none"],
     "--trusted-proxy none trusts no proxy: it cannot be combined with addresses or ranges"),
])
def test_rules_between_two_options_name_both(refusal, argv, message):
    assert refusal(argv) == message


def test_the_bounds_of_the_walk_may_be_equal():
    config = parse_config(["--min-wait", "1", "--max-wait", "1", "--min-step", "3", "--max-step", "3"], {})
    assert (config.min_wait, config.max_wait, config.min_step, config.max_step) == (1.0, 1.0, 3, 3)


@pytest.fixture(scope="module")
def key_pairs(tmp_path_factory):
    """Two self-signed certificates with their keys, made with Debian's openssl (tests/run.sh)."""
    folder = tmp_path_factory.mktemp("tls")
    pairs = []
    for name in ("a", "b"):
        cert, key = folder / f"{name}-cert.pem", folder / f"{name}-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True, timeout=30)
        pairs.append((str(cert), str(key)))
    return pairs


def test_a_certificate_and_its_key_are_accepted(key_pairs):
    cert, key = key_pairs[0]
    config = parse_config(["--certfile", cert], {"DASHSTREAM_KEYFILE": key})
    assert (config.certfile, config.keyfile) == (cert, key)


def test_tls_needs_both_files(refusal, key_pairs):
    cert, key = key_pairs[0]
    assert refusal(["--certfile", cert]) == (
        "--certfile needs --keyfile too (TLS needs both the certificate and its key)")
    assert refusal(["--keyfile", key]) == (
        "--keyfile needs --certfile too (TLS needs both the certificate and its key)")


def test_a_key_of_another_certificate_is_refused_with_openssls_reason(refusal, key_pairs):
    (cert, _), (_, other_key) = key_pairs
    assert refusal(["--certfile", cert, "--keyfile", other_key]) == (
        f"--certfile/--keyfile: cannot use {cert} with {other_key} (KEY_VALUES_MISMATCH): "
        "a PEM certificate and its matching key?")


def test_a_binary_file_passes_the_readable_check_and_fails_as_tls_material(refusal, tmp_path, key_pairs):
    der = tmp_path / "cert.der"
    der.write_bytes(b"\x30\x82\xff\xfe" + bytes(range(256)))  # not UTF-8: read as bytes, not as text
    assert refusal(["--certfile", str(der)]) == (
        "--certfile needs --keyfile too (TLS needs both the certificate and its key)")


def test_a_file_that_vanishes_before_the_tls_check_is_refused_with_the_os_error(refusal, monkeypatch, key_pairs):
    """The files are read twice (the readable check, then OpenSSL): a file removed in between
    gives a plain OSError, which has no ``reason``."""
    cert, key = key_pairs[0]

    class Context:
        def load_cert_chain(self, certfile, keyfile):
            raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr("dashstream.config.options.ssl.create_default_context", lambda purpose: Context())
    assert refusal(["--certfile", cert, "--keyfile", key]) == (
        f"--certfile/--keyfile: cannot use {cert} with {key} ([Errno 2] No such file or directory): "
        "a PEM certificate and its matching key?")


def test_swapped_tls_files_are_refused_with_the_error_when_openssl_gives_no_reason(refusal, key_pairs):
    cert, key = key_pairs[0]
    message = refusal(["--certfile", key, "--keyfile", cert])
    # ssl's text carries a line number of CPython's _ssl.c: match around it.
    assert re.fullmatch(rf"--certfile/--keyfile: cannot use {re.escape(key)} with {re.escape(cert)} "
                        r"\(\[SSL\] PEM lib \(_ssl\.c:\d+\)\): a PEM certificate and its matching key\?", message)


# --- streams: the file, the flags and the default stream ------------------------------------------


def test_default_stream_takes_the_walk_options():
    spec = {s.name: s for s in parse_config(["--min-wait", "2", "--max-wait", "3"], {}).streams}["default"]
    assert (spec.source, spec.shared, spec.options["min_wait"], spec.options["max_wait"]) == (
        "random-walk", False, 2.0, 3.0)


def test_without_a_file_or_flags_there_is_only_the_private_default_walk():
    config = parse_config(["--min-step", "2", "--max-step", "7", "--max-wait", "0.5"], {})
    assert config.streams == (StreamSpec("default", "random-walk", shared=False,
                                         options={"min_wait": 0.0, "max_wait": 0.5, "min_step": 2, "max_step": 7}),)


def test_file_streams_come_first_and_a_flag_redefines_a_stream_of_the_file(tmp_path):
    path = write(tmp_path, '[streams.office]\nsource = "random-walk"\nshared = true\nmin_wait = 0.5\n'
                           '[streams.sales]\nsource = "publish"\nhistory = 7\n')
    config = parse_config(["--config", path, "--stream", "sales=random-walk", "--stream", "extra=publish",
                           "--max-wait", "2"], {})
    walk = {**WALK, "max_wait": 2.0}
    assert config.streams == (
        StreamSpec("office", "random-walk", shared=True, options={**walk, "min_wait": 0.5}),
        StreamSpec("sales", "random-walk", shared=False, options=walk),
        StreamSpec("extra", "publish", shared=True, options={}),
        StreamSpec("default", "random-walk", shared=False, options=walk),
    )


def test_a_file_may_redefine_the_default_stream(tmp_path):
    path = write(tmp_path, '[streams.default]\nsource = "publish"\n')
    assert parse_config(["--config", path], {}).streams == (StreamSpec("default", "publish", shared=True),)
    assert parse_config(["--stream", "default=publish"], {}).streams == (StreamSpec("default", "publish", shared=True),)


def test_a_streams_url_env_is_read_from_the_environment_parse_config_is_given(refusal, tmp_path, monkeypatch):
    path = write(tmp_path, '[streams.feed]\nsource = "zmq"\nurl_env = "FEED_URL"\n')
    monkeypatch.delenv("FEED_URL", raising=False)
    config = parse_config(["--config", path], {"FEED_URL": "tcp://10.0.0.9:5557"})
    assert str(config.streams[0].options["url"]) == "tcp://10.0.0.9:5557"
    monkeypatch.setenv("FEED_URL", "tcp://10.0.0.8:5557")  # the process's, but another environment was given
    assert refusal(["--config", path], {}) == (
        f"{path}: stream 'feed', key 'url_env': environment variable FEED_URL is not set")


def test_resolve_streams_reads_url_env_from_the_environment_it_is_given(tmp_path):
    path = write(tmp_path, '[streams.feed]\nsource = "zmq"\nurl_env = "FEED_URL"\n')
    config = Config(config_file=path)
    (feed, default) = resolve_streams(config, {"FEED_URL": "tcp://10.0.0.9:5557"})
    assert (feed.name, str(feed.options["url"]), default) == ("feed", "tcp://10.0.0.9:5557", DEFAULT_SPEC)
    with pytest.raises(StreamConfigError) as error:
        resolve_streams(config, {})
    assert str(error.value) == f"{path}: stream 'feed', key 'url_env': environment variable FEED_URL is not set"


def test_a_bad_stream_definition_exits_2_with_the_files_message(refusal, tmp_path):
    path = write(tmp_path, '[streams.x]\nsource = "kafka"\n')
    assert refusal(["--config", path]) == (
        f"{path}: stream 'x', key 'source': unknown source 'kafka'; one of random-walk, publish, ticker, sql, "
        "redis, zmq")
    assert refusal(["--config", str(tmp_path / "missing.toml")]) == (
        f"{tmp_path / 'missing.toml'}: cannot read: No such file or directory")


# --- the dashboard ---------------------------------------------------------------------------------


def test_no_dashboard_without_a_file_or_without_a_dashboard_table(tmp_path):
    assert parse_config([], {}).walls == NO_WALLS
    path = write(tmp_path, '[streams.a]\nsource = "publish"\n')
    assert parse_config(["--config", path], {}).walls.default_wall is None
    assert resolve_walls(Config()) is NO_WALLS


def test_the_dashboard_may_show_streams_of_the_file_and_of_the_command_line(tmp_path):
    path = write(tmp_path, '[streams.a]\nsource = "publish"\n\n[dashboard]\ntitle = "Ops"\n'
                           '[[dashboard.tiles]]\nstream = "a"\n[[dashboard.tiles]]\nstream = "b"\nlabel = "B"\n')
    config = parse_config(["--config", path, "--stream", "b=publish"], {})
    wall = config.walls.default_wall
    assert (wall.title, [(tile.stream, tile.label) for tile in wall.tiles]) == ("Ops", [("a", "a"), ("b", "B")])


def test_a_dashboard_tile_of_an_undefined_stream_exits_2(refusal, tmp_path):
    path = write(tmp_path, '[streams.a]\nsource = "publish"\n\n[dashboard]\n[[dashboard.tiles]]\nstream = "b"\n')
    assert refusal(["--config", path]) == (
        f"{path}: [dashboard] tile 1 ('b'), key 'stream': no stream named 'b'; defined: a, default")


# --- stream files and flags (stream_specs, as the configuration uses them) ------------------------


# The example file's PostgreSQL stream reads its URL from the environment (url_env).
EXAMPLE_ENV = {"ORDERS_DATABASE_URL": "postgresql://dashboard:secret@127.0.0.1:5432/shop"}


def test_example_file_uses_every_key_of_every_source():
    from dashstream.config.stream_specs import COMMON_KEYS, SOURCE_KEYS

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
