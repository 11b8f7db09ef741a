"""What every dashboard page shares: the templates, the signed-in viewer, CSRF, and security headers. The
API token typed into the sign-in form goes no further: the browser gets a random session id in the
``baton_session`` cookie (:func:`sign_in`), the store only its SHA-256, and every request also looks the
session's token up as the API does (:func:`viewer_of`). Every form that changes state carries a CSRF
value derived from the session (:func:`csrf_for`), checked with its ``Origin`` and the viewer's scope
before anything is read or written (:func:`form_of`); every page carries :data:`HEADERS`. What this
guarantees: docs/security.md (The service and its dashboard).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from baton.agents import clean_error
from baton.environment import parse, split_note
from baton.service.auth import digest
from baton.service.records import TokenRecord, TokenScope
from baton.service.tables import token_store, web_session_store
from baton.settings import Settings, format_size
from baton.store import Store

HERE = Path(__file__).parent
COOKIE = "baton_session"
COOKIE_AGE = 8 * 3600  # a sign-in lasts a working day
FORM_LIMIT = 64 * 1024  # bytes of a dashboard form; its fields are a key and a scope
_CSRF_LABEL = b"baton dashboard csrf v1"
# A strict Content-Security-Policy: scripts, styles and images only from baton itself (no inline script, no
# CDN), no framing; pages are never cached.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Viewer:
    """The signed-in token: its name and scope, and the CSRF value of its forms."""

    name: str
    scope: TokenScope
    csrf: str

    @property
    def admin(self) -> bool:
        return self.scope.allows(TokenScope.ADMIN)


class SignInRequired(Exception):
    """No valid sign-in: pages redirect to /login, streams answer 401."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class Forbidden(Exception):
    """A POST without a valid CSRF value, or by a token without the scope: 403."""


def csrf_for(session_id: str) -> str:
    """The CSRF value of the session's forms: HMAC-SHA256(session id, a fixed label). Only a page that
    knows the session can make it, it never reveals the session id, and it needs no server-side state
    of its own."""
    return hmac.new(session_id.encode("utf-8", "surrogatepass"), _CSRF_LABEL, hashlib.sha256).hexdigest()


def sign_in(store: Store, token: TokenRecord) -> str:
    """Start a session for ``token``; returns its id (the cookie's value), which nothing keeps: the
    store has only its SHA-256 (:mod:`baton.service.tables`)."""
    session_id = secrets.token_urlsafe(32)
    now = time.time()
    web_session_store(store).add_web_session(digest(session_id), token.name, now, now + COOKIE_AGE)
    return session_id


def sign_out(store: Store, session_id: str) -> None:
    """Revoke the session, so a copied cookie stops working."""
    web_session_store(store).revoke_web_session(digest(session_id), time.time())


def state(request: Request) -> tuple[Settings, Store]:
    return request.app.state.settings, request.app.state.store


def viewer_of(request: Request) -> Viewer | None:
    """The signed-in viewer: the cookie's session, live (not expired, not signed out), of a token that
    is still valid; None otherwise. The token is looked up on every request, as the API does, so
    revoking it signs its browsers out at once."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    store: Store = request.app.state.store
    name = web_session_store(store).web_session_token(digest(session_id), time.time())
    token = token_store(store).get_token(name) if name else None
    if token is None or token.revoked_at is not None:
        return None
    return Viewer(token.name, token.scope, csrf_for(session_id))


def signed_in(request: Request) -> Viewer:
    """Dependency of every page: the viewer, or a redirect to the sign-in page."""
    viewer = viewer_of(request)
    if viewer is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return viewer


def check_origin(request: Request) -> None:
    """A browser's POST from another site's page names that site in ``Origin``: refused, and so is
    ``null`` (a sandboxed frame, a ``data:`` page: never this site's own form). This also covers the
    sign-in form, which has no token to derive a CSRF value from: it guards against logging a victim
    into another token."""
    origin = request.headers.get("origin")
    if origin and (origin == "null" or urlsplit(origin).netloc != request.headers.get("host")):
        raise Forbidden(f"a form posted from {origin} is refused")


async def form_of(request: Request, viewer: Viewer, scope: TokenScope) -> dict[str, str]:
    """A state-changing form's fields, after its origin, CSRF value and the viewer's scope are checked
    (each failure a 403, before anything is read or written)."""
    check_origin(request)
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise Forbidden("form too large")
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    if not hmac.compare_digest(fields.get("csrf", ""), viewer.csrf):
        raise Forbidden("missing or wrong CSRF token: reload the page and try again")
    if not viewer.scope.allows(scope):
        raise Forbidden(f"token {viewer.name!r} has scope {viewer.scope.value}; this needs {scope.value}")
    return fields


def safe_next(path: str | None) -> str:
    """Only a path of this site (never ``//host`` or a URL) is a place to go after sign-in."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


# -- rendering ---------------------------------------------------------------------------------------


def size(n: int | None) -> str:
    return format_size(n, "—")


def ago(ts: float | None) -> str:
    if not ts:
        return "—"
    seconds = time.time() - ts
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= length:
            return f"{seconds / length:.0f} {unit} ago"
    return f"{max(seconds, 0):.0f} s ago"


def when(ts: float | None) -> str:
    return "—" if not ts else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def duration(value: float | None) -> str:
    """A span for people: seconds, minutes, hours or days."""
    if value is None:
        return "—"
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= length:
            return f"{value / length:.1f} {unit}"
    return f"{value:.0f} s"


def clean_error_of(text: str, agent: str) -> str:
    """The ``clean_error`` filter: ``text`` without the agent CLI's noise lines (:func:`clean_error`)."""
    return clean_error(agent, text)


def http_url(value: object) -> str | None:
    """The ``http_url`` filter: ``value`` when it is an http(s) address with a host (something a
    forge sent, shown as a link), else None — never a ``javascript:`` or ``data:`` link."""
    if not isinstance(value, str):
        return None
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None


def key_query(agent: str, repo: str, thread: str, **extra: str) -> str:
    return urlencode({"agent": agent, "repo": repo, "thread": thread, **extra})


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(
    size=size,
    ago=ago,
    when=when,
    seconds=seconds,
    duration=duration,
    q=quote,
    clean_error=clean_error_of,
    http_url=http_url,
)
templates.env.globals.update(key_query=key_query, split_note=split_note, setup_failure=parse)


def page(
    request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request, name, {"viewer": viewer, "path": request.url.path, **context}, status_code=status
    )
    response.headers.update(HEADERS)
    return response


def with_headers(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response
