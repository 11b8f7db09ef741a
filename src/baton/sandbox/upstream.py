"""The model gateway's side towards the model API (:mod:`baton.sandbox.gateway`): HTTP/1.1 over
asyncio streams (TLS for ``https``, with the system's CA store or ``SSL_CERT_FILE``), connections kept
alive and reused per origin, a reply's body read as it arrives (:meth:`Reply.chunks`: each piece as
soon as the socket has it, de-framed from ``Content-Length``, chunked or close-delimited). Our own
~150 lines rather than httpx: a request through httpx's async client cost milliseconds here, the
gateway's budget is under two. No proxy is used: the gateway connects to the model API directly, as
the egress proxy does to any host.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 600.0  # a model may think for minutes between two pieces of its reply
HEAD_LIMIT = 64 * 1024
IDLE_KEPT = 16  # idle connections kept per origin
PIECE = 65536

Origin = tuple[str, str, int]  # scheme, host, port
Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class UpstreamError(Exception):
    """The model API could not be reached, or answered no HTTP."""


@dataclass
class Reply:
    """A reply's status and headers; its body through :meth:`chunks` (once), then :meth:`release`."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    streams: Streams = field(repr=False)
    origin: Origin
    pool: Pool = field(repr=False)
    reusable: bool = False

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name), "")

    async def chunks(self, method: str) -> AsyncIterator[bytes]:
        """The body's pieces as they arrive (none for a HEAD, 204 or 304)."""
        reader = self.streams[0]
        if method == "HEAD" or self.status in (204, 304) or self.status < 200:
            self.reusable = True
        elif "chunked" in self.header("transfer-encoding").lower():
            async for piece in _chunked(reader):
                yield piece
            self.reusable = True
        elif (length := self.header("content-length")).isdigit():
            left = int(length)
            while left:
                piece = await _read(reader, min(left, PIECE))
                left -= len(piece)
                yield piece
            self.reusable = True
        else:  # delimited by the connection's close
            while piece := await asyncio.wait_for(reader.read(PIECE), READ_TIMEOUT):
                yield piece

    def release(self) -> None:
        """Keep the connection for the next request when the whole body was read, else close it."""
        keep = self.reusable and self.header("connection").lower() != "close"
        self.pool.give_back(self.origin, self.streams, keep)


async def _read(reader: asyncio.StreamReader, most: int) -> bytes:
    piece = await asyncio.wait_for(reader.read(most), READ_TIMEOUT)
    if not piece:
        raise UpstreamError("the model API closed the connection mid-reply")
    return piece


async def _chunked(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT) != b"\r\n":
                pass  # trailers, dropped
            return
        while size:
            piece = await _read(reader, min(size, PIECE))
            size -= len(piece)
            yield piece
        await reader.readexactly(2)


class Pool:
    """Kept-alive connections per origin, on the gateway's loop."""

    def __init__(self) -> None:
        self.idle: dict[Origin, list[Streams]] = {}
        self.tls = ssl.create_default_context()

    async def send(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Reply:
        """Send the request (one write); the reply once its head has arrived. A kept connection the
        model API closed meanwhile is retried once on a new one."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamError(f"not an http(s) URL: {url!r}")
        origin = (parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items())]
        data = "\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""]).encode("latin-1") + body
        kept = self.idle.get(origin)
        if kept:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, UpstreamError):
                return await self._exchange(origin, kept.pop(), data)
        return await self._exchange(origin, await self._connect(origin), data)

    async def _connect(self, origin: Origin) -> Streams:
        scheme, host, port = origin
        tls = self.tls if scheme == "https" else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=tls, limit=HEAD_LIMIT), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {host}:{port}: {exc}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def _exchange(self, origin: Origin, streams: Streams, data: bytes) -> Reply:
        reader, writer = streams
        try:
            writer.write(data)
            await writer.drain()
            status, reason, headers = _head(
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            )
            while 100 <= status < 200:  # an interim reply (100 Continue, 103 Early Hints): the final follows
                status, reason, headers = _head(
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
                )
        except BaseException:
            writer.close()
            raise
        return Reply(status, reason, headers, streams, origin, self)

    def give_back(self, origin: Origin, streams: Streams, keep: bool) -> None:
        kept = self.idle.setdefault(origin, [])
        if keep and len(kept) < IDLE_KEPT and not streams[0].at_eof():
            kept.append(streams)
        else:
            streams[1].close()


def _head(head: bytes) -> tuple[int, str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise UpstreamError(f"the model API answered no HTTP: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return int(code), reason, headers
