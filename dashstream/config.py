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
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

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
    # Largest message a client may send, summed over its fragments (close 1009 above it).
    max_message_size: int = 64 * 1024
    log_level: str = "info"
    # Where the page lives; resolved relative to the repository by default.
    index_path: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

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
    Option("--max-message-size", "max_message_size",
           "largest message a client may send, in bytes, counted across fragments (close 1009 above)",
           _positive_int, "BYTES"),
    Option("--log-level", "log_level", f"logging threshold: {', '.join(LOG_LEVELS)}", _log_level, "LEVEL"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python server.py",
        description="dashstream: push live data to dashboard screens over WebSockets.",
        epilog="Every option can also be set by the environment variable shown; "
        "the command line wins over the environment.",
    )
    for option in OPTIONS:
        shown_default = "off" if option.parse is None and option.default is option.switch_value else (
            "on" if option.parse is None else option.default
        )
        help_text = f"{option.help} [env {option.env}; default {shown_default}]"
        if option.parse is None:
            action = "store_false" if option.switch_value is False else "store_true"
            parser.add_argument(option.flag, dest=option.dest, action=action, help=help_text)
        else:
            parser.add_argument(option.flag, dest=option.dest, type=option.parse,
                                metavar=option.metavar, help=help_text)
    return parser


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


def parse_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Command line + environment → ``Config``; exits 2 naming the bad option."""
    environ = os.environ if environ is None else environ
    parser = build_parser()
    parser.set_defaults(**{option.dest: option.default for option in OPTIONS})
    _defaults_from_env(parser, environ)
    namespace = parser.parse_args(argv)
    config = Config(**vars(namespace))
    _check_consistency(parser, config)
    return config
