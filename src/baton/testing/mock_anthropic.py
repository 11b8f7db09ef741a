"""A mock Anthropic Messages API for offline runs of the real Claude Code CLI.

It answers ``POST /v1/messages`` (streaming SSE or plain JSON) on 127.0.0.1. Every reply says how many
messages the request carried (``mock reply #3: received 6 messages``), which is how tests and the demo
prove that a resumed conversation really carried its history: a fresh conversation starts at 2 (the
user turn plus Claude Code's ``# Environment`` message), and each resumed turn adds two.

Every request is kept in :attr:`MockAnthropic.requests`, so a test can read what the agent sent (for
example the recap of a recovered conversation). ``delay`` holds each reply back for that many seconds
before the first byte (a slow model, for kill-mid-run tests); ``fail_status`` answers every request
with that HTTP status. The server plumbing (start/stop, the request log, JSON and SSE replies) is
shared with the other mocks in :mod:`baton.testing._http`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from baton.testing._http import JsonHandler, MockServer, RecordedRequest


@dataclass
class MockRequest(RecordedRequest):
    """One request the mock received."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.body.get("messages", [])
        return msgs if isinstance(msgs, list) else []

    @property
    def is_conversation(self) -> bool:
        return self.path.startswith("/v1/messages")

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
class MockAnthropic(MockServer[MockRequest]):
    """A running mock server; use as a context manager or call :meth:`start`/:meth:`stop`."""

    def handler_class(self) -> type[_Handler]:
        return _Handler

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
        return [len(r.messages) for r in self.conversation()]

    def history_counts(self) -> list[int]:
        """History items each conversation request carried (messages, for this API)."""
        return self.message_counts()


def reply_text(number: int, count: int) -> str:
    return f"mock reply #{number}: received {count} messages"


class _Handler(JsonHandler):
    owner: MockAnthropic

    def do_GET(self) -> None:
        self._json(200, {"ok": True})

    def do_POST(self) -> None:
        try:
            body = self._json_body()
        except json.JSONDecodeError:
            self._json(400, {"type": "error", "error": {"type": "invalid_request_error"}})
            return
        path = self._route()
        if not path.startswith("/v1/messages"):
            self._json(404, {"type": "error", "error": {"type": "not_found_error"}})
            return
        if path.endswith("/count_tokens"):
            self._json(200, {"input_tokens": 10})
            return
        number = self.owner.record(MockRequest(path, body))
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
        self._sse(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events)


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
    MockAnthropic.serve_until_interrupted()


if __name__ == "__main__":
    main()
