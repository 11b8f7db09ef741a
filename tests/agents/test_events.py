"""Agent event lines rendered for people (`baton runs logs`): the same few kinds for all three CLIs."""

from __future__ import annotations

import json
from typing import Any

from baton.agents.events import Entry, LogRenderer


def render(agent: str, events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    renderer = LogRenderer(agent)
    entries = [*renderer.feed(json.dumps(e) for e in events), *renderer.flush()]
    return [(e.kind, e.text) for e in entries]


def test_claude_stream_json() -> None:
    events: list[dict[str, Any]] = [
        {"type": "system", "subtype": "init", "session_id": "s1", "model": "claude-x"},
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "Let me look."}]}},
        {
            "type": "assistant",
            "message": {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "ls -la"}}]},
        },
        {"type": "user", "message": {"content": [{"type": "tool_result", "content": "a.py\nb.py"}]}},
        {
            "type": "user",
            "message": {"content": [{"type": "tool_result", "content": "no", "is_error": True}]},
        },
        {"type": "result", "is_error": False, "result": "done", "num_turns": 2, "total_cost_usd": 0.01},
    ]
    assert render("claude", events) == [
        ("info", "session s1 · model claude-x"),
        ("text", "Let me look."),
        ("tool", "Bash ls -la"),
        ("output", "a.py\nb.py"),
        ("error", "no"),
        ("done", "done (2 turns, $0.0100)"),
    ]


def test_codex_exec_json() -> None:
    events: list[dict[str, Any]] = [
        {"type": "thread.started", "thread_id": "t1"},
        {"type": "turn.started"},
        {"type": "item.started", "item": {"type": "command_execution", "command": "pytest -q"}},
        {
            "type": "item.completed",
            "item": {
                "type": "command_execution",
                "command": "pytest -q",
                "aggregated_output": "1 failed",
                "exit_code": 1,
            },
        },
        {
            "type": "item.completed",
            "item": {"type": "file_change", "changes": [{"path": "a.py", "kind": "update"}]},
        },
        {"type": "item.completed", "item": {"type": "agent_message", "text": "Fixed it."}},
        {"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 5}},
        {"type": "turn.failed", "error": {"message": "boom"}},
    ]
    assert render("codex", events) == [
        ("info", "thread t1"),
        ("tool", "shell pytest -q"),
        ("error", "1 failed"),
        ("tool", "edit update a.py"),
        ("text", "Fixed it."),
        ("done", "done (5 output tokens)"),
        ("error", "boom"),
    ]


def test_gemini_stream_json_joins_deltas() -> None:
    events: list[dict[str, Any]] = [
        {"type": "init", "session_id": "g1", "model": "gemini-x"},
        {"type": "message", "role": "user", "content": "hi"},
        {"type": "message", "role": "assistant", "content": "Hel", "delta": True},
        {"type": "message", "role": "assistant", "content": "lo.", "delta": True},
        {"type": "tool_use", "tool_name": "read_file", "tool_id": "1", "parameters": {"file_path": "a.py"}},
        {"type": "tool_result", "tool_id": "1", "status": "success", "output": "print(1)"},
        {"type": "tool_result", "tool_id": "2", "status": "error", "error": {"message": "denied"}},
        {"type": "error", "severity": "warning", "message": "slow"},
        {"type": "message", "role": "assistant", "content": "Bye", "delta": True},
        {"type": "result", "status": "success", "stats": {"total_tokens": 42}},
    ]
    assert render("gemini", events) == [
        ("info", "session g1 · model gemini-x"),
        ("text", "Hello."),
        ("tool", "read_file a.py"),
        ("output", "print(1)"),
        ("error", "denied"),
        ("info", "slow"),
        ("text", "Bye"),
        ("done", "done (42 tokens)"),
    ]


def test_lines_that_are_not_json_are_shown_and_long_output_is_clipped() -> None:
    renderer = LogRenderer("claude")
    big = {"type": "user", "message": {"content": [{"type": "tool_result", "content": "x" * 1000}]}}
    entries = list(renderer.feed(["not json", json.dumps(big), ""]))
    assert entries[0] == Entry("info", "not json")
    assert entries[1].kind == "output" and len(entries[1].text) == 200 and entries[1].text.endswith("…")


def test_tool_output_keeps_its_lines_up_to_a_limit() -> None:
    numbered = "\n".join(f"{i}\tline {i}" for i in range(1, 31)) + "\n"
    block = {"type": "tool_result", "content": [{"type": "text", "text": numbered}]}
    (entry,) = LogRenderer("claude").feed([json.dumps({"type": "user", "message": {"content": [block]}})])
    shown = entry.text.splitlines()
    assert entry.kind == "output" and shown[0] == "1\tline 1" and shown[11] == "12\tline 12"
    assert shown[-1] == "… (18 more lines)" and len(shown) == 13
