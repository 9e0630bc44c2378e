"""A test pattern: a value that counts up at a fixed rate, for checking a new screen.

Ticks are scheduled at fixed times (``start_time + n / rate``), so the rate does not drift
with the time spent publishing; a tick the producer is more than one interval late for is
skipped rather than sent in a catch-up burst (a screen wants the current count, and a load
test wants a steady rate). The load harness in ../shared/bench runs its broadcast scenario
with this source.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from producer.base import UP, Health, Source
from producer.keys import Key, integer, positive_number


class Ticker(Source):
    """Yield ``{"variable": n}`` ``rate`` times a second: start, start + step, ...
    Always shared (it has no ``shared`` key); needs no driver and cannot fail."""

    kind = "ticker"
    keys = (
        Key("rate", positive_number, "messages per second"),
        Key("start", integer, "the value before the first tick"),
        Key("step", integer, "added at every tick"),
    )

    def __init__(self, rate: float = 1.0, start: int = 0, step: int = 1, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = rate
        self.start = start
        self.step = step
        self.options = {"rate": rate, "start": start, "step": step}
        self._clock = clock
        self._sleep = sleep

    # Told (due, woke, "tick") at every tick and (due, now, "skip") when ticks are dropped,
    # on the ticker's clock: benchmarks/hub_trace.py sets it to see when the hub was late.
    trace: Callable[[float, float, str], None] | None = None

    def __iter__(self) -> Iterator[dict]:
        interval = 1.0 / self.rate
        value = self.start
        due = self._clock()
        trace = self.trace
        while True:
            due += interval
            now = self._clock()
            if due > now:
                self._sleep(due - now)
            elif due < now - interval:
                if trace is not None:
                    trace(due, now, "skip")
                due = now  # fell behind: drop the missed ticks rather than burst
            if trace is not None:
                trace(due, self._clock(), "tick")
            value += self.step
            yield {"variable": value}

    def events(self) -> Iterator[Any]:
        yield Health(UP)
        yield from self
