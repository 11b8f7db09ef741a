"""A mock Anthropic Messages API for offline runs of the real Claude Code CLI (:class:`MockAnthropic`). It
answers ``POST /v1/messages`` (streaming SSE or plain JSON) on 127.0.0.1, every reply saying how many
messages the request carried (``mock reply #3: received 6 messages``): a fresh conversation starts at 2
(the user turn plus Claude Code's ``# Environment`` message) and each resumed turn adds two, which is how
tests and the demo prove that a resumed conversation carried its history. A ``[[tool:NAME ARGS]]`` marker
(:mod:`baton.testing.tools`) makes it call a tool (:meth:`MockRequest.tool_calls`); ``usage_limit`` and
``rate_limit`` refuse as Anthropic's API does. ``python -m baton.testing.mock_anthropic [--port N]``
serves it by hand (:mod:`baton.testing.mock_cli`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from baton.testing import mock_cli
from baton.testing._http import JsonHandler, MockServer, RecordedRequest, Refusal, export_line
from baton.testing.tools import MarkerError as MarkerError  # re-exported: tests import them from here
from baton.testing.tools import find_calls
from baton.testing.tools import tool_input as tool_input
from baton.testing.tools import tool_marker as tool_marker

Block = dict[str, Any]


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
        return "\n".join(_texts(self.messages))

    def latest_user_text(self) -> str:
        """The text blocks of the last ``user`` message (a tool result's content is not text)."""
        users = [m for m in self.messages if isinstance(m, dict) and m.get("role") == "user"]
        return "\n".join(_texts(users[-1:]))

    def tool_calls(self) -> list[Block]:
        """The ``tool_use`` blocks this request asks for: one per marker in the text of the latest
        ``user`` message (Claude Code puts its ``# Environment`` message after it, as a ``system``
        message), each calling ``NAME`` (id ``toolu_mock_<N>_<i>``) after the reply's text, with stop
        reason ``tool_use``. None unless the request offers ``tools`` (a side call offering none gets
        text). Raises :class:`MarkerError` for a marker that cannot be parsed (answered with HTTP 400,
        so a typo fails the run loudly). Claude Code sends the tool's result back in a new request
        whose latest user message holds the ``tool_result``, not the marker: that request gets the
        plain text reply and the turn ends."""
        tools = self.body.get("tools")
        if not tools or not isinstance(tools, list):
            return []
        offered = [t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
        return [
            {"type": "tool_use", "name": name, "input": args}
            for name, args in find_calls(self.latest_user_text(), offered)
        ]


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    parts: list[str] = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and isinstance(block.get("text"), str):
                    parts.append(block["text"])
    return parts


@dataclass
class MockAnthropic(MockServer[MockRequest]):
    """A running mock server; use as a context manager or call :meth:`start`/:meth:`stop`. Every
    request is kept in :attr:`requests` (what the agent sent: a recovered conversation's recap, a
    tool's result); ``delay`` holds each reply back before the first byte (a slow model, for
    kill-mid-run tests); ``fail_status`` answers every request with that HTTP status; ``answer``, when
    set, is every reply's text instead of the count (a test steering what the agent answers)."""

    answer: str | None = None

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

    def shell_lines(self) -> list[str]:
        """The export line for a shell (the URL, a key, Claude Code's own traffic off)."""
        values = {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "mock-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        return ["# point Claude Code (and baton run -a claude) at this mock:", export_line(values)]

    def too_long(self, tokens: int, maximum: int) -> Refusal:
        """Anthropic's refusal of a prompt longer than the model's window: HTTP 400
        ``invalid_request_error``, ``prompt is too long: N tokens > M maximum``."""
        return prompt_too_long(tokens, maximum)

    def message_counts(self) -> list[int]:
        """How many messages each conversation request carried, in order."""
        return [len(r.messages) for r in self.conversation()]

    def history_counts(self) -> list[int]:
        """History items each conversation request carried (messages, for this API)."""
        return self.message_counts()


def usage_limit(resets_at: int, claim: str = "five_hour", times: int | None = None) -> Refusal:
    """Anthropic's refusal of a subscription's spent usage limit (Claude Max's five-hour or weekly
    window): HTTP 429 with the ``anthropic-ratelimit-unified-*`` headers, which Claude Code turns into a
    ``rate_limit_event`` under a subscription login (``CLAUDE_CODE_OAUTH_TOKEN``)."""
    headers = {
        "retry-after": str(max(0, resets_at - int(time.time()))),
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": str(resets_at),
        "anthropic-ratelimit-unified-representative-claim": claim,
        "anthropic-ratelimit-unified-5h-status": "rejected" if claim == "five_hour" else "allowed",
        "anthropic-ratelimit-unified-5h-reset": str(resets_at),
    }
    return Refusal(429, _refusal_body(), headers, times)


def rate_limit(retry_after: int = 30, times: int | None = None) -> Refusal:
    """Anthropic's refusal of an API key's per-minute rate limit: HTTP 429 ``rate_limit_error`` with a
    ``retry-after`` and no unified headers (a transient limit)."""
    return Refusal(429, _refusal_body(), {"retry-after": str(retry_after)}, times)


def poisoned_history(fresh: int = 2) -> Refusal:
    """Anthropic's refusal of a history it cannot take (HTTP 400 ``invalid_request_error``, as for a
    ``tool_result`` without its ``tool_use``), for every request carrying more than a new conversation's
    ``fresh`` messages: a resume of such a conversation fails at once, every time; a new one goes on."""
    message = "messages.1.content.0: unexpected `tool_use_id` found in `tool_result` blocks"
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    return Refusal(400, body, when=lambda request: len(request.messages) > fresh)


def _refusal_body() -> dict[str, Any]:
    message = "This request would exceed your account's rate limit. Please try again later."
    return {"type": "error", "error": {"type": "rate_limit_error", "message": message}}


def prompt_too_long(tokens: int, maximum: int) -> Refusal:
    """Anthropic's HTTP 400 for a prompt over the model's context window (as its API words it)."""
    message = f"prompt is too long: {tokens} tokens > {maximum} maximum"
    return Refusal(400, {"type": "error", "error": {"type": "invalid_request_error", "message": message}})


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
        request = MockRequest(path, body)
        number = self.owner.record(request)
        if self.owner.delay:
            self.owner.released.wait(self.owner.delay)
        if self.owner.fail_status is not None:
            self._error(self.owner.fail_status, "api_error", "mock failure")
            return
        refusal = self.owner.refusing(request) or self.owner.over_window(request, len(request.messages))
        if refusal is not None:
            self._send(refusal.status, json.dumps(refusal.body).encode(), "application/json", refusal.headers)
            return
        self._reply(request, number)

    def _error(self, status: int, kind: str, message: str) -> None:
        self._json(status, {"type": "error", "error": {"type": kind, "message": message}})

    def _reply(self, request: MockRequest, number: int) -> None:
        try:
            calls = request.tool_calls()
        except MarkerError as exc:
            self._error(400, "invalid_request_error", f"mock: {exc}")
            return
        count = len(request.messages)
        content: list[Block] = [{"type": "text", "text": self.owner.answer or reply_text(number, count)}]
        for index, call in enumerate(calls, 1):
            content.append({**call, "id": f"toolu_mock_{number}_{index}"})
        msg = _message(request.body, content, count, self.owner.prompt_tokens(count))
        if request.body.get("stream"):
            self._sse(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in _stream_events(msg))
        else:
            self._json(200, msg)


def _message(body: dict[str, Any], content: list[Block], count: int, tokens: int) -> dict[str, Any]:
    calls = any(block["type"] == "tool_use" for block in content)
    return {
        "id": f"msg_mock_{count}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", "claude-mock"),
        "content": content,
        "stop_reason": "tool_use" if calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": tokens, "output_tokens": 12},
    }


Event = tuple[str, dict[str, Any]]


def _event(name: str, **fields: Any) -> Event:
    """One server-sent event: its name, and its data (which repeats the name as ``type``)."""
    return name, {"type": name, **fields}


def _stream_events(msg: dict[str, Any]) -> list[Event]:
    """The Messages API's SSE sequence for a whole message: start, each block, delta, stop."""
    events = [_event("message_start", message={**msg, "content": [], "stop_reason": None})]
    for index, block in enumerate(msg["content"]):
        events += _block_events(index, block)
    delta = {"stop_reason": msg["stop_reason"], "stop_sequence": None}
    events.append(_event("message_delta", delta=delta, usage={"output_tokens": 12}))
    events.append(_event("message_stop"))
    return events


def _block_events(index: int, block: Block) -> list[Event]:
    """A text block as one ``text_delta``; a tool call opens with an empty input and streams its JSON
    in two ``input_json_delta`` pieces (clients must join partial JSON before parsing it)."""
    if block["type"] == "tool_use":
        opened: Block = {**block, "input": {}}
        whole = json.dumps(block["input"])
        half = len(whole) // 2
        deltas = [{"type": "input_json_delta", "partial_json": part} for part in (whole[:half], whole[half:])]
    else:
        opened = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": block["text"]}]
    return [
        _event("content_block_start", index=index, content_block=opened),
        *(_event("content_block_delta", index=index, delta=delta) for delta in deltas),
        _event("content_block_stop", index=index),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m baton.testing.mock_anthropic [--port N] [--print-env]`` (:mod:`baton.testing.mock_cli`)."""
    description = (
        "A mock Anthropic Messages API on 127.0.0.1, to run Claude Code offline.\n"
        "Each reply says how many messages the request carried."
    )
    return mock_cli.main(MockAnthropic, "mock_anthropic", description, argv)


if __name__ == "__main__":
    sys.exit(main())
