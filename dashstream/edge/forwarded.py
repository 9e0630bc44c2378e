"""Who the client really is behind a reverse proxy: ``--trusted-proxy`` and X-Forwarded-For.

Pure logic, no I/O. Behind nginx every connection comes from nginx's address, so the
per-address handshake limit would treat a whole office as one client and every log line
would name the proxy. A proxy says who its client was in ``X-Forwarded-For`` (each hop
appends the address it received the request from) or ``X-Real-IP``. Anyone can send
those headers, so they are believed only from a peer we were told to trust.

The rule (nginx's ``real_ip_recursive on``, and what MDN recommends):

* peer not trusted: the peer is the client; the headers are ignored (they may be forged);
* peer trusted: walk ``X-Forwarded-For`` from the right. Each entry was written by the
  hop to its right, so while the entries are trusted proxies, the next one to the left
  is still first-hand. The first untrusted entry is the client. Everything further left
  was written by the client itself and is never read;
* every entry trusted: the left-most one is the client (it is one of ours: a health
  check on the proxy's machine, say);
* an entry that is not an address (``unknown``, ``for=...``, a host name, an obfuscated
  id) stops the walk: what lies to its left cannot be vouched for, so the client is the
  last address that could be, the entry to its right. That address stands in for a client
  nobody could name, so it is never exempt from the handshake limit, even when it is a
  trusted proxy (``X-Forwarded-For: unknown`` from nginx would otherwise make every
  client the exempt proxy itself);
* no usable ``X-Forwarded-For`` from a trusted peer: ``X-Real-IP`` if it holds an
  address, else the peer.

Empty entries (``a,,b``, a trailing comma, an empty header line joined to others) are
skipped rather than treated as a stop: no proxy writes an empty address for a hop, so
they only come from how header lines were joined, and skipping one cannot reach past
the first untrusted entry, which is where everything a client could write begins.

The handshake rate limit exempts a client whose resolved address is itself trusted:
the machine the server runs on (by default) or a proxy talking for itself. Loopback is
trusted by default, so local conformance suites and benchmarks are never throttled,
while a remote client forwarded by a local nginx is limited by its own address.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Sequence, Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# The loopback ranges: a proxy on the same machine. IPv4-mapped loopback
# (::ffff:127.0.0.1, seen on a dual-stack socket) is folded into 127.0.0.0/8 by
# ``parse_address`` rather than listed.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.0/8", "::1/128")

# ``--trusted-proxy none``: believe no forwarding header and exempt nobody.
NONE = "none"

# "[v6]" or "[v6]:port" (the bracketed form proxies write when they add a port).
_BRACKETED = re.compile(r"^\[(?P<host>[^\]]+)\](?::(?P<port>\d{1,5}))?\Z")
# "v4:port" (IIS, Azure and some load balancers append the client's port).
_V4_PORT = re.compile(r"^(?P<host>\d{1,3}(?:\.\d{1,3}){3}):(?P<port>\d{1,5})\Z")


def parse_network(text: str) -> Network:
    """One ``--trusted-proxy`` value: a CIDR range or a bare address (IPv4 or IPv6).

    Raises ``ValueError`` with a reason the command line prints after the option's name.
    A range with host bits set (``10.0.0.1/8``) is refused rather than silently widened:
    it is usually a typo, and trusting more than meant lets more clients forge headers.
    """
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("empty value; give an address or range such as 10.0.0.0/8 or ::1")
    if "%" in cleaned:
        raise ValueError(f"{text!r}: a zone index (%...) cannot be trusted; give the address without it")
    if "/" not in cleaned:
        bare = cleaned[1:-1] if cleaned.startswith("[") and cleaned.endswith("]") else cleaned
        try:
            address = ipaddress.ip_address(bare)
        except ValueError:
            raise ValueError(f"not an IP address or CIDR range: {text!r} (host names are not resolved, "
                             "and a proxy is trusted whatever its port)") from None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # clients are matched as IPv4 too (parse_address)
        return ipaddress.ip_network(address)
    try:
        return ipaddress.ip_network(cleaned)  # strict: host bits set raise
    except ValueError as error:
        try:
            widened = ipaddress.ip_network(cleaned, strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or CIDR range: {text!r} ({error})") from None
        raise ValueError(f"{text!r} has host bits set; did you mean {widened}?") from None


@functools.lru_cache(maxsize=4096)  # the same few addresses come again and again
def parse_address(text: str) -> Address | None:
    """An address as proxies write it, or ``None`` if it is not one.

    Accepts ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``, ``[2001:db8::1]`` and
    ``[2001:db8::1]:443``; an IPv4-mapped IPv6 address is the IPv4 address it maps (the
    same client, whichever socket family accepted it); an IPv6 zone index is dropped.
    Anything else (``unknown``, ``for=...``, quotes, names) is ``None``.
    """
    candidate = text.strip()
    bracketed = _BRACKETED.match(candidate)
    if bracketed is not None:
        candidate = bracketed["host"]
        if "." in candidate and ":" not in candidate:
            return None  # "[1.2.3.4]" is not a way anyone writes IPv4
    else:
        with_port = _V4_PORT.match(candidate)
        if with_port is not None:
            candidate = with_port["host"]
    candidate = candidate.partition("%")[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Client:
    """Who a request is from, once forwarding headers have been weighed.

    ``address``: the text to rate-limit by and to log (normalised when it parsed).
    ``trusted``: the address is itself one of the trusted proxies (exempt from the
    handshake rate limit). ``forwarded``: it came from a header, not from the socket.
    """

    address: str
    trusted: bool = False
    forwarded: bool = False


class ProxyPolicy:
    """The ``--trusted-proxy`` ranges, and the rule for resolving a client behind them."""

    def __init__(self, networks: Iterable[str | Network] = DEFAULT_TRUSTED_PROXIES):
        parsed: list[Network] = []
        for network in networks:
            if isinstance(network, str):
                if network.strip().lower() == NONE:
                    continue
                network = parse_network(network)
            parsed.append(network)
        self.networks: tuple[Network, ...] = tuple(parsed)
        self._trusted: dict = {}  # address -> trusted, asked for every request
        self._direct: dict[str, Client] = {}  # peer -> its Client, for requests without forwarding headers

    def trusts(self, address: Address | None) -> bool:
        if address is None:
            return False
        known = self._trusted.get(address)
        if known is None:
            known = any(address in network for network in self.networks)
            if len(self._trusted) >= 4096:
                self._trusted.clear()  # a crude bound: the same few addresses come back
            self._trusted[address] = known
        return known

    def resolve(self, peer: str, x_forwarded_for: str | Sequence[str] | None = None,
                x_real_ip: str | None = None) -> Client:
        """The client of a request whose socket peer is ``peer`` (``REMOTE_ADDR``).

        ``x_forwarded_for`` may be one header value or several header lines (they are
        joined with commas, as WSGI servers join repeated headers)."""
        if not x_forwarded_for and not x_real_ip:
            # Nearly every request: the answer depends on the peer alone, so it is kept
            # (a Client is immutable), with the same crude bound as ``trusts``.
            known = self._direct.get(peer)
            if known is None:
                if len(self._direct) >= 4096:
                    self._direct.clear()
                known = self._direct[peer] = self._resolve(peer, None, None)
            return known
        return self._resolve(peer, x_forwarded_for, x_real_ip)

    def _resolve(self, peer: str, x_forwarded_for: str | Sequence[str] | None,
                 x_real_ip: str | None) -> Client:
        peer_address = parse_address(peer)
        if not self.trusts(peer_address):
            return Client(peer if peer_address is None else str(peer_address))
        client = peer_address
        forwarded = False
        unnamed = False  # the walk stopped at an entry that is not an address
        entries = _entries(x_forwarded_for)
        if entries:
            for entry in reversed(entries):
                address = parse_address(entry)
                if address is None:
                    unnamed = True
                    break  # what is left of it cannot be vouched for
                client, forwarded = address, True
                if not self.trusts(address):
                    return Client(str(address), forwarded=True)
        else:
            real_ip = parse_address(x_real_ip) if x_real_ip else None
            if real_ip is not None:
                client, forwarded = real_ip, True
        return Client(str(client), trusted=not unnamed and self.trusts(client), forwarded=forwarded)

    def client_address(self, peer: str, x_forwarded_for: str | Sequence[str] | None = None,
                       x_real_ip: str | None = None) -> str:
        """``resolve(...).address``: the address to log and to rate-limit by."""
        return self.resolve(peer, x_forwarded_for, x_real_ip).address

    def from_environ(self, environ) -> Client:
        """``resolve`` for a WSGI request (eventlet joins repeated headers with commas),
        worked out once per request and kept in the environ."""
        client = environ.get("dashstream.client")
        if client is None:
            client = environ["dashstream.client"] = self.resolve(
                environ.get("REMOTE_ADDR", ""), environ.get("HTTP_X_FORWARDED_FOR"), environ.get("HTTP_X_REAL_IP"))
        return client


def rate_limited(client: Client) -> bool:
    """Whether the handshake rate limit applies to ``client``: everyone but our own
    machines (a trusted address that is the client itself, not a forwarder of one)."""
    return not client.trusted


def _entries(x_forwarded_for: str | Sequence[str] | None) -> list[str]:
    if not x_forwarded_for:
        return []
    joined = x_forwarded_for if isinstance(x_forwarded_for, str) else ",".join(x_forwarded_for)
    return [entry.strip() for entry in joined.split(",") if entry.strip()]
