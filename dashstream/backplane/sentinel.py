"""``--backplane redis+sentinel://[:PASSWORD@]HOST:26379,HOST2:26379/MASTER/DB``: Redis behind
Sentinel, through redis-py's own Sentinel client (``redis.sentinel``).

The URL names the Sentinels (any number, comma-separated; the port defaults to 26379), the
master's name as the Sentinels know it (``sentinel monitor MASTER ...``) and the database
number (default 0). A password in the URL is the master's (and its replicas'), not the
Sentinels'. Each client the backplane makes asks the Sentinels where the master is each time
it connects, so after a failover (the master killed, a replica promoted) the backplane's own
reconnect, the same one that rides out a restarted Redis, lands on the new master.

``parse_sentinel_url`` is pure (no redis import): ``dashstream.config`` checks the option
with it. ``sentinel_client`` imports redis-py, after ``monkey_patch``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = None
    username: str | None = None


def is_sentinel_url(text: str) -> bool:
    return str(text).lower().startswith(SCHEME + "://")


def parse_sentinel_url(text: str) -> SentinelTarget:
    """The URL's parts; ValueError naming what is wrong (never showing the password)."""
    rest = str(text)[len(SCHEME) + 3:]
    authority, _, path = rest.partition("/")
    credentials, at, hosts = authority.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username = urllib.parse.unquote(user) or None
        password = urllib.parse.unquote(secret) if colon else None
    shown = f"{SCHEME}://{'***@' if at else ''}{hosts}/{path}"
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not colon:
            name, port = host, str(DEFAULT_PORT)
        name = name.strip("[]")
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{shown!r}: {host!r} is not HOST:PORT of a Sentinel")
        sentinels.append((name, int(port)))
    if not sentinels:
        raise ValueError(f"{shown!r} names no Sentinel: {SCHEME}://HOST:26379,HOST2:26379/MASTER/DB")
    master, _, database = path.partition("/")
    if not master:
        raise ValueError(f"{shown!r} names no master: {SCHEME}://HOST:26379,HOST2:26379/MASTER/DB")
    database = database.strip("/")
    if database and not database.isdigit():
        raise ValueError(f"{shown!r}: the last part is the database number, got {database!r}")
    return SentinelTarget(tuple(sentinels), urllib.parse.unquote(master), int(database or 0), password, username)


# The clients below need redis-py and a Sentinel to talk to (tests/services/test_sentinel_failover.py),
# so mutation testing leaves them out:
# pragma: no mutate block
def sentinel_client(text: str, **options: Any):
    """A ``redis.Redis`` on the master the Sentinels name now, and again at each reconnect.
    ``options`` are those of ``Redis.from_url`` (timeouts, retry, client name,
    ``single_connection_client``)."""
    import redis
    from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

    class MasterFollowingConnection(SentinelManagedConnection):
        """Asks the Sentinels for the master before every (re)connect. redis-py 8.1 asks
        them only in ``connect()``, but a command on a dropped connection reconnects through
        ``connect_check_health()`` (``send_packed_command``), which would dial the dead
        master's address for ever: seen in tests/services/test_sentinel_failover.py."""

        def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True):
            if self._sock is None and self.connection_pool.is_master:
                self.host, self.port = self.connection_pool.get_master_address()
            return super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)

    target = parse_sentinel_url(text)
    single = options.pop("single_connection_client", False)
    # The Sentinels are asked with the same connect and command timeouts, no password.
    asking = {key: options[key] for key in ("socket_timeout", "socket_connect_timeout") if key in options}
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=asking, **asking)
    pool = SentinelConnectionPool(target.master, sentinel, db=target.db, password=target.password,
                                  username=target.username, connection_class=MasterFollowingConnection, **options)
    return redis.Redis(connection_pool=pool, single_connection_client=single)


def redis_client(url: str, **options: Any):
    """The client for ``--backplane``'s URL: ``Redis.from_url`` for ``redis://``,
    ``rediss://`` and ``unix://``; through the Sentinels for ``redis+sentinel://``."""
    if is_sentinel_url(url):
        return sentinel_client(str(url), **options)
    import redis

    return redis.Redis.from_url(str(url), **options)
