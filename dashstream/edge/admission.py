"""Who may open a WebSocket: origin allowlist, subscriber token, per-IP rate, capacity.

Pure logic, no eventlet and no sockets: ``DashApp`` asks ``Admission.check`` about each
upgrade request *before* upgrading and turns a ``Refusal`` into an HTTP answer. Every
piece takes its inputs as plain values (header strings, an address, a clock), so the
unit tests drive it without a server.

Order of the checks, and why:

1. rate limit (429): counts every handshake attempt from an address, refused ones too,
   so guessing tokens or hammering with bad requests is throttled like a reconnect storm.
   The address is the client's behind a trusted proxy (``forwarded.py``), and a client
   whose address is itself trusted (the server's own machine, by default) is not limited;
2. origin (403): cheap, and says "wrong page" before "wrong secret";
3. token (401);
4. capacity (503): only admitted clients learn that the server is full, and a slot is
   reserved here so handshakes in flight cannot overshoot ``max_connections``.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping
from urllib.parse import parse_qs

from dashstream.edge.forwarded import ProxyPolicy, rate_limited
from dashstream.edge.http import bearer_token, same_token

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# The default per-address handshake limit: a token bucket of DEFAULT_HANDSHAKE_BURST that
# refills at DEFAULT_HANDSHAKE_RATE a second. What it must admit, and what it must stop:
#
# * An office of 300 screens behind one NAT and one nginx, reconnecting after a restart:
#   the page retries within 1 s (full jitter), so about 300 handshakes from one address
#   in one second. They fit in the burst with room for two more restarts in a row.
# * A load test of 1,000 screens from one other machine, opened as fast as the tool can:
#   the burst covers all of them however fast they come (the server itself admits fewer
#   than that in a second, BENCHMARKS.md S4, so no client can go faster), and at 50 a
#   second the bucket is full again 20 s later, ready for the next run.
# * A runaway client (a reconnect loop without backoff) is held to 50 admitted handshakes
#   a second once its burst is spent. An admitted handshake and close costs under a
#   millisecond of server CPU (BENCHMARKS.md, "Operations": handshake_cost.py), so the
#   runaway's admitted connections cost a few percent of one core, where unthrottled it
#   would take the whole process (BENCHMARKS.md S4). Its refused attempts still cost their
#   429s: a client that ignores Retry-After must be stopped in front of the server
#   (firewall, nginx limit_req).
# The local machine is not limited at all (a trusted address is exempt, see forwarded.py),
# so conformance suites and benchmarks on the server's own machine never see a 429.
DEFAULT_HANDSHAKE_RATE = 50.0
DEFAULT_HANDSHAKE_BURST = 1000

# How long a client refused for capacity is told to wait. Nobody knows when a slot frees;
# a few seconds spreads a crowd's retries without leaving screens dark for long.
CAPACITY_RETRY_AFTER = 5


@dataclass(frozen=True)
class Refusal:
    """An upgrade answered with an HTTP error instead: status line, one-line reason, headers."""

    status: str
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    # Worth a debug line only: a client already told to slow down is still knocking.
    # (Logging every one would let a single client flood the log.)
    quiet: bool = False


# --- origins ------------------------------------------------------------------------------

_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST = rf"(?:{_HOST_LABEL}\.)*{_HOST_LABEL}|\[[0-9a-f:.]+\]"
_PATTERN = re.compile(rf"^(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?P<wild>\*\.)?"
                      rf"(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?\Z")
_ORIGIN = re.compile(rf"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>{_HOST})(?::(?P<port>\d{{1,5}}))?\Z")


@dataclass(frozen=True)
class OriginPattern:
    """One ``--allowed-origin`` value.

    * ``null``: the Origin browsers send for pages opened from disk (``file://``); also
      sent by sandboxed iframes, so admitting it admits those too.
    * ``https://dash.example.com[:port]``: exactly that origin.
    * ``*.example.com`` / ``https://*.example.com``: any subdomain (not example.com
      itself), with any scheme unless one is given.
    A missing port means the scheme's default port (80/443), as in the Origin header.
    """

    text: str
    scheme: str | None = None
    host: str = ""
    wildcard: bool = False
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> "OriginPattern":
        """Raise ``ValueError`` with a reason a person can act on."""
        cleaned = text.strip().lower()
        if cleaned == "null":
            return cls(text="null")
        if cleaned in ("", "*"):
            raise ValueError("leave --allowed-origin out to allow every origin; "
                             "give an origin like https://dash.example.com")
        match = _PATTERN.match(cleaned)
        if match is None:
            if re.match(r"^[a-z][a-z0-9+.-]*://[^/]+/", cleaned):
                raise ValueError(f"an origin has no path: {text!r}; write it as scheme://host[:port]")
            raise ValueError(f"not an origin: {text!r}; expected https://host[:port], "
                             "*.example.com or null")
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"port out of range in {text!r}")
        if match["wild"] is None and match["scheme"] is None:
            raise ValueError(f"an exact origin needs its scheme: https://{cleaned} or http://{cleaned}")
        return cls(text=cleaned, scheme=match["scheme"], host=match["host"],
                   wildcard=match["wild"] is not None, port=port)

    def matches(self, origin: "Origin") -> bool:
        if self.text == "null":
            return origin.null
        if origin.null:
            return False
        if self.scheme is not None and self.scheme != origin.scheme:
            return False
        wanted_port = self.port if self.port is not None else DEFAULT_PORTS.get(origin.scheme)
        if wanted_port != origin.port:
            return False
        if self.wildcard:
            return origin.host.endswith("." + self.host)
        return origin.host == self.host


@dataclass(frozen=True)
class Origin:
    """A parsed Origin header: ``null`` or scheme, host and (defaulted) port."""

    null: bool = False
    scheme: str = ""
    host: str = ""
    port: int | None = None

    @classmethod
    def parse(cls, header: str) -> "Origin | None":
        """``None`` for a value no browser sends (it then matches nothing)."""
        cleaned = header.strip().lower()
        if cleaned == "null":
            return cls(null=True)
        match = _ORIGIN.match(cleaned)
        if match is None:
            return None
        port = int(match["port"]) if match["port"] else DEFAULT_PORTS.get(match["scheme"])
        return cls(scheme=match["scheme"], host=match["host"], port=port)


class OriginPolicy:
    """Empty allowlist: every origin is admitted (the default).

    A request *without* an Origin header is admitted even with an allowlist. Browsers
    always send Origin on a WebSocket handshake, and the allowlist exists to stop other
    web pages from using a visitor's browser (cross-site WebSocket hijacking). A client
    without Origin is a script or a device, which could send any Origin it liked: refusing
    it would add friction, not security. ``--token`` is the check for those clients.
    """

    def __init__(self, patterns: Iterable[str] = ()):
        self.patterns = tuple(OriginPattern.parse(text) for text in patterns)

    def allows(self, header: str | None) -> bool:
        if not self.patterns or header is None:
            return True
        origin = Origin.parse(header)
        return origin is not None and any(pattern.matches(origin) for pattern in self.patterns)


# --- token -----------------------------------------------------------------------------------

_TOKEN_TEXT = re.compile(r"^[\x21-\x7e]+\Z")


def check_token_text(token: str) -> str:
    """A token must survive an HTTP header and a URL unchanged: visible ASCII, no spaces."""
    if not _TOKEN_TEXT.match(token):
        # Never echo the value: it is a secret, and this message reaches the terminal.
        raise ValueError("must be printable ASCII without spaces (e.g. secrets.token_urlsafe(24))")
    return token


def presented_tokens(query_string: str, authorization: str | None) -> list[str]:
    """Every token the request offers: ``?token=`` values and an ``Authorization: Bearer``."""
    tokens = parse_qs(query_string, keep_blank_values=True).get("token", [])
    bearer = bearer_token(authorization)
    if bearer is not None:
        tokens.append(bearer)
    return tokens


def token_matches(expected: str, presented: Iterable[str]) -> bool:
    """Constant time per comparison (``same_token``)."""
    found = False
    for candidate in presented:
        found |= same_token(expected, candidate)  # every candidate compared: no early exit
    return found


# --- per-address handshake rate ------------------------------------------------------------


def uncached_client_key(address: str) -> str:
    """The unit a rate limit applies to: an IPv4 address, or an IPv6 /64 (one host usually
    owns a whole /64, so per-address limits would be trivial to dodge). Callers use
    ``client_key``, the same function cached."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


# Asked for every connection, and addresses repeat. The cache is applied here rather than
# as a decorator so mutation testing (which skips decorated functions) covers the rule.
client_key = functools.lru_cache(maxsize=4096)(uncached_client_key)


class _Bucket:
    __slots__ = ("tokens", "updated", "refused")

    def __init__(self, tokens: float, updated: float):
        self.tokens = tokens
        self.updated = updated
        self.refused = 0  # refusals since the last admitted handshake


class HandshakeRateLimiter:
    """A token bucket per client address: ``burst`` handshakes at once, ``rate`` per second
    after that.

    Memory is bounded two ways. A bucket that has refilled completely is identical to a
    new one, so it is forgotten (buckets are kept in last-use order, so those are at the
    front). And at most ``max_clients`` buckets exist; past that the least recently used
    is forgotten first: that only ever makes the limiter more lenient, never wrong.
    """

    def __init__(self, rate: float, burst: int, *, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, address: str) -> tuple[float, int]:
        """Take one handshake for ``address``: ``(0.0, 0)`` if allowed, else the seconds until
        the next one would be and how many refusals in a row this one is."""
        now = self._clock()
        self._forget_idle(now)
        key = client_key(address)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            self._buckets.move_to_end(key)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.refused = 0
            return 0.0, 0
        bucket.refused += 1
        return (1 - bucket.tokens) / self.rate, bucket.refused

    def _forget_idle(self, now: float) -> None:
        refill = self.burst / self.rate
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < refill:
                return  # the rest were used more recently still
            del self._buckets[key]


# --- capacity -------------------------------------------------------------------------------


class Capacity:
    """Counts WebSocket slots from admission to the end of the connection. Reserving at
    admission (not when the socket is registered after the upgrade) keeps handshakes that
    are in flight at the same time from overshooting the limit."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_use = 0

    def try_acquire(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        self.in_use = max(0, self.in_use - 1)


# --- all together -------------------------------------------------------------------------


class Admission:
    """The checks an upgrade request passes, in the order the module docstring explains."""

    def __init__(self, *, allowed_origins: Iterable[str] = (), token: str | None = None,
                 max_connections: int, handshake_rate: float = 0.0, handshake_burst: int = 1,
                 proxies: ProxyPolicy | None = None, clock: Callable[[], float] = time.monotonic):
        self.origins = OriginPolicy(allowed_origins)
        # Who the client is behind a proxy (X-Forwarded-For from --trusted-proxy peers).
        # None trusts no proxy: the socket's peer is the client and nobody is exempt, which
        # is right for a caller that knows nothing of proxies; the server passes
        # ProxyPolicy(config.trusted_proxies).
        self.proxies = proxies if proxies is not None else ProxyPolicy(())
        self.token = token
        self.capacity = Capacity(max_connections)
        self.limiter = (HandshakeRateLimiter(handshake_rate, handshake_burst, clock=clock)
                        if handshake_rate > 0 else None)

    def check(self, environ: Mapping[str, str]) -> Refusal | None:
        """``None`` means admitted, and a capacity slot is now held: ``release`` it when
        the connection ends. A ``Refusal`` holds nothing."""
        client = self.proxies.from_environ(environ)
        if self.limiter is not None and rate_limited(client):
            wait, refusals = self.limiter.take(client.address)
            if wait > 0:
                return Refusal("429 Too Many Requests", "too many WebSocket handshakes from your address",
                               (("Retry-After", str(max(1, math.ceil(wait)))),), quiet=refusals > 1)
        if not self.origins.allows(environ.get("HTTP_ORIGIN")):
            return Refusal("403 Forbidden", "this Origin may not open a WebSocket here")
        if self.token is not None and not token_matches(
                self.token, presented_tokens(environ.get("QUERY_STRING", ""), environ.get("HTTP_AUTHORIZATION"))):
            return Refusal("401 Unauthorized", "a valid token is needed: ?token=TOKEN or "
                           "'Authorization: Bearer TOKEN'", (("WWW-Authenticate", 'Bearer realm="dashstream"'),))
        if not self.capacity.try_acquire():
            return Refusal("503 Service Unavailable", "the server is at its connection limit",
                           (("Retry-After", str(CAPACITY_RETRY_AFTER)),))
        return None

    def release(self) -> None:
        self.capacity.release()


# --- logging hygiene --------------------------------------------------------------------------


