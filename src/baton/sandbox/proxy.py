"""baton's egress proxy, outside the walls: an HTTP proxy (``CONNECT`` tunnels for HTTPS, plain HTTP in
the absolute-URI form) serving one listener per agent start, each with its run's
:class:`~baton.allowlist.Policy`. A refused connection is answered at once with HTTP 403 and
the reason, and told to the listener's ``on_refused`` (the runner's audit row and event); an allowed
one goes directly, or through the operator's own proxy (:class:`~baton.allowlist.Upstream`). One asyncio
loop per process, in a daemon thread, serves every run's listeners. Our own ~200 lines rather than a
library: proxy.py and mitmproxy are whole frameworks (TLS interception, plugins) for what is a
request-line parse and two pipes, and neither hands a listener made in another network namespace over.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from baton.allowlist import Policy, Refusal, Upstream

HEAD_LIMIT = 64 * 1024  # a request head larger than this is refused
HEAD_TIMEOUT = 30.0  # seconds a client may take to send its request head
CONNECT_TIMEOUT = 15.0
# Test-only: a name the proxy resolves to this address instead of asking DNS (tests name a local server
# as if it were a remote host). Never set outside tests.
RESOLVE: dict[str, str] = {}


@dataclass(frozen=True)
class Gate:
    """What one listener allows, and whom it tells of a refusal."""

    policy: Policy
    denied_ports: frozenset[int]  # baton's own services' ports: never, whatever the list says
    on_refused: Callable[[Refusal], None]
    upstream: Upstream | None = None  # the operator's proxy to connect through (None: directly)


class _Loop:
    """The process's proxy loop, started on first use."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self.loop.run_forever, name="baton-egress", daemon=True)
        thread.start()

    def call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()


_LOOP: list[_Loop] = []
_LOCK = threading.Lock()


def start() -> None:
    """Start the process's proxy loop, if it is not running: from a thread in baton's own network
    namespace (a thread inherits the namespace of the one that starts it)."""
    _loop()


def _loop() -> _Loop:
    with _LOCK:
        if not _LOOP:
            _LOOP.append(_Loop())
        return _LOOP[0]


class Served:
    """A listener being served; :meth:`close` stops it and every connection it accepted."""

    def __init__(self, server: asyncio.Server, tasks: set[asyncio.Task[Any]]) -> None:
        self.server, self.tasks = server, tasks

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            for task in list(self.tasks):
                task.cancel()

        _loop().call(stop())


def serve(sock: socket.socket, gate: Gate) -> Served:
    """Serve ``sock`` (listening; it may have been made in the agent's network namespace) as a proxy
    under ``gate``."""
    return _serve(sock, lambda r, w: _proxy(r, w, gate))


def forward(sock: socket.socket, host: str, port: int) -> Served:
    """Serve ``sock`` by relaying each connection to ``host``:``port`` as seen from baton's own network
    (the agent's model API on the host's loopback, seen from its namespace)."""
    return _serve(sock, lambda r, w: _relay(r, w, host, port))


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


def _serve(sock: socket.socket, handler: Handler) -> Served:
    tasks: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            tasks.discard(task)
            writer.close()

    async def start() -> asyncio.Server:
        sock.setblocking(False)
        return await asyncio.start_server(handle, sock=sock, limit=HEAD_LIMIT)

    return Served(_loop().call(start()), tasks)


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
    up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
    await _pipes(reader, writer, up_reader, up_writer)


async def _pipes(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


async def _proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: Gate) -> None:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
    line, _, rest = head.decode("latin-1").partition("\r\n")
    method, target, version = [*line.split(" "), "", "", ""][:3]
    where = _target(method, target)
    if where is None or not version.startswith("HTTP/"):
        await _answer(writer, 400, "baton's egress proxy takes CONNECT host:port or an absolute http:// URI")
        return
    host, port, path = where
    through = gate.upstream if gate.upstream is not None and gate.upstream.applies(host) else None
    reason = _refused(gate, host, port, method)
    address = None if reason else await _resolve(host, port)
    if reason is None and address is None and through is None:
        reason = f"{host} resolves to no address this run may reach"
    if reason is None and address is not None and _internal(address, host, gate.policy):
        reason = f"{host} resolves to {address}, an internal address not on the allow-list"
    if reason is not None:  # told (an audit row, an event) before the agent hears it: never after its end
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, gate.on_refused, Refusal(host, port, method, reason))
        await _answer(writer, 403, f"baton egress refused: {reason}")
        return
    try:
        if through is not None:  # the upstream resolves the name (a host may reach DNS only that way)
            up_reader, up_writer = await tunnel(through, host, port, CONNECT_TIMEOUT)
        else:
            assert address is not None
            opening = asyncio.open_connection(address, port)
            up_reader, up_writer = await asyncio.wait_for(opening, CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        await _answer(writer, 502, f"baton egress: {host}:{port} could not be reached: {exc or 'timed out'}")
        return
    if method == "CONNECT":
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    else:
        up_writer.write(_origin_head(method, path, version, rest).encode("latin-1"))
    await _pipes(reader, writer, up_reader, up_writer)


async def tunnel(
    upstream: Upstream, host: str, port: int, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``host``:``port`` through ``upstream`` (``CONNECT``); OSError naming the
    upstream's answer when it refuses."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(upstream.host, upstream.port), timeout)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if upstream.auth:
        head += f"Proxy-Authorization: {upstream.auth}\r\n"
    writer.write((head + "\r\n").encode("latin-1"))
    try:
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        writer.close()
        raise OSError(f"the upstream proxy {upstream.host}:{upstream.port} gave no answer") from exc
    status = answer.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    if status.split(" ")[1:2] != ["200"]:
        writer.close()
        raise OSError(f"the upstream proxy {upstream.host}:{upstream.port} answered {status[:120]!r}")
    return reader, writer


def _target(method: str, target: str) -> tuple[str, int, str] | None:
    """(host, port, path) of a request line's target; None when it is no proxy request."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        ok = port.isdigit() and host
        return (host.strip("[]").lower(), int(port), "") if ok else None
    try:
        parts = urlsplit(target)
        number = parts.port or 80
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname:
        return None
    return parts.hostname.lower(), number, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _refused(gate: Gate, host: str, port: int, method: str) -> str | None:
    if port in gate.denied_ports:
        return f"port {port} is one of baton's own services'"
    return gate.policy.refusal(host, port, method)


async def _resolve(host: str, port: int) -> str | None:
    if host in RESOLVE:
        return RESOLVE[host]
    with contextlib.suppress(OSError):
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return str(found[0][4][0]) if found else None
    return None


def _internal(address: str, host: str, policy: Policy) -> bool:
    """A loopback or link-local address (cloud metadata: 169.254.169.254) reached through a name:
    refused unless the list names that address itself (or a test resolved it). An IPv4-mapped IPv6
    address (``::ffff:127.0.0.1``) is judged as the IPv4 address it reaches."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    named = policy.names(address) or host in RESOLVE
    return (ip.is_loopback or ip.is_link_local or ip.is_unspecified) and not named


def _origin_head(method: str, path: str, version: str, rest: str) -> str:
    """The request head as the origin takes it: origin-form, hop-by-hop headers dropped, one request
    per connection (``Connection: close``)."""
    hop = ("proxy-connection", "connection", "keep-alive", "proxy-authorization", "te", "upgrade")
    kept = [h for h in rest.split("\r\n") if h and h.split(":", 1)[0].strip().lower() not in hop]
    return "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""])


async def _answer(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    words = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = (text + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {words}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
