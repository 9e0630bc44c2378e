"""Wire a stream to its source's supervisor: the one place that joins ``producer.SOURCES``,
``dashstream.supervisor`` and a ``Stream`` (``streams.py``), with eventlet's spawn and sleep
from ``runtime``.

``streams_from_config`` calls ``source_supervisor(spec, stream)`` for every shared stream: it
answers None for the sources the stream runs itself (the random walk's plain loop), and
otherwise a ``Supervisor`` whose values go through ``stream.publish_from_source`` (checked,
numbered, fanned out; a value the log refuses is counted as rejected there), whose state
changes go to ``stream.set_health`` (control messages, /streams, /readyz) and whose
rejections are counted in ``stream.stats.rejected``. The stream starts and stops it with
itself. A publish stream gets one too (passive: no loop, only the stale clock), and its
POST handler calls ``supervisor.note_value()`` after each publish.
"""

from __future__ import annotations

from typing import Any

from dashstream import runtime
from dashstream.supervisor import Supervisor
from producer import SOURCES

# Run by the stream's own loop, as before: the walk cannot fail and may be private.
SELF_RUN = {"random-walk"}


def source_supervisor(spec: Any, stream: Any, spawn=None, sleep=None) -> Supervisor | None:
    """The supervisor that feeds ``stream`` from ``spec``'s source, or None."""
    if spec.source in SELF_RUN:
        return None
    source = SOURCES[spec.source](**spec.options)

    def count_rejected(reason: str) -> None:
        stream.stats.rejected += 1

    return Supervisor(
        spec.name, source,
        on_value=stream.publish_from_source,
        on_health=lambda state, reason, since: stream.set_health(state, reason, since),
        on_rejected=count_rejected,
        stale_after=spec.stale_after,
        spawn=spawn or runtime.spawn, sleep=sleep or runtime.sleep)
