"""A bound on request bodies: a request body is read into memory (a prompt, a webhook payload), so
one larger than :data:`MAX_BODY` is refused with 413 before it is read — by its ``Content-Length``, or,
for a chunked body, as soon as what arrived passes the bound."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 32 * 1024 * 1024  # far above any prompt an agent CLI takes (Codex: 1 M characters)


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        messages = await self._read_chunked(receive)
        if messages is None:
            await self._refuse(send)
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _read_chunked(self, receive: Receive) -> list[Message] | None:
        """A chunked body, whole, or None as soon as it passes the bound (the app would read it all
        anyway; here it never holds more than the bound)."""
        messages, seen = [], 0
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return None
            if message["type"] != "http.request" or not message.get("more_body", False):
                return messages

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"the request body is larger than {self.limit // 2**20} MiB"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
