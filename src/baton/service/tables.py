"""The service room's data in the store: its tables (``tokens``, ``web_sessions``), its roles
(:class:`TokenStore`, :class:`WebSessionStore`) and their implementation in the SQL store's own
transactions (:func:`token_store`, :func:`web_session_store`). API tokens are kept as the SHA-256 of
their secret, never the secret (:mod:`baton.service.auth` makes and checks them); a dashboard sign-in as
the SHA-256 of the cookie's random session id, the API token that signed in, and when it expires or was
revoked (sign-out), so signing out revokes something (:mod:`baton.service.dashboard.web`). The tables
are stated on the store's one :data:`~baton.store.schema.metadata` and built, like every table, by the
central append-only list in :mod:`baton.store.migrations`; the store knows nothing of tokens.
"""

from __future__ import annotations

from typing import Any, Protocol

import sqlalchemy as sa

from baton.service.records import TokenRecord, TokenScope
from baton.store.base import Transactions
from baton.store.schema import Real, Text, metadata

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("name", Text, primary_key=True),
    sa.Column("scope", Text, nullable=False),
    sa.Column("digest", Text, nullable=False, unique=True),
    sa.Column("created_at", Real, nullable=False),
    sa.Column("revoked_at", Real),
)

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("digest", Text, primary_key=True),  # SHA-256 of the cookie's random session id
    sa.Column("token_name", Text, nullable=False),  # the API token that signed in
    sa.Column("created_at", Real, nullable=False),
    sa.Column("expires_at", Real, nullable=False),
    sa.Column("revoked_at", Real),
)


class TokenStore(Protocol):
    """The service's API tokens (their hashes)."""

    def add_token(self, token: TokenRecord) -> None: ...
    def get_token(self, name: str) -> TokenRecord | None: ...
    def find_token(self, digest: str) -> TokenRecord | None: ...
    def list_tokens(self) -> list[TokenRecord]: ...
    def revoke_token(self, name: str, at: float) -> bool: ...


class WebSessionStore(Protocol):
    """The dashboard's sign-ins, by the SHA-256 of the cookie's random session id."""

    def add_web_session(self, digest: str, token_name: str, created_at: float, expires_at: float) -> None: ...
    def web_session_token(self, digest: str, now: float) -> str | None:
        """The token that signed the session in, unless unknown, expired or revoked."""
        ...

    def revoke_web_session(self, digest: str, at: float) -> bool: ...


def token_store(store: Transactions) -> TokenStore:
    """The tokens' role over ``store`` (cheap: it holds nothing but the store)."""
    return SQLTokens(store)


def web_session_store(store: Transactions) -> WebSessionStore:
    """The sign-ins' role over ``store``."""
    return SQLWebSessions(store)


class SQLTokens:
    """:class:`TokenStore` in the SQL store's transactions."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    def add_token(self, token: TokenRecord) -> None:
        values = {**token.__dict__, "scope": token.scope.value}
        with self._store.transaction() as conn:
            conn.execute(sa.insert(tokens).values(values))

    def get_token(self, name: str) -> TokenRecord | None:
        with self._store.reading() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.name == name)).first()
        return _token(row._mapping) if row else None

    def find_token(self, digest: str) -> TokenRecord | None:
        with self._store.reading() as conn:
            row = conn.execute(sa.select(tokens).where(tokens.c.digest == digest)).first()
        return _token(row._mapping) if row else None

    def list_tokens(self) -> list[TokenRecord]:
        with self._store.transaction() as conn:
            return [_token(r._mapping) for r in conn.execute(sa.select(tokens).order_by(tokens.c.name))]

    def revoke_token(self, name: str, at: float) -> bool:
        with self._store.transaction() as conn:
            result = conn.execute(
                sa.update(tokens)
                .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            return bool(result.rowcount)


class SQLWebSessions:
    """:class:`WebSessionStore` in the SQL store's transactions."""

    def __init__(self, store: Transactions) -> None:
        self._store = store

    def add_web_session(self, digest: str, token_name: str, created_at: float, expires_at: float) -> None:
        """Store a sign-in; the sessions that have expired by ``created_at`` go (nothing else prunes them)."""
        with self._store.transaction() as conn:
            conn.execute(sa.delete(web_sessions).where(web_sessions.c.expires_at < created_at))
            conn.execute(
                sa.insert(web_sessions).values(
                    digest=digest, token_name=token_name, created_at=created_at, expires_at=expires_at
                )
            )

    def web_session_token(self, digest: str, now: float) -> str | None:
        """The name of the token that signed in the session, unless unknown, expired or revoked."""
        query = sa.select(web_sessions.c.token_name).where(
            web_sessions.c.digest == digest,
            web_sessions.c.revoked_at.is_(None),
            web_sessions.c.expires_at > now,
        )
        with self._store.transaction() as conn:
            name = conn.execute(query).scalar()
        return None if name is None else str(name)

    def revoke_web_session(self, digest: str, at: float) -> bool:
        """Sign a session out; False when it was unknown or revoked already."""
        query = (
            sa.update(web_sessions)
            .where(web_sessions.c.digest == digest, web_sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        with self._store.transaction() as conn:
            return bool(conn.execute(query).rowcount)


def _token(row: Any) -> TokenRecord:
    data = dict(row)
    data["scope"] = TokenScope(data["scope"])
    return TokenRecord(**data)
