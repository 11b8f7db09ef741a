"""``baton mcp`` as an MCP client sees it: the command started over stdio (the SDK's own client), its tools
calling a real ``baton serve`` (uvicorn, in this process) that runs the fake agent. A turn is started,
comes back as a handle while it runs and is followed to its end by another client, the first gone; a
question (needs_input) answered through the tool resumes the same session; a read-scope token lists but
is refused a turn; hostile arguments are refused by the API's own rules with a clear message and nothing
submitted; without its environment the command says what to set; a token the service refuses fails the
handshake."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, TextContent

from baton.settings import Settings
from tests.conftest import BATON
from tests.service_fixtures import Service, run_service

pytestmark = pytest.mark.slow  # each test starts `baton mcp` processes (the MCP SDK: ~1 s to import)
ASK = '[[tool:ask_human {"question": "Tabs or spaces?", "options": ["tabs", "spaces"]}]]'


def mcp_env(service: Service, token: str) -> dict[str, str]:
    return {
        **os.environ,
        "BATON_HOME": str(service.settings.home),
        "BATON_URL": service.url,
        "BATON_TOKEN": token,
    }


def calls(service: Service, token: str, *steps: tuple[str, dict[str, Any]]) -> list[CallToolResult]:
    """Start ``baton mcp`` as an MCP client does (a child on stdio) and make these tool calls in order."""
    params = StdioServerParameters(command=BATON[0], args=[*BATON[1:], "mcp"], env=mcp_env(service, token))

    async def talk() -> list[CallToolResult]:
        async with Client(params, read_timeout_seconds=90) as client:
            return [await client.call_tool(name, args) for name, args in steps]

    return anyio.run(talk)


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


def text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


@pytest.fixture
def fake_service(settings: Settings) -> Iterator[Service]:
    with run_service(settings) as service:
        yield service


def test_a_turn_comes_back_as_a_handle_and_is_followed_to_its_end(
    fake_service: Service, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client that started the turn is gone (its ``baton mcp`` ended) before the turn ends; another
    one follows it by its handle."""
    monkeypatch.setenv("FAKE_AGENT_DELAY", "1.5")  # still running when the short wait is over
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-7"}
    token = fake_service.token("run")
    [started] = calls(fake_service, token, ("start_turn", {**key, "prompt": "Fix it.", "wait": 0.2}))
    handle = data(started)
    assert handle["status"] != "done" and handle["run_id"] and "get_run" in handle["next"], handle
    followed, listed, read = calls(
        fake_service,
        token,
        ("get_run", {"run_id": handle["run_id"], "wait": 60}),
        ("list_threads", {"agent": "fake"}),
        ("read_thread", key),
    )
    ended = data(followed)
    assert ended["run_id"] == handle["run_id"] and ended["status"] == "done", ended
    assert ended["outcome"] == "succeeded" and "fake reply: received" in ended["result"]
    threads = data(listed)["threads"]
    assert [(t["thread"], t["last_outcome"]) for t in threads] == [("issue-7", "succeeded")]
    thread = data(read)
    assert thread["turns"][0]["run_id"] == ended["run_id"] and thread["question"] is None
    job = fake_service.store.get_job(handle["run_id"])
    assert job is not None and job.actor.endswith("-run")  # submitted with the token's name


def test_a_question_answered_through_the_tool_resumes_the_same_session(
    fake_service: Service, src_repo: Path
) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-8"}
    asked, read, answered, after = calls(
        fake_service,
        fake_service.token("run"),
        ("start_turn", {**key, "prompt": f"Format it. {ASK}", "wait": 60}),
        ("read_thread", key),
        ("answer_question", {**key, "answer": "spaces, please", "wait": 60}),
        ("read_thread", key),
    )
    first = data(asked)
    assert first["outcome"] == "needs_input" and "answer_question" in first["next"], first
    assert first["question"]["text"] == "Tabs or spaces?" and first["question"]["options"] == [
        "tabs",
        "spaces",
    ]
    assert data(read)["question"]["text"] == "Tabs or spaces?"
    second = data(answered)
    assert second["outcome"] == "succeeded" and second["mode"] == "resume", second
    assert second["session_id"] == first["session_id"]  # the same conversation went on
    assert data(after)["question"] is None and [t["outcome"] for t in data(after)["turns"]][:2] == [
        "succeeded",
        "needs_input",
    ]


def test_a_read_token_reads_but_cannot_start_a_turn(fake_service: Service, src_repo: Path) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-9"}
    listed, refused, answer = calls(
        fake_service,
        fake_service.token("read"),
        ("list_threads", {}),
        ("start_turn", {**key, "prompt": "Do it.", "wait": 1}),
        ("answer_question", {**key, "answer": "yes"}),
    )
    assert data(listed) == {"threads": []}
    assert refused.is_error and "(403)" in text(refused) and "this needs run" in text(refused), text(refused)
    assert answer.is_error and "(403)" in text(answer)
    assert fake_service.store.list_jobs() == []  # nothing submitted


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("start_turn", {"thread": "../etc"}, "path separators"),
    ("start_turn", {"thread": "x" * 129}, "thread"),
    ("start_turn", {"agent": "nobody"}, "agent"),
    ("start_turn", {"prompt": "   "}, "prompt is empty"),
    ("start_turn", {"prompt": "nul \x00 byte"}, "NUL"),
    ("start_turn", {"repo": "bad\x01repo"}, "repo"),
    ("start_turn", {"wait": 10**9}, "wait"),
    ("get_run", {"run_id": "../../v1/tokens"}, "run_id"),
    ("get_run", {"run_id": "f" * 65}, "run_id"),
    ("cancel_run", {"run_id": "deadbeef"}, "(404)"),
    ("answer_question", {"answer": "y" * 100_001}, "answer"),
    ("read_thread", {"thread": "issue-404"}, "(404)"),
]


def test_hostile_arguments_are_refused_clearly_and_nothing_is_submitted(
    fake_service: Service, src_repo: Path
) -> None:
    good = {"agent": "fake", "repo": str(src_repo), "thread": "issue-10", "prompt": "Do it."}
    fields = {
        "start_turn": good,
        "get_run": {},
        "cancel_run": {},
        "answer_question": {k: good[k] for k in ("agent", "repo", "thread")},
        "read_thread": {k: good[k] for k in ("agent", "repo", "thread")},
    }
    steps = [(name, {**fields[name], **args}) for name, args, _ in BAD]
    results = calls(fake_service, fake_service.token("run"), *steps)
    for (name, args, words), result in zip(BAD, results, strict=True):
        said = text(result)
        assert result.is_error, (name, args, said)
        assert words in said, (name, args, said)
        assert "Traceback" not in said and 'File "' not in said
    assert fake_service.store.list_jobs() == []


def test_without_its_environment_the_command_says_what_to_set(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    done = cli("mcp", env={"BATON_URL": "", "BATON_TOKEN": ""})
    assert done.returncode == 2, done.stderr
    assert "BATON_URL and BATON_TOKEN" in done.stderr and "baton tokens create" in done.stderr
    assert done.stdout == ""  # stdout is the protocol's
    bad = cli("mcp", env={"BATON_URL": "file:///etc/passwd", "BATON_TOKEN": "x"})
    assert bad.returncode == 2 and "http://" in bad.stderr


def test_a_token_the_service_refuses_fails_the_handshake(fake_service: Service) -> None:
    """Not a server that looks connected until every call is refused: ``initialize`` fails with the
    service's reason, said on stderr too, and the command exits 1."""
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
    for token in (fake_service.revoked_token("run"), "not-a-token"):
        done = subprocess.run(
            [*BATON, "mcp"],
            env=mcp_env(fake_service, token),
            input=json.dumps(hello).encode() + b"\n",
            capture_output=True,
            timeout=60,
        )
        said = (
            f"baton mcp: the service at {fake_service.url} refused the token (401): unknown or revoked token"
        )
        assert done.returncode == 1 and said in done.stderr.decode(), done.stderr
        answer = json.loads(done.stdout)
        assert answer["id"] == 1 and answer["error"]["message"] == said, answer
