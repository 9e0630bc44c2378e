"""The fleet, through Redis: who runs each stream's producer (leases) and who serves whom (presence).

Carved out of the Redis backplane (``redis.py`` keeps the store, the tail, the shared health
and reload), which makes one ``Fleet`` and calls it; nothing here imports ``redis.py``.

* **Leases** (``lease.py`` for the rules): one green thread acquires, renews and releases each
  leased stream's lease and starts or stops its producer (``LeasedProducer``) as the answers
  say. A stream's lease key holds its holder's instance id (SET NX PX); only the holder
  renews it (compare-and-renew) or gives it back (and tells the others through the control
  stream, so they ask at once instead of after the TTL).
* **Presence**: the same thread writes this instance's subscriber counts every
  ``PRESENCE_INTERVAL`` (a hash that expires: an instance that died drops out), and
  ``census()`` reads every live instance's counts and every leased stream's holder for
  /streams and the reload count. Beside the counts it writes the named screens connected
  here (``dashstream:screens:presence:{ID}``, JSON, same expiry); ``screen_census()`` merges
  every live instance's for /screens.json.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Mapping

import redis

from dashstream import runtime
from dashstream.backplane.lease import START, STOP, LeasedProducer, LeaseKeeper
from dashstream.backplane.redis_keys import CONTROL, CONTROL_MAXLEN, INSTANCES, PREFIX, REDIS_ERRORS, stream_key, text
from dashstream.backplane.redis_log import entry_from_redis

logger = logging.getLogger("dashstream.backplane")

LEASE_TTL = 5.0  # a dead holder's producer is taken over within this
PRESENCE_INTERVAL = 2.0
PRESENCE_TTL = 3 * PRESENCE_INTERVAL

# Acquire (SET NX PX) or, for the holder only, renew (compare-and-renew).
LEASE = """
local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return {1, holder, tonumber(ARGV[2])}
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, ARGV[1], tonumber(ARGV[2])}
end
return {0, holder, redis.call('pttl', KEYS[1])}
"""

# Give the lease back (only if it is ours) and tell the others to ask at once.
RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('xadd', KEYS[2], 'MAXLEN', ARGV[3], '*', 'type', 'lease', 'stream', ARGV[2], 'from', ARGV[1])
  return 1
end
return 0
"""


class _Leased:
    """A stream whose producer runs under a lease: its keeper and its producer."""

    __slots__ = ("stream", "keeper", "producer", "lease_key")

    def __init__(self, stream, keeper: LeaseKeeper, producer: LeasedProducer):
        self.stream = stream
        self.keeper = keeper
        self.producer = producer
        self.lease_key = stream_key(stream.name, "lease")


class Fleet:
    """Leases and presence for one instance; see the module docstring.

    ``commands`` is the backplane's pooled client; ``is_up()`` the backplane's health (no
    lease is asked for while Redis is away); ``local_counts()`` this instance's subscribers
    per stream (and ``_control``: its control clients)."""

    def __init__(self, commands: Any, *, instance: str, lease_ttl: float = LEASE_TTL,
                 is_up: Callable[[], bool], local_counts: Callable[[], dict[str, int]],
                 local_screens: Callable[[], dict[str, list[dict]]] = dict):
        self.commands = commands
        self.instance = instance
        self.lease_ttl = lease_ttl
        self.is_up = is_up
        self.local_counts = local_counts
        self.local_screens = local_screens
        self._lease = commands.register_script(LEASE)
        self._release = commands.register_script(RELEASE)
        self._leased: dict[str, _Leased] = {}
        self._wake = runtime.Event()
        self._stopping = False

    # --- the leased streams -------------------------------------------------------------------

    def lease(self, stream: Any, run: Callable[[Mapping[str, Any] | None], Any]) -> LeasedProducer:
        """``stream``'s producer, run (``run(last_fields)``) only while this instance holds
        its lease."""
        producer = LeasedProducer(stream.name, run=run, register=self._register, release=self._give_back)
        self._leased[stream.name] = _Leased(stream, LeaseKeeper(self.lease_ttl), producer)
        return producer

    def leased(self) -> list[str]:
        """The leased streams' names."""
        return list(self._leased)

    def __contains__(self, name: str) -> bool:
        return name in self._leased

    def recheck(self, name: str) -> None:
        """Ask for ``name``'s lease at once: Redis refused one of our appends (fencing), or
        another instance gave the lease back."""
        leased = self._leased.get(name)
        if leased is not None:
            leased.keeper.recheck(runtime.monotonic())
            self.wake()

    def lost(self) -> None:
        """The backplane is down: no lease can be proven, every producer here stops."""
        for leased in self._leased.values():
            if leased.keeper.lost() == STOP:
                leased.producer.end("backplane down")

    def wake(self) -> None:
        if not self._wake.ready():
            self._wake.send()

    def _register(self, producer: LeasedProducer) -> None:
        self.wake()

    def _give_back(self, producer: LeasedProducer) -> None:
        leased = self._leased[producer.name]
        leased.keeper.holding = False
        if not self.is_up():
            return  # nobody can take it now; it expires by itself within the TTL
        try:
            with runtime.Timeout(0.5):
                self._release(keys=[leased.lease_key, CONTROL], args=[self.instance, producer.name, CONTROL_MAXLEN])
        except (*REDIS_ERRORS, runtime.Timeout, redis.RedisError):
            pass  # it expires by itself within the TTL

    # --- the lease loop -------------------------------------------------------------------------

    def run(self) -> None:
        """The lease loop (a green thread of its own): leases due, then presence, then wait."""
        presence_due = 0.0
        while not self._stopping:
            # A fresh event before the work: a wake-up sent while we work is not lost.
            self._wake = runtime.Event()
            now = runtime.monotonic()
            if self.is_up():
                for leased in list(self._leased.values()):
                    if leased.producer.started and leased.keeper.due(now):
                        self._ask(leased)
                if now >= presence_due:
                    self._write_presence()
                    presence_due = now + PRESENCE_INTERVAL
            now = runtime.monotonic()
            due = [leased.keeper.next_at for leased in self._leased.values() if leased.producer.started]
            wait = min([presence_due, *due]) - now if self.is_up() else PRESENCE_INTERVAL
            self._wake.wait(min(max(wait, 0.01), PRESENCE_INTERVAL))

    def _ask(self, leased: _Leased) -> None:
        at = runtime.monotonic()
        try:
            granted, holder, remaining = self._lease(keys=[leased.lease_key],
                                                     args=[self.instance, int(self.lease_ttl * 1000)])
        except (*REDIS_ERRORS, redis.RedisError) as error:
            logger.debug("lease of stream %r: %s", leased.stream.name, error)
            action = leased.keeper.asked(at, None)
        else:
            action = leased.keeper.asked(at, bool(granted), text(holder) if holder else None,
                                         int(remaining) / 1000, me=self.instance)
        if action == START:
            last = self._last_fields(leased.stream)
            # The tail may have lost Redis meanwhile (it stops producers): then wait for it.
            if self.is_up() and leased.keeper.holding:
                leased.producer.begin(last)
        elif action == STOP:
            leased.producer.end(f"the lease is held by {leased.keeper.holder or 'nobody we can see'}")

    def _last_fields(self, stream) -> dict | None:
        """The stream's newest value in Redis (a counter continues from it)."""
        try:
            newest = self.commands.xrevrange(stream_key(stream.name, "log"), "+", "-", count=1)
            entry = entry_from_redis(stream.name, *newest[0]) if newest else None
        except (*REDIS_ERRORS, redis.RedisError, KeyError, ValueError):
            entry = stream.log.last
        return entry.fields if entry is not None else None

    # --- presence -------------------------------------------------------------------------------

    def _presence_key(self, instance: str | None = None) -> str:
        return f"{PREFIX}presence:{instance or self.instance}"

    def _write_presence(self) -> None:
        try:
            pipe = self.commands.pipeline(transaction=False)
            pipe.hset(self._presence_key(), mapping=self.local_counts())
            pipe.pexpire(self._presence_key(), int(PRESENCE_TTL * 1000))
            pipe.set(self._screens_key(), json.dumps(self.local_screens()), px=int(PRESENCE_TTL * 1000))
            pipe.sadd(INSTANCES, self.instance)
            pipe.execute()
        except (*REDIS_ERRORS, redis.RedisError) as error:
            logger.debug("presence not written: %s", error)

    def _screens_key(self, instance: str | None = None) -> str:
        return f"{PREFIX}screens:presence:{instance or self.instance}"

    def screen_census(self, here: Mapping[str, list[dict]]) -> dict[str, list[dict]]:
        """Screen name -> its connections over every live instance (``here``: ours, live),
        oldest first (raises what redis-py raises)."""
        others = [instance for instance in sorted(text(member) for member in self.commands.smembers(INSTANCES))
                  if instance != self.instance]
        merged = {name: list(rows) for name, rows in here.items()}
        for raw in (self.commands.mget([self._screens_key(instance) for instance in others]) if others else ()):
            try:
                screens = json.loads(raw) if raw else {}
            except ValueError:
                continue  # not ours to read
            for name, rows in screens.items() if isinstance(screens, dict) else ():
                merged.setdefault(name, []).extend(row for row in rows if isinstance(row, dict))
        for rows in merged.values():
            rows.sort(key=lambda row: (row.get("since", 0), str(row.get("address"))))
        return merged

    def census(self) -> tuple[dict[str, dict[str, int]], dict[str, str | None]]:
        """Every live instance's counts (ours live, not as last written) and every leased
        stream's holder, from Redis (raises what redis-py raises)."""
        ids = sorted(text(member) for member in self.commands.smembers(INSTANCES))
        others = [instance for instance in ids if instance != self.instance]
        pipe = self.commands.pipeline(transaction=False)
        for instance in others:
            pipe.hgetall(self._presence_key(instance))
        leased = list(self._leased)
        for name in leased:
            pipe.get(stream_key(name, "lease"))
        replies = pipe.execute()
        fleet = {self.instance: self.local_counts()}
        gone = []
        for instance, counts in zip(others, replies):
            if counts:
                fleet[instance] = {text(k): int(v) for k, v in counts.items()}
            else:
                gone.append(instance)  # its presence expired: it stopped or died
        if gone:
            self.commands.srem(INSTANCES, *gone)
        holders = {name: (text(holder) if holder else None) for name, holder in zip(leased, replies[len(others):])}
        return fleet, holders

    def census_here(self) -> tuple[dict[str, dict[str, int]], dict[str, str | None]]:
        """``census()`` without Redis: this instance's counts and the holders as last seen."""
        return {self.instance: self.local_counts()}, {
            name: (self.instance if leased.keeper.holding else leased.keeper.holder)
            for name, leased in self._leased.items()}

    def leave(self) -> None:
        """At shutdown (the producers stopped and gave their leases back): stop the loop and
        leave the presence set now rather than when the hash expires."""
        self._stopping = True
        try:
            with runtime.Timeout(1.0):
                pipe = self.commands.pipeline(transaction=False)
                pipe.delete(self._presence_key(), self._screens_key())
                pipe.srem(INSTANCES, self.instance)
                pipe.execute()
        except (*REDIS_ERRORS, runtime.Timeout, redis.RedisError):
            pass
