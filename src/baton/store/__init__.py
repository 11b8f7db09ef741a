"""Persistence behind role Protocols; :func:`open_store` picks the backend by URL scheme.

Owns: the :class:`Store` Protocol and its roles (:mod:`base`: a consumer names the role it calls),
the SQL store over SQLite or PostgreSQL (:mod:`sql` and its parts, :mod:`schema`, :mod:`tables`,
:mod:`migrations`, :mod:`engine`), leases and their backends (:mod:`leases`, :mod:`redis_leases`), the
Redis connection (:mod:`redis`) and the SDK's session stores (:mod:`baton.store.sdk`).

May import: the ground floor only.
"""

from __future__ import annotations

from baton.errors import BadInput
from baton.install import extra_hint
from baton.store.base import (
    AuditStore,
    BlobStore,
    CheckpointStore,
    DeliveryStore,
    JobStore,
    KeyStore,
    LeaseBackend,
    LeaseStore,
    PlanStore,
    RunStore,
    SnapshotStore,
    Store,
    TokenStore,
    ViewStore,
    WebSessionStore,
)
from baton.store.sql import SQLStore


def open_store(url: str) -> Store:
    """``sqlite:///path`` or ``postgresql://...``; anything else is a clear error."""
    scheme = url.split(":", 1)[0]
    if scheme.startswith("sqlite"):
        return SQLStore(url)
    if scheme.startswith("postgres"):
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise BadInput(f"PostgreSQL support is not installed: {extra_hint('postgres')}") from None
        return SQLStore(
            url.replace("postgres://", "postgresql+psycopg://", 1).replace(
                "postgresql://", "postgresql+psycopg://", 1
            )
        )
    raise BadInput(f"store URL scheme {scheme!r} is not supported (use sqlite:/// or postgresql://)")


__all__ = [
    "AuditStore",
    "BlobStore",
    "CheckpointStore",
    "DeliveryStore",
    "JobStore",
    "KeyStore",
    "LeaseBackend",
    "LeaseStore",
    "PlanStore",
    "RunStore",
    "SQLStore",
    "SnapshotStore",
    "Store",
    "TokenStore",
    "ViewStore",
    "WebSessionStore",
    "open_store",
]
