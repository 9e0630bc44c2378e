"""The default producer: a value that grows at random moments, as the tutorial did."""

from __future__ import annotations

import random
import time
from typing import Callable, Iterator


class RandomWalk:
    """Yield ``{"variable": n}`` forever: wait uniform in [min_wait, max_wait) s, then add
    a random integer in [min_step, max_step].

    ``sleep`` and ``rng`` are injectable so tests can drive it without waiting. Under the
    server, ``time.sleep`` is eventlet's green sleep (``monkey_patch`` runs first), so a
    walk blocks only its own green thread; killing that thread interrupts the sleep.
    """

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
        self._rng = rng or random.Random()
        self._sleep = sleep

    def __iter__(self) -> Iterator[dict]:
        value = self.start
        while True:
            # random() is in [0, 1), so the wait is in [min_wait, max_wait) as documented.
            self._sleep(self.min_wait + (self.max_wait - self.min_wait) * self._rng.random())
            value += self._rng.randint(self.min_step, self.max_step)
            yield {"variable": value}
