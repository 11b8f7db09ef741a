"""The connection to Redis: one client per URL per process, keys namespaced per deployment, and Redis's
errors translated into baton's.

Two deployments may share one Redis. Every key baton writes starts with ``baton:<12 hex>:``, the
SQL store's own identity (read from the store, not from its URL: every process of a deployment gets
the same namespace however it spells the store's address), so their leases and cancel flags never mix.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from baton.errors import BadInput, StoreError, StoreUnavailable
from baton.install import extra_hint
from baton.settings import Settings

if TYPE_CHECKING:
    import redis

# Sockets time out rather than hang a heartbeat; a lease's TTL is several of these long.
TIMEOUT = 5.0


class Identified(Protocol):
    def identity(self) -> str: ...


def prefix_for(store: Identified) -> str:
    """``baton:<12 hex>:``, the namespace of one deployment (one SQL store) on a shared Redis: the
    store's own identity (:meth:`baton.store.base.Store.identity`), which every process reads alike
    whatever URL it spells the store with (a host alias, an IP, another user). Two processes that named
    one PostgreSQL by two host names once took one key's lease each, in two namespaces."""
    return f"baton:{store.identity()}:"


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@dataclass(frozen=True)
class RedisConn:
    """A client and the deployment's key prefix: everything baton's Redis parts need."""

    client: redis.Redis
    prefix: str
    url: str  # without its password

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    @contextlib.contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Translate Redis's errors into :class:`StoreError`; unreachable or timed out:
        :class:`StoreUnavailable`, which a caller may try again."""
        # lazy: the redis extra
        import redis

        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis at {self.url}: {doing} failed: {exc}") from exc
        except redis.RedisError as exc:
            raise StoreError(f"Redis at {self.url}: {doing} failed: {exc}") from exc


def _import_redis() -> Any:
    try:
        # lazy: the redis extra
        import redis
    except ImportError:
        raise BadInput(f"Redis support is not installed: {extra_hint('redis')}") from None
    return redis


_CLIENTS: dict[str, redis.Redis] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(redis_url: str) -> redis.Redis:
    """The client of the Redis at ``redis_url`` (``redis://``, ``rediss://`` or ``unix://``), shared
    per URL (its connection pool resets itself in a forked child); nothing is sent until the first
    command."""
    module = _import_redis()
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise BadInput(f"setting 'redis_url' must be a redis://, rediss:// or unix:// URL, not {redis_url!r}")
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(redis_url)
        if client is None:
            try:
                client = module.Redis.from_url(
                    redis_url,
                    decode_responses=True,
                    socket_timeout=TIMEOUT,
                    socket_connect_timeout=TIMEOUT,
                    health_check_interval=30,
                    socket_keepalive=True,  # a Redis cut off by the network is noticed, not waited on
                )
            except ValueError as exc:
                raise BadInput(f"setting 'redis_url' is not a usable Redis URL: {exc}") from None
            _CLIENTS[redis_url] = client
    assert client is not None
    return client


def open_redis(redis_url: str, store: Identified) -> RedisConn:
    """The Redis at ``redis_url`` for the deployment whose SQL store is ``store`` (:func:`client_for`)."""
    return RedisConn(client_for(redis_url), prefix_for(store), safe_url(redis_url))


def connect(settings: Settings, store: Identified) -> RedisConn | None:
    """The deployment's Redis from :class:`baton.settings.Settings`, or None when ``redis_url`` is
    empty (Redis is optional: everything works from the SQL store alone)."""
    if not settings.redis_url:
        return None
    return open_redis(settings.redis_url, store)


def ping(conn: RedisConn) -> None:
    """Raise :class:`StoreError` unless Redis answers."""
    with conn.errors("PING"):
        conn.client.ping()


def ping_url(redis_url: str) -> None:
    """:func:`ping` the Redis at ``redis_url``, no deployment's namespace needed."""
    ping(RedisConn(client_for(redis_url), "", safe_url(redis_url)))


__all__ = ["Identified", "RedisConn", "client_for", "connect", "open_redis", "ping", "ping_url", "prefix_for"]
