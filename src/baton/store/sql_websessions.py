"""The dashboard's sign-ins (``web_sessions``): the browser's cookie holds a random session id, the store
only its SHA-256, the API token that signed in, and when it expires or was revoked (sign-out). The
token itself never leaves the sign-in form, so signing out revokes something: a copied cookie stops
working at once. The token is still looked up on every request (:mod:`baton.service.dashboard.web`),
so revoking the token signs out each of its sessions too.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from baton.store.schema import web_sessions


class WebSessionTables:
    """Mixed into :class:`baton.store.sql.SQLStore`, which provides ``_tx``."""

    def _tx(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def add_web_session(self, digest: str, token_name: str, created_at: float, expires_at: float) -> None:
        """Store a sign-in; the sessions that have expired by ``created_at`` go (nothing else prunes them)."""
        with self._tx() as conn:
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
        with self._tx() as conn:
            name = conn.execute(query).scalar()
        return None if name is None else str(name)

    def revoke_web_session(self, digest: str, at: float) -> bool:
        """Sign a session out; False when it was unknown or revoked already."""
        query = (
            sa.update(web_sessions)
            .where(web_sessions.c.digest == digest, web_sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        with self._tx() as conn:
            return bool(conn.execute(query).rowcount)
