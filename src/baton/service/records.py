"""The service room's records: API tokens (:class:`TokenRecord`, the SHA-256 of the secret, never the
secret) and their scopes. Only the service (its auth, routes and dashboard) and the CLI above it use
them, so they live here rather than on the ground floor's :mod:`baton.models`; their table and store
role are in :mod:`baton.service.tables`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from baton.models import iso


class TokenScope(StrEnum):
    """What an API token may do; each scope includes the ones below it."""

    READ = "read"  # every GET
    RUN = "run"  # submit and cancel runs
    ADMIN = "admin"  # reset, sweep, tokens

    def allows(self, needed: TokenScope) -> bool:
        order = [TokenScope.READ, TokenScope.RUN, TokenScope.ADMIN]
        return order.index(self) >= order.index(needed)


@dataclass
class TokenRecord:
    """An API token as stored: its name, scope and the SHA-256 of the secret (never the secret)."""

    name: str
    scope: TokenScope
    digest: str
    created_at: float
    revoked_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope.value,
            "created_at": iso(self.created_at),
            "revoked_at": iso(self.revoked_at),
        }
