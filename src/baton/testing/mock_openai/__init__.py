"""A mock OpenAI Responses API for offline runs of the real Codex CLI (:class:`MockOpenAI`; the ACP agents'
mocks build on it: :mod:`baton.testing.mock_openai_agents`). It answers ``POST /v1/responses`` on
127.0.0.1 with the server-sent events Codex accepts (:func:`events`; docs/agent-clis.md), every reply
saying how many ``input`` items the request carried (``mock reply #3: received 8 items``): 4 on a fresh
thread, then 6, 8, … as resumes re-send the history. A ``[[tool:NAME ARGS]]`` marker makes it call a
tool (:meth:`MockRequest.tool_calls`); :meth:`MockOpenAI.configure_home` points a Codex home at it;
``usage_limit`` and ``rate_limit`` refuse as OpenAI does. ``python -m baton.testing.mock_openai [--port N]
[--agent NAME]`` serves it by hand (:mod:`baton.testing.mock_cli`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from baton.agents.codex import merge_toml
from baton.testing._http import JsonHandler, MockServer, RecordedRequest, Refusal, export_line
from baton.testing.tools import MarkerError, find_calls

API_KEY_ENV = "MOCK_API_KEY"
MODEL = "gpt-5.5"  # in Codex's built-in catalogue: an unknown name adds a metadata warning event
Item = dict[str, Any]
COMPACTION = "Please create a detailed summary of the conversation so far."  # Copilot CLI 1.0's words
TITLING = "You are a title generator."  # OpenCode 1.18's


@dataclass
class MockRequest(RecordedRequest):
    """One request the mock received."""

    @property
    def input(self) -> list[Any]:
        items = self.body.get("input", [])
        return items if isinstance(items, list) else []

    @property
    def is_conversation(self) -> bool:
        """A turn of the conversation; not a CLI's own compaction of it (Copilot CLI summarises a
        conversation grown past a share of its context in a request of its own) nor a title for it
        (OpenCode asks for one, with its own instructions, on a conversation's first turn)."""
        first = self.input[0] if self.input and isinstance(self.input[0], dict) else {}
        titling = first.get("role") == "developer" and str(first.get("content")).startswith(TITLING)
        return self.path.startswith("/v1/responses") and not (
            titling or self.latest_user_text().startswith(COMPACTION)
        )

    def text(self) -> str:
        """All the text of the request's ``input`` items, joined (for asserting what was sent)."""
        parts: list[str] = []
        for item in self.input:
            _collect_text(item, parts)
        return "\n".join(parts)

    def latest_user_text(self) -> str:
        """The text of the last ``input`` item if it is a user message: where a new turn's prompt is.
        After a tool call the last items are the call and its output, so this is empty."""
        last = self.input[-1] if self.input else None
        if (
            not isinstance(last, dict)
            or last.get("type", "message") != "message"
            or last.get("role") != "user"
        ):
            return ""
        parts: list[str] = []
        _collect_text(last.get("content"), parts)
        return "\n".join(parts)

    def offered_tools(self) -> dict[str, str]:
        """The tools the request offers, name → type (``function``, ``custom``, …)."""
        tools = self.body.get("tools")
        found = [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
        return {str(t["name"]): str(t.get("type")) for t in found if "name" in t}

    def tool_calls(self) -> list[Item]:
        """The output items calling the tools the latest user message's markers ask for (none unless
        the request offers tools): a ``custom_tool_call`` with the marker's ``input`` as its text for a
        tool offered as ``custom`` (Codex's freeform ``apply_patch``), else a ``function_call`` with the
        marker's arguments as JSON. Raises :class:`MarkerError` for a marker that cannot be parsed
        (answered with HTTP 400). Ids are ``fc_mock_<N>_<i>`` / ``ctc_mock_<N>_<i>``, call ids
        ``call_mock_<N>_<i>``. Codex sends each result back as a ``function_call_output`` or
        ``custom_tool_call_output`` item after the call (:meth:`tool_outputs`): that request's last item
        is no user message, so it gets text and the turn ends."""
        offered = self.offered_tools()
        if not offered:
            return []
        found = self.searched_tools()
        if found is not None:  # the tools a search found: the markers that asked for one call it now
            return [
                _function_call(name, args, found[name]) for name, args in self.wanted(found) if name in found
            ]
        calls: list[Item] = []
        for name, args in find_calls(self.latest_user_text(), offered):
            if name not in offered and self.can_search():
                # a deferred tool (Codex defers MCP tools): search for it first, as a model does
                calls.append(_search_call(name))
                continue
            if offered.get(name) == "custom":
                calls.append(
                    {
                        "type": "custom_tool_call",
                        "status": "completed",
                        "name": name,
                        "input": str(args.get("input", "")),
                    }
                )
            else:
                calls.append(
                    {
                        "type": "function_call",
                        "status": "completed",
                        "name": name,
                        "arguments": json.dumps(args),
                    }
                )
        return calls

    def can_search(self) -> bool:
        """Whether the request offers ``tool_search`` (deferred tools are found through it)."""
        tools = self.body.get("tools")
        return isinstance(tools, list) and any(
            isinstance(t, dict) and t.get("type") == "tool_search" for t in tools
        )

    def searched_tools(self) -> dict[str, str | None] | None:
        """When the last input item is a ``tool_search_output``: the tools it found, name → namespace
        (the call names both), else None."""
        last = self.input[-1] if self.input else None
        if not isinstance(last, dict) or last.get("type") != "tool_search_output":
            return None
        found: dict[str, str | None] = {}
        for tool in last.get("tools") or []:
            if isinstance(tool, dict) and tool.get("type") == "namespace":
                for inner in tool.get("tools") or []:
                    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                        found[inner["name"]] = str(tool.get("name"))
            elif isinstance(tool, dict) and isinstance(tool.get("name"), str):
                found[tool["name"]] = None
        return found

    def wanted(self, found: dict[str, str | None]) -> list[tuple[str, dict[str, Any]]]:
        """The markers of the last user message (before the search), resolved among ``found``."""
        users = [
            item
            for item in self.input
            if isinstance(item, dict)
            and item.get("type", "message") == "message"
            and item.get("role") == "user"
        ]
        parts: list[str] = []
        _collect_text(users[-1].get("content") if users else None, parts)
        return find_calls("\n".join(parts), found)

    def tool_outputs(self) -> dict[str, Any]:
        """What the CLI sent back for each tool call in the history: call id → output."""
        return {
            str(item["call_id"]): item.get("output")
            for item in self.input
            if isinstance(item, dict) and str(item.get("type")).endswith("_call_output") and "call_id" in item
        }


def _search_call(name: str) -> Item:
    return {
        "type": "tool_search_call",
        "status": "completed",
        "execution": "client",
        "arguments": {"query": name, "limit": 8},
    }


def _function_call(name: str, args: dict[str, Any], namespace: str | None) -> Item:
    call: Item = {"type": "function_call", "status": "completed", "name": name, "arguments": json.dumps(args)}
    return {**call, "namespace": namespace} if namespace else call


def _collect_text(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, dict):
        for key in ("text", "content", "output"):
            if key in value:
                _collect_text(value[key], parts)
    elif isinstance(value, list):
        for item in value:
            _collect_text(item, parts)


@dataclass
class MockOpenAI(MockServer[MockRequest]):
    """A running mock server; use as a context manager or call :meth:`start`/:meth:`stop`.
    ``reply_headers`` are sent with every answer (not with refusals, which carry their own;
    :func:`rate_limit_headers`: the ``x-codex-*`` usage headers the ChatGPT backend sends with every
    reply, which Codex records). Every request is kept in :attr:`requests`; ``delay`` holds each reply
    back before the first byte (a slow model, for kill-mid-run tests); ``fail_status`` answers every
    conversation request with that HTTP status; ``refusal`` answers conversation requests the way OpenAI
    refuses one over a limit (:func:`usage_limit`: a ChatGPT plan's spent Codex limit;
    :func:`rate_limit`: an API key's per-minute limit)."""

    reply_headers: dict[str, str] = field(default_factory=dict)

    def handler_class(self) -> type[_Handler]:
        return _Handler

    def env(self) -> dict[str, str]:
        """The API key the provider names. Nothing else is needed to keep Codex offline: the provider
        comes from config.toml (:meth:`configure_home`), and the update check, plugin sync, analytics,
        feedback and telemetry are switched off there by the Codex adapter (measured with strace: the
        only connection Codex then opens is to this server)."""
        return {API_KEY_ENV: "mock-key"}

    def provider(self) -> dict[str, Any]:
        """The ``[model_providers.mock]`` table that points Codex here."""
        return {
            "name": "Mock",
            "base_url": f"{self.url}/v1",
            "env_key": API_KEY_ENV,  # sent as Authorization: Bearer <value>
            "wire_api": "responses",  # Codex no longer supports "chat"
            "request_max_retries": 0,
            "stream_max_retries": 0,
        }

    def shell_lines(self) -> list[str]:
        """The export line baton reads for Codex, and, as comments, the config.toml lines plain
        ``codex`` needs instead (it ignores ``OPENAI_BASE_URL``)."""
        values = {
            "OPENAI_BASE_URL": f"{self.url}/v1",
            "OPENAI_API_KEY": "mock-key",
            "BATON_CODEX_MODEL": MODEL,
        }
        return [
            "# point baton run -a codex at this mock (baton makes it each turn's model provider; the model",
            "# named, as under Codex's default one it is offered no tools, baton's ask_human among them):",
            export_line(values),
            "# plain `codex` ignores OPENAI_BASE_URL: put these lines in $CODEX_HOME/config.toml (default",
            "# ~/.codex/config.toml), the first two above any [table], and export OPENAI_API_KEY as above",
            "# (--agent codex --print-config prints them alone):",
            *(f"#   {line}" for line in (self.config_text() or "").splitlines()),
        ]

    def config_text(self) -> str | None:
        """The config.toml lines that point plain ``codex`` here."""
        toml = [
            f"model = {json.dumps(MODEL)}",
            'model_provider = "mock"',
            "[model_providers.mock]",
            'name = "Mock"',
            f"base_url = {json.dumps(f'{self.url}/v1')}",
            'env_key = "OPENAI_API_KEY"',
            'wire_api = "responses"',
        ]
        return "\n".join(toml) + "\n"

    def configure_home(self, home: Path) -> None:
        """Merge this server as Codex's model provider into ``home/config.toml``, keeping other keys:
        Codex reads no base URL from the environment. The merge is the Codex adapter's
        (:func:`baton.agents.codex.merge_toml`, which keeps comments), as that adapter owns the rest of
        the file; :meth:`env` supplies the API key the provider names."""
        home.mkdir(parents=True, exist_ok=True)
        forced = {"model_providers": {"mock": self.provider()}, "model_provider": "mock", "model": MODEL}
        merge_toml(home / "config.toml", forced)

    ITEM_TOKENS: ClassVar[int] = 100

    def too_long(self, tokens: int, maximum: int) -> Refusal:
        """OpenAI's refusal of an input longer than the model's window: HTTP 400,
        ``code: context_length_exceeded``."""
        return context_length_exceeded()

    def conversation_requests(self) -> list[MockRequest]:
        return self.conversation()

    def history_counts(self) -> list[int]:
        """How many ``input`` items each conversation request carried, in order."""
        return [len(r.input) for r in self.conversation()]


def usage_limit(
    resets_at: int, times: int | None = None, plan_type: str = "plus", window_minutes: int = 300
) -> Refusal:
    """The ChatGPT backend's refusal of a plan's spent Codex limit (a five-hour or weekly window): HTTP
    429 with ``error.type`` ``usage_limit_reached``, the plan, the reset as ``resets_at`` (epoch
    seconds) and ``resets_in_seconds``, and the ``x-codex-*`` usage headers with the window at 100 %.
    Codex 0.169 reads ``usage_limit_reached``, ``plan_type`` and ``resets_at`` from such a body, and the
    headers of the limit ``x-codex-active-limit`` names (``codex``: the ``x-codex-primary-*`` and
    ``x-codex-secondary-*`` families), codex-rs ``api_bridge.rs`` and ``rate_limits.rs``."""
    now = int(time.time())
    message = "The usage limit has been reached"
    error = {
        "type": "usage_limit_reached",
        "message": message,
        "plan_type": plan_type,
        "resets_at": resets_at,
        "resets_in_seconds": max(0, resets_at - now),
    }
    spent: Window = (100.0, window_minutes, resets_at)
    if window_minutes <= 300:  # the five-hour window is spent; the weekly one is not
        primary, secondary = spent, (60.0, 10080, resets_at + 86400)
    else:  # the weekly window is spent
        primary, secondary = (40.0, 300, now + 3600), spent
    headers = {"x-codex-active-limit": "codex", **rate_limit_headers(primary, secondary)}
    return Refusal(429, {"error": error}, headers, times)


def rate_limit(retry_after: int = 30, times: int | None = None) -> Refusal:
    """OpenAI's refusal of an API key's per-minute rate limit (a transient limit): HTTP 429 with
    ``code`` ``rate_limit_exceeded``, a ``retry-after`` and the ``x-ratelimit-*`` headers, as the
    platform API sends them; no ``x-codex-*`` headers (those are the ChatGPT backend's)."""
    message = (
        "Rate limit reached for gpt-5.5 in organization org-mock on tokens per min (TPM): Limit 30000, "
        f"Used 30000, Requested 1200. Please try again in {retry_after}s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more."
    )
    error = {"message": message, "type": "tokens", "param": None, "code": "rate_limit_exceeded"}
    headers = {
        "retry-after": str(retry_after),
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": f"{retry_after}s",
    }
    return Refusal(429, {"error": error}, headers, times)


Window = tuple[float, int, int]  # used percent, window minutes, reset (epoch seconds)


def rate_limit_headers(primary: Window, secondary: Window | None = None) -> dict[str, str]:
    """The ChatGPT backend's usage headers (``x-codex-primary-used-percent``, ``…-window-minutes``,
    ``…-reset-at`` and the ``secondary`` family), which Codex reads from every reply into its
    ``rate_limits`` (a five-hour primary and a weekly secondary window on a Plus plan)."""
    headers: dict[str, str] = {}
    for name, window in (("primary", primary), ("secondary", secondary)):
        if window is not None:
            used, minutes, resets_at = window
            headers[f"x-codex-{name}-used-percent"] = f"{used:g}"
            headers[f"x-codex-{name}-window-minutes"] = str(minutes)
            headers[f"x-codex-{name}-reset-at"] = str(resets_at)
    return headers


def context_length_exceeded() -> Refusal:
    """The Responses API's HTTP 400 for an input over the model's context window (as its API words it)."""
    error = {
        "message": (
            "Your input exceeds the context window of this model. Please adjust your input and try again."
        ),
        "type": "invalid_request_error",
        "param": "input",
        "code": "context_length_exceeded",
    }
    return Refusal(400, {"error": error})


def reply_text(number: int, count: int) -> str:
    return f"mock reply #{number}: received {count} items"


def usage(count: int, input_tokens: int | None = None) -> dict[str, Any]:
    """Per-request usage: input grows with the history, so cumulative totals are easy to tell apart."""
    input_tokens, output_tokens = input_tokens or 100 * max(count, 1), 12
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def events(
    body: dict[str, Any],
    text: str,
    number: int,
    count: int,
    calls: list[Item] | None = None,
    tokens: int | None = None,
) -> list[dict[str, Any]]:
    """The Responses API streaming events for one reply: an assistant message with ``text``, then one
    output item per tool call (``calls``, from :meth:`MockRequest.tool_calls`)."""
    model = body.get("model", MODEL)
    part = {"type": "output_text", "text": text, "annotations": []}
    message = {
        "id": f"msg_mock_{number}",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    items: list[Item] = [message]
    for index, call in enumerate(calls or [], 1):
        prefix = {"custom_tool_call": "ctc", "tool_search_call": "tsc"}.get(call["type"], "fc")
        items.append(
            {**call, "id": f"{prefix}_mock_{number}_{index}", "call_id": f"call_mock_{number}_{index}"}
        )

    def response(status: str, output: list[Any], with_usage: bool = False) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": f"resp_mock_{number}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": model,
            "output": output,
        }
        if with_usage:
            obj["usage"] = usage(count, tokens)
        return obj

    seq: list[dict[str, Any]] = [
        {"type": "response.created", "response": response("in_progress", [])},
        {"type": "response.in_progress", "response": response("in_progress", [])},
    ]
    for index, item in enumerate(items):
        seq += _item_events(index, item)
    seq.append({"type": "response.completed", "response": response("completed", items, with_usage=True)})
    return [{**event, "sequence_number": n} for n, event in enumerate(seq)]


def _item_events(index: int, item: Item) -> list[dict[str, Any]]:
    """One output item's events: added (empty), its content streamed, done (whole)."""
    added = {"type": "response.output_item.added", "output_index": index}
    done = {"type": "response.output_item.done", "output_index": index, "item": item}
    where = {"item_id": item["id"], "output_index": index}
    if item["type"] == "message":
        part = item["content"][0]
        at = {**where, "content_index": 0}
        return [
            {**added, "item": {**item, "status": "in_progress", "content": []}},
            {"type": "response.content_part.added", **at, "part": {**part, "text": ""}},
            {"type": "response.output_text.delta", **at, "delta": part["text"]},
            {"type": "response.output_text.done", **at, "text": part["text"]},
            {"type": "response.content_part.done", **at, "part": part},
            done,
        ]
    if item["type"] == "tool_search_call":  # no streamed arguments: added and done, whole
        return [{**added, "item": item}, done]
    field = "input" if item["type"] == "custom_tool_call" else "arguments"
    kind = "custom_tool_call_input" if field == "input" else "function_call_arguments"
    return [
        {**added, "item": {**item, "status": "in_progress", field: ""}},
        {"type": f"response.{kind}.delta", **where, "delta": item[field]},
        {"type": f"response.{kind}.done", **where, field: item[field]},
        done,
    ]


class _Handler(JsonHandler):
    owner: MockOpenAI

    def do_GET(self) -> None:
        path = self._route()
        if path.startswith("/v1/models"):
            self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no such path {path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        try:
            body = self._json_body()
        except json.JSONDecodeError:
            self._json(400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
            return
        if not isinstance(body, dict):
            body = {}
        path = self._route()
        request = MockRequest(path, body)
        number = self.owner.record(request)
        if not path.startswith("/v1/responses"):
            self._json(404, {"error": {"message": f"no such path {path}", "type": "invalid_request_error"}})
            return
        if self.owner.delay:
            self.owner.released.wait(self.owner.delay)
        if self.owner.fail_status is not None:
            self._json(self.owner.fail_status, {"error": {"message": "mock failure", "type": "server_error"}})
            return
        refusal = self.owner.refusing(request) or self.owner.over_window(request, len(request.input))
        if refusal is not None:
            self._send(refusal.status, json.dumps(refusal.body).encode(), "application/json", refusal.headers)
            return
        try:
            calls = request.tool_calls()
        except MarkerError as exc:
            self._json(400, {"error": {"message": f"mock: {exc}", "type": "invalid_request_error"}})
            return
        count = len(request.input)
        stream = events(
            body, reply_text(number, count), number, count, calls, self.owner.prompt_tokens(count)
        )
        headers = self.owner.reply_headers
        if body.get("stream"):
            frames = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in stream)
            self._send(200, frames.encode(), "text/event-stream", {"Cache-Control": "no-cache", **headers})
        else:
            self._send(200, json.dumps(stream[-1]["response"]).encode(), "application/json", headers)
