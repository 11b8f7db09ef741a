"""A mock Gemini API (``generativelanguage`` v1beta) for offline runs of the real Gemini CLI.

It answers, on 127.0.0.1:

- ``POST /v1beta/models/<model>:streamGenerateContent?alt=sse`` — the conversation turn, as SSE
  ``data:`` chunks of ``GenerateContentResponse`` objects; the last chunk carries
  ``finishReason: STOP`` and ``usageMetadata`` (without them the CLI reports an invalid stream);
- ``POST /v1beta/models/<model>:generateContent`` — the same object as plain JSON;
- ``:countTokens`` and anything else under ``/v1beta/models`` with a harmless answer.

A request whose ``generationConfig`` asks for JSON with a schema (``responseJsonSchema`` or
``responseSchema``) is a *utility* call, not a conversation turn: the CLI's model router (a schema
asking for ``complexity_score``), its next-speaker and loop checks. The mock answers those with an
object that validates against the schema, built from the schema itself, so any such call works
without the mock knowing it in advance. Title/summary calls (non-streaming ``generateContent``
without a schema) are answered with a short text. Neither kind counts as a conversation request.

Every conversation reply says how many ``contents`` entries (history turns) the request carried —
``mock reply #3: received 5 contents`` — which is how a test proves that a resumed conversation really
carried its history: a fresh Gemini conversation sends 1, and each resumed turn adds two (1, 3, 5…).

Every request is kept in :attr:`MockGemini.requests`. ``delay`` holds each conversation reply back for
that many seconds before the first byte (a slow model, for kill-mid-run tests); ``fail_status``
answers every request with that HTTP status.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

STREAM = ":streamGenerateContent"
GENERATE = ":generateContent"


@dataclass
class MockRequest:
    """One request the mock received."""

    path: str
    body: dict[str, Any]

    @property
    def method(self) -> str:
        """``streamGenerateContent``, ``generateContent``, ``countTokens``…"""
        return self.path.rsplit(":", 1)[-1] if ":" in self.path else ""

    @property
    def model(self) -> str:
        tail = self.path.split("/models/", 1)[-1]
        return tail.split(":", 1)[0]

    @property
    def contents(self) -> list[dict[str, Any]]:
        contents = self.body.get("contents", [])
        return contents if isinstance(contents, list) else []

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON response schema a utility call asks for, if any."""
        config = self.body.get("generationConfig")
        if not isinstance(config, dict):
            return None
        for name in ("responseJsonSchema", "responseSchema"):
            if isinstance(config.get(name), dict):
                schema: dict[str, Any] = config[name]
                return schema
        return None

    @property
    def is_conversation(self) -> bool:
        """A turn of the conversation: streamed and not asking for a schema-shaped JSON answer."""
        return self.method == "streamGenerateContent" and self.schema is None

    def text(self) -> str:
        """All the text of the request's contents, joined (for asserting what was sent)."""
        parts: list[str] = []
        for content in self.contents:
            for part in content.get("parts", []) if isinstance(content, dict) else []:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    parts.append(part["text"])
        return "\n".join(parts)


@dataclass
class MockGemini:
    """A running mock server; use as a context manager or call :meth:`start`/:meth:`stop`."""

    port: int = 0
    delay: float = 0.0
    fail_status: int | None = None
    requests: list[MockRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _turns: int = field(default=0, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment that points the Gemini CLI at this server with its own traffic off.

        The API key only has to be present; ``GEMINI_CLI_TRUST_WORKSPACE`` avoids the untrusted-folder
        exit (55) in a fresh worktree; ``GEMINI_CLI_NO_RELAUNCH`` skips the child-process relaunch (a
        faster start, and one process to kill)."""
        return {
            "GEMINI_API_KEY": "mock-key",
            "GOOGLE_GEMINI_BASE_URL": self.url,
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "GEMINI_TELEMETRY_ENABLED": "false",
            "NO_BROWSER": "true",
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }

    def configure_home(self, home: Path) -> None:
        """Nothing to write: the Gemini adapter manages ``settings.json`` (auth type, telemetry, …)."""

    def conversation(self) -> list[MockRequest]:
        """The conversation requests, in order (routing, title and other utility calls left out)."""
        with self._lock:
            return [r for r in self.requests if r.is_conversation]

    def content_counts(self) -> list[int]:
        """How many ``contents`` each conversation request carried, in order."""
        return [len(r.contents) for r in self.conversation()]

    # -- the MockModel interface shared by the three mocks (see baton.testing) --

    def history_counts(self) -> list[int]:
        """History items each conversation request carried (``contents`` entries, for this API)."""
        return self.content_counts()

    def texts(self) -> list[str]:
        """All the text each conversation request carried, in order."""
        return [r.text() for r in self.conversation()]

    def record(self, path: str, body: dict[str, Any]) -> tuple[MockRequest, int]:
        """Keep a request; returns it and, for a conversation turn, its 1-based turn number."""
        request = MockRequest(path, body)
        with self._lock:
            self.requests.append(request)
            if request.is_conversation:
                self._turns += 1
                return request, self._turns
            return request, 0

    def start(self) -> MockGemini:
        mock = self

        class Handler(_Handler):
            owner = mock

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a reply held back by ``delay`` must not hold up stop()
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes replies still waiting out ``delay``
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MockGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reply_text(number: int, count: int) -> str:
    return f"mock reply #{number}: received {count} contents"


def fill_schema(schema: dict[str, Any]) -> Any:
    """A value that validates against ``schema`` (OpenAPI-style ``Type.OBJECT`` or JSON Schema).

    Numbers take the lowest allowed value (at least 1: the router's ``complexity_score`` is 1 to 100),
    strings the first enum member or ``"mock"``, arrays are empty, objects get every property."""
    kind = str(schema.get("type", "object")).lower()
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        return {name: fill_schema(sub) for name, sub in props.items() if isinstance(sub, dict)}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        low = schema.get("minimum")
        return int(low) if isinstance(low, int | float) and low > 1 else 1
    if kind == "boolean":
        return False
    return "mock"


def _response(text: str, count: int, model: str, finished: bool) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
        "modelVersion": model,
    }
    if finished:
        chunk["candidates"][0]["finishReason"] = "STOP"
        chunk["usageMetadata"] = {
            "promptTokenCount": 10 * max(count, 1),
            "candidatesTokenCount": 12,
            "totalTokenCount": 10 * max(count, 1) + 12,
        }
    return chunk


class _Handler(BaseHTTPRequestHandler):
    owner: MockGemini
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        if self.path.split("?")[0].startswith("/v1beta/models"):
            self._json(200, {"models": []})
        else:
            self._json(200, {"ok": True})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._json(400, _error(400, "INVALID_ARGUMENT", "body is not JSON"))
            return
        path = self.path.split("?")[0]
        if not path.startswith("/v1beta/models/") or not isinstance(body, dict):
            self._json(404, _error(404, "NOT_FOUND", f"no such method: {path}"))
            return
        request, number = self.owner.record(path, body)
        if self.owner.fail_status is not None:
            self._json(self.owner.fail_status, _error(self.owner.fail_status, "INTERNAL", "mock failure"))
            return
        if request.method == "countTokens":
            self._json(200, {"totalTokens": 10})
            return
        if request.method not in ("streamGenerateContent", "generateContent"):
            self._json(404, _error(404, "NOT_FOUND", f"no such method: {request.method}"))
            return
        count = len(request.contents)
        if request.schema is not None:
            text = json.dumps(fill_schema(request.schema))
        elif number:
            if self.owner.delay and self.owner._stopping.wait(self.owner.delay):
                self.close_connection = True
                return
            text = reply_text(number, count)
        else:
            text = "Mock session title"
        if request.method == "streamGenerateContent":
            self._stream(text, count, request.model)
        else:
            self._json(200, _response(text, count, request.model, finished=True))

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, text: str, count: int, model: str) -> None:
        # two chunks, as the real API streams: the text, then an empty part with the finish reason
        chunks = [_response(text, count, model, finished=False), _response("", count, model, finished=True)]
        payload = b"".join(f"data: {json.dumps(chunk)}\r\n\r\n".encode() for chunk in chunks)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def main() -> None:
    """``python -m baton.testing.mock_gemini [PORT]``: serve until interrupted."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    with MockGemini(port=port) as mock:
        print(mock.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
