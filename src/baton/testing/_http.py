"""The HTTP plumbing under every test server (the mock model APIs and the git smart-HTTP server):
:class:`QuietServer` (threaded, 127.0.0.1 only, quiet about clients that hang up mid-reply),
:class:`BackgroundServer` (one served from a daemon thread; a subclass names its handler, which reaches
the server as ``self.owner``), :class:`QuietHandler` and :class:`JsonHandler` (keep-alive HTTP/1.1, no
request log; JSON in, JSON or server-sent events out), and :class:`MockServer` with
:class:`RecordedRequest`: what the mock model APIs share (``port``, ``delay``, ``fail_status``, the
requests kept under a lock, the numbering of conversation turns).
"""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Generic, Self, TypeVar, cast


class QuietServer(ThreadingHTTPServer):
    """Threaded (daemon threads), on 127.0.0.1 only, and quiet about clients that hang up mid-reply (a
    killed agent CLI does exactly that in the fault tests)."""

    daemon_threads = True

    def __init__(self, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", port), handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset: the client left
            return
        super().handle_error(request, client_address)


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing; ``owner`` is the :class:`BackgroundServer` it serves."""

    owner: Any
    protocol_version = "HTTP/1.1"
    # Replies go out in several writes; with Nagle's algorithm on (http.server's default) each one waits
    # ~40 ms for the client's delayed ACK. Real servers set TCP_NODELAY.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _route(self) -> str:
        """The request path without its query string."""
        return self.path.split("?")[0]

    def _body(self) -> bytes:
        """The request body as ``Content-Length`` gives it (empty without one)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(
        self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        """A whole reply, with its ``Content-Length``."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class JsonHandler(QuietHandler):
    """A mock model API's handler: ``HEAD`` answers 200, request bodies are JSON, replies JSON or SSE."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json_body(self) -> Any:
        """The request body parsed as JSON, ``{}`` when empty; raises :class:`json.JSONDecodeError`.
        The credential the request carried is kept in the mock's ``keys_seen``."""
        seen = getattr(self.owner, "keys_seen", None)
        if seen is not None:
            found = (self.headers.get(h) for h in ("x-api-key", "authorization", "x-goog-api-key"))
            seen.append(next((v.removeprefix("Bearer ") for v in found if v), ""))
        return json.loads(self._body() or b"{}")

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _sse(self, frames: Iterable[str]) -> None:
        """A 200 ``text/event-stream`` reply made of ``frames`` (each a whole event), sent at once."""
        self._send(200, "".join(frames).encode(), "text/event-stream", {"Cache-Control": "no-cache"})


class BackgroundServer:
    """A :class:`QuietServer` served from a daemon thread; use as a context manager or call
    :meth:`start`/:meth:`stop`. A subclass (a dataclass) has a ``port`` field: 0 asks for any free
    port, and :meth:`start` replaces it with the port bound."""

    port: int
    thread_name: ClassVar[str] = "test-http"
    block_on_close: ClassVar[bool] = True  # False: stop() does not wait for replies still in progress
    _server: QuietServer | None = None
    _thread: threading.Thread | None = None

    def handler_class(self) -> type[QuietHandler]:
        """The handler class serving requests; :meth:`start` binds a subclass of it to this server."""
        raise NotImplementedError

    def start(self) -> Self:
        if self._server is not None:
            return self
        bound = type(f"{type(self).__name__}Handler", (self.handler_class(),), {"owner": self})
        self._server = QuietServer(self.port, cast(type[QuietHandler], bound))
        self._server.block_on_close = self.block_on_close
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"{self.thread_name}-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def export_line(values: dict[str, str]) -> str:
    """``export NAME=value …`` on one line, each value quoted for a POSIX shell where it needs it."""
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items())


@dataclass
class RecordedRequest:
    """One request a mock received; each mock's ``MockRequest`` reads its API's fields from ``body``."""

    path: str
    body: dict[str, Any]

    @property
    def is_conversation(self) -> bool:
        """A turn of the conversation, not a routing, title or other utility call."""
        return True

    def text(self) -> str:
        """All the text the request's history carried, joined (for asserting what was sent)."""
        raise NotImplementedError


R = TypeVar("R", bound=RecordedRequest)


@dataclass
class Refusal:
    """An error reply a mock gives its conversation requests instead of an answer, the way the vendor's
    API refuses a request over a limit: ``status``, the JSON ``body`` and the ``headers``; ``times``: for
    that many conversation requests, then the mock answers again (None: until :attr:`MockServer.refusal`
    is cleared). Each mock builds its vendor's refusals (``usage_limit``, ``rate_limit``)."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = None
    given: int = 0
    when: Callable[[Any], bool] | None = None  # only the requests it holds for (None: every one)


@dataclass
class MockServer(BackgroundServer, Generic[R]):
    """A mock model API: the part of :class:`baton.testing.MockModel` every mock implements alike.

    ``delay`` holds each reply back for that many seconds before the first byte (a slow model, for
    kill-mid-run tests), or until :attr:`released` is set (a test done with the running turn ends the
    hold at once); ``fail_status`` answers requests with that HTTP status; ``refusal`` answers
    conversation requests with a vendor's limit reply (:class:`Refusal`); every request is kept in
    :attr:`requests`.

    A model's context window, for the rollover tests: a conversation request counts ``item_tokens``
    prompt tokens per history item (None: the mock's own small number, :attr:`ITEM_TOKENS`), reported
    in its usage, so a test can make a small conversation look large; one counting more than
    ``max_prompt_tokens`` is refused the way the vendor refuses a prompt longer than the model's window
    (:meth:`too_long`)."""

    ITEM_TOKENS: ClassVar[int] = 10  # prompt tokens a history item counts unless ``item_tokens`` says

    port: int = 0
    delay: float = 0.0
    released: threading.Event = field(default_factory=threading.Event, repr=False)
    fail_status: int | None = None
    refusal: Refusal | None = None
    item_tokens: int | None = None
    max_prompt_tokens: int | None = None
    requests: list[R] = field(default_factory=list)
    keys_seen: list[str] = field(default_factory=list)  # the credential each request carried, in order
    refused_too_long: int = 0  # conversation requests refused as longer than the window
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _turns: int = field(default=0, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment that points the agent CLI at this server, with the CLI's own traffic off."""
        raise NotImplementedError

    def configure_home(self, home: Path) -> None:
        """Nothing to write by default: the agent finds this server through :meth:`env`."""

    def shell_lines(self) -> list[str]:
        """What the command line (:mod:`baton.testing.mock_cli`) prints after the URL to point a user's
        agent CLI at this server: valid shell, comments and one :func:`export_line`."""
        raise NotImplementedError

    def config_text(self) -> str | None:
        """The contents of the config file that points the agent CLI here, where it reads its model
        from a file rather than the environment (``--print-config``); None: the environment is all."""
        return None

    def history_counts(self) -> list[int]:
        """History items each conversation request carried, in order."""
        raise NotImplementedError

    def texts(self) -> list[str]:
        """All the text each conversation request carried, in order."""
        return [r.text() for r in self.conversation()]

    def conversation(self) -> list[R]:
        """The conversation requests, in order (routing, title and other utility calls left out)."""
        with self._lock:
            return [r for r in self.requests if r.is_conversation]

    def refusing(self, request: R) -> Refusal | None:
        """The refusal to give ``request`` instead of an answer, counted (None: answer it)."""
        with self._lock:
            refusal = self.refusal
            if refusal is None or not request.is_conversation:
                return None
            if refusal.when is not None and not refusal.when(request):
                return None
            if refusal.times is not None and refusal.given >= refusal.times:
                return None
            refusal.given += 1
            return refusal

    def prompt_tokens(self, items: int) -> int:
        """The prompt tokens a conversation request of ``items`` history items counts."""
        per = self.ITEM_TOKENS if self.item_tokens is None else self.item_tokens
        return per * max(items, 1)

    def over_window(self, request: R, items: int) -> Refusal | None:
        """The vendor's refusal of a prompt longer than the window (``max_prompt_tokens``), or None."""
        tokens = self.prompt_tokens(items)
        if self.max_prompt_tokens is None or not request.is_conversation or tokens <= self.max_prompt_tokens:
            return None
        with self._lock:
            self.refused_too_long += 1
        return self.too_long(tokens, self.max_prompt_tokens)

    def too_long(self, tokens: int, maximum: int) -> Refusal:
        """How the vendor's API refuses a prompt of ``tokens`` over a window of ``maximum``."""
        raise NotImplementedError

    def record(self, request: R) -> int:
        """Keep a request; returns its 1-based turn number if it is a conversation request, else 0."""
        with self._lock:
            self.requests.append(request)
            if not request.is_conversation:
                return 0
            self._turns += 1
            return self._turns
