"""A stand-in for the server side of the wall (CORE-API.md), for the page tests until the
real server has it: one port, as the real server, serving

- ``GET /``: this worktree's index.html; ``GET /dashboard.json``: ``layout`` (404 when None);
  ``GET /streams``: the stream names (as the real server lists them, other fields left out);
- WebSocket ``/ws?streams=a,b,c`` (``resume=a:EPOCH:SEQ,...``): several streams, each data
  message with ``stream``; WebSocket ``/ws/NAME`` and ``/`` (the stream ``default``), with
  ``seq=&epoch=``: one stream, messages without ``stream``;
- per stream a log (seq, epoch, history, last value) with the protocol's resume rule: what
  was missed, in order, or the latest value with ``gap: true`` when the resume cannot be
  honoured; the last value to a new subscriber; unknown stream -> 404, over 16 -> 400;
- control messages only to ``control=1`` clients: source and backplane states once on
  connect (before the last values: the harder order for the page) and on every change.

The test drives it: ``publish``, ``set_source``, ``set_backplane``, ``send_raw``, ``stop``
(drops every connection, as a killed server) and ``start`` (the same port again),
``forget`` (a stream loses its history and gets a new epoch, so its resume fails).
It is built on the ``websockets`` library, like tests/browser/test_index_page.py's ScriptedServer.
"""

from __future__ import annotations

import collections
import json
import socket
import threading
import time
import uuid
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.http11 import Response
from websockets.sync.server import serve

from tests.support import ROOT, scaled

PAGE = ROOT / "index.html"
MAX_STREAMS = 16


class StreamLog:
    """One stream's numbering, epoch, history and source state."""

    def __init__(self, name: str, history: int = 100):
        self.name = name
        self.history = history
        self.epoch = uuid.uuid4().hex[:12]
        self.entries: collections.deque[dict] = collections.deque(maxlen=history)
        self.seq = 0
        self.source: dict | None = None   # the last source control message when not up

    def append(self, fields: dict, ts: float | None) -> dict:
        self.seq += 1
        entry = {**fields, "seq": self.seq, "ts": time.time() if ts is None else ts, "epoch": self.epoch}
        self.entries.append(entry)
        return entry

    def forget(self) -> None:
        """History lost (e.g. a memory log after a restart): a new epoch, numbering from 1."""
        self.epoch = uuid.uuid4().hex[:12]
        self.entries.clear()
        self.seq = 0

    def backlog(self, epoch: str | None, seq: int | None) -> tuple[list[dict], bool]:
        """(entries owed, gap) for a client resuming at (epoch, seq); no resume: the last value."""
        if epoch is None:
            return list(self.entries)[-1:], False
        if epoch == self.epoch and seq is not None and self.entries and self.entries[0]["seq"] <= seq + 1 \
                and seq <= self.seq:
            return [entry for entry in self.entries if entry["seq"] > seq], False
        if epoch == self.epoch and seq == self.seq == 0:
            return [], False
        return list(self.entries)[-1:], True


class Subscriber:
    def __init__(self, connection, streams: list[str], multi: bool, control: bool):
        self.connection = connection
        self.streams = streams
        self.multi = multi
        self.control = control
        self.owed_gap: set[str] = set()   # resume failed on an empty stream: flag the next message

    def send(self, message: dict) -> None:
        try:
            self.connection.send(json.dumps(message))
        except Exception:  # noqa: BLE001 - the page went away; its handler ends on its own
            pass


class ScriptedWall:
    def __init__(self, streams=(), layout: dict | None = None, port: int = 0):
        self.logs = {name: StreamLog(name) for name in streams}
        self.layout = layout                     # /dashboard.json: a dict (200) or None (404)
        self.layout_answers: list[tuple[int, str]] = []   # answered first, one per request
        self.layout_requests = 0
        self.paths: list[str] = []               # every WebSocket request path, with its query
        self.backplane: dict | None = None       # the last backplane message when down
        self.subscribers: list[Subscriber] = []
        self.lock = threading.RLock()            # one order of messages for every subscriber
        self.port = port
        self._server = None
        self._thread = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> "ScriptedWall":
        self._server = serve(self._handle, "127.0.0.1", self.port, process_request=self._http)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go away as a killed server does: connections cut without a close frame. Idempotent."""
        if self._server is None:
            return
        with self.lock:
            subscribers, self.subscribers = self.subscribers, []
        for subscriber in subscribers:
            try:
                subscriber.connection.socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.shutdown()
        self._thread.join(scaled(5))
        self._server = None

    def __enter__(self) -> "ScriptedWall":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # --- what the test does ----------------------------------------------------------------

    def publish(self, stream: str, variable=None, ts: float | None = None, **fields) -> dict:
        """Append to the stream's log and send to its subscribers; returns the entry."""
        with self.lock:
            entry = self.logs[stream].append({"variable": variable, **fields}, ts)
            for subscriber in self.subscribers:
                if stream in subscriber.streams:
                    self._deliver(subscriber, stream, entry)
            return entry

    def set_source(self, stream: str, state: str, reason: str = "", since: float | None = None) -> dict:
        message = {"control": "source", "stream": stream, "state": state,
                   "since": time.time() if since is None else since, "reason": reason}
        with self.lock:
            self.logs[stream].source = None if state == "up" else message
            for subscriber in self.subscribers:
                if subscriber.control and stream in subscriber.streams:
                    subscriber.send(message)
        return message

    def set_backplane(self, state: str, reason: str = "", since: float | None = None) -> dict:
        message = {"control": "backplane", "state": state,
                   "since": time.time() if since is None else since, "reason": reason}
        with self.lock:
            self.backplane = None if state == "up" else message
            for subscriber in self.subscribers:
                if subscriber.control:
                    subscriber.send(message)
        return message

    def send_raw(self, message: dict | str) -> None:
        """Any message, as it is, to every subscriber (protocol edge cases)."""
        with self.lock:
            for subscriber in self.subscribers:
                try:
                    subscriber.connection.send(message if isinstance(message, str) else json.dumps(message))
                except Exception:  # noqa: BLE001 - that page went away
                    pass

    def forget(self, stream: str) -> None:
        with self.lock:
            self.logs[stream].forget()

    def connected(self) -> int:
        with self.lock:
            return len(self.subscribers)

    # --- serving -----------------------------------------------------------------------------

    def _http(self, connection, request):
        """Plain HTTP (the page, the layout) and the checks made before an upgrade."""
        url = urlsplit(request.path)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            if url.path == "/":
                return _response(200, PAGE.read_bytes(), "text/html; charset=utf-8")
            if url.path == "/dashboard.json":
                with self.lock:
                    self.layout_requests += 1
                    if self.layout_answers:
                        status, body = self.layout_answers.pop(0)
                        return _response(status, body.encode(), "application/json")
                if self.layout is None:
                    return _response(404, b'{"error": "no dashboard configured"}', "application/json")
                return _response(200, json.dumps(self.layout).encode(), "application/json")
            if url.path == "/streams":
                with self.lock:
                    names = [{"name": name, "last_seq": log.seq, "epoch": log.epoch} for name, log in self.logs.items()]
                return _response(200, json.dumps({"streams": names}).encode(), "application/json")
            return _response(404, b"not found", "text/plain")
        try:
            self._subscription(request.path)
        except LookupError as error:
            return _response(404, str(error).encode(), "text/plain")
        except ValueError as error:
            return _response(400, str(error).encode(), "text/plain")
        return None

    def _subscription(self, path: str) -> tuple[list[str], bool, dict[str, tuple[str, int]], bool]:
        """(streams, multi, resume points, control) from a socket's path, as the server reads it."""
        url = urlsplit(path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        control = query.get("control") == "1"
        if url.path == "/ws":
            streams = [name for name in query.get("streams", "").split(",") if name]
            if not streams:
                raise ValueError("streams: give at least one name")
            if len(streams) > MAX_STREAMS:
                raise ValueError(f"streams: at most {MAX_STREAMS}")
            resume = {}
            for item in filter(None, query.get("resume", "").split(",")):
                name, epoch, seq = item.split(":")
                resume[name] = (epoch, int(seq))
            multi = True
        elif url.path == "/" or url.path.startswith("/ws/"):
            streams = ["default" if url.path == "/" else url.path[len("/ws/"):]]
            resume = {streams[0]: (query["epoch"], int(query["seq"]))} if "epoch" in query else {}
            multi = False
        else:
            raise LookupError(f"no WebSocket endpoint at {url.path}")
        for name in streams:
            if name not in self.logs:
                raise LookupError(f"no stream named {name!r}")
        return streams, multi, resume, control

    def _handle(self, connection) -> None:
        self.paths.append(connection.request.path)
        streams, multi, resume, control = self._subscription(connection.request.path)
        subscriber = Subscriber(connection, streams, multi, control)
        with self.lock:
            if control:
                for name in streams:
                    if self.logs[name].source:
                        subscriber.send(self.logs[name].source)
                if self.backplane:
                    subscriber.send(self.backplane)
            for name in streams:
                epoch, seq = resume.get(name, (None, None))
                entries, gap = self.logs[name].backlog(epoch, seq)
                if gap and not entries:
                    subscriber.owed_gap.add(name)
                for index, entry in enumerate(entries):
                    self._deliver(subscriber, name, {**entry, "gap": True} if gap and index == 0 else entry)
            self.subscribers.append(subscriber)
        try:
            for _ in connection:  # hold the connection until the page leaves
                pass
        except Exception:  # noqa: BLE001 - the page went away: this connection is over
            pass
        finally:
            with self.lock:
                if subscriber in self.subscribers:
                    self.subscribers.remove(subscriber)

    def _deliver(self, subscriber: Subscriber, stream: str, entry: dict) -> None:
        message = dict(entry)
        if stream in subscriber.owed_gap:
            subscriber.owed_gap.discard(stream)
            message["gap"] = True
        if subscriber.multi:
            message["stream"] = stream
        subscriber.send(message)


def _response(status: int, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("Connection", "close")])
    return Response(status, HTTPStatus(status).phrase, headers, body)
