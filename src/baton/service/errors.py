"""How the service answers an error: one handler turns baton's own errors into HTTP, and one table
documents the codes on every operation.

``{"detail": "<the CLI's message>"}`` with NotFound 404, BadInput 422, Busy 409, DiskFull 507,
RemoteError 502, any other BatonError 500 (and 401/403 from :mod:`baton.service.auth`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from baton.errors import BadInput, BatonError, Busy, DiskFull, NotFound, RemoteError, Unconfined


class Problem(BaseModel):
    """An error: the message the CLI would print (FastAPI's own 422 gives a list of field errors)."""

    detail: str | list[dict[str, object]]


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


def json_errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The same documentation as plain JSON content, for a route whose success is not JSON (the event
    stream): otherwise OpenAPI would list its errors under ``text/event-stream``."""
    detail = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]}
    schema = {"type": "object", "properties": {"detail": detail}, "required": ["detail"]}
    return {
        code: {"description": ERROR_DOCS[code], "content": {"application/json": {"schema": schema}}}
        for code in codes
    }
