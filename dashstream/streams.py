"""Streams: a name, a source of values, and the hub(s) that number and fan them out.

* ``PrivateStream``: every subscriber gets its own producer and hub (the tutorial's
  behaviour and the default stream at ``/``); the producer stops when its client leaves.
* ``SharedStream``: one producer feeds one hub; every subscriber sees the same values.

The producer runs in a green thread of its own. Killing that thread raises inside the
producer's (green) sleep, so a private walk stops at once when its client goes.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Mapping

import eventlet
import eventlet.greenthread

from dashstream.hub import RESERVED_FIELDS, Hub, HubStats, Resume, Subscription

log = logging.getLogger("dashstream.streams")

ProducerFactory = Callable[[], Iterable[Mapping[str, Any]]]


def _pump(producer: Iterable[Mapping[str, Any]], hub: Hub) -> None:
    """Move values from a producer into a hub until the producer ends or we are killed."""
    try:
        for fields in producer:
            hub.publish({key: value for key, value in fields.items() if key not in RESERVED_FIELDS})
    except Exception:  # noqa: BLE001 - a broken producer must not take the server down
        log.exception("producer of stream %r failed", hub.name)


class Stream:
    """What the transport needs from a stream."""

    name: str
    source: str
    shared: bool

    def subscribe(self, resume: Resume | None = None,
                  on_slow: Callable[[Subscription], None] | None = None) -> Subscription:
        raise NotImplementedError

    def start(self) -> None:
        """Begin producing (shared streams); called once when the server starts."""

    def stop(self) -> None:
        """Stop producing; called at shutdown."""

    def describe(self) -> dict:
        raise NotImplementedError

    @property
    def producers(self) -> int:
        """Producer loops running now (health reports it; a leak would show here)."""
        return 0


class PrivateStream(Stream):
    shared = False

    def __init__(self, name: str, source: str, factory: ProducerFactory, **hub_options: Any):
        self.name = name
        self.source = source
        self._factory = factory
        self._hub_options = hub_options
        self._pumps: dict[Hub, eventlet.greenthread.GreenThread] = {}
        self.stats = HubStats()  # summed over every client's hub

    def subscribe(self, resume=None, on_slow=None) -> Subscription:
        hub = Hub(self.name, on_idle=self._stop_hub, stats=self.stats, **self._hub_options)
        subscription = hub.subscribe(resume, on_slow)
        self._pumps[hub] = eventlet.spawn(_pump, self._factory(), hub)
        return subscription

    def _stop_hub(self, hub: Hub) -> None:
        pump = self._pumps.pop(hub, None)
        if pump is not None:
            pump.kill()

    def stop(self) -> None:
        for hub in list(self._pumps):
            self._stop_hub(hub)

    @property
    def producers(self) -> int:
        return sum(1 for pump in self._pumps.values() if not pump.dead)

    def describe(self) -> dict:
        return {"name": self.name, "source": self.source, "shared": False,
                "subscribers": len(self._pumps), "last_seq": None, "last_ts": None,
                "dropped": self.stats.dropped, "slow_closed": self.stats.slow_closed}


class SharedStream(Stream):
    shared = True

    def __init__(self, name: str, source: str, factory: ProducerFactory | None, **hub_options: Any):
        self.name = name
        self.source = source
        self.hub = Hub(name, **hub_options)
        self._factory = factory
        self._pump: eventlet.greenthread.GreenThread | None = None

    def subscribe(self, resume=None, on_slow=None) -> Subscription:
        return self.hub.subscribe(resume, on_slow)

    def publish(self, fields: Mapping[str, Any]):
        return self.hub.publish(fields)

    def start(self) -> None:
        if self._factory is not None and self._pump is None:
            self._pump = eventlet.spawn(_pump, self._factory(), self.hub)

    def stop(self) -> None:
        if self._pump is not None:
            self._pump.kill()
            self._pump = None

    @property
    def producers(self) -> int:
        return int(self._pump is not None and not self._pump.dead)

    def describe(self) -> dict:
        last = self.hub.last
        return {"name": self.name, "source": self.source, "shared": True,
                "subscribers": self.hub.subscriber_count,
                "last_seq": last.seq if last else None,
                "last_ts": last.message["ts"] if last else None,
                "epoch": self.hub.epoch,
                "dropped": self.hub.stats.dropped,
                "slow_closed": self.hub.stats.slow_closed}


def streams_from_config(config) -> dict[str, Stream]:
    """Running streams for the config's specs (the default stream is always among them)."""
    from producer import PRODUCERS

    streams: dict[str, Stream] = {}
    for spec in config.streams:
        producer_class = PRODUCERS.get(spec.source)
        factory = (lambda cls=producer_class, options=spec.options: cls(**options)) if producer_class else None
        hub_options = {"queue_size": config.queue_size, "slow_timeout": config.slow_timeout}
        if spec.shared:
            streams[spec.name] = SharedStream(spec.name, spec.source, factory,
                                              history_size=spec.history or config.history, **hub_options)
        else:
            # A private walk is new for every client, so there is nothing to resume: keep one.
            streams[spec.name] = PrivateStream(spec.name, spec.source, factory, history_size=1, **hub_options)
    return streams
