"""``baton mcp``'s stdio server: each JSON-RPC message the MCP client writes on stdin is posted to ``/mcp``
of the ``baton serve`` at :data:`URL_ENV` with the token at :data:`TOKEN_ENV`, and what ``/mcp`` answers
(JSON, or an event stream of progress and the response) is written back on stdout, a line a message. The
tools are the service's own (:mod:`baton.service.mcp_http`): one request a call, over kept-alive
connections, and nothing here but the standard library, so the server answers ``initialize`` as soon as
Python has started. A token the service refuses fails ``initialize``: its error, a line on stderr and
exit 1, so a client shows the server failed rather than connected. ``notifications/cancelled`` closes
the cancelled call's connection. Nothing but the protocol is written to stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.client import HTTPConnection, HTTPException, HTTPResponse, RemoteDisconnected
from typing import IO, Any
from urllib.parse import urlsplit

URL_ENV, TOKEN_ENV = "BATON_URL", "BATON_TOKEN"
PATH = "/mcp"
REFUSED = -32001  # the JSON-RPC error code of a call the service refused (an HTTP status of 400 or more)
UNREACHABLE = -32002  # ... of a call the service could not be asked
IDLE_MAX = 4.0  # seconds a connection is kept idle (uvicorn closes one idle for 5)


def configured(environ: Mapping[str, str]) -> tuple[str, str]:
    """The service's URL and the token from the environment; BadInput naming what is missing."""
    url, token = environ.get(URL_ENV, "").strip(), environ.get(TOKEN_ENV, "").strip()
    missing = [name for name, value in ((URL_ENV, url), (TOKEN_ENV, token)) if not value]
    wrong = ""
    if missing:
        wrong = (
            f"baton mcp talks to a running `baton serve`: set {' and '.join(missing)} "
            f"({URL_ENV}: its URL, e.g. http://127.0.0.1:8765; "
            f"{TOKEN_ENV}: a token from `baton tokens create`)"
        )
    elif not url.startswith(("http://", "https://")):
        wrong = f"{URL_ENV} must be an http:// or https:// URL, not {url!r}"
    if wrong:
        from baton.errors import BadInput  # lazy: its models are ~40 % of the relay's imports

        raise BadInput(wrong)
    return url.rstrip("/"), token


class Failed(Exception):
    """A message the service did not answer: its JSON-RPC error ``code``, the HTTP ``status`` of a
    refusal and the service's ``words``."""

    def __init__(self, code: int, said: str, status: int = 0, words: str = "") -> None:
        super().__init__(said)
        self.code, self.status, self.words = code, status, words


class Service:
    """Posts to ``/mcp`` over kept-alive connections: one per message in flight, idle ones reused."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.url, self._parts = url, parts
        self.path = parts.path.rstrip("/") + PATH
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "User-Agent": "baton-mcp",
        }
        self._idle: list[tuple[HTTPConnection, float]] = []  # and since when it is idle
        self._lock = threading.Lock()

    def _connection(self) -> tuple[HTTPConnection, bool]:
        """An idle connection (True: it was used before) the service has not yet given up on, else a
        new one."""
        with self._lock:
            while self._idle:
                connection, since = self._idle.pop()
                if time.monotonic() - since < IDLE_MAX:
                    return connection, True
                connection.close()
        host, port = self._parts.hostname or "", self._parts.port
        if self._parts.scheme == "https":
            from http.client import HTTPSConnection  # lazy: ssl only for an https:// service

            return HTTPSConnection(host, port), False
        return HTTPConnection(host, port), False

    def post(self, body: bytes, connections: list[HTTPConnection]) -> Iterator[bytes]:
        """The messages ``/mcp`` answers ``body`` with, as they come; Failed for a refusal (its status
        and words) or a service out of reach. The connection in use is ``connections[0]`` meanwhile
        (closing it ends the call); it is kept for the next message once its answer was read whole."""
        while True:
            connection, reused = self._connection()
            connections[:] = [connection]
            try:
                connection.request("POST", self.path, body, self.headers)
                response = connection.getresponse()
                break
            except (OSError, HTTPException) as exc:
                connection.close()
                # a kept-alive connection the service closed before it read the message: sent again
                # (not one the client's cancel closed: that one has left ``connections``)
                stale = isinstance(exc, ConnectionResetError | BrokenPipeError | RemoteDisconnected)
                if not (reused and stale and connections):
                    raise Failed(UNREACHABLE, f"baton serve at {self.url} cannot be reached: {exc}") from None
        answers: list[
            bytes
        ] = []  # held back until the connection is free: the client's next call may take it
        try:
            for message in _answer(self.url, response):
                if _is_answer(message):
                    answers.append(message)
                else:  # a notification (progress): at once
                    yield message
        except BaseException:
            connection.close()
            raise
        with self._lock:
            self._idle.append((connection, time.monotonic()))
        yield from answers

    def close(self) -> None:
        with self._lock:
            for connection, _ in self._idle:
                connection.close()
            self._idle.clear()


def _answer(url: str, response: HTTPResponse) -> Iterator[bytes]:
    """The JSON-RPC messages of one answer of ``/mcp``: its JSON body, or its events' data."""
    try:
        if response.status >= 400:
            words = _words(response.read(), response)
            raise Failed(REFUSED, f"baton refused ({response.status}): {words}", response.status, words)
        if response.getheader("content-type", "").startswith("text/event-stream"):
            data: list[bytes] = []
            for line in iter(response.readline, b""):
                line = line.rstrip(b"\r\n")
                if line.startswith(b"data:"):
                    data.append(line[5:].removeprefix(b" "))
                elif not line and data:
                    yield b"\n".join(data)
                    data = []
            if data:
                yield b"\n".join(data)
            response.read()  # the end of the answer: the connection is free for the next message
        else:
            body = response.read()
            if body.strip():
                yield body
    except (OSError, HTTPException) as exc:
        raise Failed(UNREACHABLE, f"baton serve at {url} stopped answering: {exc}") from None


def _is_answer(message: bytes) -> bool:
    """Whether a message is a response (no ``method``), which ends a call's stream."""
    try:
        parsed = json.loads(message)
    except ValueError:
        return True
    return not (isinstance(parsed, dict) and "method" in parsed)


def _words(body: bytes, response: HTTPResponse) -> str:
    """What a refusal says: the API's ``detail``, a JSON-RPC error's message, or its text."""
    try:
        said = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")[:500] or response.reason
    if isinstance(said, dict):
        error = said.get("error")
        detail = said.get("detail") or (error.get("message") if isinstance(error, dict) else None)
        if isinstance(detail, str):
            return detail
    return body.decode(errors="replace")[:500]


class Relay:
    """Reads the client's messages from ``stdin`` and writes ``/mcp``'s answers to ``stdout``."""

    def __init__(self, service: Service, stdout: IO[bytes], stderr: IO[str]) -> None:
        self.service, self.stdout, self.stderr = service, stdout, stderr
        self._write_lock = threading.Lock()
        self._calls: dict[Any, list[HTTPConnection]] = {}  # request id -> the connection answering it
        self._cancelled: set[Any] = set()

    def write(self, line: bytes) -> None:
        if b"\n" in line:  # stdio's framing is a line a message
            line = json.dumps(json.loads(line), separators=(",", ":")).encode()
        with self._write_lock:
            self.stdout.write(line + b"\n")
            self.stdout.flush()

    def run(self, stdin: IO[bytes]) -> int:
        """Relay until the client closes stdin (0), or the service refuses ``initialize`` (1)."""
        try:
            for line in iter(stdin.readline, b""):
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    self._error(None, -32700, "Parse error: a line that is not JSON")
                    continue
                if not self.handle(message, line.strip()):
                    return 1
            return 0
        finally:
            self.service.close()

    def handle(self, message: Any, body: bytes) -> bool:
        """Post one message of the client's; False when it was an ``initialize`` the service refused."""
        method = message.get("method") if isinstance(message, dict) else None
        if method == "notifications/cancelled":
            params = message.get("params")
            self._cancel(params.get("requestId") if isinstance(params, dict) else None)
            return True
        if method == "initialize":
            return self._initialize(message.get("id"), body)
        if not method or "id" not in message:  # a notification (202), in the client's order
            self._exchange(None, body)
            return True
        thread = threading.Thread(target=self._exchange, args=(message["id"], body), daemon=True)
        thread.start()
        return True

    def _initialize(self, request_id: Any, body: bytes) -> bool:
        """The handshake, answered before anything else is read: a refusal is the server's end."""
        try:
            for answer in self.service.post(body, []):
                self._note_version(answer)
                self.write(answer)
        except Failed as exc:
            if exc.status in (401, 403):
                said = f"the service at {self.service.url} refused the token ({exc.status}): {exc.words}"
            elif exc.status == 421:  # /mcp's Host check (mcp_http)
                said = (
                    f"the service at {self.service.url} is not known by that name (421): {exc.words}; "
                    "name it in the service's BATON_MCP_HOSTS"
                )
            else:
                said = str(exc)
            self._error(request_id, exc.code, f"baton mcp: {said}")
            print(f"baton mcp: {said}", file=self.stderr, flush=True)
            return False
        return True

    def _note_version(self, answer: bytes) -> None:
        """The protocol version ``initialize`` agreed, sent on every later request as the HTTP
        transport asks (``MCP-Protocol-Version``)."""
        try:
            result = json.loads(answer).get("result") or {}
        except (ValueError, AttributeError):
            return
        version = result.get("protocolVersion") if isinstance(result, dict) else None
        if isinstance(version, str):
            self.service.headers["MCP-Protocol-Version"] = version

    def _exchange(self, request_id: Any, body: bytes) -> None:
        """Post one message; write what answers it (nothing for a notification's 202, nothing once
        the client cancelled it)."""
        connections: list[HTTPConnection] = []
        if request_id is not None:
            self._calls[request_id] = connections
        try:
            for answer in self.service.post(body, connections):
                if request_id not in self._cancelled:
                    self.write(answer)
        except Failed as exc:
            if request_id is not None and request_id not in self._cancelled:
                self._error(request_id, exc.code, str(exc))
        finally:
            if request_id is not None:
                self._calls.pop(request_id, None)
                self._cancelled.discard(request_id)

    def _cancel(self, request_id: Any) -> None:
        """End a call the client gave up on: its connection closed (and not taken for the stale one a
        message is sent again after), no answer written."""
        connections = self._calls.get(request_id)
        if connections is None:
            return
        self._cancelled.add(request_id)
        for connection in connections[:1]:
            connections.clear()
            if connection.sock is not None:
                with contextlib.suppress(OSError):  # it has just ended
                    connection.sock.shutdown(socket.SHUT_RDWR)

    def _error(self, request_id: Any, code: int, said: str) -> None:
        error = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": said}}
        self.write(json.dumps(error).encode())


def serve(environ: Mapping[str, str] = os.environ) -> int:
    """``baton mcp``: relay stdin and stdout to the service until the client closes; the exit code."""
    url, token = configured(environ)
    return Relay(Service(url, token), sys.stdout.buffer, sys.stderr).run(sys.stdin.buffer)
