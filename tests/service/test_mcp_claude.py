"""The REAL Claude Code CLI as the MCP client of ``baton mcp``: configured as docs/mcp.md says
(``--mcp-config`` naming the command, ``BATON_URL``/``BATON_TOKEN`` in the environment Claude Code
passes to it), its model (the mock Anthropic API) calls baton's ``start_turn``; the turn runs in a
real ``baton serve``, is stored there under the token's name, and its result reaches the model as the
tool's result. Through three runs of Claude Code, a turn asks a question, the answer resumes the same
session, and a read-scope token is refused a turn and a raise of the thread's budget, and an argument
no tool takes (a typo) by its name."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from baton.settings import Settings
from baton.testing.mock_anthropic import MockAnthropic
from tests.conftest import BATON
from tests.service_fixtures import run_service

pytestmark = pytest.mark.slow


def tool_results(mock: MockAnthropic) -> list[str]:
    """The text of every ``tool_result`` block Claude Code sent the model."""
    found = []
    for request in mock.conversation():
        for message in request.messages:
            content = message.get("content") if isinstance(message, dict) else None
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    inner = block.get("content")
                    parts = inner if isinstance(inner, list) else [{"text": inner}]
                    found += [str(p.get("text")) for p in parts if isinstance(p, dict)]
    return found


def test_claude_code_starts_a_turn_through_baton_mcp(
    settings: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str, tmp_path: Path
) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-11", "prompt": "Fix the bug.", "wait": 60}
    # alwaysLoad: the tools offered from the first request on, not deferred behind Claude Code's tool
    # search (which the mock model cannot drive)
    server = {"type": "stdio", "command": BATON[0], "args": [*BATON[1:], "mcp"], "alwaysLoad": True}
    config = {"mcpServers": {"baton": server}}
    with run_service(settings) as service:
        token = service.token("run", "claude-code")
        env = {
            **os.environ,
            **mock.env(),
            "CLAUDE_CONFIG_DIR": str(tmp_path / "claude-home"),
            "BATON_HOME": str(settings.home),
            "BATON_URL": service.url,
            "BATON_TOKEN": token,
        }
        done = subprocess.run(
            [
                claude_bin,
                "-p",
                "--output-format=json",
                f"--mcp-config={json.dumps(config)}",
                "--strict-mcp-config",
                "--allowedTools=mcp__baton",
            ],
            input=f"Start the turn. [[tool:start_turn {json.dumps(key)}]]",
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        jobs = service.store.list_jobs(thread="issue-11")
    assert [(j.agent, j.outcome, j.actor) for j in jobs] == [("fake", "succeeded", "claude-code")]
    results = tool_results(mock)
    assert len(results) == 1, results
    turn: dict[str, Any] = json.loads(results[0])
    assert turn["run_id"] == jobs[0].id and turn["outcome"] == "succeeded", turn
    assert "fake reply: received" in turn["result"]
    assert token not in done.stdout + done.stderr


ASK = '[[tool:ask_human {"question": "Tabs or spaces?", "options": ["tabs", "spaces"]}]]'


def marker(tool: str, args: dict[str, Any]) -> str:
    """``[[tool:NAME {json}]]`` for Claude Code's model, a marker inside its arguments (the fake agent's
    ask) written with JSON's escapes for ``]`` so that the outer marker does not end at it."""
    return f"[[tool:{tool} {json.dumps(args).replace(']]', chr(92) + 'u005d' + chr(92) + 'u005d')}]]"


def claude_calls(claude_bin: str, env: dict[str, str], cwd: Path, *calls: str) -> None:
    """One ``claude -p`` whose model makes these tool calls (markers), baton its MCP server."""
    server = {"type": "stdio", "command": BATON[0], "args": [*BATON[1:], "mcp"], "alwaysLoad": True}
    config = json.dumps({"mcpServers": {"baton": server}})
    flags = [
        "--output-format=json",
        f"--mcp-config={config}",
        "--strict-mcp-config",
        "--allowedTools=mcp__baton",
    ]
    done = subprocess.run(
        [claude_bin, "-p", *flags],
        input="Do it. " + " ".join(calls),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)


def test_claude_code_answers_a_question_and_a_read_token_is_refused(
    settings: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str, tmp_path: Path
) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-13"}
    with run_service(settings) as service:
        env = {
            **os.environ,
            **mock.env(),
            "CLAUDE_CONFIG_DIR": str(tmp_path / "claude-home"),
            "BATON_HOME": str(settings.home),
            "BATON_URL": service.url,
        }
        runner = {**env, "BATON_TOKEN": service.token("run", "claude-code")}
        claude_calls(
            claude_bin,
            runner,
            tmp_path,
            marker("start_turn", {**key, "prompt": f"Format. {ASK}", "wait": 60}),
        )
        claude_calls(
            claude_bin, runner, tmp_path, marker("answer_question", {**key, "answer": "spaces", "wait": 60})
        )
        reader = {**env, "BATON_TOKEN": service.token("read", "watcher")}
        refused = [
            marker("start_turn", {**key, "prompt": "Again.", "wait": 1}),
            marker("raise_budget", {**key, "usd": 1}),
            marker("start_turn", {**key, "prompt": "Again.", "acess": "full"}),  # a typo, refused by name
        ]
        claude_calls(claude_bin, reader, tmp_path, *refused)
        jobs = service.store.list_jobs(thread="issue-13")
    asked, answered, *refusals = tool_results(mock)
    first, second = json.loads(asked), json.loads(answered)
    assert first["outcome"] == "needs_input" and first["question"]["text"] == "Tabs or spaces?", first
    assert second["outcome"] == "succeeded" and second["mode"] == "resume", second
    assert second["session_id"] == first["session_id"]  # the same conversation went on
    assert [(j.outcome, j.actor) for j in reversed(jobs)] == [
        ("needs_input", "claude-code"),
        ("succeeded", "claude-code"),
    ]
    assert len(refusals) == 3 and all("(403)" in r for r in refusals[:2]), refusals
    assert any("this needs run" in r for r in refusals) and any("this needs admin" in r for r in refusals)
    assert "baton refused (422): acess is not an option of this request" in refusals[2], refusals
