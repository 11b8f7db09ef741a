"""Following a turn through baton's MCP tools: while a tool waits on a turn its client gets a progress
notification for each entry of the run's events (the agent starting, speaking, ending), over stdio (the
API's event stream) and over ``/mcp`` (the service's reader of it); a client that disconnects mid-call
finds its turn again by the thread, as a handle ``get_run`` follows to the end, the turn run once; 20
clients start 20 turns at once through ``/mcp`` and each gets its own."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from baton.keys import make_key
from baton.settings import Settings
from baton.workspace.workdirs import Workdirs
from tests.conftest import HELD, wait_for
from tests.service.mcp_clients import Progress, http_client, stdio_params, text
from tests.service_fixtures import Service, run_service

pytestmark = pytest.mark.slow  # turns of the fake agent through `baton mcp` and `baton serve`


@pytest.fixture
def service(settings: Settings) -> Iterator[Service]:
    with run_service(settings) as running:
        yield running


def _turn(client: Client, key: dict[str, str], progress: Progress) -> Any:
    async def go() -> Any:
        return await client.call_tool("start_turn", {**key, "prompt": "Fix it.", "wait": 60}, None, progress)

    return go


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_waiting_tool_sends_the_turns_events_as_progress(
    service: Service, src_repo: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    monkeypatch.setenv("FAKE_AGENT_DELAY", "1")  # its start is an event of its own, a second before its reply
    key = {"agent": "fake", "repo": str(src_repo), "thread": f"issue-p-{transport}"}
    token, progress = service.token("run"), Progress()

    async def talk() -> Any:
        if transport == "stdio":
            async with Client(stdio_params(service, token), read_timeout_seconds=90) as client:
                return await _turn(client, key, progress)()
        async with http_client(service, token) as client:
            return await _turn(client, key, progress)()

    result = anyio.run(talk)
    assert not result.is_error and (result.structured_content or {})["outcome"] == "succeeded", text(result)
    said = progress.messages
    assert any(m.startswith("info:") for m in said), said  # the agent's start (its model)
    assert any(m.startswith("text: fake reply: received") for m in said), said  # its reply, as it came
    assert any(m.startswith("done:") for m in said), said


@asynccontextmanager
async def client_on(transport: str, service: Service, token: str) -> AsyncIterator[Client]:
    if transport == "stdio":
        async with Client(stdio_params(service, token), read_timeout_seconds=90) as client:
            yield client
    else:
        async with http_client(service, token) as client:
            yield client


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_a_client_gone_mid_call_finds_its_turn_again_by_the_thread(
    service: Service, src_repo: Path, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    """The client goes away while start_turn waits (its ``baton mcp`` stopped; its HTTP connection
    closed): it never got the run_id; the thread's key it chose gives it back, and the turn, never
    cancelled, ends once. Over HTTP the call left is audited ``unanswered``."""
    # still running when the next client asks: the agent waits for `.gate` in its worktree (at most a
    # minute: a broken test ends instead of hanging), which the test writes once that client has asked
    monkeypatch.setenv("FAKE_AGENT_RUN", HELD)
    thread = f"issue-gone-{transport}"
    key = {"agent": "fake", "repo": str(src_repo), "thread": thread}
    worktree = Workdirs(service.settings).worktree_path(make_key("fake", str(src_repo), thread, ["fake"]))
    token = service.token("run", token_name(transport))

    async def gone() -> None:
        async with client_on(transport, service, token) as client:
            with anyio.move_on_after(60):
                async with anyio.create_task_group() as group:
                    group.start_soon(client.call_tool, "start_turn", {**key, "prompt": "Fix it.", "wait": 60})
                    await anyio.to_thread.run_sync(
                        lambda: wait_for(lambda: service.store.list_jobs(thread=thread), timeout=30)
                    )
                    group.cancel_scope.cancel()  # mid-call: then the client goes away

    anyio.run(gone)
    [job] = service.store.list_jobs(thread=thread)
    assert job.status != "done"  # it was left mid-turn

    def open_gate() -> None:
        wait_for(worktree.is_dir, 60, 0.02, "the turn's worktree")
        (worktree / ".gate").write_text("go\n")

    async def again() -> tuple[Any, Any]:
        async with client_on(transport, service, token) as client:
            read = await client.call_tool("read_thread", key)
            assert not read.is_error, text(read)
            found = (read.structured_content or {})["in_flight"]
            assert len(found) == 1, text(read)
            handle = found[0]
            # asked while it was queued or running: now it may end (its worktree made once it starts)
            threading.Thread(target=open_gate, daemon=True).start()
            return handle, await client.call_tool("get_run", {"run_id": handle["run_id"], "wait": 60})

    handle, followed = anyio.run(again)
    assert handle["run_id"] == job.id and handle["status"] in ("queued", "running"), handle
    ended = followed.structured_content or {}
    assert ended["status"] == "done" and ended["outcome"] == "succeeded", text(followed)
    assert [j.id for j in service.store.list_jobs(thread=thread)] == [job.id]  # run once
    if transport == "http":
        rows = [r for r in service.store.list_audit(50) if r["actor"] == token_name(transport)]
        left = [r["detail"]["outcome"] for r in rows if r["action"] == "mcp.start_turn"]
        assert left == ["unanswered"], rows


def token_name(transport: str) -> str:
    return f"leaver-{transport}"


def test_twenty_clients_start_twenty_turns_at_once(service: Service, src_repo: Path) -> None:
    token = service.token("run", "twenty")
    results: dict[int, Any] = {}

    async def one(i: int) -> None:
        async with http_client(service, token) as client:
            key = {"agent": "fake", "repo": str(src_repo), "thread": f"issue-c{i}"}
            results[i] = await client.call_tool("start_turn", {**key, "prompt": f"Task {i}.", "wait": 120})

    async def all_at_once() -> None:
        async with anyio.create_task_group() as group:
            for i in range(20):
                group.start_soon(one, i)

    anyio.run(all_at_once)
    turns = {i: r.structured_content or {} for i, r in results.items()}
    assert sorted(turns) == list(range(20))
    assert all(t["outcome"] == "succeeded" and t["thread"] == f"issue-c{i}" for i, t in turns.items()), turns
    assert len({t["run_id"] for t in turns.values()}) == 20
    jobs = service.store.list_jobs(limit=100)
    assert sorted(j.id for j in jobs) == sorted(t["run_id"] for t in turns.values())
    assert {j.actor for j in jobs} == {"twenty"}
    rows = [r for r in service.store.list_audit(200) if r["action"] == "mcp.start_turn"]
    assert sorted(r["detail"]["run_id"] for r in rows) == sorted(t["run_id"] for t in turns.values())
