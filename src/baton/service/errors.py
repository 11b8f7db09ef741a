"""How the service answers an error: one handler turns baton's own errors into HTTP, and one table
documents the codes on every operation. Each is ``{"detail": "<the CLI's message>"}``, its status by the
error's class (:func:`status_of`); a body or query that fails its model is a 422 in the same shape and
words (a field's own check, :mod:`baton.service.fields`, in the CLI's words), never pydantic's list of
errors; a method a path does not have is 405 with ``Allow`` naming every method the path has
(:func:`http_error_handler`). The codes and what each means: docs/service.md (Tokens and errors).
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Mount

from baton.errors import (
    BadInput,
    BatonError,
    BranchConflict,
    Busy,
    DiskFull,
    NotFound,
    NotWaiting,
    RemoteError,
    Unconfined,
)
from baton.runner.runids import Ambiguous
from baton.service.auth import NameTaken
from baton.service.fields import error_words


class Problem(BaseModel):
    """An error: the message the CLI would print."""

    detail: str


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# Most specific first: NotFound, NameTaken and Ambiguous are BadInputs.
STATUS: tuple[tuple[type[BatonError], int], ...] = (
    (NotFound, 404),
    (NameTaken, 409),
    (Ambiguous, 409),
    (NotWaiting, 409),
    (BadInput, 422),
    (Busy, 409),
    (BranchConflict, 409),
    (DiskFull, 507),
    (RemoteError, 502),
    (Unconfined, 503),
)
ERROR_DOCS: dict[int | str, str] = {
    400: "the body could not be parsed (FastAPI)",
    401: "missing, unknown or revoked token",
    403: "the token's scope is too small",
    404: "no such session, run or token",
    409: "a conflict with what is stored: a run holds the key (or another key's run writes its branch, or "
    "the key's worktree cannot take its branch back from another key's), a name is taken, a short id fits "
    "several runs, an answer to a thread that waits on no question",
    413: "the request body is larger than 32 MiB",
    422: "bad input (the message says what); nothing was written",
    500: "an error baton did not expect",
    502: "a git remote could not be reached",
    503: "BATON_CONFINE=required and agents cannot be walled in here: no run starts",
    507: "no space left for BATON_HOME",
}


# Documented on every operation of those groups (a route's own entries win); webhooks answer 401 for a
# bad signature and share the handler. 503 is POST /v1/runs's own.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "description": text} for code, text in ERROR_DOCS.items() if code != 503
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documentation of ``codes`` for one route's ``responses``."""
    return {code: {"model": Problem, "description": ERROR_DOCS[code]} for code in codes}


def status_of(exc: BatonError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


async def baton_error_handler(request: Request, exc: BatonError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_words(exc)}, status_code=422)


def validation_words(exc: RequestValidationError) -> str:
    """What was wrong with a request, field by field, in baton's words (a field's own check's message
    as it is: it names the field)."""
    return "; ".join(_words(error) for error in exc.errors())


def _words(error: Any) -> str:
    if error["type"] == "json_invalid":
        # FastAPI puts the character offset of a parse error where a field's name goes: ("body", 9)
        # would read "9 is not valid JSON"
        where = f" at character {error['loc'][1]}" if len(error["loc"]) > 1 else ""
        reason = (error.get("ctx") or {}).get("error", "unreadable")
        return f"the request body is not valid JSON ({reason}{where})"
    if error["type"] in _NOT_AN_OBJECT and len(error["loc"]) == 1 and isinstance(error.get("input"), bytes):
        # a body not sent as JSON (curl -d alone says application/x-www-form-urlencoded): FastAPI
        # hands over its bytes unread
        return f"the request {error['loc'][0]} must be sent as JSON (Content-Type: application/json)"
    if error["type"] in _NOT_AN_OBJECT and len(error["loc"]) == 1:
        # valid JSON that is not an object (9, [1], "x", null): say what the body must be, in JSON
        given = json.dumps(error.get("input"), default=str)
        shown = given if len(given) <= 60 else given[:57] + "..."
        return f"the request {error['loc'][0]} must be a JSON object, not {shown}"
    return error_words(_field(error["loc"]), error)


_NOT_AN_OBJECT = frozenset({"model_type", "model_attributes_type", "dict_type"})


def _field(loc: tuple[int | str, ...]) -> str:
    """``("body", "timeout")`` → ``timeout``; the body as a whole (``("body",)``) → ``the request body``."""
    return ".".join(map(str, loc[1:])) or f"the request {loc[0]}"


async def http_error_handler(request: Request, exc: HTTPException) -> Response:
    """FastAPI's answer to an HTTPException, with a 405's ``Allow`` naming every method of the path:
    Starlette names only those of the first route that matched the path, and a path here often has a
    route per method."""
    methods = allowed_methods(request.app.router.routes, request.scope) if exc.status_code == 405 else []
    if methods:
        exc = HTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": ", ".join(methods)})
    return await http_exception_handler(request, exc)


def allowed_methods(routes: list[BaseRoute], scope: MutableMapping[str, Any]) -> list[str]:
    """The methods the request's path takes: each method a route matches fully with that path (a mount
    takes any method, and says itself what it does not)."""
    return [
        method
        for method in METHODS
        if any(
            not isinstance(route, Mount) and route.matches({**scope, "method": method})[0] == Match.FULL
            for route in routes
        )
    ]


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The same documentation as plain JSON content, for a route whose success is not JSON (the event
    stream): otherwise OpenAPI would list its errors under ``text/event-stream``."""
    schema = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
    return {
        code: {"description": ERROR_DOCS[code], "content": {"application/json": {"schema": schema}}}
        for code in codes
    }
