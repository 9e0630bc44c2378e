"""The memory backplane: nothing shared, one process, logs in memory. The default.
It implements ``base.Backplane`` by answering "nothing to share" to every question."""

from __future__ import annotations

from typing import Any, Callable


class MemoryBackplane:
    """Nothing shared: one process, logs in memory. The default."""

    kind = "memory"
    up = True
    instance = None

    def log_factory(self, spec: Any):
        return None  # SharedStream's default: MemoryLog

    def runner_factory(self, spec: Any):
        return None  # the plain supervisor

    def start(self, app: Any) -> None:
        pass

    def stop(self) -> None:
        pass

    def welcome(self, session: Any) -> None:
        pass

    def not_ready(self) -> str | None:
        return None

    def health_fields(self) -> dict:
        return {}

    def reload(self, here: Callable[[], int]) -> int:
        return here()

    def assign_screen(self, name: str, fields: dict, since: float, here: Callable[[], int]) -> None:
        here()

    def connected_screens(self, here: Callable[[str | None], dict]) -> dict:
        return here(None)

    def describe_streams(self, described: list[dict]) -> dict:
        return {"streams": described}

    def describe(self) -> dict | None:
        return None  # no backplane metrics
