"""``zmq``: a ZeroMQ SUB socket that connects to a PUB socket in another process.

Messages are ``[topic, json]`` (two frames) or ``[json]`` (one frame); the JSON is an object
with ``variable`` or a bare number. ``topic`` is ZeroMQ's subscription prefix, matched
against the first frame: ``""`` takes everything (and is the only topic that a one-frame
message can match usefully).

Under eventlet: ``eventlet.green.zmq`` sockets wait on the hub (the socket's file descriptor
and ``zmq.EVENTS``), so a ``recv`` blocks only this stream. ``zmq.Poller`` is not green: it
froze the whole hub for the length of its poll (eventlet issue 573), so it is never used;
each SUB socket gets its own green thread instead (the supervisor's).

A SUB socket cannot see that its publisher died: ZeroMQ reconnects by itself, silently, and
a dead publisher just looks like a quiet one. So this source is ``up`` once its socket is
connected, and ``stale_after`` is how the screen learns that values stopped coming.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Iterator

from producer.base import UP, Driver, Health, Rejected, UrlSource
from producer.keys import ConfigProblem, Key, text
from producer.urls import url_keys
from producer.values import BadValue, parse_payload

ZMQ = Driver("zmq", "zmq", "pyzmq")
# Messages queued in the socket before ZeroMQ drops new ones: a screen wants the latest value,
# and a burst from a fast publisher must not grow without bound while the hub is busy.
RECEIVE_HWM = 1000
# ZeroMQ's own reconnect after a publisher went away: from 0.1 s, backing off to 5 s.
RECONNECT_IVL_MS = 100
RECONNECT_IVL_MAX_MS = 5000


class ZmqSubscriber(UrlSource):
    kind = "zmq"
    schemes = ("tcp", "ipc")
    keys = (
        *url_keys(schemes, "tcp://127.0.0.1:5557"),
        Key("topic", text, "subscription prefix matched against the first frame; \"\" for all", default=""),
    )

    def __init__(self, *, url: str, topic: str = "") -> None:
        super().__init__(url=url, topic=topic)
        self.topic = topic
        self._context: Any = None
        self._socket: Any = None

    @classmethod
    def check(cls, options: dict[str, Any]) -> None:
        parts = urllib.parse.urlsplit(str(options["url"]))
        if parts.scheme.lower() == "tcp" and (not parts.hostname or parts.port is None):
            raise ConfigProblem("url", "a tcp:// URL needs a host and a port, e.g. tcp://127.0.0.1:5557")

    @classmethod
    def driver(cls, options):
        return ("source", ZMQ)

    @classmethod
    def drivers(cls):
        return (ZMQ,)

    def describe(self) -> str:
        return f"{super().describe()} topic {self.topic!r}"

    def events(self) -> Iterator[Any]:
        from eventlet.green import zmq  # green sockets; pyzmq's own would block the hub

        self._context = zmq.Context()
        socket = self._socket = self._context.socket(zmq.SUB)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        socket.setsockopt(zmq.SUBSCRIBE, self.topic.encode())
        socket.connect(str(self.url))
        yield Health(UP)
        while True:
            frames = socket.recv_multipart()
            if len(frames) not in (1, 2):
                yield Rejected(f"expected [topic, json] or [json], got {len(frames)} frames")
                continue
            try:
                yield parse_payload(frames[-1])
            except BadValue as error:
                yield Rejected(str(error))

    def close(self) -> None:
        socket, context, self._socket, self._context = self._socket, self._context, None, None
        # The socket first, without lingering: term() waits for every socket of its context,
        # and Context.destroy() does not see sockets made by eventlet's green Context (it
        # hung here), so each is closed by hand.
        if socket is not None:
            socket.close(linger=0)
        if context is not None:
            context.term()
