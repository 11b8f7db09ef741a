"""baton's MCP tools and resources beyond a turn, through ``/mcp`` (the SDK's own client): an admin token
raises a parked thread's budget and the thread resumes with its parked instruction, a run token is
refused; a read token reads a thread's summary and its worktree's diff as resources, and is refused
every tool that writes (start, answer, cancel, raise); each call is one audit row under the token's
name, a refused one's too, holding no prompt, answer or secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.types import TextResourceContents

from baton import Outcome, RunRequest, run
from baton.caps.model import Scope
from baton.caps.tables import cap_store
from baton.settings import Settings
from tests.service.mcp_clients import http_client, text
from tests.service_fixtures import Service, run_service

pytestmark = pytest.mark.slow  # turns of the fake agent through `baton serve`


def calls(service: Service, token: str, *steps: tuple[str, dict[str, Any]]) -> list[Any]:
    async def talk() -> list[Any]:
        async with http_client(service, token) as client:
            return [await client.call_tool(name, args) for name, args in steps]

    return anyio.run(talk)


def test_an_admin_raises_a_parked_threads_budget_and_it_resumes(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_WRITE", "turns.txt")
    request = RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="first", max_usd=0.0001)
    assert run(request, settings=settings).run.outcome == Outcome.SUCCEEDED
    request.prompt = "parked-instruction"
    assert run(request, settings=settings).run.outcome == Outcome.NEEDS_INPUT  # parked at its cap
    key = {"agent": "fake", "repo": str(src_repo), "thread": "t1"}
    with run_service(settings) as service:
        [refused] = calls(service, service.token("run"), ("raise_budget", {**key, "usd": 1}))
        slug = service.store.list_sessions()[0].repo
        assert cap_store(service.store).raises(Scope.THREAD, f"fake:{slug}:t1") == []
        [raised] = calls(
            service, service.token("admin", "boss"), ("raise_budget", {**key, "usd": 1, "wait": 60})
        )
        rows = service.store.list_audit(50)
    assert refused.is_error and "(403)" in text(refused) and "this needs admin" in text(refused)
    done = raised.structured_content or {}
    assert not raised.is_error and done["raised"] == 1, text(raised)
    assert done["resumed"] == "its parked instruction is queued", done
    assert done["turn"]["outcome"] == "succeeded" and done["turn"]["status"] == "done", done
    notes = settings.home / "worktrees" / "fake" / slug / "t1" / "turns.txt"
    assert "parked-instruction" in notes.read_text()
    [row] = [r for r in rows if r["action"] == "mcp.raise_budget" and r["actor"] == "boss"]
    assert row["detail"]["outcome"] == "ok" and row["key"] == f"fake:{slug}:t1"


def test_a_read_token_reads_the_resources_and_is_refused_every_write(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.txt")
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-r"}
    with run_service(settings) as service:
        secret = service.token("run", "writer")
        [turn] = calls(service, secret, ("start_turn", {**key, "prompt": "Write notes.", "wait": 60}))
        run_id = (turn.structured_content or {})["run_id"]
        slug = service.store.list_sessions()[0].repo
        reader = service.token("read", "reader")

        async def read() -> tuple[Any, ...]:
            async with http_client(service, reader) as client:
                templates = await client.list_resource_templates()
                base = f"baton://threads/fake/{slug}/issue-r"
                summary = await client.read_resource(f"{base}/summary")
                diff = await client.read_resource(f"{base}/diff")
                refused = [
                    await client.call_tool("start_turn", {**key, "prompt": "secret plan", "wait": 1}),
                    await client.call_tool("answer_question", {**key, "answer": "secret answer"}),
                    await client.call_tool("cancel_run", {"run_id": run_id}),
                    await client.call_tool("raise_budget", {**key, "usd": 5}),
                ]
                return templates, summary, diff, refused

        templates, summary, diff, refused = anyio.run(read)
        jobs, rows = service.store.list_jobs(), service.store.list_audit(50)
    uris = sorted(t.uri_template for t in templates.resource_templates)
    assert uris == [
        "baton://threads/{agent}/{+repo}/{thread}/diff",
        "baton://threads/{agent}/{+repo}/{thread}/summary",
    ]
    [said] = [c.text for c in summary.contents if isinstance(c, TextResourceContents)]
    assert "issue-r" in said and "fake reply: received" in said and run_id in said, said
    [patch] = [c.text for c in diff.contents if isinstance(c, TextResourceContents)]
    assert "+++ b/notes.txt" in patch and "+turn 1: " in patch, patch  # the new file, its line
    for result, needs in zip(refused, ["run", "run", "run", "admin"], strict=True):
        assert result.is_error and "(403)" in text(result) and f"this needs {needs}" in text(result), text(
            result
        )
    assert [j.id for j in jobs] == [run_id]  # nothing submitted by the reader
    mine = [r for r in rows if r["actor"] == "reader"]
    assert [r["action"] for r in mine] == [
        "mcp.raise_budget",
        "mcp.cancel_run",
        "mcp.answer_question",
        "mcp.start_turn",
    ]
    assert all(r["detail"]["outcome"] == "refused" and "(403)" in r["detail"]["error"] for r in mine), mine
    assert [r["key"] for r in mine][1] == run_id
    [started] = [r for r in rows if r["actor"] == "writer"]
    assert started["action"] == "mcp.start_turn" and started["detail"]["run_id"] == run_id
    everything = json.dumps(rows)
    assert "secret plan" not in everything and "secret answer" not in everything
    assert secret not in everything and reader not in everything
