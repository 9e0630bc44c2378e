"""The durable log (``--state PATH``): ``MemoryLog`` in memory, written behind to a file.

The third implementation of the log seam, after ``MemoryLog`` (``log.py``) and ``RedisLog``
(``backplane/redis_log.py``): a ``DurableLog`` numbers, keeps and delivers exactly as a
``MemoryLog`` does, in memory, with the same resume rule (``log.owed``); every entry is
also queued for the file, which a writer thread fills in batches (``state_store.py``), so
the publish pass never waits for a disk. At start each shared stream is restored from the
file: its epoch, its numbering, its last value and history.

What a restart keeps, and when the numbering is not trusted (``restore``):

* a clean stop (SIGTERM) writes everything: the same epoch, the next ``seq``, every
  stored entry resumable;
* a kill (SIGKILL, power cut) loses at most what was not written yet, the last
  ``--state-flush`` seconds. A stream with nothing unwritten at that moment is restored
  as after a clean stop. A stream that had (the file says so: ``dirty``) may have handed
  out entries after the last one stored, so going on in the same epoch would give those
  numbers twice, to different messages: it gets a **new epoch that continues the old
  numbering** (the next ``seq`` follows the stored one, and the old epoch is an alias up
  to the stored ``seq``). A screen that saw only stored entries resumes without a gap; one
  that saw a lost entry gets the gap signal, never a duplicate or a wrong continuation;
* rows missing (a file cut short, edited, a history that does not reach back as far as
  it should): the stored numbering cannot be trusted, the stream starts a new epoch at
  ``seq`` 1 with its newest stored value, so a wall still shows the last value.

Streams no longer in the config are dropped from the file at start (logged).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from dashstream import runtime
from dashstream.messages import Entry
from dashstream.streams.log import MemoryLog, Resume, new_epoch
from dashstream.streams.state_store import StateError, StateStore, StateWriter, StoredStream

logger = logging.getLogger("dashstream.state")

__all__ = ["DurableLog", "DurableState", "NO_STATE", "Restored", "StateError", "open_state", "restore"]

# A write error is logged when it starts and then at most once a minute while it lasts.
LOG_EVERY = 60.0
# How often the hub looks at the writer's health (and logs a change).
WATCH_EVERY = 1.0


@dataclass(frozen=True)
class Restored:
    """What a stream starts with, decided from what the file holds."""

    epoch: str
    seq: int
    entries: list[Entry]
    alias: tuple[str, int] | None = None  # (earlier epoch, up to seq) this epoch continues
    why_new_epoch: str | None = None  # set when the stored epoch was not kept
    changed: bool = False  # the file must be rewritten to match


def restore(stored: StoredStream | None, history: int, make_epoch: Callable[[], str] = new_epoch) -> Restored:
    """The rules of the module docstring, for one stream (``stored`` None: not in the file)."""
    if stored is None:
        return Restored(make_epoch(), 0, [])
    entries = stored.entries
    reaches = min(stored.seq, stored.kept)
    contiguous = all(entry.seq == stored.seq - len(entries) + 1 + index for index, entry in enumerate(entries))
    if stored.seq < 0 or len(entries) != reaches or not contiguous:
        epoch = make_epoch()
        last = [Entry(stored.name, 1, entries[-1].ts, epoch, entries[-1].body)] if entries else []
        return Restored(epoch, len(last), last, None,
                        f"its stored numbering cannot be trusted ({len(entries)} of {reaches} entries up to "
                        f"seq {stored.seq}): new epoch, the newest stored value kept", changed=True)
    kept = entries[-max(history, 1):]
    if stored.dirty:
        epoch = make_epoch()
        return Restored(epoch, stored.seq, [Entry(stored.name, e.seq, e.ts, epoch, e.body) for e in kept],
                        (stored.epoch, stored.seq),
                        f"the server stopped before writing everything (entries after seq {stored.seq} may be "
                        "lost): new epoch continuing the numbering; screens past it get the gap signal",
                        changed=True)
    alias = (stored.alias_epoch, stored.alias_seq) if stored.alias_epoch is not None else None
    return Restored(stored.epoch, stored.seq, kept, alias, None, changed=len(kept) != len(entries))


class DurableLog(MemoryLog):
    """A ``MemoryLog`` that starts where the file left off and queues each entry for it."""

    def __init__(self, stream: str, *, history: int = 100, clock: Callable[[], float] = time.time,
                 on_entry: Callable[[Entry], None] | None = None, restored: Restored, put: Callable[[Entry], None]):
        super().__init__(stream, history=history, clock=clock, epoch=restored.epoch, on_entry=on_entry)
        self.seq = restored.seq
        self._history.extend(restored.entries)
        self.alias = restored.alias
        self._put = put

    def append(self, body: str) -> Entry:
        entry = super().append(body)
        self._put(entry)
        return entry

    def backlog(self, resume: Resume | None, recent: int = 1) -> tuple[list[Entry], bool]:
        alias = self.alias
        if resume is not None and alias is not None and resume.epoch == alias[0] and resume.seq <= alias[1]:
            resume = Resume(resume.seq, self.epoch)  # this epoch's numbering is that one's, up to there
        return super().backlog(resume, recent)


class _NoState:
    """Without ``--state``: memory only, as always (the server asks the same questions)."""

    path = None

    def log_factory(self, spec: Any):
        return None

    def start(self) -> None:
        pass

    def describe(self) -> dict | None:
        return None

    def saved_screens(self) -> dict[str, str]:
        return {}

    def save_screen(self, name: str, body: str) -> None:
        pass

    def close(self) -> None:
        pass


NO_STATE = _NoState()


class DurableState:
    """The open state file, its writer, and what each stream was restored to."""

    def __init__(self, store: StateStore, writer: StateWriter, restored: dict[str, Restored], *,
                 schedule: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger = logger):
        self.store = store
        self.path = store.path
        self.writer = writer
        self.restored = restored
        self._schedule = schedule or runtime.call_later
        self._clock = clock
        self._log = logger
        self._logged_at: float | None = None  # when the current write failure was last logged
        self._closed = False

    def log_factory(self, spec: Any) -> Callable[..., DurableLog]:
        """For ``SharedStream(log_factory=...)``: the stream's log, restored."""
        restored = self.restored.get(spec.name)
        if restored is None:  # not known at open (not expected): a new numbering
            restored = self.restored[spec.name] = restore(None, 1)

        def make(name: str, *, history: int = 100, clock: Callable[[], float] = time.time,
                 on_entry: Callable[[Entry], None] | None = None,
                 on_hole: Callable[[Entry], None] | None = None) -> DurableLog:
            # on_hole is never called: like a memory log, a durable one numbers what it keeps.
            self.writer.track(name, history)
            return DurableLog(name, history=history, clock=clock, on_entry=on_entry, restored=restored,
                              put=self.writer.put)

        return make

    def start(self) -> None:
        self.writer.start()
        self._schedule(WATCH_EVERY, self._watch)

    def saved_screens(self) -> dict[str, str]:
        """What each named screen showed when the file was last written (name -> JSON)."""
        return dict(self.store.screens)

    def save_screen(self, name: str, body: str) -> None:
        """A screen's new assignment (``POST /screens/NAME``), for the next start; written
        by the writer thread with its next batch, never on the hub."""
        self.writer.put_screen(name, body)

    def _watch(self) -> None:
        if self._closed:
            return
        self.check()
        self._schedule(WATCH_EVERY, self._watch)

    def check(self) -> None:
        """Log a write failure when it starts and once a minute while it lasts, and its end."""
        health = self.writer.health
        now = self._clock()
        if health.failing is not None:
            if self._logged_at is None or now - self._logged_at >= LOG_EVERY:
                self._logged_at = now
                self._log.error("state %s: cannot write (%s); delivery goes on from memory, the writes are "
                                "retried every %gs (%d failed so far)", self.path, health.failing,
                                self.writer.flush_interval, health.errors)
        elif self._logged_at is not None:
            self._logged_at = None
            self._log.warning("state %s: writing again", self.path)

    def describe(self) -> dict:
        """For /readyz and /metrics: ``ok`` or ``degraded`` (the file cannot be written now)."""
        health = self.writer.health
        described = {"state": "degraded" if health.failing is not None else "ok",
                     "errors": health.errors, "flushes": health.flushes}
        if health.failing is not None:
            described.update(reason=health.failing, since=health.failing_since)
        return described

    def close(self) -> None:
        """At shutdown, once nothing publishes any more: write everything, release the file."""
        if self._closed:
            return
        self._closed = True
        self.check()
        if not self.writer.close(timeout=5.0):  # inside docker stop's 10 s, after the sessions
            self._log.error("state %s: the last write did not finish in time; the file keeps what it had", self.path)
        elif self.writer.health.lost:
            self._log.error("state %s: %d entries could not be written before exit (%s)", self.path,
                            self.writer.health.lost, self.writer.health.failing)
        else:
            self._log.debug("state %s: written and closed", self.path)


def open_state(config: Any, *, logger: logging.Logger = logger,
               schedule: Callable[..., Any] | None = None) -> "DurableState | _NoState":
    """``--state``'s file, opened, locked and loaded, its removed streams dropped and each
    shared stream of ``config`` restored; ``NO_STATE`` without ``--state``. Raises
    ``StateError`` (one line: exit 2)."""
    if config.state is None:
        return NO_STATE
    histories = {spec.name: spec.history or config.history for spec in config.streams if spec.shared}
    store = StateStore(config.state)
    stored = {stream.name: stream for stream in store.open()}
    try:
        if store.damaged is not None:
            problem, aside = store.damaged
            logger.warning("state %s: the file is damaged (%s); set aside as %s, every stream starts a new epoch",
                           store.path, problem, aside)
        dropped = store.drop_except(histories)
        if dropped:
            logger.info("state %s: dropped %s (no longer in the config)", store.path, ", ".join(map(repr, dropped)))
        restored = {}
        for name, history in histories.items():
            result = restored[name] = restore(stored.get(name), history)
            if result.changed:
                store.replace_stream(name, result.epoch, result.seq, history, result.entries, result.alias)
            if result.why_new_epoch is not None:
                logger.warning("state %s: stream %r: %s", store.path, name, result.why_new_epoch)
    except Exception as error:  # noqa: BLE001 - whatever stops the restored state being written: the file is unusable
        store.close()
        raise StateError(f"--state {store.path}: cannot write it ({error}); free some space or choose another "
                         "path") from None
    kept = sum(1 for name in histories if name in stored)
    logger.info("state %s: %d shared stream(s), %d restored", store.path, len(histories), kept)
    state = DurableState(store, StateWriter(store, config.state_flush), restored, schedule=schedule, logger=logger)
    state.start()
    return state
