"""A fake of the Redis side of ``dashstream.backplane.redis_log.RedisLog`` (its ``LogStore``):
one epoch, a seq, the last ``history`` entries, and what each read asked for. Shared by the
unit tests of the Redis log (tests/unit/test_redis_log.py) and of history on load
(tests/unit/test_history_on_load.py); the real Redis is in tests/services/."""

from __future__ import annotations

from dashstream.backplane.redis_log import RedisLog
from dashstream.messages import Entry
from dashstream.streams.log import LogUnavailable


class Clock:
    """A clock that moves a quarter of a second each time it is read."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


class FakeStore:
    """Redis as the backplane keeps it: one epoch (made by the first append, as Redis's
    INCR-and-set does), a seq, the last ``history`` entries; how many reads were made and
    which ``after`` each asked for."""

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.seq = 0
        self.entries: list[Entry] = []
        self.down = False
        self.reads = 0
        self.asked_after: list[int | None] = []
        self.epochs = iter(f"E{n}" for n in range(1, 100))
        self.before_read = None  # runs inside read(): what other green threads did meanwhile

    def append(self, log, body, ts):
        if self.down:
            raise LogUnavailable("down")
        if self.epoch is None:
            self.epoch, self.entries = next(self.epochs), []
        self.seq += 1
        self.entries = (self.entries + [Entry(log.stream, self.seq, ts, self.epoch, body)])[-log.history_size:]
        return self.seq, self.epoch

    def read(self, log, after):
        self.reads += 1
        self.asked_after.append(after)
        assert isinstance(log, RedisLog)
        if self.before_read is not None:
            self.before_read()
        if self.down:
            raise LogUnavailable("down")
        newest = self.entries[-1] if self.entries else None
        return self.epoch, self.seq, newest, [e for e in self.entries if e.seq > after] if after is not None else []

    def lose_everything(self) -> None:
        """A Redis restarted without its data."""
        self.epoch, self.seq, self.entries = None, 0, []

    def copy(self, entry: Entry) -> Entry:
        """The entry as another instance's tail would build it from Redis."""
        return Entry(entry.stream, entry.seq, entry.ts, entry.epoch, entry.body)

    def sync(self, log: RedisLog) -> int:
        """The tail's first load of ``log``'s mirror; the seq its cursor goes on from."""
        return log.resync(self.epoch, self.seq, [self.copy(entry) for entry in self.entries])
