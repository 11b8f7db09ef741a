"""baton's model gateway, outside the walls: the agent's model credential never enters them. A run's
agent is told the gateway as its base URL (``http://127.0.0.1:PORT/run/<run id>``) and a token of the
run as its key (:func:`admit` → :class:`Pass`); a token not the run's, or whose run has ended, gets
HTTP 401. The gateway puts the real credential in the header the model API expects, forwards the model
API's own calls only (:mod:`baton.sandbox.routes`; any other is 403, told to the run's guard) to the
upstream (the operator's base URL, else the vendor's) and streams the reply back as it arrives, while
:mod:`baton.sandbox.wire` reads its usage, summed per run; a run's :class:`Guard` is asked after each
reply whether its spend stops the run (its next request then gets 403) and told each 429 the model API
answers. One listener per process on the host's loopback, one asyncio loop in a daemon thread, upstream
connections kept alive (:mod:`baton.sandbox.upstream`); only with ``model_gateway = on``."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from baton.agents.base import ModelApi
from baton.sandbox import routes, wire
from baton.sandbox.upstream import Pool, Reply, UpstreamError

HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 30.0  # seconds for a request's head
IDLE_TIMEOUT = 120.0  # a kept-alive connection with no request for this long is closed
BODY_LIMIT = 64 * 1024 * 1024  # a request body larger than this is refused (413)
PREFIX = "/run/"
GATEWAY_VARIABLE = "BATON_GATEWAY_BASE_URL"  # the agent's environment names the gateway's URL in it
CREDENTIAL_HEADERS = ("x-api-key", "authorization", "x-goog-api-key", "api-key")
HOP = ("connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "upgrade")
BROKEN = (
    OSError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    TimeoutError,
    ValueError,
    UpstreamError,
)
HOP_REPLY = (*HOP, "transfer-encoding", "content-length")
REFUSAL_LIMIT = 64 * 1024  # the part of a model API's 429 body kept to read the limit it names
MODEL_HEAD = 64 * 1024  # where a request body's model is looked for (estimate)
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


@dataclass(frozen=True)
class Guard:
    """What the runner holds a run's model requests to as its replies spend. ``spend`` is asked with
    the run's usage so far and its counts per model the replies named, as they bill
    (:meth:`baton.sandbox.wire.Meter.billed`; ``""``: none named), after each metered reply, in a thread
    of its own: why the run's next request is refused (None: it goes on). ``limit`` is told each 429
    of the model API (its status, headers in lower case, and the start of its body), in a thread of its
    own, before the reply's last byte. ``refused`` is told each request refused as no model call
    (its method, its path under the base URL and why), in a thread of its own. ``admit`` is asked
    before each request is forwarded, with the run's usage so far plus what the other requests in
    flight are estimated to spend (:func:`estimate`), in a thread of its own: why it is refused (None:
    it goes). So requests fired at once cannot pass a cap by more than one request's spend.
    ``unreachable`` is told why a request could not reach the model API (its agent gets a 502)."""

    spend: Callable[[dict[str, int], dict[str, dict[str, int]]], str | None]
    limit: Callable[[int, dict[str, str], bytes], None]
    refused: Callable[[str, str, str], None] | None = None
    admit: Callable[[dict[str, int], dict[str, dict[str, int]]], str | None] | None = None
    unreachable: Callable[[str], None] | None = None  # told why the model API could not be reached


@dataclass(frozen=True)
class Upstream:
    """Where one run's model requests go, and the credential they carry there."""

    url: str  # the base URL (a path of its own is kept: ``http://host/v1``)
    header: str  # "x-api-key", "authorization" (sent as a Bearer token) or "x-goog-api-key"
    secret: str = field(repr=False)
    api: ModelApi  # what its calls speak: the only ones the key is lent for

    def headers(self) -> dict[str, str]:
        value = f"Bearer {self.secret}" if self.header == "authorization" else self.secret
        return {self.header: value}


@dataclass
class Pass:
    """One run's admission: the base URL and token its agent is given; :meth:`close` at its end."""

    run_id: str
    token: str = field(repr=False)
    url: str
    upstream: Upstream
    total: dict[str, int] = field(default_factory=dict)
    models: dict[str, dict[str, int]] = field(default_factory=dict)  # per model named: billed counts
    guard: Guard | None = None
    refused: str | None = None  # why the run's requests are refused since ``refused_at``
    refused_at: float = 0.0  # time.monotonic()
    flying: list[tuple[str, int]] = field(default_factory=list)  # requests in flight: (model, tokens)
    _verdict: asyncio.Future[str | None] | None = field(default=None, repr=False)

    def usage(self) -> dict[str, int]:
        """The run's usage as the model API's replies said it (``requests``: the replies metered)."""
        with _LOCK:
            return dict(self.total)

    def billed(self) -> dict[str, dict[str, int]]:
        """The run's counts per model its replies named, as they bill (``""``: none named)."""
        with _LOCK:
            return {k: dict(v) for k, v in self.models.items()}

    def close(self) -> None:
        """Revoke the token: the run's agent has ended; its next request is refused (401)."""
        with _LOCK:
            if _PASSES.get(self.run_id) is self:
                del _PASSES[self.run_id]


_PASSES: dict[str, Pass] = {}
_LOCK = threading.Lock()
_SERVER: list[_Gateway] = []


def admit(run_id: str, upstream: Upstream) -> Pass:
    """Let run ``run_id``'s agent reach ``upstream`` through the gateway (started on first use, from
    baton's own network namespace) with a token of its own."""
    port = _gateway().port
    token = f"baton-run-{run_id}.{secrets.token_urlsafe(32)}"  # names its run; the secret makes it
    found = Pass(run_id, token, f"http://127.0.0.1:{port}{PREFIX}{run_id}", upstream)
    with _LOCK:
        _PASSES[run_id] = found
    return found


def _gateway() -> _Gateway:
    with _LOCK:
        if not _SERVER:
            _SERVER.append(_Gateway())
        return _SERVER[0]


class _Gateway:
    """The process's listener and its loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="baton-gateway", daemon=True).start()
        sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = sock.getsockname()[1]
        self.pool: Pool | None = None
        self._call(self._start(sock))

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result()

    async def _start(self, sock: socket.socket) -> None:
        self.pool = Pool()
        sock.setblocking(False)
        await asyncio.start_server(self._connection, sock=sock, limit=HEAD_LIMIT)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # a client or a model API that hangs up, stalls or speaks no HTTP ends the connection: a stream
        # cut short arrives without its last chunk, which the agent's client takes as an error
        with contextlib.suppress(*BROKEN):
            _nodelay(writer)
            first = True
            while await _request(self, reader, writer, HEAD_TIMEOUT if first else IDLE_TIMEOUT):
                first = False
        writer.close()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name), "")


async def _request(
    gw: _Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait: float
) -> bool:
    """Serve one request of a connection; whether the connection stays open for another."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
    except asyncio.IncompleteReadError:
        return False
    request = _parse(head)
    if request is None:
        await _error(writer, 400, "baton's model gateway could not parse the request")
        return False
    if not await _read_body(reader, writer, request):
        return False
    keep = request.header("connection").lower() != "close"
    found = _check(request)
    if isinstance(found, str):
        await _error(writer, 401, found)
        return keep
    why = await _off_route(found, request)
    if why is not None:
        await _error(writer, 403, why)
        return keep
    why = await _held(found)
    if why is not None:
        await _error(writer, 403, why)
        return keep
    flight = estimate(found.upstream.api, _rest(found, request.target), request.body)
    others = list(found.flying)
    found.flying.append(flight)  # before any wait: a request beside it counts this one
    try:
        why = await _admitted(found, others)
        if why is not None:
            await _error(writer, 403, why)
            return keep
        await _forward(gw, found, request, writer)
    finally:
        found.flying.remove(flight)
    return keep


def estimate(api: ModelApi, path: str, body: bytes) -> tuple[str, int]:
    """What a request may spend, estimated from it, never parsing it whole (a body is up to 64 MiB, and
    this runs on the gateway's loop): its model (the first ``"model": "…"`` of the body's head, which
    a string inside it cannot spell unescaped; Gemini's path's) and its input tokens (a token for each
    4 bytes of its body: JSON's overhead makes it high)."""
    model = ""
    if api == ModelApi.GEMINI:
        model = path.rsplit("/models/", 1)[-1].split(":", 1)[0] if "/models/" in path else ""
    elif found := _MODEL.search(body, 0, MODEL_HEAD):
        model = found.group(1).decode("utf-8", "replace")
    return model, max(1, len(body) // 4)


async def _admitted(found: Pass, others: list[tuple[str, int]]) -> str | None:
    """Why the run's guard refuses the request while ``others`` are in flight: the run's usage so far
    with their estimates added, as input tokens of their models. None at once when none is: the
    verdict on the last reply (:func:`_held`) has judged the usage so far."""
    guard = found.guard
    if guard is None or guard.admit is None or not others:
        return None
    with _LOCK:
        total, models = dict(found.total), {k: dict(v) for k, v in found.models.items()}
    for model, tokens in others:
        total["input_tokens"] = total.get("input_tokens", 0) + tokens
        counts = models.setdefault(model, {})
        counts["input_tokens"] = counts.get("input_tokens", 0) + tokens
    try:
        return await asyncio.to_thread(guard.admit, total, models)
    except Exception:  # the guard could not decide (its store): the request goes, the reply's check holds
        return None


async def _off_route(found: Pass, request: _Request) -> str | None:
    """Why the request is no model call the key is lent for (:mod:`baton.sandbox.routes`); the run's
    guard is told (an audit row) before the refusal is answered."""
    rest = _rest(found, request.target)
    why = routes.refusal(found.upstream.api, request.method, rest)
    if why is not None and found.guard is not None and found.guard.refused is not None:
        with contextlib.suppress(Exception):  # refused whatever the audit met
            await asyncio.to_thread(found.guard.refused, request.method, rest, why)
    return why


async def _held(found: Pass) -> str | None:
    """Why the run's request is refused: what its guard said of the spend of its replies so far (the
    decision in flight since the last reply is waited for)."""
    if found.refused is None and found._verdict is not None:
        try:
            why = await found._verdict
        except Exception:  # the guard could not decide (its store): the run goes on, its end checks
            found._verdict, why = None, None
        if why is not None and found.refused is None:
            found.refused, found.refused_at = why, time.monotonic()
    return found.refused


def _parse(head: bytes) -> _Request | None:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers = []
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                return None
            headers.append((name.strip(), value.strip()))
    return _Request(parts[0], parts[1], headers)


async def _read_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: _Request) -> bool:
    if request.header("expect").lower() == "100-continue":  # curl's, for a large body: go on at once
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    if "chunked" in request.header("transfer-encoding").lower():
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            if len(body) + size > BODY_LIMIT:
                await _error(writer, 413, "request body too large")
                return False
            body += await reader.readexactly(size + 2)
            del body[-2:]
        await reader.readuntil(b"\r\n")  # no trailers taken
        request.body = bytes(body)
        return True
    length = request.header("content-length")
    if length and (not length.isdigit() or int(length) > BODY_LIMIT):
        await _error(writer, 413, "request body too large")
        return False
    request.body = await reader.readexactly(int(length)) if length else b""
    return True


def _check(request: _Request) -> Pass | str:
    """The pass the request's path names and its token matches; else why it is refused."""
    path = urlsplit(request.target).path
    if not path.startswith(PREFIX):
        return "baton's model gateway: no run in the path"
    run_id = path[len(PREFIX) :].split("/", 1)[0]
    with _LOCK:
        found = _PASSES.get(run_id)
    token = _token(request)
    if found is None or token is None or not hmac.compare_digest(token.encode(), found.token.encode()):
        return "baton's model gateway: this token is not the run's, or the run has ended"
    return found


def _token(request: _Request) -> str | None:
    for name in CREDENTIAL_HEADERS:
        value = request.header(name)
        if value:
            return value.removeprefix("Bearer ").strip()
    query = dict(parse_qsl(urlsplit(request.target).query))
    return query.get("key")


def _rest(found: Pass, target: str) -> str:
    """The request's path under the run's base URL (what goes after the upstream's)."""
    return urlsplit(target).path[len(PREFIX) + len(found.run_id) :]


def _upstream_url(found: Pass, target: str) -> str:
    parts = urlsplit(target)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "key"])
    return found.upstream.url.rstrip("/") + _rest(found, target) + (f"?{query}" if query else "")


def _upstream_headers(found: Pass, request: _Request) -> dict[str, str]:
    framing = ("host", "content-length", "transfer-encoding", "accept-encoding", "expect")
    dropped = (*HOP, *CREDENTIAL_HEADERS, *framing)
    kept: dict[str, str] = {}
    for name, value in request.headers:
        if name.lower() not in dropped:
            kept[name] = f"{kept[name]}, {value}" if name in kept else value
    return {**kept, "accept-encoding": "identity", **found.upstream.headers()}


async def _forward(gw: _Gateway, found: Pass, request: _Request, writer: asyncio.StreamWriter) -> None:
    """Send the request upstream with the real credential; stream the reply back as it arrives."""
    assert gw.pool is not None
    url, headers = _upstream_url(found, request.target), _upstream_headers(found, request)
    try:
        reply = await gw.pool.send(request.method, url, headers, request.body)
    except (
        UpstreamError,
        OSError,
        asyncio.IncompleteReadError,
        asyncio.LimitOverrunError,
        TimeoutError,
    ) as exc:
        said = f"baton's model gateway could not reach the model API: {exc}"
        if found.guard is not None and found.guard.unreachable is not None:
            with contextlib.suppress(Exception):  # the agent is answered whatever the guard met
                await asyncio.to_thread(found.guard.unreachable, said)
        await _error(writer, 502, said)
        return
    try:
        await _relay(found, reply, writer, request.method)
    finally:
        reply.release()


async def _relay(found: Pass, reply: Reply, writer: asyncio.StreamWriter, method: str) -> None:
    kept = [f"{k}: {v}" for k, v in reply.headers if k.lower() not in HOP_REPLY]
    head = "\r\n".join([f"HTTP/1.1 {reply.status} {reply.reason or 'Status'}", *kept])
    if method == "HEAD" or reply.status in (204, 304):  # no body, and no framing for one
        writer.write(f"{head}\r\n\r\n".encode("latin-1"))
        await writer.drain()
        return
    writer.write(f"{head}\r\nTransfer-Encoding: chunked\r\n\r\n".encode("latin-1"))
    meter = wire.Meter(reply.header("content-type"))
    limited = reply.status == 429 and found.guard is not None
    refusal = bytearray()
    async for chunk in reply.chunks(method):
        writer.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        await writer.drain()
        meter.feed(chunk)
        if limited:
            refusal += chunk[: REFUSAL_LIMIT - len(refusal)]
    if limited and found.guard is not None:  # a usage limit: told before the agent's CLI has it whole
        headers = {k.lower(): v for k, v in reply.headers}
        with contextlib.suppress(Exception):  # the reply goes on to the agent whatever the guard met
            await asyncio.to_thread(found.guard.limit, reply.status, headers, bytes(refusal))
    if reply.status < 400:  # counted before the reply's end reaches the agent, which may then exit
        with _LOCK:
            usage = meter.usage()
            wire.add(found.total, usage)
            if usage:
                wire.add(found.models.setdefault(meter.model or "", {}), meter.billed())
            total, models = dict(found.total), {k: dict(v) for k, v in found.models.items()}
        if found.guard is not None:  # decided while the agent works; its next request waits for it
            found._verdict = asyncio.ensure_future(asyncio.to_thread(found.guard.spend, total, models))
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def stand_in(
    keys: tuple[tuple[str, str], ...],
    base_var: str,
    credentials: tuple[str, ...],
    upstream: str | None,
    env: dict[str, str],
    run_id: str,
    secret: str,
    api: ModelApi,
) -> tuple[dict[str, str], Pass] | None:
    """``env`` with the gateway in place of the model API and its credential: the first of ``keys``
    (variable, header) set in ``env`` is swapped for a token of the run (with a ``secret`` no variable
    holds, the first of ``keys`` is given the token), the others of the agent's ``credentials`` dropped,
    ``base_var`` (if any) pointed at the gateway; its :class:`Pass` to close at the run's end. None
    (``env`` as it is) without a key or an ``upstream`` to send it to (a cloud provider's own endpoint,
    a login the gateway cannot stand in for). ``api``: what the model API speaks, the only calls the
    key is lent for."""
    found = keys[0] if secret and keys else next(((n, h) for n, h in keys if env.get(n)), None)
    if found is None or upstream is None:
        return None
    name, header = found
    admitted = admit(run_id, Upstream(upstream, header, secret or env[name], api))
    swapped = {k: v for k, v in env.items() if k not in credentials}
    swapped[name] = admitted.token
    # named for the walls and the egress relays (they allow every *_BASE_URL's port), and for a CLI
    # told its base URL in argv (Codex)
    swapped[GATEWAY_VARIABLE] = admitted.url
    if base_var:
        swapped[base_var] = admitted.url
    return swapped, admitted


async def _error(writer: asyncio.StreamWriter, status: int, text: str) -> None:
    """An error both vendors' clients show: Anthropic's shape, with OpenAI's and Google's keys."""
    kinds = {401: "authentication_error", 403: "permission_error", 413: "request_too_large"}
    kind = kinds.get(status, "api_error")
    error = {"type": kind, "message": text, "code": status, "status": kind}
    body = json.dumps({"type": "error", "error": error}).encode()
    words = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 413: "Payload Too Large"}
    words[502] = "Bad Gateway"
    writer.write(
        f"HTTP/1.1 {status} {words.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
