"""``redis``: messages PUBLISHed on a Redis channel (SUBSCRIBE) or on channels matching a
pattern (PSUBSCRIBE). Each message is a JSON object with ``variable``, or a bare JSON number.

(Named ``redis_channel`` so that it never shadows the ``redis`` package itself.)

Failure behaviour, set deliberately rather than left to redis-py's defaults (a 5 s socket
timeout and retries with backoff, which made one blocked read hang about a minute before
raising): redis-py does not retry at all here (``Retry(NoBackoff(), 0)``), connecting gives
up after ``CONNECT_TIMEOUT`` and the supervisor owns reconnecting, with its backoff and its
``down`` state. A Redis that is killed closes our socket, which raises at once; one that
vanished without a word (a host gone, a cable pulled) is found by our own PING: after
``PING_AFTER`` seconds without traffic the source PINGs, and no answer within
``PING_TIMEOUT`` means the connection is dead. (redis-py's ``health_check_interval`` sends
such PINGs but never notices when one goes unanswered.)

What survives an outage: Redis pub/sub keeps nothing for a subscriber that is away, so
messages published while the connection was down are lost, and after a reconnect the screen
keeps its last value until the next message. Where the publisher also stores its latest
message in a key (``SET orders:latest '{"variable": 5}'`` beside the PUBLISH), set
``latest_key``: after every (re)subscribe the source reads that key and publishes it if it
differs from the last value, so a screen catches up with what it missed at once.

redis-py is green once ``eventlet.monkey_patch()`` has run (it uses the socket module), and
it is imported here, inside ``events()``, which is after patching. Do not install
``hiredis`` beside it: with hiredis, a redis imported before patching breaks
``subscribe()`` (``select.poll`` missing); the ``redis`` extra pins redis without it.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any, Iterator

from producer.base import UP, Driver, Health, Rejected, UrlSource
from producer.keys import ConfigProblem, Key, nonempty_text
from producer.urls import url_keys
from producer.values import BadValue, parse_payload

REDIS = Driver("redis", "redis")
CONNECT_TIMEOUT = 3.0
# Any single socket operation (a write, a reply) longer than this means the connection is dead.
SOCKET_TIMEOUT = 5.0
# How long one wait for a message blocks before the source looks at its PING clock.
POLL = 0.5
PING_AFTER = 2.0
PING_TIMEOUT = 3.0


class RedisChannel(UrlSource):
    kind = "redis"
    schemes = ("redis", "rediss", "unix")
    keys = (
        *url_keys(schemes, "redis://127.0.0.1:6379/0"),
        Key("channel", nonempty_text, "SUBSCRIBE to this channel (or give pattern)"),
        Key("pattern", nonempty_text, "PSUBSCRIBE to channels matching this glob, e.g. orders.* (or give channel)"),
        Key("latest_key", nonempty_text, "a key holding the latest message (JSON): read after every (re)connect"),
    )

    def __init__(self, *, url: str, channel: str | None = None, pattern: str | None = None,
                 latest_key: str | None = None, clock=time.monotonic) -> None:
        super().__init__(url=url, channel=channel, pattern=pattern, latest_key=latest_key)
        self.channel = channel
        self.pattern = pattern
        self.latest_key = latest_key
        self._clock = clock
        self._client: Any = None
        self._pubsub: Any = None
        self._last: dict | None = None

    @classmethod
    def check(cls, options: dict[str, Any]) -> None:
        given = [key for key in ("channel", "pattern") if options.get(key) is not None]
        if len(given) != 1:
            raise ConfigProblem("channel", "give exactly one of channel (SUBSCRIBE) and pattern (PSUBSCRIBE)"
                                + (", not both" if given else ""))

    @classmethod
    def driver(cls, options):
        return ("source", REDIS)

    @classmethod
    def drivers(cls):
        return (REDIS,)

    def describe(self) -> str:
        what = f"channel {self.channel!r}" if self.channel is not None else f"pattern {self.pattern!r}"
        return f"{super().describe()} {what}"

    def events(self) -> Iterator[Any]:
        import redis

        try:
            yield from self._subscribed()
        except redis.ConnectionError as error:
            # redis-py names the address when it cannot connect, not when the server closed
            # the connection ("Connection closed by server."): the screen says which server.
            parts = urllib.parse.urlsplit(str(self.url))
            where = parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"
            if where in str(error):
                raise
            raise redis.ConnectionError(f"{where}: {error}") from error

    def _subscribed(self) -> Iterator[Any]:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._client = redis.Redis.from_url(
            str(self.url), socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT,
            socket_keepalive=True, retry=Retry(NoBackoff(), 0), health_check_interval=0,
            client_name="dashstream")
        self._pubsub = self._client.pubsub()
        if self.channel is not None:
            self._pubsub.subscribe(self.channel)
        else:
            self._pubsub.psubscribe(self.pattern)
        self._confirmed()
        yield Health(UP)
        if self.latest_key is not None:
            # After subscribing: a message published from here on is not missed either.
            stored = self._client.get(self.latest_key)
            if stored is not None:
                yield from self._value(stored, changed_only=True)
        heard = self._clock()
        ping_sent: float | None = None
        while True:
            message = self._pubsub.get_message(timeout=POLL)
            now = self._clock()
            if message is None:
                if ping_sent is not None and now - ping_sent >= PING_TIMEOUT:
                    raise redis.ConnectionError(f"Redis did not answer a PING within {PING_TIMEOUT:g} s")
                if ping_sent is None and now - heard >= PING_AFTER:
                    self._pubsub.ping()
                    ping_sent = now
                continue
            heard, ping_sent = now, None
            if message["type"] in ("message", "pmessage"):
                yield from self._value(message["data"])

    def _confirmed(self) -> None:
        """Wait for Redis to confirm the subscription, so ``up`` means subscribed."""
        deadline = self._clock() + SOCKET_TIMEOUT
        while self._clock() < deadline:
            message = self._pubsub.get_message(timeout=POLL)
            if message is not None and message["type"] in ("subscribe", "psubscribe"):
                return
        raise TimeoutError(f"Redis did not confirm the subscription within {SOCKET_TIMEOUT:g} s")

    def _value(self, data: bytes, changed_only: bool = False) -> Iterator[Any]:
        try:
            fields = parse_payload(data)
        except BadValue as error:
            yield Rejected(str(error))
            return
        if changed_only and fields == self._last:
            return
        self._last = fields
        yield fields

    def close(self) -> None:
        pubsub, client, self._pubsub, self._client = self._pubsub, self._client, None, None
        for thing in (pubsub, client):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - a dead connection is closed as far as we care
                    pass
