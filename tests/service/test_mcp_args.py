"""baton's MCP tools take their arguments as the HTTP API takes a body, through ``/mcp`` (the SDK's own
client): an unknown argument is refused by name in the API's words, as are a missing, mistyped or
out-of-range one (and the audit row keeps those words), nothing submitted; ``start_turn`` takes every
option of ``POST /v1/runs``; the input schemas are small and name no pydantic class. The answers are
true: a cancelled run is not ``running``, ``list_threads`` finds a thread by the path it was started
with, money reads as ``baton budget`` shows it; a resource that cannot be read says why, with the
service's status; ``resources/list`` names the recent threads' summaries and diffs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import TextResourceContents

from baton.settings import Settings
from tests.service.mcp_clients import http_client, text
from tests.service_fixtures import Service, run_service

pytestmark = pytest.mark.slow  # turns of the fake agent through `baton serve`


@pytest.fixture
def service(settings: Settings) -> Any:
    with run_service(settings) as running:
        yield running


def calls(service: Service, token: str, *steps: tuple[str, dict[str, Any]]) -> list[Any]:
    async def talk() -> list[Any]:
        async with http_client(service, token) as client:
            return [await client.call_tool(name, args) for name, args in steps]

    return anyio.run(talk)


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("start_turn", {"acess": "full"}, "acess is not an option of this request"),
    ("start_turn", {"prompt": None}, "prompt takes text, not None"),
    ("start_turn", {"wait": "soon"}, "wait takes a number, not 'soon'"),
    ("start_turn", {"wait": 10**9}, "wait takes a number of at most 120, not 1000000000"),
    ("start_turn", {"timeout": 0}, "timeout takes a number more than 0, not 0"),
    ("start_turn", {"access": "root"}, "access takes one of 'read', 'edit' or 'full', not 'root'"),
    ("get_run", {"run_id": "abc", "verbose": True}, "verbose is not an option of this request"),
    ("list_threads", {"agent": "fake", "status": "idle"}, "status is not an option of this request"),
]


def test_arguments_are_refused_by_name_in_the_apis_words(service: Service, src_repo: Path) -> None:
    good = {"agent": "fake", "repo": str(src_repo), "thread": "issue-a", "prompt": "Do it."}
    steps = [(name, {**(good if name == "start_turn" else {}), **args}) for name, args, _ in BAD]
    missing = ("start_turn", {k: v for k, v in good.items() if k != "prompt"})
    results = calls(service, service.token("run", "strict"), *steps, missing)
    rows = [r for r in service.store.list_audit(50) if r["actor"] == "strict"]
    for (name, args, words), result in zip([*BAD, (*missing, "prompt is required")], results, strict=True):
        said = text(result)
        assert result.is_error and said == f"baton refused (422): {words}", (name, args, said)
    everything = json.dumps([text(r) for r in results]) + json.dumps(rows)
    assert "Arguments" not in everything and "pydantic" not in everything, everything
    errors = {r["detail"]["error"] for r in rows}
    assert "baton refused (422): acess is not an option of this request" in errors, errors
    assert all(r["detail"]["outcome"] == "refused" for r in rows) and len(rows) == len(results)
    assert service.store.list_jobs() == []  # nothing submitted


def test_start_turn_takes_the_options_of_a_run(service: Service, src_repo: Path) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-o"}
    options = {"access": "read", "timeout": 30, "setup": "true", "egress": "none", "max_usd": 5}
    options["context"] = '{"issue": 42}'  # text that reads as JSON stays text
    started, refused = calls(
        service,
        service.token("run"),
        ("start_turn", {**key, "prompt": "Look.", "wait": 60, **options}),
        ("start_turn", {**key, "prompt": "Again.", "environment": "container"}),
    )
    turn = started.structured_content or {}
    assert not started.is_error and turn["outcome"] == "succeeded", text(started)
    job = service.store.get_job(turn["run_id"])
    assert job is not None
    assert {name: job.request[name] for name in options} == {**options, "timeout": 30.0, "max_usd": 5.0}
    assert refused.is_error and "baton refused (422): environment: container" in text(refused)


def test_a_cancelled_run_reads_as_cancelled(
    service: Service, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-c"}
    token = service.token("run")
    [started] = calls(service, token, ("start_turn", {**key, "prompt": "Slow.", "wait": 1}))
    run_id = (started.structured_content or {})["run_id"]
    [done] = calls(service, token, ("cancel_run", {"run_id": run_id}))
    said = done.structured_content or {}
    assert not done.is_error and said["run_id"] == run_id, text(done)
    assert (said["status"], said.get("outcome")) in {("done", "cancelled"), ("cancelling", None)}, said


def test_list_threads_finds_a_thread_by_any_name_of_its_repository(service: Service, src_repo: Path) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-l"}
    token = service.token("run")
    [started] = calls(service, token, ("start_turn", {**key, "prompt": "Do it.", "wait": 60}))
    slug = (started.structured_content or {})["repo"]
    by_path, by_slug, other = calls(
        service,
        token,
        ("list_threads", {"repo": str(src_repo)}),
        ("list_threads", {"repo": slug}),
        ("list_threads", {"repo": "github.com/acme/other"}),
    )
    for found in (by_path, by_slug):
        assert [t["thread"] for t in (found.structured_content or {})["threads"]] == ["issue-l"], text(found)
    assert (other.structured_content or {})["threads"] == []


def test_money_reads_as_baton_budget_shows_it(service: Service, src_repo: Path) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-m"}
    first, second = calls(
        service,
        service.token("admin"),
        ("raise_budget", {**key, "usd": 0.1}),
        ("raise_budget", {**key, "usd": 0.2, "turns": 3}),
    )
    assert not first.is_error, text(first)
    caps = {c["measure"]: c for c in (second.structured_content or {})["caps"]}
    usd = caps["usd"]
    # 0.1 + 0.2 is 0.30000000000000004 as a float
    assert (usd["cap"], usd["raised"], usd["spent"]) == ("none", "$0.30", "$0.00"), caps
    assert caps["turns"]["raised"] == "3 turns", caps
    assert "0000000" not in text(second)


def test_a_resource_that_cannot_be_read_says_why(service: Service, src_repo: Path) -> None:
    async def read() -> list[MCPError]:
        errors = []
        async with http_client(service, service.token("read")) as client:
            for uri in ("baton://threads/fake/github.com/acme/none/issue-404/summary",):
                with pytest.raises(MCPError) as caught:
                    await client.read_resource(uri)
                errors.append(caught.value)
        return errors

    [missing] = anyio.run(read)
    assert missing.code == -32602 and missing.message.startswith("baton refused (404): "), missing.error
    assert "template" not in missing.message and (missing.data or {}).get("status") == 404, missing.error


def test_resources_list_names_the_recent_threads(service: Service, src_repo: Path) -> None:
    key = {"agent": "fake", "repo": str(src_repo), "thread": "issue-r"}
    [started] = calls(service, service.token("run"), ("start_turn", {**key, "prompt": "Do it.", "wait": 60}))
    slug = (started.structured_content or {})["repo"]

    async def listed() -> tuple[list[str], str]:
        async with http_client(service, service.token("read")) as client:
            uris = [str(r.uri) for r in (await client.list_resources()).resources]
            read = await client.read_resource(uris[0])
            [said] = [c.text for c in read.contents if isinstance(c, TextResourceContents)]
            return uris, said

    uris, summary = anyio.run(listed)
    base = f"baton://threads/fake/{slug}/issue-r"
    assert uris == [f"{base}/summary", f"{base}/diff"], uris
    assert "issue-r" in summary and "fake reply: received" in summary


def test_the_tool_schemas_are_small_and_name_no_class(service: Service) -> None:
    async def listed() -> list[dict[str, Any]]:
        async with http_client(service, service.token("read")) as client:
            tools = (await client.list_tools()).tools
            return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]

    tools = anyio.run(listed)
    size = len(json.dumps(tools, separators=(",", ":")))
    assert size < 11_000, size  # 9,936 bytes before, with 26 options of start_turn fewer
    said = json.dumps(tools)
    assert "Arguments" not in said and "DictOutput" not in said and '"pattern"' not in said
    assert all(t["inputSchema"]["additionalProperties"] is False for t in tools)
    [start] = [t for t in tools if t["name"] == "start_turn"]
    assert {"access", "egress", "setup", "timeout", "max_usd", "max_turns"} <= set(
        start["inputSchema"]["properties"]
    )
