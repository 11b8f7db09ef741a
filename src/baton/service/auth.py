"""API tokens: ``baton tokens create`` prints a secret once and the store keeps only its SHA-256. Every
``/v1`` route depends on :func:`require` with the scope it needs (``read`` for GETs, ``run`` to submit
and cancel, ``admin`` for reset, sweep and tokens; admin ⊃ run ⊃ read): a missing, unknown or revoked
token is 401, too small a scope 403. :func:`issue_token` and :func:`revoke_token` are what ``baton
tokens`` and the admin API both call: each is audited with its actor (the local user on the CLI, the
calling token's name over HTTP), never with the secret. A name already taken (a revoked token's too) is
:class:`NameTaken`: 409 over HTTP, a bad input (exit 2) on the CLI.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from baton.caps.model import Caps
from baton.caps.model import Scope as CapScope
from baton.caps.tables import cap_store
from baton.errors import BadInput, NotFound
from baton.service.fields import check_token_name
from baton.service.records import TokenRecord, TokenScope
from baton.service.tables import token_store
from baton.sessions.manage import local_actor
from baton.store.base import AuditStore, Transactions

PREFIX = "baton_"
_bearer = HTTPBearer(auto_error=False, description="an API token from `baton tokens create`")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class NameTaken(BadInput):
    """A token of that name exists (revoked or not): the request conflicts with what is stored."""


class TokenAdmin(Transactions, AuditStore, Protocol):
    """What issuing and revoking tokens needs of the store: the tokens, and the audit of who did it."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(store: Transactions, name: str, scope: TokenScope) -> str:
    """Store a new token's hash; returns the secret (shown once)."""
    check_token_name(name)
    tokens = token_store(store)
    if tokens.get_token(name) is not None:
        raise NameTaken(f"a token named {name!r} exists; revoke it or choose another name")
    secret = PREFIX + secrets.token_urlsafe(32)
    tokens.add_token(TokenRecord(name, scope, digest(secret), time.time()))
    return secret


def issue_token(
    store: TokenAdmin, name: str, scope: TokenScope, actor: str | None = None, caps: Caps | None = None
) -> str:
    """Create a token and audit it (``token-create``; the actor defaults to the local user, as a
    CLI reset's does); returns the secret, which nothing keeps. ``caps``: what the runs it submits may
    spend together (:mod:`baton.caps`; checked already), stored with it."""
    secret = create_token(store, name, scope)
    who = actor or local_actor()
    if caps is not None and caps.set():
        cap_store(store).set_caps(CapScope.TOKEN, name, caps, who)
    detail = {"scope": scope.value, **({"caps": caps.to_json()} if caps is not None and caps.set() else {})}
    store.audit("token-create", name, who, detail)
    return secret


def revoke_token(store: TokenAdmin, name: str, actor: str | None = None) -> TokenRecord:
    """Revoke a token by name (audited ``token-revoke``); NotFound when there is none. Revoking a
    revoked token changes nothing and returns it as it is."""
    tokens = token_store(store)
    token = tokens.get_token(name)
    if token is None:
        raise NotFound(f"no token named {name!r}")
    if token.revoked_at is None:
        tokens.revoke_token(name, time.time())
        store.audit("token-revoke", name, actor or local_actor(), {"scope": token.scope.value})
        token = tokens.get_token(name) or token
    return token


def valid_token(store: Transactions, secret: str) -> TokenRecord | None:
    """The stored token whose secret this is, unless unknown or revoked."""
    token = token_store(store).find_token(digest(secret))
    return None if token is None or token.revoked_at is not None else token


@dataclass(frozen=True)
class Actor:
    """Who called: the token's name and scope (``webhook:<forge>:<delivery>`` for webhooks)."""

    name: str
    scope: TokenScope


def require(scope: TokenScope) -> Callable[..., Actor]:
    """A FastAPI dependency: the caller's token must exist, be unrevoked and allow ``scope``."""

    def check(request: Request, credentials: Bearer) -> Actor:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        token = valid_token(request.app.state.store, credentials.credentials)
        if token is None:
            raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        if not token.scope.allows(scope):
            raise HTTPException(
                403, f"token {token.name!r} has scope {token.scope.value}; this needs {scope.value}"
            )
        return Actor(token.name, token.scope)

    return check
