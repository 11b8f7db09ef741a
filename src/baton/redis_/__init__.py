"""Redis for many machines (``BATON_REDIS_URL``, the ``redis`` extra): the session index with TTL, lease
grants with fencing tokens, and fast cancel flags. The SQL store stays the truth: Redis holds nothing
that cannot be rebuilt from it, and an empty Redis is noticed and refilled.

- :mod:`baton.redis_.conn` — the client, the per-deployment key prefix, error translation;
- :mod:`baton.redis_.index` — :class:`SessionIndex`;
- :mod:`baton.redis_.leases` — :class:`RedisLeases`, a :class:`baton.leases.LeaseBackend`.

The cancel flag's API is :mod:`baton.cancel` (it works without Redis too).
"""

from __future__ import annotations

from baton.redis_.conn import RedisConn, connect, open_redis, ping, prefix_for, store_identity
from baton.redis_.index import IndexEntry, SessionIndex, index_session
from baton.redis_.leases import RedisLeases

__all__ = [
    "IndexEntry",
    "RedisConn",
    "RedisLeases",
    "SessionIndex",
    "connect",
    "index_session",
    "open_redis",
    "ping",
    "prefix_for",
    "store_identity",
]
