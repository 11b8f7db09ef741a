"""How the service answers an error: one handler turns baton's own errors into HTTP, and one table
documents the codes on every operation.

``{"detail": "<the CLI's message>"}`` with NotFound 404, BadInput 422, Busy 409, DiskFull 507,
RemoteError 502, any other BatonError 500 (and 401/403 from :mod:`baton.service.auth`). A body or
query that fails its model is a 422 in the same shape and words (``timeout takes a number, not
'abc'``), never pydantic's list of errors.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from baton.errors import (
    BadInput,
    BatonError,
    Busy,
    DiskFull,
    NotFound,
    RemoteError,
    Unconfined,
    invalid_value,
)


class Problem(BaseModel):
    """An error: the message the CLI would print."""

    detail: str


# Most specific first: NotFound is a BadInput.
STATUS: tuple[tuple[type[BatonError], int], ...] = (
    (NotFound, 404),
    (BadInput, 422),
    (Busy, 409),
    (DiskFull, 507),
    (RemoteError, 502),
    (Unconfined, 503),
)
ERROR_DOCS: dict[int | str, str] = {
    400: "the body could not be parsed (FastAPI)",
    401: "missing, unknown or revoked token",
    403: "the token's scope is too small",
    404: "no such session, run or token",
    409: "the key is busy: a run holds it",
    422: "bad input (the message says what); nothing was written",
    500: "an error baton did not expect",
    502: "a git remote could not be reached",
    507: "no space left for BATON_HOME",
}


# Documented on every operation of those groups (a route's own entries win); webhooks answer 401 for a
# bad signature and share the handler.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "description": text} for code, text in ERROR_DOCS.items()
}


def status_of(exc: BatonError) -> int:
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


async def baton_error_handler(request: Request, exc: BatonError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_words(exc)}, status_code=422)


def validation_words(exc: RequestValidationError) -> str:
    """What was wrong with a request, field by field, in baton's words."""
    return "; ".join(invalid_value(_field(error["loc"]), error) for error in exc.errors())


def _field(loc: tuple[int | str, ...]) -> str:
    """``("body", "timeout")`` → ``timeout``; the body as a whole (``("body",)``) → ``the request body``."""
    return ".".join(map(str, loc[1:])) or f"the request {loc[0]}"


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The same documentation as plain JSON content, for a route whose success is not JSON (the event
    stream): otherwise OpenAPI would list its errors under ``text/event-stream``."""
    schema = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
    return {
        code: {"description": ERROR_DOCS[code], "content": {"application/json": {"schema": schema}}}
        for code in codes
    }
