"""Data sources: where a stream's values come from.

A source has one job: it yields dicts of fields (at least ``variable``) as values become
available, and says when it is connected or why it cannot be (see ``producer/base.py`` for
the interface). It knows nothing of sockets, frames, subscribers or sequence numbers; the
server numbers and stamps what it yields and fans it out, and
``dashstream.streams.supervisor`` turns its failures into a state and retries.

``SOURCES`` is the one registry: ``source = "NAME"`` in a stream definition picks the class,
and the class declares its own keys, so ``dashstream/config/stream_specs.py`` reads them
from here.
Importing this package imports no driver: the Redis, SQL and ZeroMQ sources import theirs
only when they run (after ``monkey_patch``), so the default install needs none.
"""

from producer.base import Source
from producer.publish import Publish
from producer.random_walk import RandomWalk
from producer.redis_channel import RedisChannel
from producer.sql import SqlSource
from producer.ticker import Ticker
from producer.zmq_sub import ZmqSubscriber

SOURCES: dict[str, type[Source]] = {cls.kind: cls for cls in (RandomWalk, Publish, Ticker, SqlSource, RedisChannel,
                                                              ZmqSubscriber)}

__all__ = ["SOURCES", "Source", "RandomWalk", "Publish", "Ticker", "SqlSource", "RedisChannel",
           "ZmqSubscriber"]
