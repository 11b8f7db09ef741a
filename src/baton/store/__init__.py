"""Persistence behind role Protocols; :func:`open_store` picks the backend by URL scheme.

Owns: the :class:`Store` Protocol and its roles (:mod:`base`: a consumer names the role it calls),
the SQL store over SQLite or PostgreSQL (:mod:`sql` and its parts, :mod:`schema`, :mod:`tables`,
:mod:`migrations`, :mod:`engine`, its time limits :mod:`limits`), leases and their backends
(:mod:`leases`, :mod:`redis_leases`), the Redis connection (:mod:`redis`) and the SDK's session
stores (:mod:`baton.store.sdk`).

May import: the ground floor only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from baton.errors import BadInput
from baton.store.base import (
    AuditStore,
    BlobStore,
    CheckpointStore,
    JobStore,
    KeyStore,
    LeaseBackend,
    LeaseStore,
    RunStore,
    SnapshotStore,
    Store,
    ViewStore,
)

if TYPE_CHECKING:
    from baton.settings import Settings
    from baton.store.limits import StoreLimits
    from baton.store.sql import SQLStore


def store_for(settings: Settings) -> Store:
    """The store ``settings`` name, with their time limits (:mod:`baton.store.limits`)."""
    # lazy: cold CLI
    from baton.store.limits import StoreLimits

    return open_store(settings.resolved_store_url, StoreLimits.of(settings))


def open_store(url: str, limits: StoreLimits | None = None) -> Store:
    """``sqlite:///path`` or ``postgresql://...``; anything else is a clear error. ``limits``: the
    store's time limits (None: the settings' defaults)."""
    # SQLAlchemy (~0.2 s of imports) loads here, not when this package is imported: the Protocols
    # above are what most modules need, and commands that read the store through
    # :mod:`baton.cli.fast.lite` never load it.
    # lazy: cold CLI
    from baton.store.sql import SQLStore

    scheme = url.split(":", 1)[0]
    if scheme.startswith("sqlite"):
        return SQLStore(url, limits)
    if scheme.startswith("postgres"):
        try:
            # lazy: the postgres extra
            import psycopg  # noqa: F401
        except ImportError:
            # lazy: cold CLI
            from baton.install import extra_hint  # (importlib.metadata: only on this error)

            raise BadInput(f"PostgreSQL support is not installed: {extra_hint('postgres')}") from None
        return SQLStore(
            url.replace("postgres://", "postgresql+psycopg://", 1).replace(
                "postgresql://", "postgresql+psycopg://", 1
            ),
            limits,
        )
    raise BadInput(f"store URL scheme {scheme!r} is not supported (use sqlite:/// or postgresql://)")


def __getattr__(name: str) -> Any:
    """``baton.store.SQLStore``, imported on first use (PEP 562)."""
    if name == "SQLStore":
        # lazy: cold CLI
        from baton.store.sql import SQLStore

        return SQLStore
    raise AttributeError(f"module 'baton.store' has no attribute {name!r}")


__all__ = [
    "AuditStore",
    "BlobStore",
    "CheckpointStore",
    "JobStore",
    "KeyStore",
    "LeaseBackend",
    "LeaseStore",
    "RunStore",
    "SQLStore",
    "SnapshotStore",
    "Store",
    "ViewStore",
    "open_store",
    "store_for",
]
