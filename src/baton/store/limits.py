"""The store's time limits (:class:`StoreLimits`): no wait on the store outlives its moment, so one frozen
process (a paused VM, a container throttled to zero, SIGSTOP, a swap storm, a network partition that
leaves its session open) can never hold a key, a branch or a duty on every other machine. PostgreSQL
ends a transaction left idle, a statement waits a bounded time for a lock (SQLite's busy wait too) and
runs a bounded time, and TCP keepalive drops a peer cut off; all of it travels in the connection's
startup packet (``options``), at no round trip, and what a store URL says itself wins.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa

from baton.settings import STORE_LIMITS, Settings

__all__ = ["CONNECT_TIMEOUT", "MIGRATION_LOCK_WAIT", "StoreLimits"]

CONNECT_TIMEOUT = 10  # seconds: an unreachable host fails in seconds, not after the OS's TCP timeout
KEEPALIVE_PROBES = 3
# Machines that start together wait for the first to migrate (seconds); one frozen mid-migration loses
# its transaction, and the migrations' lock with it, after ``idle`` seconds.
MIGRATION_LOCK_WAIT = 120.0


@dataclass(frozen=True)
class StoreLimits:
    """How long baton waits on its store, and how long its store keeps an idle transaction for it
    (seconds; the settings ``store_lock_timeout``, ``store_idle_timeout``, ``store_statement_timeout``,
    ``store_keepalive``):

    - ``lock``: a statement waits at most this long for a lock another connection holds (PostgreSQL's
      ``lock_timeout``, SQLite's busy wait), then fails with :class:`~baton.errors.StoreBusy`, which
      its caller tries again as it would a store that was away. A lease's try never waits for its row
      (``NOWAIT``): it tries again on its own schedule, within its ``--wait``.
    - ``idle``: PostgreSQL ends a session whose transaction sits idle this long
      (``idle_in_transaction_session_timeout``): a holder frozen between a statement and its commit
      loses that transaction and its row locks then, not when TCP notices hours later.
    - ``statement``: a statement runs at most this long (``statement_timeout``), but for the migrations
      and the bulk writes (transcript chunks, checkpoint bundles), which lift it for their transaction.
    - ``keepalive``: TCP keepalive from both ends (libpq's ``keepalives_*``, the server's
      ``tcp_keepalives_*``) and a TCP user timeout: a peer the network cut off is dropped within about
      twice this.

    Settings a store URL gives itself (``?options=-c lock_timeout=...``, ``?keepalives_idle=...``) win."""

    lock: float
    idle: float
    statement: float
    keepalive: float

    @classmethod
    def of(cls, settings: Settings) -> StoreLimits:
        return cls(*(float(getattr(settings, name)) for name in STORE_LIMITS))

    @classmethod
    def default(cls) -> StoreLimits:
        """The settings' own defaults (a store opened without settings: tests, the SDK's session store)."""
        stated = {f.name: f.default for f in fields(Settings)}
        return cls(*(float(stated[name]) for name in STORE_LIMITS))  # type: ignore[arg-type]

    def postgres_args(self, url: sa.URL) -> dict[str, Any]:
        """psycopg's connect arguments for ``url``: the limits in ``options`` (before the URL's own, so
        a ``-c`` the URL gives wins), the client's keepalives and connect timeout unless the URL names
        them."""
        interval = max(1, round(self.keepalive / KEEPALIVE_PROBES))
        server = {
            "lock_timeout": _ms(self.lock),
            "idle_in_transaction_session_timeout": _ms(self.idle),
            "statement_timeout": _ms(self.statement),
            "tcp_keepalives_idle": max(1, round(self.keepalive)),
            "tcp_keepalives_interval": interval,
            "tcp_keepalives_count": KEEPALIVE_PROBES,
            "tcp_user_timeout": _ms(2 * self.keepalive),
        }
        own = url.query.get("options", "")
        given = " ".join(own) if isinstance(own, tuple) else own
        ours = " ".join(f"-c {name}={value}" for name, value in server.items())
        args: dict[str, Any] = {"options": f"{ours} {given}".strip()}
        client = {
            "connect_timeout": CONNECT_TIMEOUT,
            "keepalives": 1,
            "keepalives_idle": max(1, round(self.keepalive)),
            "keepalives_interval": interval,
            "keepalives_count": KEEPALIVE_PROBES,
            "tcp_user_timeout": _ms(2 * self.keepalive),
        }
        args.update({k: v for k, v in client.items() if k not in url.query})
        return args


def _ms(seconds: float) -> int:
    """Milliseconds, at least 1 (PostgreSQL reads 0 as "no limit")."""
    return max(1, round(seconds * 1000))
