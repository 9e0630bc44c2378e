"""``sql``: a query run every ``interval`` seconds; its first row is the message.

The row's columns are the fields and it must have ``variable``. A value is published only
when the row differs from the last one published, so a count that stays put sends nothing.
Zero rows publish nothing and put the stream ``down`` with that reason; a query error raises
(the supervisor shows the database's message and retries).

With ``rows = N`` (1-100) the first N rows are ONE message, ``{"variable": <number of rows>,
"rows": [{column: value, ...}, ...]}`` (``producer.values.rows_message``: no ``variable``
column needed, the 64 KiB payload limit on the whole message, zero rows an empty list): a
``list`` tile's top 5. It too is published only when it differs from the last one.

Two databases, chosen by the URL's scheme:

* **SQLite** (``sqlite:///abs/path.db`` or ``sqlite:relative/path.db``): the standard
  library's ``sqlite3`` runs in C and holds the hub for the query's whole duration, so
  every query goes through ``eventlet.tpool`` (a real OS thread). A sqlite3 connection
  refuses to be used from a thread other than its creator's, and tpool may pick any of its
  threads, so one call opens, queries and closes. The file is opened read-only
  (``mode=ro``): a typo in the path is an error on the screen, not a new empty database.
  ``sqlite3`` is imported here, at module import, never in the worker: ``tpool.execute``
  runs its function on the *calling* thread (the hub) whenever any thread holds the import
  lock, and a worker importing sqlite3 while a second stream called it froze the server.
  A query has a deadline (``timeout``): a progress handler, called every
  ``PROGRESS_STEPS`` virtual-machine instructions, ends it once the deadline has passed or
  the source was closed (so a runaway ``WITH RECURSIVE`` cannot hold a thread, or a
  shutdown, for ever); waiting on a locked file is bounded by the same deadline.
* **PostgreSQL** (``postgresql://user@host:5432/db``): psycopg2 (the ``psycopg2-binary``
  wheel), which ``eventlet.monkey_patch()`` itself makes cooperative
  (``eventlet/support/psycopg2_patcher.py`` installs a wait callback that trampolines on
  the connection's socket). Measured here: three concurrent ``pg_sleep(1)`` took 1.0 s under
  eventlet and a 50 ms green ticker beside them never waited more than 51 ms. psycopg 3 was
  not chosen: its C wait function blocks the whole hub (three ``pg_sleep(1)`` took 3 s and
  stalled everything), and it is green only if its selector wait function is chosen after
  patching, one easily missed step away from freezing every screen. The source refuses to
  connect if psycopg2 has no wait callback (the process was not patched) rather than block.

``listen = "channel"`` (PostgreSQL only) opens a second connection that LISTENs on the
channel: a NOTIFY runs the query at once (many NOTIFYs that arrive together run it once),
and the ``interval`` poll goes on as a safety net. Notifications sent while the listener
was disconnected are not replayed by PostgreSQL, so every (re)connect starts with a query.
(A NOTIFY payload is limited to 8000 bytes; the source ignores payloads: it re-reads.)
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from typing import Any, Callable, Iterator, Mapping

from producer.base import DOWN, UP, Driver, Health, Rejected, UrlSource
from producer.keys import ConfigProblem, Key, nonempty_text, positive, positive_number
from producer.urls import parse_url, url_keys
from producer.values import (
    MAX_ROWS,
    BadValue,
    TooLarge,
    check_row_value,
    duplicate_column,
    fields_from_row,
    rows_message,
)

POSTGRES_SCHEMES = ("postgresql", "postgres")
PSYCOPG2 = Driver("psycopg2", "sql")
# A query that takes longer than ``timeout`` seconds is ended: by PostgreSQL itself
# (statement_timeout: "canceling statement due to statement timeout"), by the progress
# handler for SQLite. A lock wait or a runaway query must not freeze a screen (or hold a
# worker thread and the shutdown) forever without a word; the stream goes down with the
# reason and the supervisor retries with its backoff.
DEFAULT_TIMEOUT = 10.0
# SQLite calls the progress handler every this many VM instructions: about a millisecond of
# work, so the deadline is kept to a few ms, while the callback (it takes the GIL) stays
# too rare to slow the hub's thread.
PROGRESS_STEPS = 100_000
CONNECT_TIMEOUT = 5
# A database host that vanished without closing the connection (a pulled cable, a failover
# that kept the address silent): TCP keepalive finds an idle connection dead in about
# 10 + 3 * 3 = 19 s (the LISTEN connection is always idle), and TCP_USER_TIMEOUT a query
# whose bytes are never acknowledged in 20 s; PostgreSQL's statement_timeout cannot, as it
# runs on the server that is gone.
LIVENESS = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3,
            "tcp_user_timeout": 20_000}
NO_ROWS = "the query returned no rows"


def _listen_channel(value: Any) -> str:
    channel = nonempty_text(value)
    if len(channel.encode()) > 63:
        raise ValueError(f"a PostgreSQL channel name is at most 63 bytes, got {len(channel.encode())}")
    return channel


def sqlite_path(url: str) -> str:
    """``sqlite:///srv/app/app.db`` → ``/srv/app/app.db``; ``sqlite:data/app.db`` → ``data/app.db``.
    SQLAlchemy spells an absolute path with four slashes (``sqlite:////srv/app/app.db``): the
    same file. (Left as ``//srv``, it became the authority of SQLite's ``file:`` URI.)"""
    parts = urllib.parse.urlsplit(url)
    if parts.netloc or not parts.path:
        raise ValueError(f"a sqlite URL names a file: sqlite:///absolute/path.db or sqlite:relative/path.db, "
                         f"got {url!r}")
    path = urllib.parse.unquote(parts.path)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def _rows(value: Any) -> int:
    if positive(value) > MAX_ROWS:
        raise ValueError(f"must be an integer from 1 to {MAX_ROWS}, got {value!r}")
    return value


class QueryTimeout(Exception):
    """The query ran past its deadline and was ended."""


class SqliteRun:
    """One query run, handed to a worker thread: open, query, close, all in that thread.
    ``cancel()`` (any thread) ends it at the next progress step; the deadline does too."""

    def __init__(self, path: str, query: str, timeout: float, clock: Callable[[], float] = time.monotonic,
                 rows: int | None = None):
        self.rows = rows  # None: the first row; N: a list of the first N
        self.path = path
        self.query = query
        self.timeout = timeout
        self.clock = clock
        self.cancelled = False
        self.deadline = 0.0

    def cancel(self) -> None:
        self.cancelled = True

    def _stop(self) -> int:
        # Non-zero ends the statement with SQLITE_INTERRUPT.
        return 1 if self.cancelled or self.clock() > self.deadline else 0

    def __call__(self) -> tuple[list[str] | None, Any]:
        self.deadline = self.clock() + self.timeout
        uri = f"file:{urllib.parse.quote(self.path)}?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=self.timeout)
        try:
            connection.set_progress_handler(self._stop, PROGRESS_STEPS)
            try:
                cursor = connection.execute(self.query)
                names = [column[0] for column in cursor.description] if cursor.description else None
                if names is None:
                    return None, None
                return names, cursor.fetchone() if self.rows is None else cursor.fetchmany(self.rows)
            except sqlite3.OperationalError as error:
                if str(error) == "interrupted" and not self.cancelled:
                    raise QueryTimeout(f"the query did not finish within {self.timeout:g} s (timeout)") from None
                raise
        finally:
            connection.close()


class SqlSource(UrlSource):
    kind = "sql"
    schemes = ("sqlite", *POSTGRES_SCHEMES)
    keys = (
        *url_keys(schemes, "sqlite:///srv/app/app.db or postgresql://user@host:5432/db"),
        Key("query", nonempty_text, "the SELECT whose first row is the message; it must have a 'variable' column",
            required=True),
        Key("interval", positive_number, "seconds between runs of the query", default=5.0),
        Key("listen", _listen_channel, "PostgreSQL only: LISTEN on this channel; a NOTIFY runs the query at once"),
        Key("timeout", positive_number, "seconds a query may run before it is ended (the stream goes down)",
            default=DEFAULT_TIMEOUT),
        Key("rows", _rows, f"publish the first N rows (1-{MAX_ROWS}) as one message "
            "{\"variable\": N_ROWS, \"rows\": [...]} (a list tile)"),
    )

    def __init__(self, *, url: str, query: str, interval: float = 5.0, listen: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, rows: int | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(url=url, query=query, interval=interval, listen=listen, timeout=timeout, rows=rows)
        self.rows = rows
        self.query = query
        self.interval = interval
        self.listen = listen
        self.timeout = timeout
        self._run: SqliteRun | None = None  # the SQLite query in a worker thread now
        self._sleep = sleep
        self._last: dict | None = None  # the last row published: kept across reconnects
        self._connections: list[Any] = []

    @property
    def is_postgres(self) -> bool:
        return urllib.parse.urlsplit(str(self.url)).scheme.lower() in POSTGRES_SCHEMES

    @classmethod
    def check(cls, options: dict[str, Any]) -> None:
        scheme = parse_url(options["url"], cls.schemes).scheme.lower()
        if scheme == "sqlite":
            try:
                sqlite_path(options["url"])
            except ValueError as error:
                raise ConfigProblem("url", str(error)) from None
        if options.get("listen") is not None and scheme not in POSTGRES_SCHEMES:
            raise ConfigProblem("listen", f"LISTEN needs a postgresql:// URL, not {scheme}:")

    @classmethod
    def driver(cls, options: Mapping[str, Any]) -> tuple[str, Driver] | None:
        scheme = urllib.parse.urlsplit(str(options["url"])).scheme.lower()
        return ("url", PSYCOPG2) if scheme in POSTGRES_SCHEMES else None

    @classmethod
    def drivers(cls) -> tuple[Driver, ...]:
        return (PSYCOPG2,)

    # --- run time ---

    def events(self) -> Iterator[Any]:
        if self.is_postgres:
            yield from self._postgres()
        else:
            yield from self._sqlite()

    def _sqlite(self) -> Iterator[Any]:
        from dashstream.runtime import run_in_thread  # the hub must not wait for SQLite's C code

        path = sqlite_path(str(self.url))
        while True:
            run = self._run = SqliteRun(path, self.query, self.timeout, rows=self.rows)
            try:
                names, row = run_in_thread(run)
            except BaseException:
                # Killed while waiting (the server stops, GreenletExit): the worker thread
                # would run on, and the process could not exit before it ended.
                run.cancel()
                raise
            finally:
                self._run = None
            yield from self._row(names, row)
            self._sleep(self.interval)

    def _postgres(self) -> Iterator[Any]:
        import select

        import psycopg2
        import psycopg2.extensions
        import psycopg2.sql

        if psycopg2.extensions.get_wait_callback() is None:
            raise RuntimeError("psycopg2 is not cooperative here (eventlet.monkey_patch() has not run): "
                               "a query would block every screen")
        listener = None
        if self.listen is not None:
            # LISTEN first, then the first query: a change made between the two is not lost.
            listener = self._connect(psycopg2)
            with listener.cursor() as cursor:
                cursor.execute(psycopg2.sql.SQL("LISTEN {}").format(psycopg2.sql.Identifier(self.listen)))
        connection = self._connect(psycopg2)
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = %s", (max(1, round(self.timeout * 1000)),))
        yield Health(UP)
        while True:
            with connection.cursor() as cursor:
                cursor.execute(self.query)
                names = [column[0] for column in cursor.description] if cursor.description else None
                if names is None:
                    row = None
                else:
                    row = cursor.fetchone() if self.rows is None else cursor.fetchmany(self.rows)
            yield from self._row(names, row)
            if listener is None:
                self._sleep(self.interval)
                continue
            # select() is eventlet's (green) after monkey_patch: this waits for a NOTIFY or the
            # interval without holding the hub. A closed connection is "readable" too, and
            # poll() then raises, which is how a terminated listener is noticed at once.
            readable, _, _ = select.select([listener], [], [], self.interval)
            if readable:
                listener.poll()
                listener.notifies.clear()  # one query answers any number of NOTIFYs

    def _connect(self, psycopg2: Any) -> Any:
        connection = psycopg2.connect(str(self.url), connect_timeout=CONNECT_TIMEOUT,
                                      fallback_application_name="dashstream", **LIVENESS)
        self._connections.append(connection)
        # Each query sees the latest committed data, and no transaction stays open between runs.
        connection.autocommit = True
        return connection

    def _row(self, names: list[str] | None, row: Any) -> Iterator[Any]:
        if names is None:
            yield Health(DOWN, "the query returns no rows at all (is it a SELECT?)")
            return
        if self.rows is not None:
            yield from self._rows_of(names, row)
            return
        if row is None:
            yield Health(DOWN, NO_ROWS)
            return
        twice = duplicate_column(names)
        try:
            if twice is not None:
                raise BadValue(f"two columns named {twice!r}")
            fields = fields_from_row(dict(zip(names, row)))
        except BadValue as error:
            # The query's shape is wrong (no 'variable' column, a type JSON cannot carry): every
            # run would fail the same way, so the screen says so instead of counting rejections.
            yield Health(DOWN, f"unusable row: {error}")
            return
        yield Health(UP)
        try:
            # This row's data, not the query's shape: the next run may be fine.
            check_row_value(fields)
        except BadValue as error:
            yield Rejected(str(error))
            return
        if fields != self._last:
            self._last = fields
            yield fields

    def _rows_of(self, names: list[str], rows: list[tuple]) -> Iterator[Any]:
        """``rows = N``: the first N rows as one message."""
        try:
            message = rows_message(names, rows)
        except BadValue as error:
            twice = duplicate_column(names)
            if twice is not None or not isinstance(error, TooLarge):
                # The query's shape (two columns of one name, a type JSON cannot carry).
                yield Health(DOWN, f"unusable rows: {error}")
                return
            yield Health(UP)
            yield Rejected(str(error))  # this data is too large; the next run may be fine
            return
        yield Health(UP)
        if message != self._last:
            self._last = message
            yield message

    def close(self) -> None:
        run = self._run
        if run is not None:
            run.cancel()  # the worker thread ends the query at its next progress step
        connections, self._connections = self._connections, []
        for connection in connections:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - a broken connection is closed as far as we care
                pass
