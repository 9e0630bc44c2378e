"""A source's configuration keys and the checks of their values.

Each check takes the raw TOML value and returns it checked (or raises ``ConfigProblem``
naming the rule), so ``stream_specs`` can report the file, stream and key of a bad value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable


class ConfigProblem(ValueError):
    """A bad configuration value: ``key`` is the key to name in the message."""

    def __init__(self, key: str, reason: str):
        super().__init__(reason)
        self.key = key
        self.reason = reason


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a number >= 0, got {value!r}")
    return float(value)


def positive_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a number > 0, got {value!r}")
    return float(value)


def count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be an integer >= 0, got {value!r}")
    return value


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an integer, got {value!r}")
    return value


def positive(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be an integer >= 1, got {value!r}")
    return value


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value


def nonempty_text(value: Any) -> str:
    if not text(value).strip():
        raise ValueError("must not be empty")
    return value


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def env_name(value: Any) -> str:
    if not ENV_NAME.match(text(value)):
        raise ValueError(f"must be an environment variable name (letters, digits, '_'), got {value!r}")
    return value


@dataclass(frozen=True)
class Key:
    """One configuration key of a source."""

    name: str
    check: Callable[[Any], Any]
    help: str
    default: Any = None  # filled in when the key is absent (None: absent stays absent)
    required: bool = False
