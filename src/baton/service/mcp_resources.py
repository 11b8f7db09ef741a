"""Resources of baton's MCP server, one pair per thread, read through the same API and token as the tools
(a ``read`` token may read them): ``baton://threads/{agent}/{repo}/{thread}/summary``, the thread's state,
the question it waits on and its recent turns as Markdown (``GET /v1/session``), and ``…/diff``, what
its agent changed in its worktree since its branch's base (``GET /v1/session/diff``). ``repo`` is the
repository's slug, slashes and all (``github.com/acme/api``), as ``list_threads`` names it.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from baton.service.mcp_api import Api
from baton.service.mcp_follow import thread_view

TEMPLATE = "baton://threads/{agent}/{+repo}/{thread}"
TURNS = 10  # the recent turns a summary shows


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


def add_resources(server: MCPServer, api: Api) -> None:
    """Register the thread resources on ``server``, reading through ``api``."""

    @server.resource(f"{TEMPLATE}/summary", name="thread-summary", mime_type="text/markdown")
    async def summary(agent: str, repo: str, thread: str, ctx: Context) -> str:
        """A thread's state, its question and its recent turns (the agent's answers)."""
        params = {"agent": agent, "repo": repo, "thread": thread, "runs": TURNS}
        session = await api.call(ctx.request_context.request, "GET", "/v1/session", params=params)
        return summary_text(thread_view(session, TURNS))

    @server.resource(f"{TEMPLATE}/diff", name="thread-diff", mime_type="text/x-diff")
    async def diff(agent: str, repo: str, thread: str, ctx: Context) -> str:
        """What the thread's agent changed in its worktree since its branch's base commit."""
        params = {"agent": agent, "repo": repo, "thread": thread}
        found = await api.call(ctx.request_context.request, "GET", "/v1/session/diff", params=params)
        return diff_text(found)
