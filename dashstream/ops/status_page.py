"""``GET /status``: the operator's picture of the server, one HTML page without a library.

Every stream with its source state and since when, its subscribers (summed over the fleet
with a backplane), its last value and that value's age, messages per minute, and the
dropped and slow-closed counts; with a backplane, the instances and which one runs each
producer. The page reloads itself every ``REFRESH`` seconds (``<meta http-equiv=refresh>``:
no script), in the dashboard page's colours.

Same rule as ``/metrics``: with ``--metrics-token``, ``Authorization: Bearer TOKEN``, or
``?token=TOKEN`` for a browser, which cannot send a header on a plain navigation (the
query survives the reload; dashstream never logs query strings).

Messages per minute come from the ``seq`` numbers this page saw on its earlier views
(``RateSampler``): the log keeps no clock of its own, and the page's reload gives samples
for free. The first view shows ``-``.

Pure: it takes the ``/streams`` description and the last values, and returns the answer;
the route (edge/app.py) gathers them.
"""

from __future__ import annotations

import hmac
import html
import json
import time
import urllib.parse
from collections import deque
from typing import Callable, Mapping

REFRESH = 5  # seconds between the page's reloads
RATE_WINDOW = 60.0  # seconds of samples the rate is taken over
TEXT = "text/plain; charset=utf-8"

STATE_WORDS = {"up": "UP", "stale": "STALE", "down": "SOURCE DOWN", "starting": "STARTING"}


class RateSampler:
    """Messages per minute per stream, from ``(time, seq)`` samples taken at each view."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = RATE_WINDOW):
        self._clock = clock
        self._window = window
        self._samples: dict[str, deque] = {}

    def sample(self, name: str, seq: int | None, epoch: str | None) -> float | None:
        now = self._clock()
        samples = self._samples.setdefault(name, deque())
        if samples and samples[-1][2] != epoch:
            samples.clear()  # a new numbering: earlier seqs say nothing about this one
        samples.append((now, seq or 0, epoch))
        while len(samples) > 2 and now - samples[1][0] >= self._window:
            samples.popleft()
        first_time, first_seq, _ = samples[0]
        if now - first_time < 1.0:
            return None
        return (samples[-1][1] - first_seq) * 60.0 / (now - first_time)


def allowed(environ: Mapping, token: str | None) -> bool:
    if token is None:
        return True
    scheme, _, presented = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer":
        presented = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("token", [""])[0]
    return hmac.compare_digest(presented.strip().encode("utf-8", "surrogateescape"), token.encode())


def status_response(environ: Mapping, described: Mapping, last_values: Mapping[str, object], token: str | None,
                    sampler: RateSampler, now: float | None = None) -> tuple[str, list[tuple[str, str]], bytes]:
    """``(status, headers, body)`` for ``GET /status``."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method not in ("GET", "HEAD"):
        return ("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Type", TEXT)],
                f"{method} is not allowed here; use GET or HEAD\n".encode())
    if not allowed(environ, token):
        return ("401 Unauthorized", [("WWW-Authenticate", 'Bearer realm="dashstream status"'), ("Content-Type", TEXT)],
                b"/status needs 'Authorization: Bearer TOKEN' or ?token=TOKEN (--metrics-token)\n")
    body = render(described, last_values, sampler, time.time() if now is None else now)
    return "200 OK", [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")], body.encode()


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _clock_time(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def render(described: Mapping, last_values: Mapping[str, object], sampler: RateSampler, now: float) -> str:
    esc = html.escape
    fleet = "instances" in described
    rows = []
    for stream in described.get("streams", []):
        name = stream["name"]
        state = stream.get("state") or "up"
        rate = sampler.sample(name, stream.get("last_seq"), stream.get("epoch")) if stream.get("shared") else None
        value = last_values.get(name)
        since = stream.get("since")
        cells = [
            f'<td class="name">{esc(name)}<small>{esc(stream.get("source", ""))}'
            f'{"" if stream.get("shared") else " · private"}</small></td>',
            f'<td class="state" data-field="state"><b>{esc(STATE_WORDS.get(state, state.upper()))}</b>'
            f'<small>since {esc(_clock_time(since))} ({esc(_age(now - since if since else None))})'
            f'{": " + esc(stream["reason"]) if stream.get("reason") else ""}</small></td>',
            f'<td class="num" data-field="subscribers">{int(stream.get("subscribers") or 0)}</td>',
            f'<td class="value" data-field="value">{esc("-" if value is None else str(value))}</td>',
            f'<td class="num" data-field="age">'
            f'{esc(_age(now - stream["last_ts"]) if stream.get("last_ts") else "-")}</td>',
            f'<td class="num" data-field="rate">{"-" if rate is None else f"{rate:.1f}"}</td>',
            f'<td class="num" data-field="dropped">{int(stream.get("dropped") or 0)}</td>',
            f'<td class="num" data-field="slow_closed">{int(stream.get("slow_closed") or 0)}</td>',
        ]
        if fleet:
            cells.append(f'<td data-field="producer">{esc(stream.get("producer") or "-")}</td>')
        rows.append(f'<tr data-stream="{esc(name)}" data-state="{esc(state)}">{"".join(cells)}</tr>')
    headings = ["stream", "source state", "subscribers", "last value", "age", "msg/min", "dropped", "slow-closed"]
    if fleet:
        headings.append("producer on")
    fleet_part = ""
    if fleet:
        backplane = described.get("backplane") or {}
        up = backplane.get("state", "up") == "up"
        fleet_part = (
            f'<p id="backplane" data-state="{"up" if up else "down"}">backplane {esc(backplane.get("url", ""))}: '
            f'<b>{"UP" if up else "DOWN"}</b>{"" if up else ": " + esc(backplane.get("reason", ""))}</p>'
            f'<p id="instances">instances ({len(described["instances"])}): '
            + ", ".join(f'<span{" class=me" if i == described.get("instance") else ""}>{esc(i)}</span>'
                        for i in described["instances"]) + "</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark">
<meta http-equiv="refresh" content="{REFRESH}">
<title>dashstream status</title>
<style>
  body {{ background: #0b0f14; color: #e6edf3; margin: 1.5em;
         font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }}
  h1 {{ font-size: 1.2em; font-weight: 600; margin: 0 0 0.8em; }}
  h1 small, td small {{ color: #9fb0c2; font-weight: 400; }}
  td small {{ display: block; font-size: 0.8em; }}
  table {{ border-collapse: collapse; width: 100%; background: #111821; border: 1px solid #1e2a36; }}
  th, td {{ text-align: left; padding: 0.45em 0.8em; border-bottom: 1px solid #1e2a36; vertical-align: top; }}
  th {{ color: #9fb0c2; font-weight: 500; font-size: 0.85em; }}
  td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
  td.value {{ font-variant-numeric: tabular-nums; font-weight: 600; }}
  tr[data-state="up"] td.state b {{ color: #3ddc84; }}
  tr[data-state="starting"] td.state b {{ color: #9fb0c2; }}
  tr[data-state="stale"] td.state b {{ color: #ffb020; }}
  tr[data-state="stale"] {{ background: rgba(255, 176, 32, 0.08); }}
  tr[data-state="down"] td.state b {{ color: #ff6b6b; }}
  tr[data-state="down"] {{ background: rgba(255, 107, 107, 0.1); }}
  #backplane[data-state="up"] b {{ color: #3ddc84; }}
  #backplane[data-state="down"] {{ border-left: 0.25em solid #ff6b6b; padding-left: 0.5em; color: #ffc2c2; }}
  #instances .me {{ font-weight: 600; }}
</style></head>
<body><h1>dashstream status <small>at {esc(_clock_time(now))}, refreshed every {REFRESH} s</small></h1>
{fleet_part}<table><thead><tr>{"".join(f"<th>{h}</th>" for h in headings)}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""


def last_values(streams: Mapping[str, object]) -> dict[str, object]:
    """Each shared stream's last ``variable`` (private streams have no log: each client has
    its own walk)."""
    values = {}
    for name, stream in streams.items():
        last = getattr(getattr(stream, "log", None), "last", None)
        if last is not None:
            try:
                values[name] = json.loads(last.text).get("variable")
            except (ValueError, AttributeError):
                values[name] = None
    return values
