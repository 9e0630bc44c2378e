"""Data producers: where a stream's values come from.

A producer has one job: it is an iterable that yields dicts of fields (at least
``variable``) as values become available, blocking in between. It knows nothing
of sockets, frames, subscribers or sequence numbers; the server numbers and
stamps what it yields and fans it out. Optional sources (Redis, SQL, ZeroMQ)
import their library only when chosen, so the default needs no dependency.
"""

from producer.random_walk import RandomWalk
from producer.ticker import Ticker

# Source name (as written in a stream definition) → producer class. A stream whose source
# is not here has no producer: its values arrive from outside (the HTTP publish API).
PRODUCERS = {"random-walk": RandomWalk, "ticker": Ticker}

__all__ = ["PRODUCERS", "RandomWalk", "Ticker"]
