"""The ``baton`` MCP server over real stdio (the process an agent CLI starts) and the question file the
runner reads back: the protocol's handshake, one question a turn, hostile arguments and hostile files
(a link, a huge file, garbage) that must never become a question or crash anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from baton.asking import questions
from baton.asking.questions import Question, answer_prompt
from baton.asking.server import MAX_OPTIONS, MAX_QUESTION, REVISIONS


def talk(tmp: Path, *messages: Any, raw: bytes = b"") -> list[dict[str, Any]]:
    """The server's answers to ``messages`` (JSON-RPC), as an agent CLI would send them."""
    server = questions.server(tmp)
    lines = b"".join(json.dumps(m).encode() + b"\n" for m in messages) + raw
    done = subprocess.run(
        [server.command, *server.args], input=lines, capture_output=True, timeout=30, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def call(n: int, arguments: Any, name: str = "ask_human") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": n,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def test_the_handshake_lists_one_tool_and_a_call_writes_the_question_once(tmp_path: Path) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
    said = talk(
        tmp_path,
        init,
        {"jsonrpc": "2.0", "method": "notifications/initialized"},  # a notification: no answer
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        call(3, {"question": "Which one?", "options": ["a", "b"]}),
        call(4, {"question": "And another?"}),
        {"jsonrpc": "2.0", "id": 5, "method": "ping"},
    )
    assert [m["id"] for m in said] == [1, 2, 3, 4, 5]
    assert (
        said[0]["result"]["protocolVersion"] == "2025-06-18"
        and said[0]["result"]["serverInfo"]["name"] == "baton"
    )
    [tool] = said[1]["result"]["tools"]
    assert tool["name"] == "ask_human" and tool["inputSchema"]["required"] == ["question"]
    assert "End your turn now" in said[2]["result"]["content"][0]["text"] and not said[2]["result"]["isError"]
    assert "already asked" in said[3]["result"]["content"][0]["text"]  # one question a turn: the first
    assert said[4]["result"] == {}
    assert questions.take(tmp_path) == Question("Which one?", ("a", "b"))
    assert questions.take(tmp_path) is None  # taken: the next turn starts without it


def test_an_unknown_revision_gets_the_newest_and_unknown_methods_and_tools_are_errors(tmp_path: Path) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "1999-01-01"}}
    said = talk(
        tmp_path,
        init,
        {"jsonrpc": "2.0", "id": 2, "method": "resources/list"},
        call(3, {"question": "q"}, name="rm_rf"),
        raw=b"{not json\n",
    )
    assert said[0]["result"]["protocolVersion"] == REVISIONS[-1]
    assert said[1]["error"]["code"] == -32601
    assert said[2]["result"]["isError"] and "unknown tool" in said[2]["result"]["content"][0]["text"]
    assert said[3]["error"]["code"] == -32700  # a line that is not JSON: a parse error, the server lives on
    assert questions.take(tmp_path) is None


@pytest.mark.parametrize(
    "arguments",
    [
        None,
        "a string",
        [],
        {},
        {"question": ""},
        {"question": "   "},
        {"question": 5},
        {"question": "q", "options": "a"},
    ],
)
def test_arguments_that_are_no_question_are_refused_and_write_nothing(tmp_path: Path, arguments: Any) -> None:
    [said] = talk(tmp_path, call(1, arguments))
    assert said["result"]["isError"]
    assert not questions.path(tmp_path).exists()


def test_hostile_questions_are_kept_as_data_and_bounded(tmp_path: Path) -> None:
    text = '--settings={"hooks":1} `$(id)` \x00 <sub>`claude` on thread</sub>\n' + "x" * 1_000_000
    options = [f"--opt-{n}" for n in range(50)]
    talk(tmp_path, call(1, {"question": text, "options": options}))
    asked = questions.take(tmp_path)
    assert asked is not None and asked.text.startswith('--settings={"hooks":1} `$(id)` \x00 <sub>')
    assert len(asked.text) < MAX_QUESTION + 100 and asked.text.endswith("more characters cut)")
    assert len(asked.options) == MAX_OPTIONS
    prompt = answer_prompt(asked, "yes\x00 --force", "alice")
    assert "\x00" not in prompt and "> yes\ufffd --force" in prompt  # quoted, NUL replaced


def test_a_question_file_the_server_could_not_have_written_is_no_question(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"question": "from a link"}))
    os.symlink(target, questions.path(tmp_path))
    assert questions.take(tmp_path) is None and target.exists()  # the link removed, never followed
    questions.path(tmp_path).write_bytes(b"\xff\xfe garbage")
    assert questions.take(tmp_path) is None
    questions.path(tmp_path).write_text(json.dumps({"question": "big", "pad": "x" * (300 * 1024)}))
    assert questions.take(tmp_path) is None
    questions.path(tmp_path).write_text(json.dumps({"question": "fine", "options": ["a"]}))
    questions.clear(tmp_path)  # an earlier turn's question is never the next one's
    assert questions.take(tmp_path) is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_server_ends_at_once_when_its_agent_stops_it(tmp_path: Path, signum: int) -> None:
    """Claude Code stops its MCP servers with SIGINT and looks again 10 ms, then every 50 ms, later: the
    server is gone at once (no KeyboardInterrupt traceback, no interpreter teardown to wait for)."""
    server = questions.server(tmp_path)
    pipe = subprocess.PIPE
    with subprocess.Popen([server.command, *server.args], stdin=pipe, stdout=pipe, stderr=pipe) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
        proc.stdin.write(json.dumps(init).encode() + b"\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["id"] == 1  # up and serving
        sent = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(10)
        took = time.monotonic() - sent
        stderr = proc.stderr.read()
    assert code == 0 and stderr == b"", (code, stderr[-500:])
    assert took < 0.5, took
