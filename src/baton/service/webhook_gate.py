"""The webhooks' fast path: ``POST /webhooks/{kind}`` answered by plain ASGI, before FastAPI's router,
its route matching over every route and its per-request machinery; the kind is the registry's
(:data:`baton.service.webhooks.READERS`: a kind it does not know is a 404 naming those it does), the gates
are :func:`baton.service.webhooks.acknowledge`'s (the FastAPI route stays for the OpenAPI document and
answers alike). Under 50 deliveries at once each request's own cost is what the last one waits for.
Inside :class:`baton.service.limits.BodyLimit`: the body is bounded before it is read.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from baton.errors import BatonError
from baton.service.errors import status_of
from baton.service.webhooks import READERS, acknowledge, unknown_kind

PREFIX = "/webhooks/"


class WebhookGate:
    """Takes a webhook's POST; anything else goes on to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = _kind(scope)
        if kind is None:
            await self.app(scope, receive, send)
            return
        reader = READERS.get(kind)
        if reader is None:
            await _send(send, 404, {"detail": unknown_kind(kind)}, [])
            return
        body = await _body(receive)
        if body is None:  # the sender went away
            return
        client = scope["client"][0] if scope.get("client") else "?"
        headers: list[tuple[bytes, bytes]] = []
        try:
            status, answer = await acknowledge(scope["app"].state, reader, Headers(scope=scope), body, client)
        except HTTPException as exc:
            status, answer = exc.status_code, {"detail": exc.detail}
            headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        except BatonError as exc:  # the store failed (as baton.service.errors answers it)
            status, answer = status_of(exc), {"detail": str(exc)}
        await _send(send, status, answer, headers)


def _kind(scope: Scope) -> str | None:
    """The kind a webhook's POST names (``/webhooks/<kind>``); None for any other request."""
    if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith(PREFIX):
        return None
    kind: str = scope["path"].removeprefix(PREFIX)
    return kind if kind and "/" not in kind else None


async def _body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, answer: dict[str, Any], extra: list[tuple[bytes, bytes]]) -> None:
    """As Starlette's JSONResponse encodes it."""
    data = json.dumps(answer, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    headers = [(b"content-length", str(len(data)).encode()), (b"content-type", b"application/json"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
