"""The Redis backplane: several instances, one set of streams (``--backplane redis://...``).

Every instance started with the same backplane and streams serves the same streams, behind
any balancer, without sticky sessions. Centrifugo's Redis engine is the model; the keys are
listed in ``redis_keys.py``. This module is the store (publishing, backlogs), the tail, the
producers' shared health and reload; who runs each producer (leases) and who serves whom
(presence) is ``fleet.py``'s.

* **Publishing** is one Lua script (``APPEND``, after Centrifugo's
  ``broker_history_add_stream.lua``): create the epoch if the stream has none (dropping any
  stale log, and telling the tails through the control stream), increment ``seq``, XADD
  with the seq as the entry id and an exact ``MAXLEN`` (the approximate form kept 50 of 150
  entries in a test here), refresh the keys' TTL. The epoch changes exactly when Redis lost
  the stream's state, so a resume is never honoured against another numbering. A leased
  producer's append also checks, in the same script, that this instance holds the lease.
* **The tail**: one green thread per instance XREAD BLOCKs on every shared stream's log and
  the control stream, and hands each entry to its ``RedisLog.receive`` (fan-out through the
  same path as a memory stream). Its socket timeout is above the block time (with redis-py's
  default 5 s an ``XREAD BLOCK 6000`` hung about a minute before raising), redis-py never
  retries on its own, and after any reconnect each stream's epoch is read again before the
  tail goes on from its last id (``RedisLog.resync``): a stream whose numbering restarted
  would otherwise be skipped from 1 up to the old last id. Streams are read, not pub/sub: a
  subscriber over Redis's output-buffer limit is cut off silently.
* **Streams are built with the backplane**: ``log_factory`` gives a shared stream its
  ``RedisLog``, ``runner_factory`` what runs its source: the plain supervisor for a publish
  stream, a ``LeasedProducer`` (``fleet.py``) otherwise, which runs the source under the
  same ``Supervisor`` while this instance holds the lease, its states shared with the fleet.
  The runner factory is also where the backplane learns the stream, to tail its log.
* **The lease loop** (``fleet.py``; ``lease.py`` for the rules): acquires, renews and
  releases each producer's lease, and writes this instance's presence.
* **Outage**: the tail's failure makes the backplane ``down`` (control clients told, logged
  once, publish and reload 503, /readyz 503), leased producers stop, screens keep their last
  value; reconnects use the supervisor's capped jittered ``Backoff``; once back, each
  stream's epoch is checked (same epoch: the tail catches up, no gap; a new one: the gap
  signal) and the backplane is ``up`` again.

redis-py is green after ``monkey_patch`` (it uses the socket module); this module is only
imported by ``backplane.make_backplane`` when a Redis URL is configured, after patching.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Mapping

from dashstream import runtime
from dashstream.backplane import INSTALL
from dashstream.backplane.base import BackplaneHealth
from dashstream.backplane.fleet import LEASE_TTL, Fleet
from dashstream.backplane.lease import ContinuedSource, continued_options
from dashstream.backplane.redis_keys import CONTROL, CONTROL_MAXLEN, REDIS_ERRORS, SCREENS, stream_key
from dashstream.backplane.redis_keys import text as _text
from dashstream.backplane.redis_log import RedisLog, entry_from_redis, fresh_part
from dashstream.backplane.sentinel import redis_client
from dashstream.messages import Entry
from dashstream.ops.log_output import LogLimiter, suppressed_note
from dashstream.sessions.screens import assignment_from_json
from dashstream.streams.log import LogUnavailable, new_epoch
from dashstream.streams.supervisor import Backoff, describe_error, source_supervisor
from producer import SOURCES
from producer.base import DOWN, STARTING, STATES, UP
from producer.urls import redact_url, scrub

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as missing:  # pragma: no cover - config.py refuses --backplane without it
    raise ImportError(f"--backplane needs the Python package 'redis': {INSTALL}") from missing

logger = logging.getLogger("dashstream.backplane")

CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 3.0  # a command that takes longer means the connection is dead
BLOCK_MS = 2000  # one XREAD BLOCK; the tail's socket timeout must stay above it
TAIL_TIMEOUT = BLOCK_MS / 1000 + 3.0
TAIL_COUNT = 1000  # entries per XREAD
# A stream nobody publishes to for this long is forgotten by Redis (its next message starts a
# new epoch: screens get the gap signal).
KEY_TTL_MS = 30 * 24 * 3600 * 1000
RETRY_AFTER = 2  # seconds, for 503 answers while the backplane is down
# A reload read from the control stream long after it was sent (this instance was cut off
# from Redis meanwhile) is not acted on: the screens would reload for no reason they can see.
RELOAD_MAX_AGE = 60.0
RECONNECT = dict(first=0.5, cap=5.0)
# An instance that falls further behind a stream than this (seconds between the oldest and
# newest entry of one read) delivers only the newest part (redis_log.fresh_part). Not for
# the first read after a (re)connect: catching up from the log is what that read is for.
MAX_TAIL_LAG = 1.0

APPEND = """
-- KEYS: log, meta, control, lease.  ARGV: body, ts, history, key ttl (ms), a new epoch,
-- holder ('' = not fenced), stream name, control maxlen.
if ARGV[6] ~= '' and redis.call('get', KEYS[4]) ~= ARGV[6] then
  return redis.error_reply('NOTHOLDER this instance does not hold the stream lease')
end
local epoch = redis.call('hget', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[5]
  redis.call('del', KEYS[1])
  redis.call('hset', KEYS[2], 'e', epoch, 's', 0)
  redis.call('xadd', KEYS[3], 'MAXLEN', ARGV[8], '*', 'type', 'epoch', 'stream', ARGV[7], 'epoch', epoch)
end
local seq = redis.call('hincrby', KEYS[2], 's', 1)
redis.call('xadd', KEYS[1], 'MAXLEN', ARGV[3], seq, 'b', ARGV[1], 't', ARGV[2], 'e', epoch)
redis.call('pexpire', KEYS[1], ARGV[4])
redis.call('pexpire', KEYS[2], ARGV[4])
return {seq, epoch}
"""

class RedisBackplane:
    """See the module docstring."""

    kind = "redis"

    def __init__(self, url: str, *, instance: str, lease_ttl: float = LEASE_TTL):
        self.url = url
        self.instance = instance
        self.lease_ttl = lease_ttl
        self.shown = redact_url(url)
        self._secrets = getattr(url, "secrets", ())
        self.health = BackplaneHealth(self.shown)
        options = dict(socket_connect_timeout=CONNECT_TIMEOUT, socket_keepalive=True,
                       retry=Retry(NoBackoff(), 0), health_check_interval=0,
                       client_name=f"dashstream:{instance}".replace(" ", "_"))
        self._options = options
        # The pool serves whatever runs concurrently (publish requests, backlog reads,
        # presence, leases). The tail, and each leased producer, run in one green thread
        # each and get a connection of their own without a pool: redis-py's pool costs
        # about as much again as the rest of a command (a PING 108-148 µs pooled, 47-74 µs
        # on its own connection, 25-29 µs by hand: benchmarks/redis_command_cost.py), and
        # those two run once per message.
        self.commands = redis_client(url, socket_timeout=COMMAND_TIMEOUT, **options)
        self.tail_client: Any = None  # made by the tail (redis-py connects such a client at once)
        self._append = self.commands.register_script(APPEND)
        self._producer_appends: dict[str, Any] = {}  # stream -> APPEND on its producer's own connection
        self.fleet = Fleet(self.commands, instance=instance, lease_ttl=lease_ttl, is_up=lambda: self.health.up,
                           local_counts=self._local_counts, local_screens=self._local_screens)
        self.streams: dict[str, Any] = {}  # shared streams whose logs are in Redis
        self._by_key: dict[str, Any] = {}  # log key -> stream
        self._cursor: dict[str, str] = {}  # log key -> last id read
        self._control_id: str | None = None
        self._synced = False  # the tail's view is current on its present connection
        self._catching_up = False  # the next read is the first since a (re)connect
        self._stopping = False
        self._threads: list[Any] = []
        self._backoff = Backoff(**RECONNECT)
        self._failures = LogLimiter(60.0)
        self._policy_checked = False
        self.app: Any = None

    # --- building the streams (streams_from_config) -----------------------------------------

    def log_factory(self, spec: Any):
        backplane, fenced = self, spec.source != "publish"

        def make(name: str, *, history: int, clock, on_entry, on_hole) -> RedisLog:
            return RedisLog(name, history=history, clock=clock, on_entry=on_entry, on_hole=on_hole, store=backplane,
                            fenced=fenced)

        return make

    def runner_factory(self, spec: Any):
        """What runs the stream's source: for a publish stream the plain supervisor (its
        values come from POST /publish on any instance; it keeps the stale clock), else a
        producer that runs only while this instance holds the stream's lease. The stream is
        served through the backplane from here on: tailed and counted in presence."""

        def make(stream: Any):
            self.streams[stream.name] = stream
            self._by_key[stream_key(stream.name, "log")] = stream
            if spec.source == "publish":
                return source_supervisor(spec, stream)
            return self.fleet.lease(stream, run=lambda last: self._run(spec, stream, last))

        return make

    def _run(self, spec: Any, stream: Any, last_fields: Mapping | None):
        """Start ``spec``'s producer here (the lease is ours), continuing a counter, under a
        supervisor whose states every instance shares."""
        cls = SOURCES[spec.source]
        self._refresh_producer_connection(stream)
        if cls.resume_after_refusal:
            # A value Redis did not take is not skipped over: the walk starts again from the
            # last value it did publish, so the stream stays one walk.
            source = ContinuedSource(cls, spec.options, last_fields, sleep=runtime.sleep)
            on_value = source.publisher(stream.publish_from_source)
        else:
            source, on_value = cls(**continued_options(cls.key_names(), spec.options, last_fields)), None
        supervisor = source_supervisor(spec, stream, source=source, on_value=on_value,
                                       on_health=lambda state, reason, since: self._share_health(
                                           stream, state, reason, since))
        supervisor.start()
        return supervisor

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self, app: Any) -> None:
        """Connect once now (so a healthy Redis means a ready instance), then tail and keep
        leases in the background. Never fails: a Redis that is away is retried."""
        self.app = app
        self.health.sessions = lambda: [session for session in app.sessions if session.control]
        try:
            with runtime.Timeout(CONNECT_TIMEOUT + COMMAND_TIMEOUT):
                self._sync()
            self._went_up()
        except (*REDIS_ERRORS, runtime.Timeout, redis.RedisError) as error:
            self._went_down(error)
        self._threads = [runtime.spawn(self._tail_loop), runtime.spawn(self.fleet.run)]

    def stop(self) -> None:
        """After the streams stopped (leases given back): leave the fleet's presence."""
        self._stopping = True
        for thread in self._threads:
            thread.kill()
        self._threads = []
        self.fleet.leave()
        producers = (append.registered_client for append in self._producer_appends.values())
        for client in (self.commands, self.tail_client, *producers):
            try:
                if client is not None:
                    client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass

    # --- health ---------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.health.up

    def welcome(self, session: Any) -> None:
        self.health.welcome(session)

    def not_ready(self) -> str | None:
        return None if self.health.up else f"backplane down: {self.health.reason}"

    def health_fields(self) -> dict:
        return {"instance": self.instance, "backplane": self.health.state}

    def describe(self) -> dict:
        return {**self.health.describe(), "url": self.shown, "instance": self.instance}

    def _went_down(self, error: BaseException) -> None:
        self._synced = False
        reason = self._reason(error)
        if not self.health.set(DOWN, reason):
            logger.debug("backplane %s: still down: %s", self.shown, reason)
        self.fleet.lost()

    def _went_up(self) -> None:
        self._backoff.reset()
        self.health.set(UP)
        self.fleet.wake()

    def _reason(self, error: BaseException) -> str:
        if isinstance(error, runtime.Timeout):
            return "Redis did not answer in time"
        return scrub(describe_error(error), self._secrets)

    # --- the tail -------------------------------------------------------------------------------

    def _tail_loop(self) -> None:
        while not self._stopping:
            try:
                if not self._synced:
                    self._sync()
                    self._went_up()
                self._read_once()
            except (*REDIS_ERRORS, redis.RedisError) as error:
                if self._stopping:
                    return
                self._went_down(error)
                runtime.sleep(self._backoff.next_delay())
            except Exception as error:  # a bug must not end the tail for good
                logger.exception("backplane %s: the tail failed", self.shown)
                self._went_down(error)
                runtime.sleep(self._backoff.next_delay())

    def _sync(self) -> None:
        """(Re)connect: read each stream's epoch, seq and newest entries, the producers'
        states and, the first time, where the control stream ends."""
        self._tail_connection().ping()
        self._check_policy()
        names = list(self.streams)
        pipe = self.commands.pipeline(transaction=False)
        for name in names:
            self._queue_read_state(pipe, self.streams[name])
        leased = self.fleet.leased()
        for name in leased:
            pipe.hgetall(stream_key(name, "health"))
        pipe.hgetall(SCREENS)
        if self._control_id is None:
            pipe.xrevrange(CONTROL, "+", "-", count=1)
        replies = pipe.execute()
        for index, name in enumerate(names):
            self._resync(self.streams[name], replies[2 * index], replies[2 * index + 1])
        offset = 2 * len(names)
        for index, name in enumerate(leased):
            self._apply_health(self.streams[name], replies[offset + index])
        for name, body in replies[offset + len(leased)].items():
            self._apply_screen(_text(name), _text(body))  # what POST /screens said while we were away
        if self._control_id is None:
            newest = replies[-1]
            self._control_id = _text(newest[0][0]) if newest else "0-0"
        self._synced = True
        self._catching_up = True

    def _queue_read_state(self, pipe, stream) -> None:
        pipe.hmget(stream_key(stream.name, "meta"), "e", "s")
        pipe.xrevrange(stream_key(stream.name, "log"), "+", "-", count=stream.log.history_size)

    def _resync(self, stream, meta, newest_first) -> None:
        epoch = _text(meta[0]) if meta[0] is not None else None
        seq = int(meta[1]) if meta[1] is not None else 0
        recent = [entry_from_redis(stream.name, entry_id, fields) for entry_id, fields in reversed(newest_first)]
        if epoch is not None:
            recent = [entry for entry in recent if entry.epoch == epoch]
        position = stream.log.resync(epoch, seq, recent)
        self._cursor[stream_key(stream.name, "log")] = f"{position}-0"

    def _resync_one(self, stream) -> None:
        pipe = self.commands.pipeline(transaction=True)
        self._queue_read_state(pipe, stream)
        meta, newest_first = pipe.execute()
        self._resync(stream, meta, newest_first)

    def _read_once(self) -> None:
        wanted = dict(self._cursor)
        wanted[CONTROL] = self._control_id
        reply = self._tail_connection().xread(wanted, count=TAIL_COUNT, block=BLOCK_MS)
        for key, items in reply or ():
            key = _text(key)
            if key == CONTROL:
                for entry_id, fields in items:
                    self._control_id = _text(entry_id)
                    self._on_control(self._control_id, {_text(k): _text(v) for k, v in fields.items()})
                continue
            stream = self._by_key.get(key)
            if stream is None:
                continue
            self._cursor[key] = _text(items[-1][0])
            entries = []
            for entry_id, fields in items:
                try:
                    entries.append(entry_from_redis(stream.name, entry_id, fields))
                except (KeyError, ValueError) as error:  # someone else's entry in our key
                    self._limited("bad-entry", "stream %r: skipped an entry it cannot read: %r",
                                  stream.name, error)
            delivered = entries if self._catching_up else fresh_part(entries, MAX_TAIL_LAG)
            if len(delivered) < len(entries):
                self._limited(("behind", stream.name), "stream %r: this instance fell %.1f s behind; "
                              "skipped %d stale message(s), its screens get the gap signal", stream.name,
                              entries[-1].ts - entries[0].ts, len(entries) - len(delivered))
            for entry in delivered:
                stream.log.receive(entry)
            if stream.source == "publish" and stream.supervisor is not None:
                stream.supervisor.note_value()  # every instance's stale clock sees the value
        self._catching_up = False

    def _on_control(self, entry_id: str, fields: dict) -> None:
        kind = fields.get("type")
        stream = self.streams.get(fields.get("stream", ""))
        if kind == "reload":
            sent_ms = int(entry_id.partition("-")[0])
            if time.time() - sent_ms / 1000 <= RELOAD_MAX_AGE and self.app is not None:
                self.app.reload_here(reread=fields.get("from") != self.instance)  # ours read it already
        elif kind == "screen" and fields.get("from") != self.instance:  # ours was applied at once
            self._apply_screen(fields.get("screen", ""), fields.get("assignment", ""))
        elif kind == "health" and stream is not None:
            self._apply_health(stream, fields)
        elif kind == "epoch" and stream is not None:
            # Its numbering restarted under a tail that kept its connection: entries 1.. of the
            # new epoch sit below our cursor, so read them. (A mirror without an epoch tails
            # from 0: XREAD brings them in order, and a resync here would race it.)
            if stream.log.epoch is not None and stream.log.epoch != fields.get("epoch"):
                self._resync_one(stream)
        elif kind == "lease" and stream is not None:
            self.fleet.recheck(stream.name)

    # --- the log store (RedisLog calls these) ------------------------------------------------

    def append(self, log_: RedisLog, body: str, ts: float) -> tuple[int, str]:
        if not self.health.up:
            raise LogUnavailable(f"the backplane (Redis) is down: {self.health.reason}", RETRY_AFTER)
        name = log_.stream
        keys = [stream_key(name, "log"), stream_key(name, "meta"), CONTROL, stream_key(name, "lease")]
        args = [body, repr(ts), log_.history_size, KEY_TTL_MS, new_epoch(),
                self.instance if log_.fenced else "", name, CONTROL_MAXLEN]
        try:
            seq, epoch = self._appender(log_)(keys=keys, args=args)
        except redis.ResponseError as error:
            if str(error).startswith("NOTHOLDER"):
                self.fleet.recheck(name)
                raise LogUnavailable("this instance no longer holds the stream's lease", RETRY_AFTER) from None
            self._limited(("refused", name), "Redis refused an append to stream %r: %s", name, error)
            raise LogUnavailable(f"Redis refused the message: {error}", RETRY_AFTER) from None
        except redis.TimeoutError:
            # The command may have reached Redis and run: a timeout cannot tell.
            raise LogUnavailable("the backplane (Redis) did not answer in time; the message may or may not have "
                                 "been published", RETRY_AFTER) from None
        except REDIS_ERRORS as error:
            raise LogUnavailable(f"the backplane (Redis) is unreachable: {self._reason(error)}", RETRY_AFTER) from None
        return int(seq), _text(epoch)

    def _refresh_producer_connection(self, stream) -> None:
        """A producer's own connection may be left from before Redis restarted (a single
        connection is not checked before use as the pool's are): make it answer now, so the
        producer's first value is not lost to it."""
        try:
            self._appender(stream.log).registered_client.ping()
        except (*REDIS_ERRORS, redis.RedisError):
            pass  # reconnected on the next command, or the tail finds the outage

    def _single(self, timeout: float):
        """A client with one connection of its own, connected now (raises if Redis is away;
        once made, it reconnects by itself on its next command after a failure)."""
        return redis_client(self.url, socket_timeout=timeout, single_connection_client=True,
                                    **self._options)

    def _tail_connection(self):
        if self.tail_client is None:
            self.tail_client = self._single(TAIL_TIMEOUT)
        return self.tail_client

    def _appender(self, log_: RedisLog):
        """The APPEND script on the right connection: a leased producer's own (only its green
        thread appends to that stream), else the pool's (publish requests run at once)."""
        if not log_.fenced:
            return self._append
        script = self._producer_appends.get(log_.stream)
        if script is None:
            script = self._producer_appends[log_.stream] = self._single(COMMAND_TIMEOUT).register_script(APPEND)
        return script

    def read(self, log_: RedisLog, after: int | None) -> tuple[str | None, int, Entry | None, list[Entry]]:
        if not self.health.up:
            raise LogUnavailable("the backplane (Redis) is down", RETRY_AFTER)
        name = log_.stream
        pipe = self.commands.pipeline(transaction=True)  # MULTI: one consistent view
        pipe.hmget(stream_key(name, "meta"), "e", "s")
        pipe.xrevrange(stream_key(name, "log"), "+", "-", count=1)
        if after is not None:
            pipe.xrange(stream_key(name, "log"), str(after + 1), "+", count=log_.history_size)
        try:
            replies = pipe.execute()
        except (*REDIS_ERRORS, redis.RedisError) as error:
            raise LogUnavailable(f"the backplane (Redis) is unreachable: {self._reason(error)}") from None
        meta, newest = replies[0], replies[1]
        epoch = _text(meta[0]) if meta[0] is not None else None
        seq = int(meta[1]) if meta[1] is not None else 0
        newest_entry = entry_from_redis(name, *newest[0]) if newest else None
        after_entries = [entry_from_redis(name, *item) for item in replies[2]] if after is not None else []
        return epoch, seq, newest_entry, after_entries

    # --- producers' health, shared -------------------------------------------------------------

    def _share_health(self, stream, state: str, reason: str, since: float) -> None:
        """The holder's supervisor reports a state: apply it here and tell every instance."""
        if reason == STARTING:
            return  # a producer taking over is not news: the stream keeps its state meanwhile
        stream.set_health(state, reason, since)
        fields = {"state": state, "reason": reason, "since": repr(since), "holder": self.instance}
        try:
            pipe = self.commands.pipeline(transaction=False)
            pipe.hset(stream_key(stream.name, "health"), mapping=fields)
            pipe.pexpire(stream_key(stream.name, "health"), KEY_TTL_MS)
            pipe.xadd(CONTROL, {"type": "health", "stream": stream.name, **fields}, maxlen=CONTROL_MAXLEN,
                      approximate=False)
            pipe.execute()
        except (*REDIS_ERRORS, redis.RedisError) as error:
            logger.debug("could not share the state of stream %r: %s", stream.name, error)

    def _apply_health(self, stream, fields: Mapping) -> None:
        fields = {_text(k): _text(v) for k, v in fields.items()}
        if fields.get("state") not in STATES:
            return
        try:
            since = float(fields.get("since", ""))
        except ValueError:
            since = None
        stream.set_health(fields["state"], fields.get("reason", ""), since)

    # --- presence (the fleet writes it; the counts are this instance's) ------------------------

    def _local_counts(self) -> dict[str, int]:
        counts = {name: stream.subscriber_count for name, stream in (self.app.streams.items() if self.app else ())}
        counts["_control"] = sum(1 for session in (self.app.sessions if self.app else ()) if session.control)
        return counts

    # --- what the app asks -------------------------------------------------------------------------

    def describe_streams(self, described: list[dict]) -> dict:
        """/streams: subscribers summed over the fleet, who runs each producer, and this
        instance's own counts beside them."""
        try:
            if not self.health.up:
                raise redis.ConnectionError("down")  # known: do not wait for a timeout
            fleet, holders = self.fleet.census()
        except (*REDIS_ERRORS, redis.RedisError):
            fleet, holders = self.fleet.census_here()
        for entry in described:
            name = entry["name"]
            entry["local_subscribers"] = entry["subscribers"]
            entry["subscribers"] = sum(counts.get(name, 0) for counts in fleet.values())
            if name in self.fleet:
                entry["producer"] = holders.get(name)
        return {"streams": described, "instance": self.instance, "instances": sorted(fleet),
                "backplane": self.describe()}

    # --- named screens -------------------------------------------------------------------------

    def assign_screen(self, name: str, fields: dict, since: float, here) -> None:
        """POST /screens/NAME: kept in ``dashstream:screens`` (an instance that starts or comes
        back reads it) and told to every instance through the control stream; applied here at
        once."""
        if not self.health.up:
            raise LogUnavailable(f"the backplane (Redis) is down: {self.health.reason}", RETRY_AFTER)
        body = json.dumps({**fields, "since": since})
        try:
            pipe = self.commands.pipeline(transaction=True)
            pipe.hset(SCREENS, name, body)
            pipe.xadd(CONTROL, {"type": "screen", "screen": name, "assignment": body, "from": self.instance},
                      maxlen=CONTROL_MAXLEN, approximate=False)
            pipe.execute()
        except (*REDIS_ERRORS, redis.RedisError) as error:
            raise LogUnavailable(f"the backplane (Redis) is unreachable: {self._reason(error)}", RETRY_AFTER) from None
        here()

    def _apply_screen(self, name: str, body: str) -> None:
        screens = getattr(self.app, "screens", None)
        try:
            fields = json.loads(body)
            since = float(fields.pop("since"))
        except (ValueError, TypeError, KeyError, AttributeError):
            return  # not ours to read
        assignment = assignment_from_json(fields)
        if screens is not None and assignment is not None:
            screens.assign(name, assignment, since)

    def _local_screens(self) -> dict[str, list[dict]]:
        screens = getattr(self.app, "screens", None)
        return screens.connected_here(self.instance) if screens is not None else {}

    def connected_screens(self, here) -> dict[str, list[dict]]:
        """/screens.json's connections over the fleet (presence; ours live); this instance's
        alone while Redis is away."""
        try:
            if not self.health.up:
                raise redis.ConnectionError("down")
            return self.fleet.screen_census(here(self.instance))
        except (*REDIS_ERRORS, redis.RedisError):
            return here(self.instance)

    def reload(self, here) -> int:
        """POST /reload: every instance's control clients reload (this one's too, through the
        tail, as any other); the answer counts them over the fleet."""
        if not self.health.up:
            raise LogUnavailable(f"the backplane (Redis) is down: {self.health.reason}", RETRY_AFTER)
        try:
            self.commands.xadd(CONTROL, {"type": "reload", "from": self.instance}, maxlen=CONTROL_MAXLEN,
                               approximate=False)
            fleet, _ = self.fleet.census()
        except (*REDIS_ERRORS, redis.RedisError) as error:
            raise LogUnavailable(f"the backplane (Redis) is unreachable: {self._reason(error)}", RETRY_AFTER) from None
        return sum(counts.get("_control", 0) for counts in fleet.values())

    # --- small things ---------------------------------------------------------------------------

    def _check_policy(self) -> None:
        """Once: warn if Redis may evict our keys (managed Redis may forbid CONFIG: fine)."""
        if self._policy_checked:
            return
        self._policy_checked = True
        try:
            policy = self.commands.config_get("maxmemory-policy").get("maxmemory-policy")
        except (*REDIS_ERRORS, redis.RedisError):
            return
        if policy and policy != "noeviction":
            logger.warning("backplane %s: Redis has maxmemory-policy %s; set it to noeviction, or Redis may drop a "
                        "stream's log (its screens then get the gap signal)", self.shown, policy)

    def _limited(self, key, message: str, *args) -> None:
        suppressed = self._failures.allow(key)
        if suppressed is not None:
            logger.warning(message + "%s", *args, suppressed_note(suppressed))
