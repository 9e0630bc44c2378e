"""``publish``: a stream whose values arrive over HTTP (``POST /publish/NAME``).

It has no loop of its own (``passive``): the server publishes what the request carries,
after the shared check in ``producer.values``, and tells the supervisor a value came so the
stale clock (``stale_after``) works for a publisher that stopped publishing, too.
"""

from __future__ import annotations

from typing import Any, Iterator

from producer.base import Source


class Publish(Source):
    kind = "publish"
    keys = ()
    passive = True

    def events(self) -> Iterator[Any]:
        raise TypeError("a publish stream has no loop: its values come from POST /publish")
