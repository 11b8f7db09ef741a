"""The ``baton`` MCP server over MCP's Streamable HTTP, served by baton's own process on the host's
loopback: an agent CLI that takes an HTTP server (Claude Code) spawns nothing for a turn that does not
ask, and has nothing to stop at its end. One server a process, started by the first turn that needs
it. A turn's URL names its question file and a MAC of that name under this process's secret: a request
can write only the file its URL was made for, once a turn, as :mod:`server` does (whose answers these
are). A request from a browser (an ``Origin``) is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from baton.asking import server as _server

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

PREFIX = "/ask/"
MAX_BODY = 1 << 20  # bytes of one JSON-RPC message
_KEY = secrets.token_bytes(32)
_LOCK = threading.Lock()
_SERVED: list[ThreadingHTTPServer] = []


def url(question: Path) -> str:
    """The URL of the ``baton`` server for the turn whose question file is ``question`` (the server
    started in this process if it is not yet)."""
    name = base64.urlsafe_b64encode(str(question).encode()).decode().rstrip("=")
    return f"http://127.0.0.1:{_port()}{PREFIX}{name}/{_mac(name)}"


def question_file(path: str) -> str | None:
    """The question file a request's path names, None when its MAC is not this process's."""
    if not path.startswith(PREFIX):
        return None
    name, _, mac = path[len(PREFIX) :].partition("/")
    if not name or not hmac.compare_digest(mac, _mac(name)):
        return None
    try:
        return base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
    except ValueError:
        return None


def _mac(name: str) -> str:
    return hmac.new(_KEY, name.encode(), hashlib.sha256).hexdigest()


def _port() -> int:
    with _LOCK:
        if not _SERVED:
            _SERVED.append(_start())
        return int(_SERVED[0].server_address[1])


def _start() -> ThreadingHTTPServer:
    # here, not at the top: only a turn loads the HTTP server (the cold CLI's import budget)
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            found = question_file(self.path.partition("?")[0])
            size = int(self.headers.get("Content-Length") or 0)
            if found is None or self.headers.get("Origin"):
                return self._send(403)
            if not 0 < size <= MAX_BODY:
                return self._send(413)
            try:
                message = json.loads(self.rfile.read(size))
            except ValueError:
                error = {"code": -32700, "message": "parse error"}
                return self._send(400, {"jsonrpc": "2.0", "id": None, "error": error})
            answer = _server.answer(found, message)
            self._send(202) if answer is None else self._send(200, answer)

        def do_GET(self) -> None:  # no stream of the server's own messages: it sends none
            self._send(405)

        def do_DELETE(self) -> None:  # no session to end: every turn's URL is its own
            self._send(405)

        def _send(self, status: int, body: object = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    served = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.daemon_threads = True
    threading.Thread(target=served.serve_forever, name="baton-ask", daemon=True).start()
    return served
