"""Logging that cannot hurt the server: never blocks it, cannot be forged, cannot be flooded.

Three dangers, and the answer to each:

* **A stalled log freezes the server.** A write to a pipe nobody reads blocks, and under
  eventlet every client shares one OS thread: one blocked ``write(2)`` on stderr stops
  them all. So records go through a bounded queue to a *real* OS thread that does the
  writing (``QueueHandler``, the standard library's recipe). When the queue is full the
  record is dropped and counted, and a line ``N log lines dropped`` takes its place in
  the output as soon as there is room again. ``sys.stderr`` itself goes the same way
  (``capture_stderr``): eventlet's hub prints a crashed green thread's traceback there,
  and that write would block the hub just the same.
* **Request data forges log lines.** ``GET /%0a2026-... ERROR forged`` puts a newline
  in the path. Every control character (C0, DEL, C1, U+2028/U+2029 and the bidi
  overrides) in a logged line is shown escaped (``\\n``, ``\\x1b``, ``\\u2028``), so one
  record is always one line. This happens here, in the writer, on the whole line, rather
  than by callers calling ``safe()`` on each request-derived argument: a caller cannot
  forget, and the cost (one regex over a short line) is paid on the writer's thread, not
  the server's. ``safe()`` stays public for the other places request data goes (an HTTP
  answer's one-line body, say). A traceback keeps its line breaks, each continuation
  line indented, so a line at column 0 always starts a record.
* **One client floods the log.** ``LogLimiter`` lets callers log the first of a kind of
  line per key (a client address) per interval and count the rest.

A line logged for every connection (the close line) goes through ``log_line``: when this
pipeline is the only place its record would go, the writer gets the line's few parts
(``Line``) instead of a ``LogRecord``, and writes the same text. Making the record and
passing it through the logger and handler calls was about 50,000 instructions per line,
a tenth of a whole WebSocket handshake.

``--log-format json`` writes one JSON object per line (time, level, logger, message and
the record's ``extra`` fields) for log shippers.

Why real threads: ``eventlet.monkey_patch()`` makes ``threading`` and ``queue`` green, and
a green thread cannot wait in ``write(2)`` without stopping the hub. The writer is built
from ``eventlet.patcher.original('threading')``/``('queue')`` (``runtime.os_threading``,
``runtime.os_queue``; what ``eventlet.tpool`` does), and takes its own duplicate of file
descriptor 2 so it shares no Python-level lock with ``sys.stderr``. Everything the server's
thread does per record is non-blocking: ``put_nowait`` on a bounded ``SimpleQueue``.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Callable, Hashable, NamedTuple

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Records waiting for the writer. At ~200 bytes a line that is 2 MB of memory at most,
# and several seconds of a flood: a log that is merely slow loses nothing.
QUEUE_SIZE = 10_000
# How long the process waits at exit for the writer to empty the queue (a stalled
# stderr must not keep a stopping server alive).
EXIT_FLUSH_SECONDS = 2.0
# Lines written per write(2): a flood costs a few system calls, not one per line.
BATCH = 512
# Seconds the writer lets records gather after the first of a batch arrives.
BATCH_WAIT = 0.05

logger = logging.getLogger("dashstream.logs")

# --- escaping -------------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: object) -> str:
    """``text`` with every control character escaped: safe to put on one log line or in a
    one-line answer. (Backslashes are left alone: they cannot start a line, and doubling
    them would garble Windows paths and regexes in every message.)"""
    text = str(text)
    # Nearly every line has nothing to escape, and ``isprintable`` (one pass in C) is False
    # for every character the pattern matches (categories Cc, Cf, Zl and Zp): a line it
    # passes skips the pattern's per-character class test, most of a line's cost on the
    # writer's thread (a connection's close line: 7,000 of 25,000 instructions).
    if text.isprintable():
        return text
    return _CONTROL.sub(_escape, text)


# --- formatting (on the writer's thread) -------------------------------------------------------

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


class TextFormatter(logging.Formatter):
    """Today's ``%(asctime)s %(levelname)s %(name)s: %(message)s``, escaped; a traceback
    follows on indented lines."""

    shows_fields = False  # a record's extra fields: its message says them already

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._second: int | None = None
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """The standard ``2026-12-02 07:52:21,360``, with the part up to the second made
        once a second (``strftime`` was most of a line's cost on the writer's thread)."""
        return self._time(record.created, record.msecs)

    def _time(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(created))
            self._second = second
        return self.default_msec_format % (self._stamp, msecs)

    def format_line(self, line: "Line") -> str:
        """What ``format`` writes for the record ``line`` stands for (TEXT_FORMAT)."""
        return safe(f"{self._time(line.created, _msecs(line.created))} {logging.getLevelName(line.levelno)} "
                    f"{line.name}: {line.message}")

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = safe(self.formatMessage(record))
        if record.exc_text:
            line += "".join("\n    " + safe(part) for part in record.exc_text.rstrip("\n").split("\n"))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, ``exc_info`` (a traceback, when there is one) and the ``extra`` fields."""

    shows_fields = True

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": safe(record.getMessage()),
        }
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        return self._with_fields(entry, vars(record))

    def format_line(self, line: "Line") -> str:
        """What ``format`` writes for the record ``line`` stands for."""
        entry = {
            "time": datetime.fromtimestamp(line.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": logging.getLevelName(line.levelno),
            "logger": line.name,
            "message": safe(line.message),
        }
        return self._with_fields(entry, line.fields or {})

    @staticmethod
    def _with_fields(entry: dict, fields: dict) -> str:
        for key, value in fields.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                entry.setdefault(key, safe(value) if isinstance(value, str) else value)
        # ensure_ascii: U+2028/2029 and every control character leave as \u escapes, so a
        # record is one line for every reader (some JavaScript parsers split on U+2028).
        return json.dumps(entry, ensure_ascii=True, default=str, separators=(",", ":"))


FORMATTERS: dict[str, Callable[[], logging.Formatter]] = {"text": TextFormatter, "json": JsonFormatter}


class Line(NamedTuple):
    """A log line handed to the writer without a ``LogRecord`` (``log_line``): what the
    formatters' ``format_line`` need of it."""

    created: float  # time.time(), as a record's
    levelno: int
    name: str  # the logger's
    message: str  # the arguments merged in
    fields: dict | None  # ``extra``


_new_tuple = tuple.__new__


def _msecs(created: float) -> float:
    return int((created - int(created)) * 1000) + 0.0  # as LogRecord computes it


def _merged(msg: str, args: tuple) -> str:
    """``LogRecord.getMessage``: a lone mapping argument is the mapping itself."""
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        return str(msg) % args[0]
    return str(msg) % args if args else str(msg)


# --- the queue and the writer ------------------------------------------------------------------


def _real_threading():
    """``threading`` and ``queue`` as they were before ``eventlet.monkey_patch()``, from the
    one module that holds eventlet's primitives (imported here, not at the top, so that
    ``dashstream.config`` can import this module's names without loading eventlet)."""
    from dashstream import runtime

    return runtime.os_threading, runtime.os_queue


def _real_sleep() -> Callable[[float], None]:
    """``time.sleep`` as it was before monkey_patch: the writer is a real thread."""
    from dashstream import runtime

    return runtime.real_sleep


_STOP = object()


class BoundedQueue:
    """``queue.SimpleQueue`` (C: a put is a few hundred nanoseconds and wakes the writer
    without a Python-level lock) with a bound: ``full()`` and ``put_nowait`` raising
    ``queue.Full``, as ``queue.Queue(maxsize)`` has. Only the server's thread puts, so
    checking the size before putting cannot overshoot."""

    def __init__(self, queue_module, maxsize: int) -> None:
        self._queue = queue_module.SimpleQueue()
        self._full = queue_module.Full
        self.Empty = queue_module.Empty
        self.maxsize = maxsize

    def full(self) -> bool:
        return self._queue.qsize() >= self.maxsize

    def put_nowait(self, item) -> None:
        if self._queue.qsize() >= self.maxsize:
            raise self._full
        self._queue.put(item)

    def put(self, item, timeout: float | None = None) -> None:
        """Waits (up to ``timeout``) for room: only ``stop`` uses it, at the very end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._queue.qsize() >= self.maxsize:
            if deadline is not None and time.monotonic() >= deadline:
                raise self._full
            time.sleep(0.01)
        self._queue.put(item)

    def get(self):
        return self._queue.get()

    def get_nowait(self):
        return self._queue.get_nowait()

    def qsize(self) -> int:
        return self._queue.qsize()


class DroppingQueueHandler(logging.handlers.QueueHandler):
    """A ``QueueHandler`` that never waits: a full queue drops the record and counts it,
    and the count goes into the queue as a line of its own once there is room."""

    def __init__(self, queue, lock_factory) -> None:
        self._lock_factory = lock_factory
        super().__init__(queue)
        self.dropped_total = 0
        self._dropped = 0  # since the last "dropped" line was queued

    def createLock(self) -> None:
        # Handler.handle() holds this around emit(). A green lock taken by a real thread
        # (eventlet.tpool's workers log too) is not safe, and emit() never yields, so a
        # real lock costs green threads nothing.
        self.lock = self._lock_factory()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """Merge the arguments into the message now (they may change later, and must not be
        formatted on another thread), and render a traceback to text; the writer's
        formatter does the rest, escaping included."""
        message = record.getMessage()
        exc_text = record.exc_text
        if record.exc_info:
            exc_text = logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            exc_text = f"{exc_text}\n{record.stack_info}" if exc_text else record.stack_info
        prepared = logging.LogRecord.__new__(type(record))  # copy.copy, at a fifth of the cost
        prepared.__dict__.update(record.__dict__)
        prepared.msg, prepared.args, prepared.message = message, None, message
        prepared.exc_info, prepared.exc_text, prepared.stack_info = None, exc_text, None
        return prepared

    def handle(self, record: logging.LogRecord) -> bool:
        """``Handler.handle`` without the call to ``filter`` when there are no filters (the
        server installs none): a line per connection is worth a few calls less."""
        if self.filters and not self.filter(record):
            return False
        with self.lock:
            self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        if self.queue.full():  # the common case in a flood: skip formatting altogether
            self._drop()
            return
        try:
            prepared = self.prepare(record)
        except Exception:  # noqa: BLE001 - a bad %-format must not take the caller down
            prepared = self.prepare(logging.makeLogRecord({
                "name": record.name, "levelno": record.levelno, "levelname": record.levelname,
                "msg": f"unformattable log record: {record.msg!r} % {record.args!r}"}))
        self.enqueue(prepared)

    def enqueue(self, record: logging.LogRecord) -> None:
        if self._dropped and self._put(self._dropped_note(self._dropped)):
            self._dropped = 0
        if not self._put(record):
            self._drop()

    def put_line(self, line: Line) -> None:
        """``emit`` for a ``Line``: the same dropping and counting, the usual case (room, no
        "dropped" line owed) put straight on the queue (this runs once per connection)."""
        queue = self.queue
        with self.lock:
            if queue.full():
                self._drop()
            elif self._dropped:
                self.enqueue(line)
            else:
                queue.put_nowait(line)  # room: checked above, and only the server's thread puts

    def _put(self, record) -> bool:
        try:
            self.queue.put_nowait(record)
        except Exception:  # queue.Full (of the real queue module)  # noqa: BLE001
            return False
        return True

    def _drop(self) -> None:
        self._dropped += 1
        self.dropped_total += 1

    @staticmethod
    def _dropped_note(count: int) -> logging.LogRecord:
        message = (f"{count} log lines dropped: the log output was not keeping up "
                   "(logging never makes the server wait)")
        return logging.makeLogRecord({"name": logger.name, "levelno": logging.WARNING, "levelname": "WARNING",
                                      "msg": message, "message": message, "created": time.time()})

    def take_dropped_note(self) -> logging.LogRecord | None:
        """The "N log lines dropped" record still owed, if any (the count restarts)."""
        if not self._dropped:
            return None
        note, self._dropped = self._dropped_note(self._dropped), 0
        return note


class LogWriter:
    """The real OS thread that takes records off the queue and writes them, in batches,
    to its own copy of a file descriptor (stderr by default)."""

    def __init__(self, queue, threading_module, formatter: logging.Formatter, fd: int,
                 pause: Callable[[float], None] | None = None) -> None:
        self.queue = queue
        self._pause = pause or _real_sleep()
        self.formatter = formatter
        self._empty = queue.Empty if hasattr(queue, "Empty") else Exception
        self._file = open(os.dup(fd), "wb", buffering=0)  # FileIO: C-level write, never green
        self.broken = False
        self.thread = threading_module.Thread(target=self._run, name="dashstream-log-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            # Let a batch gather before taking the GIL for long: on one core, a writer that
            # wakes for every line keeps taking the interpreter from the server between its
            # lines; one wake per BATCH_WAIT costs a handful of switches a second.
            self._pause(BATCH_WAIT)
            try:
                while len(batch) < BATCH and batch[-1] is not _STOP:
                    batch.append(self.queue.get_nowait())
            except Exception:  # queue.Empty  # noqa: BLE001
                pass
            lines = []
            for record in batch:
                if record is _STOP:
                    continue
                try:
                    lines.append((self.formatter.format_line(record) if type(record) is Line
                                  else self.formatter.format(record)) + "\n")
                except Exception as error:  # noqa: BLE001 - the writer must outlive any record
                    lines.append(f"(unformattable log record from {getattr(record, 'name', '?')}: {error!r})\n")
            self._write("".join(lines).encode("utf-8", "backslashreplace"))
            if batch[-1] is _STOP:
                return

    def _write(self, data: bytes) -> None:
        if self.broken:
            return  # stderr is gone (closed pipe): keep emptying the queue, write nothing
        view = memoryview(data)
        while view:
            try:
                written = self._file.write(view)
            except OSError:
                self.broken = True
                return
            view = view[written or 0:]


class StderrToLog:
    """Stands in for ``sys.stderr`` after ``configure_logging``: each complete line becomes a
    WARNING record of the ``stderr`` logger, so nothing writes to file descriptor 2 from
    the server's thread (eventlet prints a crashed green thread's traceback to
    ``sys.stderr``, and ``warnings`` write there too)."""

    def __init__(self, original) -> None:
        self.original = original
        self._logger = logging.getLogger("stderr")
        self._partial = ""
        self._inside = False

    def write(self, text: str) -> int:
        if self._inside:  # logging reporting its own error: drop rather than recurse
            return len(text)
        self._inside = True
        try:
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                self._logger.warning("%s", line)
        finally:
            self._inside = False
        return len(text)

    def flush(self) -> None:
        if self._partial:
            partial, self._partial = self._partial, ""
            self._logger.warning("%s", partial)

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.original, "encoding", "utf-8")


class LogPipeline:
    """What ``configure_logging`` installed: the handler, the writer and how to stop them."""

    def __init__(self, handler: DroppingQueueHandler, writer: LogWriter, queue, stderr: StderrToLog | None):
        self.handler = handler
        self.writer = writer
        self.queue = queue
        self.stderr = stderr
        self._stopped = False

    @property
    def dropped(self) -> int:
        return self.handler.dropped_total

    def only_outlet(self, logger: logging.Logger, level: int) -> bool:
        """Whether a record of ``logger`` at ``level`` (enabled) would reach this pipeline's
        handler and no other (the rules of ``Logger.handle`` and ``callHandlers``)."""
        handler = self.handler
        if logger.disabled or logger.filters or handler.filters or level < handler.level:
            return False
        seen = False
        node: logging.Logger | None = logger
        while node is not None:
            for other in node.handlers:
                if other is not handler or seen:
                    return False
                seen = True
            node = node.parent if node.propagate else None
        return seen

    def stop(self, timeout: float = EXIT_FLUSH_SECONDS) -> bool:
        """Write what is queued (and the last "dropped" line), within ``timeout`` seconds;
        ``False`` if the output stayed stalled and records were left behind."""
        if self._stopped:
            return True
        self._stopped = True
        if self.stderr is not None:
            self.stderr.flush()
            sys.stderr = self.stderr.original
        deadline = time.monotonic() + timeout
        logging.getLogger().removeHandler(self.handler)
        # The last "dropped" line and the stop mark wait for room (this is the end: the
        # server no longer needs its thread), but only until the deadline.
        last = [self.handler.take_dropped_note(), _STOP]
        try:
            for item in filter(None, last):
                self.queue.put(item, timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # queue.Full: the writer is stuck  # noqa: BLE001
            return False
        self.writer.thread.join(max(0.0, deadline - time.monotonic()))
        return not self.writer.thread.is_alive()


_pipeline: LogPipeline | None = None


def configure_logging(level: str = "info", log_format: str = "text", *, queue_size: int = QUEUE_SIZE,
                      fd: int = 2, capture_stderr: bool = True) -> LogPipeline:
    """Route every log record through a bounded queue to a writer thread; replaces the root
    logger's handlers. Call it once, after ``eventlet.monkey_patch()``. Returns the
    pipeline (``stop()`` is also registered to run at exit)."""
    global _pipeline
    if log_format not in FORMATTERS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    if _pipeline is not None:
        _pipeline.stop()
    threading_module, queue_module = _real_threading()
    queue = BoundedQueue(queue_module, queue_size)
    handler = DroppingQueueHandler(queue, threading_module.RLock)
    writer = LogWriter(queue, threading_module, FORMATTERS[log_format](), fd)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Neither format shows thread or process, and under eventlet looking them up for each
    # record (threading.current_thread() is green) is a third of a record's cost.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # Nor file, line or function: finding the caller walks the stack for every record.
    logging._srcfile = None
    # logging's last resort would write to sys.stderr from the caller's thread.
    logging.lastResort = None
    stderr = None
    if capture_stderr:
        stderr = StderrToLog(sys.stderr)
        sys.stderr = stderr
    _pipeline = LogPipeline(handler, writer, queue, stderr)
    atexit.register(_pipeline.stop)
    return _pipeline


def log_line(logger: logging.Logger, level: int, msg: str, args: tuple = (), fields: dict | None = None) -> None:
    """``logger.log(level, msg, *args, extra=fields)``, for a line logged per connection
    (arguments that cannot change, no traceback). When this module's pipeline is the only
    place the record would go, the writer gets a ``Line`` instead: the same text, without
    the record (module docstring)."""
    if not logger.isEnabledFor(level):
        return
    pipeline = _pipeline
    if pipeline is not None and pipeline.only_outlet(logger, level) \
            and (not fields or _STANDARD_ATTRIBUTES.isdisjoint(fields)):
        try:
            message = _merged(msg, args)
        except Exception:  # noqa: BLE001 - logging's own path reports a bad format
            pass
        else:
            # tuple.__new__: a Line without its generated __new__'s Python frame.
            pipeline.handler.put_line(_new_tuple(Line, (time.time(), level, logger.name, message, fields)))
            return
    logger.log(level, msg, *args, extra=fields)


def fields_wanted() -> bool:
    """Whether a record's ``extra`` fields reach the output: with ``--log-format json``, or
    when logging is not this module's (tests, a program embedding the server). A caller
    logging a line per connection builds them only then."""
    return _pipeline is None or _pipeline.writer.formatter.shows_fields


def dropped_lines() -> int:
    """Log lines dropped so far by the pipeline ``configure_logging`` installed (for
    ``Metrics(log_lines_dropped=dropped_lines)``)."""
    return _pipeline.dropped if _pipeline is not None else 0


# --- per-key rate limit for per-request lines ---------------------------------------------------


class LogLimiter:
    """The first line of a kind per key (e.g. per client address) per ``interval`` seconds;
    the rest are counted, and the count is told with the next line logged for that key
    (or by ``expired()``, for a periodic summary).

        suppressed = limiter.allow(peer)
        if suppressed is not None:
            logger.info("404 %s peer=%s%s", path, peer, suppressed_note(suppressed))

    Memory is bounded: a key whose interval is over and that has nothing to tell is
    forgotten (it is the same as a new key), and past ``max_keys`` the least recently
    seen key is forgotten first, its count added to the ``None`` key of ``expired()``.
    """

    def __init__(self, interval: float = 60.0, *, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if interval <= 0 or max_keys < 1:
            raise ValueError("interval must be > 0 and max_keys >= 1")
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        # key -> [start of its interval, lines suppressed in it]; in last-use order
        self._keys: OrderedDict[Hashable, list] = OrderedDict()
        self._forgotten = 0  # suppressed lines of keys evicted to stay under max_keys

    def __len__(self) -> int:
        return len(self._keys)

    def allow(self, key: Hashable) -> int | None:
        """``None``: do not log this one. Otherwise log it: the number is how many lines for
        ``key`` were suppressed since the last one logged (usually 0)."""
        now = self._clock()
        self._forget_quiet(now)
        state = self._keys.get(key)
        if state is None:
            self._keys[key] = [now, 0]
            while len(self._keys) > self.max_keys:
                _, (_, suppressed) = self._keys.popitem(last=False)
                self._forgotten += suppressed
            return 0
        self._keys.move_to_end(key)
        if now - state[0] >= self.interval:
            suppressed, state[0], state[1] = state[1], now, 0
            return suppressed
        state[1] += 1
        return None

    def expired(self) -> list[tuple[Hashable | None, int]]:
        """Keys whose interval is over with lines still untold: ``(key, count)``, each told
        once; ``(None, count)`` for keys forgotten to bound memory. For a caller that wants
        a summary line every interval even if a key falls silent."""
        now = self._clock()
        told = []
        for key, state in list(self._keys.items()):
            if state[1] and now - state[0] >= self.interval:
                told.append((key, state[1]))
                del self._keys[key]
        if self._forgotten:
            told.append((None, self._forgotten))
            self._forgotten = 0
        return told

    def _forget_quiet(self, now: float) -> None:
        while self._keys:
            key, (started, suppressed) = next(iter(self._keys.items()))
            if suppressed or now - started < self.interval:
                return
            del self._keys[key]


def suppressed_note(count: int | None) -> str:
    """The tail for a line that ``LogLimiter.allow`` let through: "" or " (N similar
    lines suppressed)"."""
    return f" ({count} similar lines suppressed)" if count else ""


# --- what a log line must not hold ------------------------------------------------------------
_QUERY = re.compile(r"\?[^\s'\"]*")


def without_query(text: str) -> str:
    """``text`` with every URL query string cut out: a query may carry the token, and
    request lines end up in logs."""
    return _QUERY.sub("?…", text)
