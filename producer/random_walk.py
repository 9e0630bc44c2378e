"""The default source: a value that grows at random moments, as the tutorial did."""

from __future__ import annotations

import random
import time
from typing import Any, Callable, Iterator

from producer.base import UP, Health, Source
from producer.keys import ConfigProblem, Key, count, flag, integer, number


class RandomWalk(Source):
    """Yield ``{"variable": n}`` forever: add a random integer in [min_step, max_step], then
    wait uniform in [min_wait, max_wait) s before the next (the first value comes at once).

    The one source that can be private (``shared = false``, the default): every screen then
    gets a walk of its own. It needs no driver and cannot fail.

    ``sleep`` and ``rng`` are injectable so tests can drive it without waiting. Under the
    server, ``time.sleep`` is eventlet's green sleep (``monkey_patch`` runs first), so a
    walk blocks only its own green thread; killing that thread interrupts the sleep.
    """

    kind = "random-walk"
    keys = (
        Key("shared", flag, "one walk for every screen (true) or one per screen (false)", default=False),
        Key("min_wait", number, "shortest wait between values, seconds"),
        Key("max_wait", number, "longest wait between values, seconds (exclusive)"),
        Key("min_step", count, "smallest step added to the value"),
        Key("max_step", count, "largest step added to the value"),
        Key("start", integer, "the value before the first step"),
    )
    resume_after_refusal = True
    # Bounds checked as a pair: (low key, high key).
    PAIRS = (("min_wait", "max_wait"), ("min_step", "max_step"))

    @classmethod
    def check(cls, options: dict[str, Any]) -> None:
        for low, high in cls.PAIRS:
            if low in options and high in options and options[low] > options[high]:
                raise ConfigProblem(low, f"{low} ({options[low]}) must not exceed {high} ({options[high]})")

    def __init__(
        self,
        min_wait: float = 0.0,
        max_wait: float = 1.0,
        min_step: int = 1,
        max_step: int = 10,
        start: int = 0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 <= min_wait <= max_wait:
            raise ValueError(f"need 0 <= min_wait <= max_wait, got {min_wait}, {max_wait}")
        if not 0 <= min_step <= max_step:
            raise ValueError(f"need 0 <= min_step <= max_step, got {min_step}, {max_step}")
        self.min_wait = min_wait
        self.max_wait = max_wait
        self.min_step = min_step
        self.max_step = max_step
        self.start = start
        self.options = {"min_wait": min_wait, "max_wait": max_wait, "min_step": min_step,
                        "max_step": max_step, "start": start}
        self._rng = rng or random.Random()
        self._sleep = sleep

    def events(self) -> Iterator[Any]:
        # The loop is here rather than behind a ``yield from``: one generator level fewer
        # between the supervisor and the value, and between the supervisor and the sleep (C
        # stack a private walk's green thread has saved and restored at every wake-up):
        # about 800 instructions per message (BENCHMARKS.md, "Private streams: what a
        # wake-up costs").
        yield Health(UP)
        value = self.start
        steps = self.max_step - self.min_step + 1
        waits = False  # the first value comes at once: a screen that just connected shows a number
        while True:
            if waits:
                # random() is in [0, 1), so the wait is in [min_wait, max_wait) as documented.
                self._sleep(self.min_wait + (self.max_wait - self.min_wait) * self._rng.random())
            waits = True
            # min_step + a uniform integer below the step count: randint's exact draw took
            # three Python calls (randrange, _randbelow), random() one C call; its bias, one
            # part in 2**53 / steps, is below anything a screen can show.
            value += self.min_step + int(self._rng.random() * steps)
            yield {"variable": value}

    def __iter__(self) -> Iterator[dict]:
        """The values alone (a walk is always up: the ``Health`` that ``events`` opens with is
        all it ever says)."""
        values = self.events()
        next(values)
        return values
