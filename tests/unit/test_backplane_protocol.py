"""Both backplanes implement the declared interface (backplane/base.py Backplane)."""

from __future__ import annotations

import inspect

from dashstream.backplane import make_backplane
from dashstream.backplane.base import Backplane
from dashstream.backplane.memory import MemoryBackplane

MEMBERS = [name for name in dir(Backplane) if not name.startswith("_")] + ["kind", "instance"]


def test_the_protocol_names_what_the_app_the_server_and_the_streams_call():
    assert set(MEMBERS) >= {"log_factory", "runner_factory", "start", "stop", "welcome", "not_ready",
                            "health_fields", "reload", "describe_streams", "describe", "kind", "instance"}
    assert not hasattr(Backplane, "adopt")  # streams are built with the factories, not rewired


def test_memory_and_redis_implement_it_with_the_same_signatures():
    redis_backplane = make_backplane("redis://127.0.0.1:1/0", "me:1:ab")  # makes clients, connects nothing
    for backplane in (MemoryBackplane(), redis_backplane):
        assert isinstance(backplane, Backplane)
        for name in MEMBERS:
            declared = getattr(Backplane, name, None)
            if callable(declared):
                assert list(inspect.signature(getattr(backplane, name)).parameters) == \
                    list(inspect.signature(declared).parameters)[1:], (type(backplane).__name__, name)
    assert redis_backplane.kind == "redis" and MemoryBackplane.kind == "memory"


def test_the_memory_backplane_leaves_the_defaults_to_the_streams():
    memory = MemoryBackplane()
    assert memory.log_factory(object()) is None and memory.runner_factory(object()) is None
