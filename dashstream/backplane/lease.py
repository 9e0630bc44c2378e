"""One producer per shared stream across the fleet: the lease rules, and the producer run under one.

Several instances serve the same streams; a stream's producer (a shared random walk, a SQL
poll, a Redis or ZeroMQ subscription, a ticker) must run on exactly one of them, or three
instances would publish three different walks. A lease in Redis decides which (the I/O is
in ``fleet.py``): a key holding the holder's instance id, set with
``SET NX PX ttl``, renewed by a compare-and-renew script (only the holder can extend it,
so a stale holder can never renew a lease someone else took) every ``ttl / 3``.

``LeaseKeeper`` is the rule for one stream, without I/O or clocks of its own (the tests
drive it with a fake clock):

* holding: renew every ``ttl / 3``; a renewal that fails (Redis unreachable, an error) or
  finds another holder means *stop now*: we can no longer prove the lease is ours;
* not holding: try again when the holder's lease would expire (its remaining PTTL, plus a
  little jitter so the waiting instances do not all ask in the same millisecond), at most
  ``ttl / 3`` later, so a holder that died is replaced within the TTL of its last renewal.

Safety does not rest on timing alone: every value a leased producer appends goes through a
script that checks, atomically in Redis, that this instance holds the lease (fencing); a
holder paused past its lease (a long GC, a stalled hub) finds its values refused, not
interleaved with the new holder's. So the log only ever holds one producer's values at a
time, and a counter continues where the last holder stopped (``continued_options``).

``LeasedProducer`` stands where ``SharedStream`` expects a supervisor (``start``, ``stop``,
``running``, ``note_value``): ``start`` only registers the stream with the lease loop, and
the producer itself (a ``Supervisor`` running the source) runs between ``begin`` (lease
acquired) and ``end`` (lost or released).

``ContinuedSource`` is the source such a supervisor runs for a source that resumes after a
refusal (the random walk): a value the log did not take is not skipped, the walk starts
again from the last value that was published.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Iterator, Mapping

from producer.base import Source

logger = logging.getLogger("dashstream.backplane")

START, STOP = "start", "stop"
# Jitter added to a waiting instance's next try after the holder's expiry, seconds.
TAKEOVER_JITTER = 0.05


class LeaseKeeper:
    """When to ask for (or renew) one stream's lease, and what a reply means; see the module
    docstring. ``next_at`` is on the caller's monotonic clock."""

    def __init__(self, ttl: float, rng: random.Random | None = None):
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0, got {ttl}")
        self.ttl = ttl
        self.renew_every = ttl / 3
        self.rng = rng or random.Random()
        self.holding = False
        self.holder: str | None = None  # who holds it, as last seen (us included)
        self.next_at = 0.0  # ask at once

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def asked(self, at: float, granted: bool | None, holder: str | None = None,
              remaining: float | None = None, me: str | None = None) -> str | None:
        """The reply to an acquire-or-renew sent at ``at`` (taken *before* sending, so our
        idea of the lease never outlives Redis's): ``granted`` True (ours for ``ttl`` from
        ``at``), False (``holder`` has it for ``remaining`` more seconds) or None (no answer:
        Redis is unreachable). Returns START, STOP or None: what to do with the producer."""
        was_holding = self.holding
        if granted:
            self.holding, self.holder = True, me
            self.next_at = at + self.renew_every
            return None if was_holding else START
        self.holding = False
        if granted is None:
            self.next_at = at + self.renew_every
        else:
            self.holder = holder
            wait = self.renew_every if remaining is None or remaining < 0 else min(self.renew_every, remaining)
            self.next_at = at + wait + self.rng.uniform(0, TAKEOVER_JITTER)
        return STOP if was_holding else None

    def recheck(self, now: float) -> None:
        """Ask again at once: Redis refused one of our appends (another instance holds the
        lease, or ours lapsed), or another instance released it (a graceful stop). The
        answer decides; a holder keeps producing until it comes."""
        self.next_at = min(self.next_at, now)

    def lost(self) -> str | None:
        """The backplane is down: no lease can be proven; stop, and ask once it is back."""
        was_holding = self.holding
        self.holding = False
        self.next_at = 0.0
        return STOP if was_holding else None


def continued_options(source_keys: tuple[str, ...], options: Mapping[str, Any],
                      last_fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """A counting source (one with a ``start`` key: the random walk, the ticker) taking over a
    stream starts from the stream's last value, so the new holder continues the one walk
    instead of starting a second one from zero."""
    options = dict(options)
    if "start" in source_keys and last_fields is not None:
        value = last_fields.get("variable")
        if isinstance(value, int) and not isinstance(value, bool):
            options["start"] = value
    return options


class LeasedProducer:
    """A shared stream's producer that runs only while this instance holds its lease.

    ``run(last_fields) -> handle`` starts the producer (``handle.stop()`` ends it,
    ``handle.running`` says whether it runs; ``handle.note_value()`` optional);
    ``register``/``release`` are the lease loop's (fleet.py).
    """

    def __init__(self, name: str, run: Callable[[Mapping[str, Any] | None], Any],
                 register: Callable[["LeasedProducer"], None], release: Callable[["LeasedProducer"], None]):
        self.name = name
        self._run = run
        self._register = register
        self._release = release
        self.handle: Any = None
        self.started = False

    # --- what SharedStream calls ---

    def start(self) -> None:
        if not self.started:
            self.started = True
            self._register(self)

    def stop(self) -> None:
        """At shutdown: stop producing, then give the lease back so another instance takes
        over at once instead of after the TTL."""
        if not self.started:
            return
        self.started = False
        was_running = self.handle is not None
        self.end("stopping")
        if was_running:
            self._release(self)

    @property
    def running(self) -> bool:
        return self.handle is not None and bool(getattr(self.handle, "running", True))

    def note_value(self) -> None:
        if self.handle is not None and hasattr(self.handle, "note_value"):
            self.handle.note_value()

    # --- what the lease loop calls ---

    def begin(self, last_fields: Mapping[str, Any] | None) -> None:
        if self.handle is None and self.started:
            logger.info("stream %r: this instance holds the lease and runs its producer", self.name)
            self.handle = self._run(last_fields)

    def end(self, why: str) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            logger.info("stream %r: producer stopped here (%s)", self.name, why)
            try:
                handle.stop()
            except Exception:  # stopping must finish
                logger.exception("stream %r: stopping the producer failed", self.name)


class ContinuedSource(Source):
    """``source_class`` with ``options``, started from ``last_fields`` (``continued_options``)
    and, whenever the log refuses one of its values (``publisher``'s publish returned None:
    Redis timed out or refused), started again after ``retry`` seconds from the last value
    that *was* published: a step of the walk never goes missing, a screen sees the next
    value one step on from the last. The supervisor sees one run that goes on."""

    RETRY = 0.1  # seconds before the source goes on after a value was not published

    def __init__(self, source_class: type[Source], options: Mapping[str, Any], last_fields: Mapping[str, Any] | None,
                 *, sleep: Callable[[float], None], retry: float = RETRY):
        self.source_class = source_class
        self.kind = source_class.kind
        self.passive = source_class.passive
        self.options = dict(options)
        self.last_fields = last_fields
        self.sleep = sleep
        self.retry = retry
        self.refused = False
        self.current = self._fresh()

    def _fresh(self) -> Source:
        return self.source_class(**continued_options(self.source_class.key_names(), self.options, self.last_fields))

    def events(self) -> Iterator[Any]:
        while True:
            self.refused = False
            for event in self.current.events():
                yield event
                if self.refused:
                    break
            else:
                return  # the source ended (the supervisor says so and runs it again)
            self.current.close()
            self.sleep(self.retry)
            self.current = self._fresh()

    def publisher(self, publish: Callable[[Mapping[str, Any]], Any]) -> Callable[[Mapping[str, Any]], None]:
        """The supervisor's ``on_value``: ``publish(fields)`` (None: not published), noting
        what was published and what was refused."""
        def on_value(fields: Mapping[str, Any]) -> None:
            if publish(fields) is None:
                self.refused = True
            else:
                self.last_fields = fields
        return on_value

    def close(self) -> None:
        self.current.close()

    def describe(self) -> str:
        return self.current.describe()

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.current.secrets
