"""A mock Anthropic Messages API for offline runs of the real Claude Code CLI.

It answers ``POST /v1/messages`` (streaming SSE or plain JSON) on 127.0.0.1. Every reply says how many
messages the request carried (``mock reply #3: received 6 messages``), which is how tests and the demo
prove that a resumed conversation really carried its history: a fresh conversation starts at 2 (the
user turn plus Claude Code's ``# Environment`` message), and each resumed turn adds two.

Every request is kept in :attr:`MockAnthropic.requests`, so a test can read what the agent sent (for
example the recap of a recovered conversation). ``delay`` holds each reply back for that many seconds
before the first byte (a slow model, for kill-mid-run tests); ``fail_status`` answers every request
with that HTTP status.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class MockRequest:
    """One request the mock received."""

    path: str
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.body.get("messages", [])
        return msgs if isinstance(msgs, list) else []

    def text(self) -> str:
        """All the text of the request's messages, joined (for asserting what was sent)."""
        parts: list[str] = []
        for msg in self.messages:
            content = msg.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                for block in content:
                    if isinstance(block, dict) and isinstance(block.get("text"), str):
                        parts.append(block["text"])
        return "\n".join(parts)


@dataclass
class MockAnthropic:
    """A running mock server; use as a context manager or call :meth:`start`/:meth:`stop`."""

    port: int = 0
    delay: float = 0.0
    fail_status: int | None = None
    requests: list[MockRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment that points Claude Code at this server with its own traffic off."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "mock-key",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }

    def message_counts(self) -> list[int]:
        """How many messages each conversation request carried, in order."""
        with self._lock:
            return [len(r.messages) for r in self.requests if r.path.startswith("/v1/messages")]

    # -- the MockModel interface shared by the three mocks (see baton.testing) --

    def history_counts(self) -> list[int]:
        """History items each conversation request carried (messages, for this API)."""
        return self.message_counts()

    def texts(self) -> list[str]:
        """All the text each conversation request carried, in order."""
        with self._lock:
            return [r.text() for r in self.requests if r.path.startswith("/v1/messages")]

    def configure_home(self, home: Path) -> None:
        """Nothing to write: Claude Code reads ANTHROPIC_BASE_URL from :meth:`env`."""

    def record(self, path: str, body: dict[str, Any]) -> int:
        with self._lock:
            self.requests.append(MockRequest(path, body))
            return len(self.requests)

    def start(self) -> MockAnthropic:
        mock = self

        class Handler(_Handler):
            owner = mock

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MockAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reply_text(number: int, count: int) -> str:
    return f"mock reply #{number}: received {count} messages"


class _Handler(BaseHTTPRequestHandler):
    owner: MockAnthropic
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._json(200, {"ok": True})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._json(400, {"type": "error", "error": {"type": "invalid_request_error"}})
            return
        path = self.path.split("?")[0]
        if not path.startswith("/v1/messages"):
            self._json(404, {"type": "error", "error": {"type": "not_found_error"}})
            return
        if path.endswith("/count_tokens"):
            self._json(200, {"input_tokens": 10})
            return
        number = self.owner.record(path, body)
        if self.owner.delay:
            time.sleep(self.owner.delay)
        if self.owner.fail_status is not None:
            err = {"type": "error", "error": {"type": "api_error", "message": "mock failure"}}
            self._json(self.owner.fail_status, err)
            return
        count = len(body.get("messages", []))
        text = reply_text(number, count)
        if body.get("stream"):
            self._stream(body, text, count)
        else:
            self._json(200, _message(body, text, count))

    def _json(self, status: int, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], text: str, count: int) -> None:
        msg = _message(body, "", count)
        msg["content"] = []
        msg["stop_reason"] = None
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": msg}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 12},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        payload = b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _message(body: dict[str, Any], text: str, count: int) -> dict[str, Any]:
    return {
        "id": f"msg_mock_{count}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-mock"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10 * max(count, 1), "output_tokens": 12},
    }


def main() -> None:
    """``python -m baton.testing.mock_anthropic [PORT]``: serve until interrupted."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    with MockAnthropic(port=port) as mock:
        print(mock.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
