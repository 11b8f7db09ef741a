"""Resources of baton's MCP server, one pair per thread, read through the same API and token as the tools
(a ``read`` token may read them): ``baton://threads/{agent}/{repo}/{thread}/summary``, the thread's state,
the question it waits on and its recent turns as Markdown (``GET /v1/session``), and ``…/diff``, what
its agent changed in its worktree since its branch's base (``GET /v1/session/diff``). ``repo`` is the
repository's slug, slashes and all (``github.com/acme/api``), as ``list_threads`` names it. Both are
templates, and ``resources/list`` names them for the recent threads the token sees
(:class:`RecentThreads`); a resource that cannot be read is a protocol error in the service's words,
with its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, Resource

from baton.service.mcp_api import Api, Refused
from baton.service.mcp_follow import thread_view

TEMPLATE = "baton://threads/{agent}/{+repo}/{thread}"
TURNS = 10  # the recent turns a summary shows
RECENT = 10  # the most recently used threads whose resources resources/list names


def summary_text(thread: dict[str, Any]) -> str:
    """A thread as Markdown: its key and state, its question, its recent turns newest first."""
    lines = [
        f"# {thread['agent']} · {thread['repo']} · {thread['thread']}",
        f"status: {thread['status']} · last outcome: {thread['last_outcome']} · branch: {thread['branch']}",
    ]
    question = thread.get("question") or {}
    if question.get("text"):
        lines += ["", f"**Waiting on an answer:** {question['text']}"]
        lines += [f"- {option}" for option in question.get("options") or []]
    for turn in thread["turns"]:
        lines += ["", f"## {turn['started_at']} · {turn['outcome']} · run {turn['run_id']}"]
        lines.append(str(turn.get("result") or turn.get("error") or "(no text)"))
    return "\n".join(lines) + "\n"


def diff_text(found: dict[str, Any]) -> str:
    """The diff as a reader wants it: its stat, the patch, then the untracked files."""
    parts = [f"# diff since {found['base']} (HEAD {found['head']})", found["stat"], "", found["diff"]]
    if found["untracked"]:
        parts += ["", "# untracked", *found["untracked"]]
    if found["truncated"]:
        parts += ["", "(cut: the worktree holds more)"]
    return "\n".join(parts) + "\n"


async def _read(api: Api, ctx: Context, path: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The API's answer for a resource; a refusal a protocol error in the service's words with its
    status (``data``): a 4xx the reader's to mend (invalid params), the rest the service's."""
    try:
        return await api.call(ctx.request_context.request, "GET", path, params=params)
    except Refused as exc:
        code = INVALID_PARAMS if exc.status < 500 else INTERNAL_ERROR
        raise MCPError(code, str(exc), {"status": exc.status}) from None
    except ToolError as exc:  # the service out of reach
        raise MCPError(INTERNAL_ERROR, str(exc)) from None


def add_resources(server: MCPServer, api: Api) -> None:
    """Register the thread resources on ``server``, reading through ``api``, and list those of the
    recent threads."""

    @server.resource(f"{TEMPLATE}/summary", name="thread-summary", mime_type="text/markdown")
    async def summary(agent: str, repo: str, thread: str, ctx: Context) -> str:
        """A thread's state, its question and its recent turns (the agent's answers)."""
        params = {"agent": agent, "repo": repo, "thread": thread, "runs": TURNS}
        return summary_text(thread_view(await _read(api, ctx, "/v1/session", params), TURNS))

    @server.resource(f"{TEMPLATE}/diff", name="thread-diff", mime_type="text/x-diff")
    async def diff(agent: str, repo: str, thread: str, ctx: Context) -> str:
        """What the thread's agent changed in its worktree since its branch's base commit."""
        params = {"agent": agent, "repo": repo, "thread": thread}
        return diff_text(await _read(api, ctx, "/v1/session/diff", params))

    server.middleware.append(RecentThreads(api))


class RecentThreads:
    """``resources/list`` with the summary and diff of the ``RECENT`` threads the token sees most
    recently used first (a client that lists resources, not templates, finds them): the SDK's
    middleware, the one place that answers a request with the caller's own token in hand."""

    def __init__(self, api: Api) -> None:
        self._api = api

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "resources/list" or not isinstance(result, dict):  # the answer as sent
            return result
        params = {"limit": RECENT}
        try:
            page = await self._api.call(ctx.request, "GET", "/v1/sessions", params=params)
        except ToolError as exc:
            raise MCPError(INTERNAL_ERROR, f"the recent threads cannot be listed: {exc}") from None
        recent = [
            r.model_dump(mode="json", by_alias=True, exclude_none=True)
            for s in page.get("sessions") or []
            for r in thread_resources(s)
        ]
        return {**result, "resources": [*result.get("resources", []), *recent]}


def thread_resources(session: Mapping[str, Any]) -> list[Resource]:
    """The summary and the diff of one thread, as ``resources/list`` names them."""
    key = f"{session['agent']}/{session['repo']}/{session['thread']}"
    said = f"{session['agent']} · {session['repo']} · {session['thread']}"
    return [
        Resource(
            uri=f"baton://threads/{key}/summary",
            name=f"{said}: summary",
            description=f"the thread's state ({session.get('status')}), its question and its recent turns",
            mime_type="text/markdown",
        ),
        Resource(
            uri=f"baton://threads/{key}/diff",
            name=f"{said}: diff",
            description="what its agent changed in its worktree since its branch's base commit",
            mime_type="text/x-diff",
        ),
    ]
