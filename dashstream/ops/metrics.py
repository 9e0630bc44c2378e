"""Prometheus metrics for ``GET /metrics``: what the server counts, and how it is exposed.

The core calls plain methods on one ``Metrics`` object (``sent``, ``dropped``,
``close_sent``, ``refused``, ...); a scrape renders everything in the Prometheus text
format (or OpenMetrics, when the scraper asks for it) with the official
``prometheus-client``. The endpoint itself (method, ``--metrics-token``) is the edge's:
``dashstream.edge.app.metrics_response``, with the one bearer parser.

Why the counts are plain Python numbers, not ``prometheus_client.Counter`` objects:
under ``eventlet.monkey_patch()`` the library's metrics take eventlet's green locks, and
cost several times what these counts do (BENCHMARKS.md, ``python
benchmarks/metrics_cost.py``); two or three of them per fan-out pass would add a noticeable
share of what a delivered frame costs.
The numbers become metric families only at scrape time, in ``_Collector``,
through the library's own ``CounterMetricFamily``/``HistogramMetricFamily`` API, and the
library writes the exposition format. Per-stream values (subscribers, last seq, source
state) are read from a callback at scrape time, so streams cost nothing between scrapes.

Call the counting methods from the server's (hub) thread: green threads switch only
where one waits, never inside ``+=``, so the counts need no lock there. A scrape runs in a green
thread of the same hub.

Names follow Prometheus conventions: ``dashstream_`` prefix, base units (seconds,
bytes), ``_total`` on counters.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter as Tally
from typing import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from producer.base import DOWN, STATES, UP

# Delivery lag: from the message's ``ts`` (when it was produced or published) to its
# write. Local delivery is milliseconds; a loaded server or a queue behind a slow screen
# is seconds; past 10 s the slow-subscriber policy has stepped in.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SOURCE_STATES = STATES
BACKPLANE_STATES = (UP, DOWN)
TRANSPORTS = ("websocket", "sse")

# Called at scrape time. ``streams`` yields one mapping per stream with ``name`` and any
# of ``subscribers``, ``last_seq``, ``last_ts``, ``state`` (GET /streams' entries fit).
StreamsCallback = Callable[[], Iterable[Mapping]]
ConnectionsCallback = Callable[[], Mapping[str, int]]
BackplaneCallback = Callable[[], "Mapping | None"]


class Metrics:
    """Everything /metrics reports; one per server, with its own registry (so tests and
    several servers in one process never share counts)."""

    def __init__(self, *, connections: ConnectionsCallback | None = None, streams: StreamsCallback | None = None,
                 backplane: BackplaneCallback | None = None, log_lines_dropped: Callable[[], int] | None = None,
                 state: Callable[[], "Mapping | None"] | None = None,
                 lag_buckets: Iterable[float] = LAG_BUCKETS, process: bool = True,
                 clock: Callable[[], float] = time.time):
        self._clock = clock  # wall clock: a message's ts is seconds since the epoch
        self.connections_callback = connections
        self.streams_callback = streams
        self.backplane_callback = backplane
        self.log_lines_dropped_callback = log_lines_dropped
        self.state_callback = state  # --state: the durable log's file (streams/durable.py)
        self.sent_messages = 0
        self.sent_bytes = 0
        self.dropped_messages = 0
        self.slow_closed_count = 0
        self.write_timeouts = 0
        self.keepalive_timeouts = 0
        self.closes: Tally = Tally()  # close code label (close_code_label) -> count
        self.refusals: Tally = Tally()  # (kind, status) -> count
        self.publishes: Tally = Tally()  # status -> count
        self.lag_bounds = tuple(sorted(lag_buckets))
        self.lag_counts = [0] * (len(self.lag_bounds) + 1)  # per bucket (not cumulative), +Inf last
        self.lag_sum = 0.0
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(self))
        if process:
            # The library's own: CPU seconds, resident memory, open file descriptors (Linux),
            # and the Python version; read from /proc at scrape time only.
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    # --- called by the core (hub thread) -------------------------------------------------

    def sent(self, messages: int, nbytes: int) -> None:
        """Once per fan-out pass (or per write outside one), with the pass's totals."""
        self.sent_messages += messages
        self.sent_bytes += nbytes

    def fanout_pass(self, deliveries: int, entry) -> None:
        """``Fanout(on_pass=metrics.fanout_pass)``: ``entry`` was handed to ``deliveries``
        subscribers in one pass. Counted as that many messages of the entry's WebSocket
        frame size (a multi-stream socket's frame is a few bytes longer, an SSE event
        differs: close enough for a rate, and one call per pass), and its lag from
        ``entry.ts`` to the end of the pass observed once, weighted by ``deliveries``.

        ``sent`` and ``delivery_lag`` written out here: a private walk calls this once per
        message (deliveries=1), and the two calls were a tenth of its Python-level calls."""
        if deliveries <= 0:
            return
        self.sent_messages += deliveries
        self.sent_bytes += deliveries * len(entry.frame)
        seconds = self._clock() - entry.ts
        if seconds < 0 or seconds != seconds:  # as delivery_lag: a clock step backwards, or NaN
            seconds = 0.0
        self.lag_counts[bisect.bisect_left(self.lag_bounds, seconds)] += deliveries
        self.lag_sum += seconds * deliveries

    def private_delivery(self, entry) -> None:
        """``PrivateStream(on_delivery=metrics.private_delivery)``: a private source's value,
        stamped and handed to its one subscriber in the same call (no fan-out to wait for), so
        its lag is that call's few microseconds: counted as 0, under the first bound, without
        reading the clock again. A private walk calls this for every message: ``fanout_pass``'s
        clock read and bisect were a third of a microsecond of it (BENCHMARKS.md, "Private
        walks")."""
        self.sent_messages += 1
        self.sent_bytes += len(entry.frame)
        self.lag_counts[0] += 1

    def dropped(self, messages: int = 1) -> None:
        """Messages dropped for a subscriber that could not keep up."""
        self.dropped_messages += messages

    def slow_closed(self) -> None:
        """A subscriber closed (1008) for staying behind past --slow-timeout."""
        self.slow_closed_count += 1

    def close_sent(self, code: int) -> None:
        self.closes[close_code_label(code)] += 1

    def refused(self, status: str | int, kind: str = "http") -> None:
        """An HTTP answer that refused the request: ``kind`` is ``handshake`` (a WebSocket
        upgrade) or ``http``; ``status`` an int or a status line ("429 Too Many Requests")."""
        self.refusals[(kind, _status_code(status))] += 1

    def write_timeout(self) -> None:
        self.write_timeouts += 1

    def keepalive_timeout(self) -> None:
        self.keepalive_timeouts += 1

    def published(self, status: str | int) -> None:
        """A POST /publish answered, with its status (200, or the refusal)."""
        self.publishes[_status_code(status)] += 1

    def delivery_lag(self, seconds: float, count: int = 1) -> None:
        """``count`` deliveries that took ``seconds`` from the message's ``ts``: a fan-out pass
        writing one message to N sockets observes once with ``count=N``."""
        if seconds < 0 or seconds != seconds:  # a clock step backwards, or NaN: not a lag
            seconds = 0.0
        self.lag_counts[bisect.bisect_left(self.lag_bounds, seconds)] += count
        self.lag_sum += seconds * count

    # --- scrape ---------------------------------------------------------------------------

    def render(self, accept_header: str | None = None) -> tuple[bytes, str]:
        """The exposition body and its Content-Type: Prometheus text format 0.0.4 unless
        the scraper's Accept asks for OpenMetrics (the library decides, as its own
        HTTP handler does)."""
        encoder, content_type = choose_encoder(accept_header or "")
        return encoder(self.registry), content_type


# The close codes RFC 6455 and the IANA registry define (a peer's own code is echoed back, so
# any of them can be sent). The ranges 3000-3999 and 4000-4999 belong to applications and
# are chosen by the client: one label each, or 2,000 clients closing with 2,000 codes would
# make 2,000 series that last until a restart.
_DEFINED_CLOSE_CODES = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))


def close_code_label(code: int) -> str:
    """A close code as a metric label, from a fixed set: the defined code itself,
    ``3xxx`` or ``4xxx`` for the application ranges, ``other`` for anything else."""
    code = int(code)
    if code in _DEFINED_CLOSE_CODES:
        return str(code)
    if 3000 <= code <= 4999:
        return f"{code // 1000}xxx"
    return "other"


def _status_code(status: str | int) -> str:
    return str(status).split(" ", 1)[0]


class _Collector(Collector):
    """Turns the plain counts and the callbacks into metric families at scrape time."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def describe(self):
        # Families depend on callbacks that may not be ready at registration; describing
        # none keeps the registry from calling collect() then.
        return []

    def collect(self):
        m = self.metrics
        yield _counter("dashstream_sent_messages", "Messages written to clients (data and control).",
                       m.sent_messages)
        yield _counter("dashstream_sent_bytes", "Bytes of WebSocket frames and SSE events written to clients.",
                       m.sent_bytes)
        yield _counter("dashstream_dropped_messages", "Messages dropped for subscribers that could not keep up.",
                       m.dropped_messages)
        yield _counter("dashstream_slow_subscribers_closed",
                       "Subscribers closed (1008) for staying behind past --slow-timeout.", m.slow_closed_count)
        yield _counter("dashstream_write_timeouts", "Connections dropped because a write stayed blocked "
                       "past --write-timeout.", m.write_timeouts)
        yield _counter("dashstream_keepalive_timeouts", "Connections closed (1011) for not answering a ping "
                       "within --ping-timeout.", m.keepalive_timeouts)
        closes = CounterMetricFamily("dashstream_closes_sent", "WebSocket close frames sent, by close code.",
                                     labels=["code"])
        for code, count in sorted(m.closes.items()):
            closes.add_metric([str(code)], count)
        yield closes
        refusals = CounterMetricFamily("dashstream_refusals", "Requests refused with an HTTP error, by kind "
                                       "(handshake: a WebSocket upgrade; http: anything else) and status.",
                                       labels=["kind", "status"])
        for (kind, status), count in sorted(m.refusals.items()):
            refusals.add_metric([kind, status], count)
        yield refusals
        publishes = CounterMetricFamily("dashstream_publish_requests", "POST /publish requests, by status.",
                                        labels=["status"])
        for status, count in sorted(m.publishes.items()):
            publishes.add_metric([status], count)
        yield publishes
        yield self._lag()
        if m.connections_callback is not None:
            yield self._connections(m.connections_callback())
        if m.streams_callback is not None:
            yield from self._streams(list(m.streams_callback()))
        if m.backplane_callback is not None:
            backplane = m.backplane_callback()
            if backplane is not None:
                yield from self._backplane(backplane)
        if m.state_callback is not None:
            state = m.state_callback()
            if state is not None:
                yield GaugeMetricFamily("dashstream_state_degraded", "1 while the --state file cannot be written "
                                        "(delivery goes on from memory), else 0.",
                                        value=1 if state["state"] == "degraded" else 0)
                yield _counter("dashstream_state_write_errors", "Writes to the --state file that failed.",
                               state["errors"])
                yield _counter("dashstream_state_flushes", "Batches written to the --state file.", state["flushes"])
        if m.log_lines_dropped_callback is not None:
            yield _counter("dashstream_log_dropped_lines", "Log lines dropped because the log output was not "
                           "keeping up.", m.log_lines_dropped_callback())

    def _lag(self) -> HistogramMetricFamily:
        m = self.metrics
        buckets, cumulative = [], 0
        for bound, count in zip((*m.lag_bounds, math.inf), m.lag_counts):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        return HistogramMetricFamily("dashstream_delivery_lag_seconds",
                                     "Seconds from a message's ts to its write to a client.",
                                     buckets=buckets, sum_value=m.lag_sum)

    @staticmethod
    def _connections(counts: Mapping[str, int]) -> GaugeMetricFamily:
        family = GaugeMetricFamily("dashstream_connections", "Open client connections, by transport.",
                                   labels=["transport"])
        for transport in sorted({*TRANSPORTS, *counts}):
            family.add_metric([transport], counts.get(transport, 0))
        return family

    @staticmethod
    def _streams(streams: list[Mapping]):
        subscribers = GaugeMetricFamily("dashstream_stream_subscribers", "Clients subscribed to the stream "
                                        "on this instance.", labels=["stream"])
        last_seq = GaugeMetricFamily("dashstream_stream_last_seq", "seq of the stream's latest message "
                                     "(0 before the first).", labels=["stream"])
        last_ts = GaugeMetricFamily("dashstream_stream_last_message_timestamp_seconds",
                                    "ts of the stream's latest message, seconds since the Unix epoch.",
                                    labels=["stream"])
        coalesced = CounterMetricFamily("dashstream_stream_coalesced_values", "Values from the stream's source "
                                        "replaced by a newer one before they could be published (a source "
                                        "faster than the stream's rate: the newest value wins).",
                                        labels=["stream"])
        up = GaugeMetricFamily("dashstream_stream_source_up", "1 while the stream's source is up, else 0.",
                               labels=["stream"])
        state = GaugeMetricFamily("dashstream_stream_source_state", "The stream's source state: 1 for the "
                                  "current one of up, down, stale.", labels=["stream", "state"])
        for stream in streams:
            name = str(stream["name"])
            subscribers.add_metric([name], stream.get("subscribers", 0) or 0)
            last_seq.add_metric([name], stream.get("last_seq", 0) or 0)
            if stream.get("last_ts") is not None:
                last_ts.add_metric([name], stream["last_ts"])
            current = stream.get("state", UP) or UP
            coalesced.add_metric([name], stream.get("coalesced", 0) or 0)
            up.add_metric([name], 1 if current == UP else 0)
            for each in sorted({*SOURCE_STATES, current}):
                state.add_metric([name, each], 1 if each == current else 0)
        yield from (subscribers, last_seq, last_ts, coalesced, up, state)

    @staticmethod
    def _backplane(backplane: Mapping):
        current = backplane.get("state", UP) or UP
        yield GaugeMetricFamily("dashstream_backplane_up", "1 while the backplane (Redis) is reachable, else 0.",
                                value=1 if current == UP else 0)
        state = GaugeMetricFamily("dashstream_backplane_state", "The backplane state: 1 for the current one.",
                                  labels=["state"])
        for each in sorted({*BACKPLANE_STATES, current}):
            state.add_metric([each], 1 if each == current else 0)
        yield state


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)
