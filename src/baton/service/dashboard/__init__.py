"""The web dashboard of ``baton serve``: server-rendered pages (Jinja2) over the same store the API reads,
a little plain JavaScript for the live parts (Server-Sent Events), every asset served from ``/static``
(no CDN, no build step). Pages: ``/`` (disk use and counters), ``/sessions`` and ``/session`` (with
reset), ``/runs`` and ``/runs/<id>``, ``/plans``, ``/deliveries``, ``/audit``; sign-in at ``/login``
with an API token (:mod:`.web` explains the cookie and the CSRF check). Errors on a page are pages, and
so is a URL that is nothing here asked for by a browser (``Accept: text/html``); under ``/v1/`` and
``/webhooks/`` it is the API's JSON 404. What each page shows: docs/service.md (Dashboard).
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from baton.errors import BatonError, Busy
from baton.service.dashboard import lists, live, overview, runs, sessions, signin
from baton.service.dashboard.web import HERE, Forbidden, SignInRequired, page, viewer_of, with_headers
from baton.service.errors import (
    baton_error_handler,
    http_error_handler,
    status_of,
    validation_error_handler,
    validation_words,
)

PAGES = ("/login", "/logout", "/sessions", "/session", "/runs", "/plans", "/deliveries", "/audit", "/quotas")
STREAMS = "/ui/stream/"
API = ("/v1/", "/webhooks/")  # the API's paths: JSON errors, whoever asks


def install(app: FastAPI) -> None:
    """Mount the pages, the live streams and ``/static`` on the service's app."""
    for module in (signin, overview, sessions, runs, lists, live):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.add_exception_handler(SignInRequired, _sign_in)  # type: ignore[arg-type]
    app.add_exception_handler(Forbidden, _forbidden)  # type: ignore[arg-type]
    app.add_exception_handler(BatonError, _baton_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _bad_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]


def is_page(request: Request) -> bool:
    path = request.url.path
    return path == "/" or any(path == p or path.startswith(p + "/") for p in PAGES)


async def _sign_in(request: Request, exc: SignInRequired) -> Response:
    if not is_page(request):
        return with_headers(Response("sign in first", status_code=401))
    return with_headers(RedirectResponse("/login?" + urlencode({"next": exc.next_path}), status_code=303))


async def _forbidden(request: Request, exc: Forbidden) -> Response:
    return page(request, "error.html", viewer_of(request), status=403, title="Forbidden", message=str(exc))


def wants_page(request: Request) -> bool:
    """A browser's request outside the API: it gets an HTML page for an error."""
    path = request.url.path
    return path != "/v1" and not path.startswith(API) and "text/html" in request.headers.get("accept", "")


async def _http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404 and wants_page(request):
        message = f"There is no page at {request.url.path}."
        return page(request, "error.html", viewer_of(request), status=404, title="Not found", message=message)
    return await http_error_handler(request, exc)


async def _baton_error(request: Request, exc: BatonError) -> Response:
    if not is_page(request):
        return await baton_error_handler(request, exc)
    status = status_of(exc)
    titles = {404: "Not found", 409: "Busy" if isinstance(exc, Busy) else "Conflict", 422: "Bad request"}
    title = titles.get(status, "Error")
    return page(request, "error.html", viewer_of(request), status=status, title=title, message=str(exc))


async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
    if not is_page(request):
        return await validation_error_handler(request, exc)
    message = validation_words(exc)
    return page(request, "error.html", viewer_of(request), status=400, title="Bad request", message=message)
