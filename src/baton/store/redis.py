"""The connection to Redis: one client per URL per process, keys namespaced per deployment, and Redis's
errors translated into baton's.

Two deployments may share one Redis. Every key baton writes starts with ``baton:<12 hex>:``, the hex
being a hash of the SQL store's identity (dialect, host, port, database; a SQLite file also by this
machine's name), so their leases and cancel flags never mix. The password is not part
of the identity: rotating it keeps the namespace.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url

from baton.errors import BadInput, StoreError, StoreUnavailable
from baton.install import extra_hint
from baton.settings import Settings

if TYPE_CHECKING:
    import redis

# Sockets time out rather than hang a heartbeat; a lease's TTL is several of these long.
TIMEOUT = 5.0


def store_identity(store_url: str) -> str:
    """What makes two store URLs the same store: dialect, host, port, database (not the driver, not the
    password). A SQLite file is only the same store on the same machine."""
    url = make_url(store_url.replace("postgres://", "postgresql://", 1))
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database or ""
        if path and path != ":memory:":
            path = str(Path(path).resolve())
        return f"sqlite://{socket.gethostname()}/{path}"
    return f"{backend}://{url.username or ''}@{url.host or ''}:{url.port or ''}/{url.database or ''}"


def prefix_for(store_url: str) -> str:
    """``baton:<12 hex>:``, the namespace of one deployment (one SQL store) on a shared Redis."""
    digest = hashlib.sha256(store_identity(store_url).encode()).hexdigest()[:12]
    return f"baton:{digest}:"


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
        import redis

        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"Redis at {self.url}: {doing} failed: {exc}") from exc
        except redis.RedisError as exc:
            raise StoreError(f"Redis at {self.url}: {doing} failed: {exc}") from exc


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise BadInput(f"Redis support is not installed: {extra_hint('redis')}") from None
    return redis


_CLIENTS: dict[str, redis.Redis] = {}
_CLIENTS_LOCK = threading.Lock()


def open_redis(redis_url: str, store_url: str) -> RedisConn:
    """The Redis at ``redis_url`` (``redis://``, ``rediss://`` or ``unix://``) for the deployment whose
    SQL store is at ``store_url``. Clients (and their connection pools, which reset themselves in a
    forked child) are shared per URL; nothing is sent until the first command."""
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
                )
            except ValueError as exc:
                raise BadInput(f"setting 'redis_url' is not a usable Redis URL: {exc}") from None
            _CLIENTS[redis_url] = client
    assert client is not None
    return RedisConn(client, prefix_for(store_url), safe_url(redis_url))


def connect(settings: Settings) -> RedisConn | None:
    """The deployment's Redis from :class:`baton.settings.Settings`, or None when ``redis_url`` is
    empty (Redis is optional: everything works from the SQL store alone)."""
    if not settings.redis_url:
        return None
    return open_redis(settings.redis_url, settings.resolved_store_url)


def ping(conn: RedisConn) -> None:
    """Raise :class:`StoreError` unless Redis answers."""
    with conn.errors("PING"):
        conn.client.ping()


__all__ = ["RedisConn", "connect", "open_redis", "ping", "prefix_for", "store_identity"]
