"""The tool calls of the mock OpenAI Responses API (Codex) and the mock Gemini API: the shared
``[[tool:NAME ARGS]]`` marker answered in each API's own shape (SSE and JSON), the tool's result the
CLI sends back, and the cases that must stay plain text. Real CLIs making these calls:
tests/sandbox/test_access_real.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from baton.testing.mock_gemini import MockGemini
from baton.testing.mock_gemini import MockRequest as GeminiRequest
from baton.testing.mock_openai import MockOpenAI
from baton.testing.mock_openai import MockRequest as OpenAIRequest
from baton.testing.tools import MarkerError, find_calls, tool_marker

PATCH = "*** Begin Patch\n*** Add File: made.txt\n+hello\n*** End Patch\n"
CODEX_TOOLS = [
    {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
    {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
]
GEMINI_TOOLS = [{"functionDeclarations": [{"name": "write_file"}, {"name": "run_shell_command"}]}]


def test_find_calls_reads_every_marker_in_order() -> None:
    text = f'a {tool_marker("apply_patch", input=PATCH)} b [[tool:exec_command {{"cmd": "ls"}}]]'
    assert find_calls(text) == [("apply_patch", {"input": PATCH}), ("exec_command", {"cmd": "ls"})]
    assert find_calls("no marker") == []
    with pytest.raises(MarkerError):
        find_calls("[[tool:x oops]]")


# -- OpenAI Responses API (Codex) ---------------------------------------------------------------------


@pytest.fixture
def openai() -> Iterator[MockOpenAI]:
    with MockOpenAI() as server:
        yield server


def message(role: str, text: str) -> dict[str, Any]:
    kind = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}


def respond(mock: MockOpenAI, items: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    body = {"model": "gpt-5.5", "input": items, "tools": CODEX_TOOLS, **extra}
    return httpx.post(f"{mock.url}/v1/responses", json=body, timeout=10)


def sse_data(response: httpx.Response) -> list[dict[str, Any]]:
    """The data objects of a server-sent-events body (``event:`` names are checked to match)."""
    found = []
    for frame in response.text.strip().replace("\r\n", "\n").split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        data = json.loads(lines["data"])
        assert lines.get("event", data.get("type")) == data.get("type", lines.get("event"))
        found.append(data)
    return found


ASK_CODEX = f"go {tool_marker('exec_command', cmd='touch made')} {tool_marker('apply_patch', input=PATCH)}"


def test_openai_streams_function_and_custom_tool_calls(openai: MockOpenAI) -> None:
    response = respond(openai, [message("developer", "rules"), message("user", ASK_CODEX)], stream=True)
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    events = sse_data(response)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = [e for e in events if e["type"] == "response.output_item.added"]
    assert [e["output_index"] for e in added] == [0, 1, 2]
    assert added[1]["item"]["arguments"] == "" and added[2]["item"]["input"] == ""  # streamed after
    message_item, call, custom = events[-1]["response"]["output"]
    assert message_item["content"][0]["text"] == "mock reply #1: received 2 items"
    assert call == {
        "type": "function_call",
        "status": "completed",
        "name": "exec_command",
        "arguments": json.dumps({"cmd": "touch made"}),
        "id": "fc_mock_1_1",
        "call_id": "call_mock_1_1",
    }
    assert custom == {
        "type": "custom_tool_call",
        "status": "completed",
        "name": "apply_patch",
        "input": PATCH,
        "id": "ctc_mock_1_2",
        "call_id": "call_mock_1_2",
    }
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert done == [message_item, call, custom]
    assert events[-1]["response"]["usage"]["input_tokens"] == 200


def test_openai_tool_outputs_come_back_and_get_text(openai: MockOpenAI) -> None:
    first = respond(openai, [message("user", ASK_CODEX)]).json()  # not streamed: the whole response
    assert first["status"] == "completed"
    output = first["output"]
    assert [item["type"] for item in output] == ["message", "function_call", "custom_tool_call"]
    results = [
        {"type": "function_call_output", "call_id": "call_mock_1_1", "output": "Process exited with code 0"},
        {"type": "custom_tool_call_output", "call_id": "call_mock_1_2", "output": "Success. Updated"},
    ]
    history = [message("user", ASK_CODEX), *output, *results]
    second = respond(openai, history).json()
    assert [item["type"] for item in second["output"]] == ["message"]
    assert second["output"][0]["content"][0]["text"] == "mock reply #2: received 6 items"
    sent = openai.conversation()[-1]
    assert sent.tool_outputs() == {
        "call_mock_1_1": "Process exited with code 0",
        "call_mock_1_2": "Success. Updated",
    }
    assert openai.history_counts() == [1, 6]


def test_openai_text_only_without_tools_or_a_fresh_marker(openai: MockOpenAI) -> None:
    def kinds(items: list[dict[str, Any]], **extra: Any) -> list[str]:
        return [item["type"] for item in respond(openai, items, **extra).json()["output"]]

    assert kinds([message("user", "hello")]) == ["message"]
    assert kinds([message("user", ASK_CODEX)], tools=[]) == ["message"]
    older = [message("user", ASK_CODEX), message("assistant", "ok"), message("user", "next")]
    assert kinds(older) == ["message"]
    # a tool the request does not offer is still called, as a function (the CLI says it is unknown)
    assert kinds([message("user", "[[tool:shell command=ls]]")]) == ["message", "function_call"]
    bad = respond(openai, [message("user", "[[tool:exec_command oops]]")])
    assert bad.status_code == 400 and "key=value" in bad.json()["error"]["message"]


def test_openai_request_reading() -> None:
    request = OpenAIRequest(
        "/v1/responses", {"input": [message("user", "a [[tool:x]]")], "tools": CODEX_TOOLS}
    )
    assert request.latest_user_text() == "a [[tool:x]]"
    assert request.offered_tools() == {"exec_command": "function", "apply_patch": "custom"}
    assert [c["type"] for c in request.tool_calls()] == ["function_call"]
    assert OpenAIRequest("/v1/responses", {"input": "text"}).latest_user_text() == ""


# -- Gemini API -----------------------------------------------------------------------------------------


@pytest.fixture
def gemini() -> Iterator[MockGemini]:
    with MockGemini() as server:
        yield server


def generate(
    mock: MockGemini, contents: list[dict[str, Any]], stream: bool = True, **extra: Any
) -> httpx.Response:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    body = {"contents": contents, "tools": GEMINI_TOOLS, **extra}
    return httpx.post(f"{mock.url}/v1beta/models/gemini-pro:{method}", json=body, timeout=10)


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


WRITE = tool_marker("write_file", file_path="made.txt", content="hi")
ASK_GEMINI = f"go {WRITE} [[tool:run_shell_command command=ls]]"


def test_gemini_streams_function_calls_after_the_text(gemini: MockGemini) -> None:
    response = generate(gemini, [user(ASK_GEMINI)])
    assert response.status_code == 200
    first, last = sse_data(response)
    assert first["candidates"][0]["content"] == {
        "role": "model",
        "parts": [{"text": "mock reply #1: received 1 contents"}],
    }
    assert "finishReason" not in first["candidates"][0]
    candidate = last["candidates"][0]
    assert candidate["finishReason"] == "STOP" and last["usageMetadata"]["totalTokenCount"] == 22
    assert candidate["content"]["parts"] == [
        {"functionCall": {"name": "write_file", "args": {"file_path": "made.txt", "content": "hi"}}},
        {"functionCall": {"name": "run_shell_command", "args": {"command": "ls"}}},
    ]


def test_gemini_function_responses_come_back_and_get_text(gemini: MockGemini) -> None:
    chunks = sse_data(generate(gemini, [user(ASK_GEMINI)]))
    parts = [p for chunk in chunks for p in chunk["candidates"][0]["content"]["parts"]]
    assert [next(iter(p)) for p in parts] == ["text", "functionCall", "functionCall"]
    answers = [
        {"functionResponse": {"name": "write_file", "response": {"output": "Successfully created"}}},
        {"functionResponse": {"name": "run_shell_command", "response": {"error": "not found"}}},
    ]
    history = [user(ASK_GEMINI), {"role": "model", "parts": parts}, {"role": "user", "parts": answers}]
    first, last = sse_data(generate(gemini, history))
    assert first["candidates"][0]["content"]["parts"] == [{"text": "mock reply #2: received 3 contents"}]
    assert last["candidates"][0]["content"]["parts"] == [{"text": ""}]
    assert [r["response"] for r in gemini.conversation()[-1].function_responses()] == [
        {"output": "Successfully created"},
        {"error": "not found"},
    ]


def test_gemini_text_only_without_tools_for_utility_calls_or_an_older_marker(gemini: MockGemini) -> None:
    def parts(response: httpx.Response) -> list[dict[str, Any]]:
        return [p for chunk in sse_data(response) for p in chunk["candidates"][0]["content"]["parts"]]

    assert all("text" in p for p in parts(generate(gemini, [user(ASK_GEMINI)], tools=[])))
    older = [user(ASK_GEMINI), {"role": "model", "parts": [{"text": "ok"}]}, user("next")]
    assert all("text" in p for p in parts(generate(gemini, older)))
    schema = {"type": "object", "properties": {"complexity_score": {"type": "integer"}}}
    routing = generate(
        gemini, [user(ASK_GEMINI)], stream=False, generationConfig={"responseJsonSchema": schema}
    )
    assert json.loads(routing.json()["candidates"][0]["content"]["parts"][0]["text"]) == {
        "complexity_score": 1
    }
    bad = generate(gemini, [user("[[tool:write_file oops]]")])
    assert bad.status_code == 400 and "key=value" in bad.json()["error"]["message"]
    assert GeminiRequest("/v1beta/models/m:streamGenerateContent", {"contents": []}).latest_user_text() == ""
