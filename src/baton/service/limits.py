"""A bound on request bodies, the one place that enforces it: a request body is read into memory (a
prompt, a webhook payload), so one larger than its route's bound is refused with 413 before it is
read — by its ``Content-Length``, or, for a chunked body, as soon as what arrived passes the bound.
Webhooks get GitHub's own cap (:data:`WEBHOOK_BODY`), everything else :data:`MAX_BODY`."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 32 * 1024 * 1024  # far above any prompt an agent CLI takes (Codex: 1 M characters)
WEBHOOK_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB
PREFIXES = (("/webhooks/", WEBHOOK_BODY),)


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = next((n for prefix, n in PREFIXES if scope["path"].startswith(prefix)), MAX_BODY)
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                await self._refuse(send, limit)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        messages = await _read_chunked(receive, limit)
        if messages is None:
            await self._refuse(send, limit)
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps({"detail": f"the request body is larger than {limit // 2**20} MiB"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _read_chunked(receive: Receive, limit: int) -> list[Message] | None:
    """A chunked body, whole, or None as soon as it passes the bound (the app would read it all
    anyway; here it never holds more than the bound)."""
    messages, seen = [], 0
    while True:
        message = await receive()
        messages.append(message)
        seen += len(message.get("body", b""))
        if seen > limit:
            return None
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
