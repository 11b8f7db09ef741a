"""The mock Anthropic API's tool calls: the ``[[tool:NAME ARGS]]`` marker, the reply's shapes (JSON and
SSE, as the Messages API sends them), and a real Claude Code run through baton that makes a real tool
round trip against the mock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from baton import Outcome, RunRequest, run
from baton.agents.events import Entry, LogRenderer
from baton.models import Access
from baton.settings import Settings
from baton.testing.mock_anthropic import MarkerError, MockAnthropic, tool_input, tool_marker

TOOLS = [{"name": "Read", "input_schema": {"type": "object"}}]
ASK = "read it [[tool:Read file_path=README.md]]"


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def post(mock: MockAnthropic, messages: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    body = {"model": "claude-mock", "max_tokens": 100, "messages": messages, **extra}
    return httpx.post(f"{mock.url}/v1/messages", json=body, timeout=10)


def sse(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, data) pairs of a server-sent-events body."""
    events = []
    for frame in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in frame.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


@pytest.fixture
def server() -> Any:
    with MockAnthropic() as mock:
        yield mock


def test_marker_arguments() -> None:
    assert tool_input("") == {}
    assert tool_input(" file_path=README.md") == {"file_path": "README.md"}
    assert tool_input(' command="ls -la" description=list') == {"command": "ls -la", "description": "list"}
    assert tool_input(' {"file_path": "a b", "limit": 5}') == {"file_path": "a b", "limit": 5}
    assert tool_input(" expr=a=b") == {"expr": "a=b"}
    for bad in (" justaword", " =x", ' {"unclosed": ', " [1, 2]x", ' "unbalanced', " {}x"):
        with pytest.raises(MarkerError):
            tool_input(bad)
    assert tool_marker("Bash", command="ls -la") == "[[tool:Bash command='ls -la']]"
    assert tool_input(tool_marker("Bash", command="echo 'it''s'")[len("[[tool:Bash") : -2]) == {
        "command": "echo 'it''s'"
    }


def test_json_reply_is_a_tool_call_then_text(server: MockAnthropic) -> None:
    first = post(server, [user(text("<system-reminder>x</system-reminder>"), text(ASK))], tools=TOOLS)
    assert first.status_code == 200
    msg = first.json()
    assert msg["stop_reason"] == "tool_use"
    assert msg["content"] == [
        text("mock reply #1: received 1 messages"),
        {"type": "tool_use", "id": "toolu_mock_1_1", "name": "Read", "input": {"file_path": "README.md"}},
    ]
    result = {"type": "tool_result", "tool_use_id": "toolu_mock_1_1", "content": "# demo [[tool:Read]]"}
    history = [user(text(ASK)), {"role": "assistant", "content": msg["content"]}, user(result)]
    second = post(server, history, tools=TOOLS).json()
    assert second["stop_reason"] == "end_turn"
    assert second["content"] == [text("mock reply #2: received 3 messages")]
    assert server.message_counts() == [1, 3]


def test_no_marker_no_tools_or_an_older_marker_answers_text(server: MockAnthropic) -> None:
    plain = post(server, [user(text("hello"))], tools=TOOLS).json()
    no_tools = post(server, [user(text(ASK))]).json()  # a side call offering no tools
    history = [user(text(ASK)), {"role": "assistant", "content": "ok"}, user(text("next"))]
    older = post(server, history, tools=TOOLS)
    for number, reply in enumerate((plain, no_tools, older.json()), 1):
        assert reply["stop_reason"] == "end_turn"
        assert [b["type"] for b in reply["content"]] == ["text"], (number, reply)
    assert plain["content"][0]["text"] == "mock reply #1: received 1 messages"


def test_a_bad_marker_is_refused_loudly(server: MockAnthropic) -> None:
    response = post(server, [user(text("[[tool:Read oops]]"))], tools=TOOLS)
    assert response.status_code == 400
    assert "key=value" in response.json()["error"]["message"]


def test_streamed_reply_has_the_messages_api_shape(server: MockAnthropic) -> None:
    marked = '[[tool:Read file_path=README.md]] and [[tool:Bash {"command": "ls"}]]'
    response = post(server, [user(text(marked))], tools=TOOLS, stream=True)
    assert response.status_code == 200 and response.headers["content-type"] == "text/event-stream"
    events = sse(response)
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    block = ["content_block_start", "content_block_delta", "content_block_stop"]
    tool = ["content_block_start", "content_block_delta", "content_block_delta", "content_block_stop"]
    assert names == ["message_start", *block, *tool, *tool, "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"], start["role"]) == ([], None, "assistant")
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"

    calls: dict[int, dict[str, Any]] = {}
    for name, data in events:
        if name == "content_block_start" and data["content_block"]["type"] == "tool_use":
            assert data["content_block"]["input"] == {}  # the input arrives as partial JSON
            calls[data["index"]] = {**data["content_block"], "json": ""}
        elif name == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            calls[data["index"]]["json"] += data["delta"]["partial_json"]
    assert {i: (c["id"], c["name"], json.loads(c["json"])) for i, c in calls.items()} == {
        1: ("toolu_mock_1_1", "Read", {"file_path": "README.md"}),
        2: ("toolu_mock_1_2", "Bash", {"command": "ls"}),
    }
    plain = sse(post(server, [user(text("hi"))], tools=TOOLS, stream=True))
    assert plain[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert plain[2][1]["delta"] == {"type": "text_delta", "text": "mock reply #2: received 1 messages"}


def log_events(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def blocks(events: list[dict[str, Any]], role: str, kind: str) -> list[dict[str, Any]]:
    """The content blocks of ``kind`` in the log's ``role`` events."""
    found = []
    for event in events:
        content = event.get("message", {}).get("content") if event.get("type") == role else None
        found += [b for b in content or [] if isinstance(b, dict) and b.get("type") == kind]
    return found


@pytest.mark.slow
def test_real_claude_makes_a_tool_round_trip(
    settings: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    """Claude Code 2.1.x in ``-p`` mode at ``read`` access runs Read at once, and denies a Bash command
    that would create a file (an error tool_result; the turn still succeeds). Every access level's
    tool calls, for the three CLIs: tests/sandbox/test_access_real.py."""
    prompt = f"look {tool_marker('Read', file_path='README.md')} {tool_marker('Bash', command='touch made')}"
    request = RunRequest(agent="claude", repo=str(src_repo), thread="t", prompt=prompt, access=Access.READ)
    first = run(request, settings=settings)
    assert first.run.outcome == Outcome.SUCCEEDED, first.run.error
    assert first.run.result == "mock reply #2: received 4 messages"
    events = log_events(first.run.log_path)
    uses = blocks(events, "assistant", "tool_use")
    assert [(u["name"], u["input"]) for u in uses] == [
        ("Read", {"file_path": "README.md"}),
        ("Bash", {"command": "touch made"}),
    ]
    results = {r["tool_use_id"]: r for r in blocks(events, "user", "tool_result")}
    read, bash = results[uses[0]["id"]], results[uses[1]["id"]]
    assert "# demo" in str(read["content"]) and not read.get("is_error")
    assert bash["is_error"] is True and "Permission to use Bash has been denied" in str(bash["content"])
    assert not (Path(first.session.worktree) / "made").exists()

    entries = list(LogRenderer("claude").feed(Path(first.run.log_path).read_text().splitlines()))
    kinds = [e.kind for e in entries]
    assert kinds[:1] == ["info"] and kinds[-1] == "done"
    assert Entry("tool", "Read README.md") in entries and Entry("tool", "Bash touch made") in entries
    assert any(e.kind == "output" and "# demo" in e.text for e in entries)
    assert any(e.kind == "error" and "denied" in e.text for e in entries)
    assert kinds.index("tool") < kinds.index("output")
    assert entries[-2] == Entry("text", "mock reply #2: received 4 messages")

    sent = mock.conversation()[1].messages[-1]["content"]  # the tool results went back to the model
    assert {b["tool_use_id"] for b in sent if b.get("type") == "tool_result"} == set(results)
    # the same level again: a resume at another level adds a "tools just became available" message
    again = run(
        RunRequest(agent="claude", repo=str(src_repo), thread="t", prompt="next", access=Access.READ),
        settings=settings,
    )
    assert again.ok and again.run.result == "mock reply #3: received 6 messages"
    assert mock.message_counts() == [2, 4, 6]  # the round trip's two messages stay in the history
