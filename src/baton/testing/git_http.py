"""An offline git "smart HTTP" server for tests, guarded by HTTP Basic auth. :class:`GitHttpServer` serves
every bare repository under ``root`` as ``http://127.0.0.1:PORT/<name>.git`` and refuses any request
whose Basic password is not ``token``; since :meth:`GitHttpServer.url` never holds credentials, a clone
can only succeed if git asked for them, which proves it authenticated through ``GIT_ASKPASS`` (or a
credential helper) rather than a token in a URL or on a command line. Authorised requests go to ``git
http-backend``, run as a CGI program (:meth:`_Handler._run_backend`); :attr:`GitHttpServer.requests`,
``auth_attempts`` and ``rejected`` record what came.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self
from urllib.parse import unquote

from baton.testing._http import BackgroundServer, QuietHandler

REALM = "baton-test"
_CHUNK = 64 * 1024
_BACKEND_TIMEOUT = 120.0

# Request headers that CGI does not forward as HTTP_* (they have dedicated variables or are secrets).
_NOT_FORWARDED = frozenset({"authorization", "proxy-authorization", "content-type", "content-length"})


@dataclass(frozen=True)
class GitHttpRequest:
    """One request the server received."""

    method: str
    path: str
    authorized: bool
    username: str | None
    content_encoding: str | None
    chunked: bool
    status: int | None = None


@dataclass
class GitHttpServer(BackgroundServer):
    """A running git smart-HTTP server; use as a context manager or call :meth:`start`/:meth:`stop`.
    Any user name is accepted. :attr:`auth_attempts` counts requests that carried correct credentials,
    :attr:`rejected` the 401s sent, and :attr:`requests` keeps one :class:`GitHttpRequest` per request
    for finer assertions."""

    thread_name = "git-http"

    root: Path
    token: str
    port: int = 0
    auth_attempts: int = 0
    rejected: int = 0
    requests: list[GitHttpRequest] = field(default_factory=list)
    backend_errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def url(self, name: str) -> str:
        """The URL of the repository ``root/<name>`` (``name`` usually ends in ``.git``); no credentials."""
        if self._server is None:
            raise RuntimeError("GitHttpServer is not running; call start() first")
        return f"http://127.0.0.1:{self.port}/{name.lstrip('/')}"

    def handler_class(self) -> type[_Handler]:
        return _Handler

    def start(self) -> Self:
        if self._server is None:
            self.root = Path(self.root).resolve()
        return super().start()

    # -- bookkeeping used by the request handler ------------------------------------------------------

    def check(self, authorization: str | None) -> str | None:
        """The user name if ``authorization`` holds Basic credentials with the right password, else None."""
        creds = _basic_credentials(authorization)
        if creds is None:
            return None
        user, password = creds
        if not hmac.compare_digest(password.encode(), self.token.encode()):
            return None
        return user

    def record(self, request: GitHttpRequest) -> None:
        with self._lock:
            self.requests.append(request)
            if request.authorized:
                self.auth_attempts += 1
            else:
                self.rejected += 1

    def record_backend_error(self, text: str) -> None:
        with self._lock:
            self.backend_errors.append(text)

    def backend_env(self) -> dict[str, str]:
        """The environment every ``git http-backend`` starts from (before the per-request CGI variables):
        an isolated configuration (no system or global git config) plus ``http.receivepack=true`` (so
        pushes work) and ``safe.directory=*``. Per-repository settings such as
        ``uploadpack.allowFilter`` (needed for partial clones) belong in the served repository's own
        config."""
        env = {
            "PATH": os.environ.get("PATH", os.defpath),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_COUNT": "2",
            "GIT_CONFIG_KEY_0": "http.receivepack",
            "GIT_CONFIG_VALUE_0": "true",
            "GIT_CONFIG_KEY_1": "safe.directory",
            "GIT_CONFIG_VALUE_1": "*",
        }
        for name in ("HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT"):
            if name in os.environ:
                env[name] = os.environ[name]
        return env


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep:
        return None
    return user, password


class _Handler(QuietHandler):
    owner: GitHttpServer
    timeout = 60

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    # -- request handling ------------------------------------------------------------------------------

    def _handle(self) -> None:
        owner = self.owner
        path, _, query = self.path.partition("?")
        encoding = self.headers.get("Content-Encoding")
        chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
        user = owner.check(self.headers.get("Authorization"))
        if user is None:
            owner.record(GitHttpRequest(self.command, path, False, None, encoding, chunked, 401))
            self._unauthorized()
            return
        body = self._read_body(chunked)
        status = self._run_backend(path, query, user, body)
        owner.record(GitHttpRequest(self.command, path, True, user, encoding, chunked, status))

    def _unauthorized(self) -> None:
        """401 before git is involved, and the connection closed (so an unread request body can never
        be mistaken for the next request); git, through libcurl, answers the challenge by asking
        ``GIT_ASKPASS`` or the credential helpers and retrying with credentials."""
        headers = {"WWW-Authenticate": f'Basic realm="{REALM}"', "Connection": "close"}
        self._send(401, b"authentication required\n", "text/plain", headers)
        self.close_connection = True

    def _read_body(self, chunked: bool) -> bytes:
        """The request body, de-chunked when git sent it with ``Transfer-Encoding: chunked`` (it does for
        requests larger than ``http.postBuffer``), so the backend always sees an exact
        ``CONTENT_LENGTH``."""
        if chunked:
            parts: list[bytes] = []
            while True:
                size_line = self.rfile.readline()
                if not size_line:
                    break
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after the chunk data
            return b"".join(parts)
        return self._body()

    def _cgi_env(self, path: str, query: str, user: str, body: bytes) -> dict[str, str]:
        owner = self.owner
        env = owner.backend_env()
        env.update(
            {
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": self.request_version,
                "SERVER_SOFTWARE": "baton-git-http",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": str(owner.port),
                "REQUEST_METHOD": self.command,
                "PATH_INFO": unquote(path),
                "QUERY_STRING": query,
                "REMOTE_ADDR": self.client_address[0],
                "REMOTE_USER": user,
                "AUTH_TYPE": "Basic",
                "CONTENT_TYPE": self.headers.get("Content-Type") or "",
                "CONTENT_LENGTH": str(len(body)),
            }
        )
        for name, value in self.headers.items():
            if name.lower() in _NOT_FORWARDED:
                continue
            key = "HTTP_" + name.upper().replace("-", "_")
            env[key] = f"{env[key]}, {value}" if key in env else value
        env.pop("HTTP_TRANSFER_ENCODING", None)  # the body has been de-chunked
        return env

    def _run_backend(self, path: str, query: str, user: str, body: bytes) -> int:
        """``git http-backend`` as a CGI program: ``GIT_PROJECT_ROOT``, ``GIT_HTTP_EXPORT_ALL``,
        ``PATH_INFO``, ``QUERY_STRING``, ``REQUEST_METHOD``, ``CONTENT_TYPE``, ``CONTENT_LENGTH``,
        ``REMOTE_USER``, and each request header as ``HTTP_*`` (so ``HTTP_CONTENT_ENCODING: gzip`` bodies
        are inflated by http-backend itself and ``HTTP_GIT_PROTOCOL`` selects protocol v2). Its CGI
        response headers are parsed and sent back, its body streamed as it is produced, chunked unless it
        gave a ``Content-Length`` (:meth:`_relay`). The HTTP status sent."""
        env = self._cgi_env(path, query, user, body)
        try:
            proc = subprocess.Popen(
                ["git", "http-backend"],
                env=env,
                cwd=str(self.owner.root),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            self.owner.record_backend_error(f"cannot start git http-backend: {exc}")
            self._plain(500, b"cannot start git http-backend\n")
            return 500
        with proc:
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            errors: list[bytes] = []
            feeder = threading.Thread(target=_feed, args=(proc.stdin, body), daemon=True)
            drainer = threading.Thread(target=_drain, args=(proc.stderr, errors), daemon=True)
            feeder.start()
            drainer.start()
            try:
                status = self._relay(proc.stdout)
            except (BrokenPipeError, ConnectionResetError):
                status = 499  # the client went away mid-response
                self.close_connection = True
                proc.kill()
            finally:
                deadline = time.monotonic() + _BACKEND_TIMEOUT
                try:
                    proc.wait(timeout=_BACKEND_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                feeder.join(timeout=max(0.0, deadline - time.monotonic()))
                drainer.join(timeout=max(0.0, deadline - time.monotonic()))
            text = b"".join(errors).decode("utf-8", "replace").strip()
            if text:
                self.owner.record_backend_error(text)
        return status

    def _relay(self, out: IO[bytes]) -> int:
        """Send the CGI response on ``out`` back to the client; return the HTTP status sent."""
        head = _read_cgi_head(out)
        if head is None:
            self._plain(502, b"git http-backend ended without a response\n")
            return 502
        status, reason, headers = head
        chunked = self._send_head(status, reason, headers)
        self._copy_body(out, chunked)
        return status

    def _send_head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> bool:
        """Send the status line and headers; return whether the body goes out chunked.

        The backend's own framing headers are dropped: without a Content-Length, an HTTP/1.1 client
        gets a chunked body (the connection stays reusable), an HTTP/1.0 one a body ended by closing.
        """
        has_length = any(name.lower() == "content-length" for name, _ in headers)
        chunked = not has_length and self.request_version != "HTTP/1.0"
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() in ("connection", "transfer-encoding"):
                continue
            self.send_header(name, value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif not has_length:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        return chunked

    def _copy_body(self, out: IO[bytes], chunked: bool) -> None:
        """Stream the backend's body to the client as it arrives (``read1``: no waiting for a full buffer)."""
        read = getattr(out, "read1", out.read)
        while True:
            data = read(_CHUNK)
            if not data:
                break
            if chunked:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _plain(self, status: int, payload: bytes) -> None:
        self._send(status, payload, "text/plain")


def _read_cgi_head(out: IO[bytes]) -> tuple[int, str, list[tuple[str, str]]] | None:
    """The CGI response's status, reason and other headers, read up to the blank line; None when the
    backend's output ended first. A ``Status:`` header sets the status (200 OK without one)."""
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    while True:
        line = out.readline()
        if not line:
            return None
        line = line.rstrip(b"\r\n")
        if not line:
            return status, reason, headers
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip(), value.strip()
        if name.lower() == "status":
            code, _, text = value.partition(" ")
            status, reason = int(code), text.strip() or reason
        else:
            headers.append((name, value))


def _feed(stream: IO[bytes], body: bytes) -> None:
    # OSError (a broken pipe): the backend exited without reading everything; its response says why.
    with contextlib.suppress(OSError):
        try:
            if body:
                stream.write(body)
        finally:
            stream.close()


def _drain(stream: IO[bytes], sink: list[bytes]) -> None:
    try:
        while True:
            data = stream.read(_CHUNK)
            if not data:
                break
            sink.append(data)
    except (OSError, ValueError):
        pass
