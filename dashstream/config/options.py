"""Configuration: command line and environment → one ``Config`` → the server.

Every option is declared once, in ``OPTIONS``. That single table produces the
argparse flags, the environment fallbacks (``DASHSTREAM_<NAME>``), the
``--help`` text (env name and default on every line) and the README's options
table (checked by a test), so the four can never disagree.

Precedence: command line > environment > built-in default. Bad values exit 2
with a message that names the option (argparse's convention, as uvicorn's).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import ssl
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from dashstream.backplane import MEMORY, parse_backplane_url
from dashstream.config.dashboard import DashboardError
from dashstream.config.stream_specs import (
    StreamConfigError,
    StreamSpec,
    load_stream_file,
    parse_stream_flag,
    read_config_table,
)
from dashstream.config.walls import NO_WALLS, Walls, parse_walls
from dashstream.edge.admission import DEFAULT_HANDSHAKE_BURST, DEFAULT_HANDSHAKE_RATE, OriginPattern, check_token_text
from dashstream.edge.forwarded import DEFAULT_TRUSTED_PROXIES, NONE, parse_network
from dashstream.messages import DEFAULT_STREAM
from dashstream.ops.log_output import LOG_FORMATS

ENV_PREFIX = "DASHSTREAM_"
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Config:
    """Everything the server needs, as plain attributes (uvicorn's ``Config`` shape)."""

    host: str = "127.0.0.1"
    port: int = 5000
    # The default stream's random walk: wait uniform in [min_wait, max_wait)
    # seconds, then grow by a random integer in [min_step, max_step].
    min_wait: float = 0.0
    max_wait: float = 1.0
    min_step: int = 1
    max_step: int = 10
    max_connections: int = 10_000
    echo: bool = True
    close_timeout: float = 1.0
    # Admission (see edge/admission.py): who may open a WebSocket, and how often.
    allowed_origins: tuple[str, ...] = ()  # empty: every origin
    token: str | None = field(default=None, repr=False)  # a secret: never in repr() or a log line
    # Per client address; why these numbers: edge/admission.py, DEFAULT_HANDSHAKE_RATE.
    handshake_rate: float = DEFAULT_HANDSHAKE_RATE
    handshake_burst: int = DEFAULT_HANDSHAKE_BURST
    # Peers whose X-Forwarded-For / X-Real-IP are believed (edge/forwarded.py); loopback by
    # default, so a proxy on the same machine works out of the box.
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES
    # A request line and headers must arrive within this (slow-header attacks hold a
    # green thread and a descriptor each); WebSockets themselves live on afterwards.
    header_timeout: float = 10.0
    certfile: str | None = None
    keyfile: str | None = None
    # Keepalive (websockets' defaults): a ping every ping_interval seconds (0 = no pings),
    # and a peer that has not answered one within ping_timeout seconds is closed.
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    # A session whose socket has taken not a single byte of its pending bytes for this long
    # is dropped (sends never block: the watchdog judges it from the last progress). 10 s:
    # long enough for a few TCP retransmissions on a flaky Wi-Fi link, and after the
    # slow-subscriber limit, so a screen that still reads is told 1008 first. Without it the
    # pending bytes of a peer that stopped reading would be held forever (its kernel keeps
    # acknowledging), and those of a vanished peer for the kernel's ~15 minutes.
    write_timeout: float = 10.0
    # Largest message a client may send, summed over its fragments (close 1009 above it).
    max_message_size: int = 64 * 1024
    log_level: str = "info"
    log_format: str = "text"  # or "json": one object per line, for log shippers
    # Bearer token for GET /metrics; None: /metrics is open (it holds no secrets, but
    # stream names and client counts may be more than a public server wants to tell).
    metrics_token: str | None = field(default=None, repr=False)
    # Streams: a TOML file and/or --stream flags; resolved into ``streams`` by parse_config.
    config_file: str | None = None
    stream: tuple[str, ...] = ()
    streams: tuple[StreamSpec, ...] = ()
    # The walls of tiles, playlists and screens from the file's [dashboard], [dashboards.NAME],
    # [playlists.NAME] and [screens.NAME] (NO_WALLS: the page shows one stream).
    walls: Walls = NO_WALLS
    history: int = 100
    queue_size: int = 100
    # A subscriber whose queue has not emptied for this long is closed with 1008: well before
    # the write timeout, so a screen that fell behind hears why (and is counted).
    slow_timeout: float = 5.0
    # A frame the client started must be finished within this (a stalled sender holds a
    # partial frame forever otherwise, even with pings off).
    frame_timeout: float = 10.0
    # A comment line on every quiet Server-Sent Events stream this often: proxies close
    # connections that say nothing (nginx after 60 s by default).
    sse_heartbeat: float = 15.0
    send_buffer: int = 65_536
    compression: bool = False
    # A secret: kept out of repr() so it never reaches a log line by accident.
    publish_token: str | None = field(default=None, repr=False)
    max_publish_size: int = 65_536
    # Several instances, one set of streams: a Redis URL (``backplane/``); None: this process
    # alone, logs in memory. Not in repr(): the URL may hold a password.
    backplane: str | None = field(default=None, repr=False)
    # One process's streams kept across restarts (streams/durable.py): a SQLite file; None:
    # memory only. Entries reach it in batches, at most state_flush seconds apart.
    state: str | None = None
    state_flush: float = 1.0

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)


# --- value parsers: each raises ArgumentTypeError with a reason argparse prints
#     after the option's name ("argument --port: must be 1-65535, got 70000").


def _port(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 1-65535, got {value}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    # NaN compares false with everything, so test the accepted range positively.
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.lower()


def _log_format(text: str) -> str:
    if text.lower() not in LOG_FORMATS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_FORMATS)}, got {text!r}")
    return text.lower()


def _trusted_proxy(text: str) -> str:
    if text.strip().lower() == NONE:
        return NONE
    try:
        return str(parse_network(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _origin(text: str) -> str:
    try:
        return OriginPattern.parse(text).text
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _token(text: str) -> str:
    try:
        return check_token_text(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _readable_file(text: str) -> str:
    try:
        with open(text, "rb") as file:
            file.read(1)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {error.strerror or error}") from None
    return text


def _backplane(text: str) -> str:
    try:
        return parse_backplane_url(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _optional_path(text: str) -> str | None:
    """A path, or nothing for an empty value (``-e DASHSTREAM_STATE=`` turns the image's off)."""
    return text.strip() or None


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


@dataclass(frozen=True)
class Option:
    """One command-line option, its environment variable and its ``Config`` field."""

    flag: str
    dest: str
    help: str
    parse: Callable[[str], Any] | None = None  # None: a switch (present = ``switch_value``)
    metavar: str | None = None
    switch_value: bool = True
    # Repeatable (``--allowed-origin A --allowed-origin B``); the environment variable
    # then holds a comma-separated list. The Config field is a tuple.
    repeat: bool = False
    # What --help shows as the default when the value itself would say nothing useful.
    default_text: str | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.flag.lstrip("-").replace("-", "_").upper()

    @property
    def default(self) -> Any:
        return getattr(Config(), self.dest)


OPTIONS: tuple[Option, ...] = (
    Option("--host", "host", "interface to listen on (0.0.0.0 in a container)", str, "ADDR"),
    Option("--port", "port", "TCP port to listen on", _port, "PORT"),
    Option("--min-wait", "min_wait", "default stream: shortest wait between values, seconds",
           _non_negative_float, "SECONDS"),
    Option("--max-wait", "max_wait", "default stream: longest wait between values, seconds (exclusive)",
           _non_negative_float, "SECONDS"),
    Option("--min-step", "min_step", "default stream: smallest step added to the value", _non_negative_int, "N"),
    Option("--max-step", "max_step", "default stream: largest step added to the value", _non_negative_int, "N"),
    Option("--max-connections", "max_connections", "most connections served at once", _positive_int, "N"),
    Option("--no-echo", "echo", "turn off the /echo diagnostic WebSocket endpoint", switch_value=False),
    Option("--close-timeout", "close_timeout",
           "how long a server-initiated close waits for the peer's close frame, seconds",
           _positive_float, "SECONDS"),
    Option("--allowed-origin", "allowed_origins",
           "an Origin that may open WebSockets: https://host[:port], *.example.com or null (pages opened "
           "from disk); repeat it, or comma-separate in the env var; others get 403",
           _origin, "ORIGIN", repeat=True, default_text="every origin"),
    Option("--token", "token", "WebSocket clients must present this token (?token= or "
           "'Authorization: Bearer'), or get 401; prefer the env var (the command line shows in ps)",
           _token, "TOKEN", default_text="none"),
    Option("--handshake-rate", "handshake_rate",
           "WebSocket handshakes per second allowed from one address (IPv6: one /64); over it: 429; "
           "0 turns the limit off", _non_negative_float, "PER_SECOND"),
    Option("--handshake-burst", "handshake_burst",
           "handshakes one address may make at once before --handshake-rate applies", _positive_int, "N"),
    Option("--trusted-proxy", "trusted_proxies",
           "a proxy (address or CIDR range) whose X-Forwarded-For/X-Real-IP name the client, for the "
           "handshake limit and the logs; repeat it, or comma-separate in the env var; 'none' trusts no "
           "proxy; a client whose own address is trusted is not rate-limited",
           _trusted_proxy, "CIDR", repeat=True, default_text="127.0.0.0/8 and ::1 (loopback)"),
    Option("--header-timeout", "header_timeout",
           "a connection that has not sent a complete request line and headers within this is closed, "
           "seconds", _positive_float, "SECONDS"),
    Option("--certfile", "certfile", "TLS certificate chain (PEM): serve https:// and wss:// (needs --keyfile)",
           _readable_file, "PATH", default_text="none: plain http/ws"),
    Option("--keyfile", "keyfile", "TLS private key (PEM) for --certfile", _readable_file, "PATH",
           default_text="none"),
    Option("--ping-interval", "ping_interval",
           "seconds between keepalive pings to each client; 0 turns pings off",
           _non_negative_float, "SECONDS"),
    Option("--ping-timeout", "ping_timeout",
           "close a client (1011) that has not answered a ping within this many seconds",
           _positive_float, "SECONDS"),
    Option("--write-timeout", "write_timeout",
           "drop a client whose send stays blocked this many seconds (it stopped reading)",
           _positive_float, "SECONDS"),
    Option("--max-message-size", "max_message_size",
           "largest message a client may send, in bytes, counted across fragments (close 1009 above)",
           _positive_int, "BYTES"),
    Option("--log-level", "log_level", f"logging threshold: {', '.join(LOG_LEVELS)}", _log_level, "LEVEL"),
    Option("--log-format", "log_format", f"log line format: {', '.join(LOG_FORMATS)} (one JSON object per line)",
           _log_format, "FORMAT"),
    Option("--metrics-token", "metrics_token", "bearer token GET /metrics requires; unset = /metrics is open",
           _token, "TOKEN", default_text="none: open"),
    Option("--config", "config_file", "TOML file defining named streams (see streams.example.toml)", str, "FILE"),
    Option("--stream", "stream", "define a stream: NAME=SOURCE[:shared], e.g. office=random-walk:shared or "
           "sales=publish (repeatable)", str, "SPEC", repeat=True),
    Option("--history", "history", "messages each shared stream keeps for resume", _positive_int, "N"),
    Option("--queue-size", "queue_size", "messages queued per subscriber before the oldest are dropped",
           _positive_int, "N"),
    Option("--slow-timeout", "slow_timeout", "close (1008) a subscriber whose queue has not emptied for this "
           "long, or that a message has waited for (queued or in the kernel's send buffer) this long, seconds",
           _positive_float, "SECONDS"),
    Option("--sse-heartbeat", "sse_heartbeat", "seconds between the comment lines that keep a quiet "
           "Server-Sent Events stream open through proxies", _positive_float, "SECONDS"),
    Option("--frame-timeout", "frame_timeout", "close (1008) a client that started a frame and has not "
           "finished it within this many seconds", _positive_float, "SECONDS"),
    Option("--send-buffer", "send_buffer", "kernel send buffer per connection (WebSocket, SSE stream, HTTP), "
           "bytes: bounds the memory a slow client can pin and lets the server notice it", _positive_int, "BYTES"),
    Option("--compression", "compression", "allow permessage-deflate (costs memory and per-client encoding)"),
    Option("--publish-token", "publish_token", "bearer token for POST /publish and /reload; unset = publishing off",
           _token, "TOKEN"),
    Option("--max-publish-size", "max_publish_size", "largest POST /publish body, bytes", _positive_int, "BYTES"),
    Option("--backplane", "backplane", "share every shared stream with the other instances started with the same "
           "URL: redis://HOST:6379/0 (rediss:// for TLS, unix:///path, redis+sentinel://HOST:26379,HOST2:26379/"
           "MASTER/DB); needs dashstream[redis]",
           _backplane, "URL", default_text="none: one process, streams in memory"),
    Option("--state", "state", "keep every shared stream's epoch, seq, last value and history in this SQLite file "
           "across restarts (created if missing; one server per file)", _optional_path, "PATH",
           default_text="none: memory only"),
    Option("--state-flush", "state_flush", "with --state: entries are written at most this many seconds after "
           "they are published (what a SIGKILL or power cut can lose)", _positive_float, "SECONDS"),
)


def build_parser(prog: str = "python server.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="dashstream: push live data to dashboard screens over WebSockets.",
        epilog="Every option can also be set by the environment variable shown; "
        "the command line wins over the environment.",
    )
    for option in OPTIONS:
        help_text = f"{option.help} [env {option.env}; default {_shown_default(option)}]"
        if option.parse is None:
            action = "store_false" if option.switch_value is False else "store_true"
            parser.add_argument(option.flag, dest=option.dest, action=action, help=help_text)
        elif option.repeat:
            parser.add_argument(option.flag, dest=option.dest, type=option.parse, action=_Repeated,
                                metavar=option.metavar, help=help_text)
        else:
            parser.add_argument(option.flag, dest=option.dest, type=option.parse,
                                metavar=option.metavar, help=help_text)
    return parser


def _shown_default(option: Option) -> str:
    if option.default_text is not None:
        return option.default_text
    if option.parse is None:
        # Whether the feature is on without the switch: --no-echo says "on", --compression "off".
        return "on" if option.default else "off"
    if option.default in (None, ()):
        return "none"
    return str(option.default)


class _Repeated(argparse.Action):
    """A repeatable option whose first use on the command line *replaces* the default
    (built-in or from the environment) and later uses add to it: argparse's ``append``
    would add to the environment's list, breaking "the command line wins"."""

    def __call__(self, parser, namespace, value, option_string=None):
        current = getattr(namespace, self.dest)
        kept = () if current is self.default else tuple(current)
        setattr(namespace, self.dest, (*kept, value))


def _defaults_from_env(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    """Environment values become the parser's defaults, so the command line still wins."""
    defaults = {}
    for option in OPTIONS:
        raw = environ.get(option.env)
        if raw is None:
            continue
        try:
            if option.parse is None:
                value = option.switch_value if _boolean(raw) else option.default
            elif option.repeat:
                value = tuple(option.parse(item.strip()) for item in raw.split(",") if item.strip())
            else:
                value = option.parse(raw)
        except argparse.ArgumentTypeError as error:
            parser.error(f"environment variable {option.env} (option {option.flag}): {error}")
        defaults[option.dest] = value
    parser.set_defaults(**defaults)


def _check_consistency(parser: argparse.ArgumentParser, config: Config) -> None:
    """Rules that involve two options; each message names both."""
    if config.min_wait > config.max_wait:
        parser.error(f"--min-wait ({config.min_wait}) must not exceed --max-wait ({config.max_wait})")
    if config.min_step > config.max_step:
        parser.error(f"--min-step ({config.min_step}) must not exceed --max-step ({config.max_step})")
    if (config.certfile is None) != (config.keyfile is None):
        given, missing = ("--certfile", "--keyfile") if config.keyfile is None else ("--keyfile", "--certfile")
        parser.error(f"{given} needs {missing} too (TLS needs both the certificate and its key)")
    if config.state is not None and config.backplane not in (None, MEMORY):
        parser.error("--state cannot be combined with --backplane: with a backplane Redis keeps every shared "
                     "stream's numbering and history; drop one of the two")
    if NONE in config.trusted_proxies and len(config.trusted_proxies) > 1:
        parser.error("--trusted-proxy none trusts no proxy: it cannot be combined with addresses or ranges")
    if config.certfile is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(config.certfile, config.keyfile)
        except (ssl.SSLError, OSError) as error:
            parser.error(f"--certfile/--keyfile: cannot use {config.certfile} with {config.keyfile} "
                         f"({getattr(error, 'reason', None) or error}): a PEM certificate and its matching key?")


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
                 prog: str = "python server.py") -> Config:
    """Command line + environment → ``Config``; exits 2 naming the bad option."""
    environ = os.environ if environ is None else environ
    parser = build_parser(prog)
    parser.set_defaults(**{option.dest: option.default for option in OPTIONS})
    _defaults_from_env(parser, environ)
    config = Config(**vars(parser.parse_args(argv)))
    _check_consistency(parser, config)
    try:
        config = config.replace(streams=tuple(resolve_streams(config, environ)))
        return config.replace(walls=resolve_walls(config))
    except (StreamConfigError, DashboardError) as error:
        parser.error(str(error))


def resolve_walls(config: Config) -> Walls:
    """The walls, playlists and screens of the config file, checked against every defined
    stream (``POST /reload`` calls it again: a wall changes without a restart)."""
    if not config.config_file:
        return NO_WALLS
    return parse_walls(read_config_table(config.config_file), config.config_file,
                       [spec.name for spec in config.streams])


def resolve_streams(config: Config, environ: Mapping[str, str] | None = None) -> list[StreamSpec]:
    """File first, then --stream flags (the command line wins for a name in both); the
    default stream at / is the private random walk of --min-wait etc. unless redefined.
    ``environ`` is where a stream's ``url_env`` is looked up (default: the process's)."""
    walk = {"min_wait": config.min_wait, "max_wait": config.max_wait,
            "min_step": config.min_step, "max_step": config.max_step}
    specs: dict[str, StreamSpec] = {}
    if config.config_file:
        for spec in load_stream_file(config.config_file, walk, environ):
            specs[spec.name] = spec
    for text in config.stream:
        spec = parse_stream_flag(text, walk, environ)
        specs[spec.name] = spec
    specs.setdefault(DEFAULT_STREAM, StreamSpec(DEFAULT_STREAM, "random-walk", shared=False, options=walk))
    return list(specs.values())
