"""Routes: sign in with an API token (``/login``: a new session, :mod:`.web`), sign out (``/logout``:
the session revoked in the store, not only the cookie cleared)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from baton.service.auth import valid_token
from baton.service.dashboard.web import (
    COOKIE,
    COOKIE_AGE,
    FORM_LIMIT,
    Viewer,
    check_origin,
    form_of,
    page,
    safe_next,
    sign_in,
    sign_out,
    signed_in,
    viewer_of,
    with_headers,
)
from baton.service.records import TokenScope

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    if viewer_of(request) is not None:
        return with_headers(RedirectResponse(safe_next(next), status_code=303))
    return page(request, "login.html", None, next=safe_next(next), error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    check_origin(request)
    body = await request.body()
    fields = parse_qs(body[:FORM_LIMIT].decode("utf-8", "replace"), keep_blank_values=True)
    secret = (fields.get("token") or [""])[0].strip()
    target = safe_next((fields.get("next") or ["/"])[0])
    token = valid_token(request.app.state.store, secret) if secret else None
    if token is None:
        error = "That token is unknown or revoked." if secret else "Enter an API token."
        return page(request, "login.html", None, status=401, next=target, error=error)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        sign_in(request.app.state.store, token),
        max_age=COOKIE_AGE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",  # a trusted proxy's X-Forwarded-Proto included (uvicorn)
    )
    return with_headers(response)


@router.post("/logout")
async def logout(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    await form_of(request, viewer, TokenScope.READ)
    sign_out(request.app.state.store, request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return with_headers(response)
