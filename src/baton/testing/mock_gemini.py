"""A mock Gemini API (``generativelanguage`` v1beta) for offline runs of the real Gemini CLI
(:class:`MockGemini`). On 127.0.0.1 it answers ``:streamGenerateContent?alt=sse`` (the conversation
turn, as SSE chunks whose last carries ``finishReason: STOP`` and ``usageMetadata``), ``:generateContent``
(the same object as JSON), and anything else under ``/v1beta/models`` harmlessly. Every conversation reply
says how many ``contents`` entries the request carried (``mock reply #3: received 5 contents``): a fresh
conversation sends 1 and each resumed turn adds two. The CLI's utility calls get schema-shaped answers
(:meth:`_Handler._reply`), a ``[[tool:NAME ARGS]]`` marker a ``functionCall``
(:meth:`MockRequest.tool_calls`), and ``quota_exhausted`` and ``rate_limit`` refuse as its API does.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from baton.testing import mock_cli
from baton.testing._http import JsonHandler, MockServer, RecordedRequest, Refusal, export_line
from baton.testing.tools import MarkerError, find_calls

STREAM = ":streamGenerateContent"
GENERATE = ":generateContent"
Part = dict[str, Any]


@dataclass
class MockRequest(RecordedRequest):
    """One request the mock received."""

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
        return "\n".join(_texts(self.contents))

    def latest_user_text(self) -> str:
        """The text parts of the last content if it is the user's: a new turn's prompt. After a tool call
        the last content holds the ``functionResponse`` parts (no text), so this is empty."""
        last = self.contents[-1:]
        return "\n".join(_texts(last)) if last and last[0].get("role") == "user" else ""

    def offers_tools(self) -> bool:
        tools = self.body.get("tools")
        return isinstance(tools, list) and any(
            isinstance(t, dict) and t.get("functionDeclarations") for t in tools
        )

    def tool_calls(self) -> list[Part]:
        """The ``functionCall`` parts (``{"name": NAME, "args": ARGS}``) the markers in the last
        ``contents`` entry ask for, when it is the user's, beside the reply's text (none unless the
        request offers ``functionDeclarations``); raises :class:`MarkerError` for a marker that cannot be
        parsed (answered with HTTP 400). A tool the request does not offer is still called: the CLI
        answers ``Tool "NAME" not found``. Gemini sends each result back as a ``functionResponse`` part
        in a new user content (:meth:`function_responses`): no text, so that request gets text and the
        turn ends."""
        if not self.is_conversation or not self.offers_tools():
            return []
        offered = [
            str(f.get("name"))
            for t in self.body.get("tools") or []
            if isinstance(t, dict)
            for f in t.get("functionDeclarations") or []
            if isinstance(f, dict)
        ]
        return [
            {"functionCall": {"name": name, "args": args}}
            for name, args in find_calls(self.latest_user_text(), offered)
        ]

    def function_responses(self) -> list[dict[str, Any]]:
        """The ``functionResponse`` objects the CLI sent back (each with its ``name`` and ``response``)."""
        found: list[dict[str, Any]] = []
        for content in self.contents:
            for part in content.get("parts", []) if isinstance(content, dict) else []:
                if isinstance(part, dict) and isinstance(part.get("functionResponse"), dict):
                    found.append(part["functionResponse"])
        return found


def _texts(contents: list[dict[str, Any]]) -> list[str]:
    parts: list[str] = []
    for content in contents:
        for part in content.get("parts", []) if isinstance(content, dict) else []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
    return parts


@dataclass
class MockGemini(MockServer[MockRequest]):
    """A running mock server; use as a context manager or call :meth:`start`/:meth:`stop`. Every
    request is kept in :attr:`requests`; ``delay`` holds each conversation reply back before the first
    byte (a slow model, for kill-mid-run tests); ``fail_status`` answers every request with that HTTP
    status; ``refusal`` answers conversation requests the way the Gemini API refuses a request over a
    quota (:func:`quota_exhausted`, :func:`rate_limit`). ``python -m baton.testing.mock_gemini [--port
    N]`` serves it by hand (:mod:`baton.testing.mock_cli`)."""

    block_on_close: ClassVar[bool] = False  # a reply held back by ``delay`` must not hold up stop()
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)

    def handler_class(self) -> type[_Handler]:
        return _Handler

    def env(self) -> dict[str, str]:
        """The environment that points the Gemini CLI at this server with its own traffic off.

        The API key only has to be present; ``GEMINI_CLI_TRUST_WORKSPACE`` avoids the untrusted-folder
        exit (55) in a fresh worktree; ``GEMINI_CLI_NO_RELAUNCH`` skips the child-process relaunch (a
        faster start, and one process to kill). Nothing is written to the home (:meth:`configure_home`):
        the Gemini adapter manages ``settings.json`` (auth type, telemetry, …)."""
        return {
            "GEMINI_API_KEY": "mock-key",
            "GOOGLE_GEMINI_BASE_URL": self.url,
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            "GEMINI_TELEMETRY_ENABLED": "false",
            "NO_BROWSER": "true",
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }

    def shell_lines(self) -> list[str]:
        """The export line for a shell, and what plain ``gemini`` needs besides (baton's adapter
        trusts the worktree and writes ``settings.json`` itself)."""
        values = {"GOOGLE_GEMINI_BASE_URL": self.url, "GEMINI_API_KEY": "mock-key"}
        return [
            "# point the Gemini CLI (and baton run -a gemini) at this mock:",
            export_line(values),
            "# plain `gemini` outside baton also needs GEMINI_CLI_TRUST_WORKSPACE=true, and in",
            '# ~/.gemini/settings.json: {"security": {"auth": {"selectedType": "gemini-api-key"}}}',
        ]

    def too_long(self, tokens: int, maximum: int) -> Refusal:
        """The Gemini API's refusal of an input longer than the model's window: HTTP 400
        ``INVALID_ARGUMENT``, ``The input token count (N) exceeds the maximum number of tokens allowed
        (M).``"""
        return input_too_long(tokens, maximum)

    def content_counts(self) -> list[int]:
        """How many ``contents`` each conversation request carried, in order."""
        return [len(r.contents) for r in self.conversation()]

    def history_counts(self) -> list[int]:
        """History items each conversation request carried (``contents`` entries, for this API)."""
        return self.content_counts()

    def start(self) -> Self:
        self._stopping.clear()
        return super().start()

    def stop(self) -> None:
        self._stopping.set()  # wakes replies still waiting out ``delay``
        super().stop()

    def held(self) -> bool:
        """Hold a reply ``delay`` seconds, or until :attr:`released` is set; True when the server
        stopped meanwhile (the reply is not given)."""
        deadline = time.monotonic() + self.delay
        while not self.released.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self._stopping.wait(min(left, 0.05)):  # the sampling period of ``released``
                return True
        return self._stopping.is_set()


# -- refusals ---------------------------------------------------------------------------------------
# The Gemini API (generativelanguage v1beta) refuses a request over a quota with HTTP 429
# RESOURCE_EXHAUSTED and google.rpc details. Gemini CLI 0.61 (classifyGoogleError in its
# googleQuotaErrors.ts) reads them in this order: a QuotaFailure violation whose quotaId has "PerDay" or
# "Daily" is a TerminalQuotaError (not retried; its RetryInfo is dropped); else a RetryInfo delay is a
# RetryableQuotaError (a TerminalQuotaError when over 300 s); else a "PerMinute" quotaId is a
# RetryableQuotaError with 60 s. A message with "limit: 0" is terminal before any of that, so the
# limits named here are never 0.

QUOTA_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"
QUOTA_MODEL = "gemini-2.5-pro"
DAILY_QUOTA = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
MINUTE_QUOTA = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"


def quota_exhausted(retry_delay_s: int | None, times: int | None = None) -> Refusal:
    """The Gemini API's refusal of a spent daily quota (the free tier's requests a day for a model):
    HTTP 429 ``RESOURCE_EXHAUSTED`` with a ``QuotaFailure`` naming :data:`DAILY_QUOTA` and, when
    ``retry_delay_s`` is given, a ``RetryInfo`` and ``Please retry in …`` in the message, as the real
    API adds them. Gemini CLI takes it for a TerminalQuotaError."""
    return Refusal(429, _quota_body(DAILY_QUOTA, 50, retry_delay_s), {}, times)


def rate_limit(retry_delay_s: int = 5, times: int | None = None) -> Refusal:
    """The Gemini API's refusal of a per-minute quota (requests a minute for a model): HTTP 429
    ``RESOURCE_EXHAUSTED`` with a ``QuotaFailure`` naming :data:`MINUTE_QUOTA` and a ``RetryInfo`` of
    ``retry_delay_s``. Gemini CLI takes it for a RetryableQuotaError and retries it with backoff."""
    return Refusal(429, _quota_body(MINUTE_QUOTA, 2, retry_delay_s), {}, times)


def _quota_body(quota_id: str, limit: int, retry_delay_s: int | None) -> dict[str, Any]:
    """The ``error`` object the real API sends for a quota, details in its order."""
    metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
    message = (
        "You exceeded your current quota, please check your plan and billing details. For more "
        f"information on this error, head to: {QUOTA_DOCS}.\n* Quota exceeded for metric: {metric}, "
        f"limit: {limit}, model: {QUOTA_MODEL}"
    )
    violation = {
        "quotaMetric": metric,
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": QUOTA_MODEL},
        "quotaValue": str(limit),
    }
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]},
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [{"description": "Learn more about Gemini API quotas", "url": QUOTA_DOCS}],
        },
    ]
    if retry_delay_s is not None:
        message += f"\nPlease retry in {retry_delay_s}s."
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_delay_s}s"}
        )
    return {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}}


def input_too_long(tokens: int, maximum: int) -> Refusal:
    """The Gemini API's HTTP 400 for an input over the model's context window (as its API words it)."""
    message = f"The input token count ({tokens}) exceeds the maximum number of tokens allowed ({maximum})."
    return Refusal(400, _error(400, "INVALID_ARGUMENT", message))


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


def _response(
    text: str, count: int, model: str, finished: bool, calls: list[Part] | None = None, tokens: int = 0
) -> dict[str, Any]:
    parts: list[Part] = [{"text": text}] if text or not calls else []
    chunk: dict[str, Any] = {
        "candidates": [{"content": {"role": "model", "parts": [*parts, *(calls or [])]}, "index": 0}],
        "modelVersion": model,
    }
    if finished:
        chunk["candidates"][0]["finishReason"] = "STOP"
        prompt = tokens or 10 * max(count, 1)
        chunk["usageMetadata"] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": 12,
            "totalTokenCount": prompt + 12,
        }
    return chunk


class _Handler(JsonHandler):
    owner: MockGemini

    def do_GET(self) -> None:
        if self._route().startswith("/v1beta/models"):
            self._json(200, {"models": []})
        else:
            self._json(200, {"ok": True})

    def do_POST(self) -> None:
        try:
            body = self._json_body()
        except json.JSONDecodeError:
            self._json(400, _error(400, "INVALID_ARGUMENT", "body is not JSON"))
            return
        path = self._route()
        if not path.startswith("/v1beta/models/") or not isinstance(body, dict):
            self._json(404, _error(404, "NOT_FOUND", f"no such method: {path}"))
            return
        request = MockRequest(path, body)
        number = self.owner.record(request)
        if self.owner.fail_status is not None:
            self._json(self.owner.fail_status, _error(self.owner.fail_status, "INTERNAL", "mock failure"))
            return
        refusal = self.owner.refusing(request) or self.owner.over_window(request, len(request.contents))
        if refusal is not None:
            self._send(refusal.status, json.dumps(refusal.body).encode(), "application/json", refusal.headers)
            return
        if request.method == "countTokens":
            self._json(200, {"totalTokens": 10})
            return
        if request.method not in ("streamGenerateContent", "generateContent"):
            self._json(404, _error(404, "NOT_FOUND", f"no such method: {request.method}"))
            return
        self._reply(request, number)

    def _reply(self, request: MockRequest, number: int) -> None:
        """A generate call's answer: schema-shaped JSON, the conversation's text (and the tool calls
        its markers ask for), or a title. A request whose ``generationConfig`` asks for JSON with a
        schema is a utility call, not a conversation turn (the CLI's model router, its next-speaker and
        loop checks): it gets an object built from the schema itself (:func:`fill_schema`), so any such
        call works without the mock knowing it in advance. A non-streaming call without a schema (a
        title, a summary) gets a short text. Neither kind counts as a conversation request."""
        try:
            calls = request.tool_calls()
        except MarkerError as exc:
            self._json(400, _error(400, "INVALID_ARGUMENT", f"mock: {exc}"))
            return
        count = len(request.contents)
        if request.schema is not None:
            text = json.dumps(fill_schema(request.schema))
        elif number:
            if self.owner.delay and self.owner.held():
                self.close_connection = True
                return
            text = reply_text(number, count)
        else:
            text = "Mock session title"
        tokens = self.owner.prompt_tokens(count) if number else 0
        if request.method == "streamGenerateContent":
            # two chunks, as the real API streams: the text, then the tool calls (or an empty text part)
            # with the finish reason
            chunks = [
                _response(text, count, request.model, False),
                _response("", count, request.model, True, calls, tokens),
            ]
            self._sse(f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in chunks)
        else:
            self._json(200, _response(text, count, request.model, True, calls, tokens))


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m baton.testing.mock_gemini [--port N] [--print-env]`` (:mod:`baton.testing.mock_cli`)."""
    description = (
        "A mock Gemini API (v1beta) on 127.0.0.1, to run the Gemini CLI offline.\n"
        "Each reply says how many contents the request carried."
    )
    return mock_cli.main(MockGemini, "mock_gemini", description, argv)


if __name__ == "__main__":
    sys.exit(main())
