"""``baton mcp``: baton's threads as tools of an MCP server (the official SDK's ``MCPServer``, stdio), for
any MCP client (Claude Code, Codex, Cursor…) to start, follow, answer and cancel turns. It is a client of
a running ``baton serve`` (:data:`URL_ENV`, :data:`TOKEN_ENV`) and does nothing the HTTP API does not:
the token's scope applies unchanged (a ``read`` token lists and reads, only ``run`` starts, answers and
cancels), the service records who submitted each turn, and a turn runs in the service, so it outlives
this process and is found again by its run id. Arguments are checked by the API's own field rules
(:mod:`baton.service.fields`) before anything is sent; every refusal, the service's included, comes back
as a tool error in the service's words, never a traceback.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from baton.agents import listed
from baton.asking.questions import MAX_ANSWER
from baton.errors import BadInput
from baton.service.fields import Agent, RepoSpec, Thread
from baton.service.fields import Prompt as PromptText

URL_ENV, TOKEN_ENV = "BATON_URL", "BATON_TOKEN"
NAME = "baton"
MAX_WAIT = 120.0  # seconds one tool call may hold for a turn: clients time a call out (Claude Code: minutes)
DEFAULT_WAIT = 20.0
SLICE = 5.0  # seconds of each look at the run while waiting; a progress notification after each
MAX_TEXT = 8000  # characters of a turn's result or an error shown; the run keeps it whole
RUN_ID_MAX = 64
INSTRUCTIONS = (
    f"baton runs coding agents ({listed()}) on threads: one durable conversation and one git "
    "worktree per (agent, repo, thread). start_turn gives a thread an instruction and waits a while; a "
    "turn still running comes back as a run_id that get_run follows. A turn that ends needs_input asks "
    "a question: answer_question answers it and the same conversation resumes."
)

Repo = Annotated[
    RepoSpec,
    Field(max_length=2048, description="the repository: its git URL, a path on the service, or its slug"),
]
Wait = Annotated[
    float,
    Field(ge=0, le=MAX_WAIT, description=f"seconds to wait for the turn to end (at most {MAX_WAIT:g})"),
]
RunIdArg = Annotated[
    str,
    Field(
        min_length=1,
        max_length=RUN_ID_MAX,
        pattern="^[0-9A-Za-z-]+$",
        description="a run's id as start_turn or answer_question returned it (or its last 8 characters)",
    ),
]
AnswerText = Annotated[
    str, Field(min_length=1, max_length=MAX_ANSWER, description="the answer to the thread's question")
]


class Api:
    """The HTTP API of one ``baton serve``, called with one bearer token (``token``), or else with the
    ``Authorization`` header of the MCP request being answered (``baton serve``'s own ``/mcp``); a
    refusal is a ToolError carrying the service's own message."""

    def __init__(
        self, url: str, token: str | None = None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._transport = transport

    def _authorization(self, ctx: Context) -> str:
        if self._token is not None:
            return f"Bearer {self._token}"
        request = ctx.request_context.request
        headers = getattr(request, "headers", None)
        said = headers.get("authorization") if headers is not None else None
        if not isinstance(said, str):  # the gate in front of /mcp lets no such request through
            raise ToolError("this MCP request carries no bearer token")
        return said

    async def call(
        self,
        ctx: Context,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        headers = {"Authorization": self._authorization(ctx)}
        try:
            async with httpx.AsyncClient(
                base_url=self.url, headers=headers, timeout=timeout, transport=self._transport
            ) as http:
                response = await http.request(method, path, params=params, json=body)
        except httpx.HTTPError as exc:
            raise ToolError(
                f"baton serve at {self.url} cannot be reached: {type(exc).__name__}: {exc}"
            ) from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            detail = data.get("detail") if isinstance(data, dict) else None
            said = detail if isinstance(detail, str) else response.text[:500] or response.reason_phrase
            raise ToolError(f"baton refused ({response.status_code}): {said}")
        if not isinstance(data, dict):
            raise ToolError(
                f"baton serve at {self.url} answered {response.status_code} without a JSON object"
            )
        return data


def _cut(text: Any) -> Any:
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return text[:MAX_TEXT] + f"\n…({len(text) - MAX_TEXT} more characters; the run keeps them)"
    return text


RUN_FIELDS = (
    "run_id",
    "status",
    "agent",
    "repo",
    "thread",
    "outcome",
    "mode",
    "session_id",
    "result",
    "error",
)


def turn_view(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run as a tool answers it: where it is, its result or question, and what to call next."""
    view = {name: _cut(run.get(name)) for name in RUN_FIELDS}
    view["question"] = run.get("question")
    if run.get("resets_at"):
        view["resets_at"] = run["resets_at"]
    if view["status"] != "done":
        view["next"] = "still running: call get_run with this run_id to follow it (or cancel_run to stop it)"
    elif view["outcome"] == "needs_input":
        view["next"] = (
            "the agent asks a question: answer_question with this agent, repo and thread resumes it"
        )
    return view


async def follow(api: Api, run_id: str, wait: float, ctx: Context) -> dict[str, Any]:
    """The run, once done or after ``wait`` seconds; a progress notification after each slice."""
    deadline = time.monotonic() + wait
    run = await api.call(ctx, "GET", f"/v1/runs/{run_id}")
    while run.get("status") != "done" and (left := deadline - time.monotonic()) > 0:
        step = min(SLICE, left)
        params = {"wait": round(step, 3)}
        run = await api.call(ctx, "GET", f"/v1/runs/{run_id}", params=params, timeout=step + 30)
        if run.get("status") != "done":
            await ctx.report_progress(
                wait - max(deadline - time.monotonic(), 0), wait, f"run {run_id}: {run['status']}"
            )
    return turn_view(run)


def thread_view(session: Mapping[str, Any], turns: int) -> dict[str, Any]:
    """A session as ``read_thread`` answers it: its state, the question it waits on, its recent turns."""
    keep = ("agent", "repo", "thread", "status", "last_outcome", "session_id", "branch", "last_used_at")
    view: dict[str, Any] = {name: session.get(name) for name in keep}
    view["question"] = session.get("question")
    view["turns"] = [
        {
            "run_id": r.get("run_id"),
            "attempt": r.get("attempt"),
            "outcome": r.get("outcome"),
            "started_at": r.get("started_at"),
            "duration_s": r.get("duration_s"),
            "result": _cut(r.get("result")),
            "error": _cut(r.get("error")),
        }
        for r in (session.get("runs") or [])[:turns]
    ]
    return view


def build_server(
    url: str, token: str | None = None, transport: httpx.AsyncBaseTransport | None = None
) -> MCPServer:
    """The MCP server whose tools call the API at ``url`` with ``token`` (None: each request's own)."""
    api = Api(url, token, transport)
    server: MCPServer = MCPServer(NAME, instructions=INSTRUCTIONS, version="1", log_level="WARNING")

    @server.tool()
    async def start_turn(
        agent: Annotated[Agent, Field(description=f"the agent CLI: {listed()}")],
        repo: Repo,
        thread: Annotated[
            Thread, Field(description="the unit of work, e.g. issue-42 (the conversation's key)")
        ],
        prompt: Annotated[PromptText, Field(description="the instruction for this turn")],
        ctx: Context,
        wait: Wait = DEFAULT_WAIT,
    ) -> dict[str, Any]:
        """Give a thread a turn: the agent resumes the thread's own conversation in its own worktree (the
        first turn starts both). Waits up to `wait` seconds: a turn that ended comes back with its
        outcome and result; one still running with its run_id, for get_run."""
        body = {"agent": agent, "repo": repo, "thread": thread, "prompt": prompt}
        queued = await api.call(ctx, "POST", "/v1/runs", body=body)
        return await follow(api, queued["run_id"], wait, ctx)

    @server.tool()
    async def get_run(run_id: RunIdArg, ctx: Context, wait: Wait = 0) -> dict[str, Any]:
        """Follow a turn by its run_id: its status, and once done its outcome, result or question. With
        `wait`, holds until it ends or that many seconds pass."""
        return await follow(api, run_id, wait, ctx)

    @server.tool()
    async def answer_question(
        agent: Agent, repo: Repo, thread: Thread, answer: AnswerText, ctx: Context, wait: Wait = DEFAULT_WAIT
    ) -> dict[str, Any]:
        """Answer the question a thread waits on (its last turn ended needs_input): a turn carrying the
        question and the answer resumes the same conversation. Waits as start_turn does."""
        body = {"agent": agent, "repo": repo, "thread": thread, "answer": answer}
        queued = await api.call(ctx, "POST", "/v1/answers", body=body)
        return await follow(api, queued["run_id"], wait, ctx)

    @server.tool()
    async def cancel_run(run_id: RunIdArg, ctx: Context) -> dict[str, Any]:
        """Cancel a queued or running turn (the conversation is kept)."""
        return await api.call(ctx, "POST", f"/v1/runs/{run_id}/cancel")

    @server.tool()
    async def list_threads(
        ctx: Context,
        agent: Annotated[Agent | None, Field(description="only this agent's threads")] = None,
        repo: Annotated[str | None, Field(max_length=2048, description="only this repo's (its slug)")] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """Threads, most recently used first: each key, its state (idle, running…) and its last outcome
        (needs_input: it waits on an answer)."""
        params = {k: v for k, v in {"agent": agent, "repo": repo, "limit": limit}.items() if v is not None}
        page = await api.call(ctx, "GET", "/v1/sessions", params=params)
        keep = ("agent", "repo", "thread", "status", "last_outcome", "last_used_at", "branch")
        return {"threads": [{k: s.get(k) for k in keep} for s in page.get("sessions", [])]}

    @server.tool()
    async def read_thread(
        agent: Agent,
        repo: Repo,
        thread: Thread,
        ctx: Context,
        turns: Annotated[int, Field(ge=1, le=50, description="how many recent turns")] = 5,
    ) -> dict[str, Any]:
        """A thread's state, the question it waits on (if any) and its recent turns, newest first, each
        with its outcome and the agent's answer."""
        params = {"agent": agent, "repo": repo, "thread": thread, "runs": turns}
        return thread_view(await api.call(ctx, "GET", "/v1/session", params=params), turns)

    return server


def from_environment(environ: Mapping[str, str]) -> MCPServer:
    """The server for the service and token the environment names; BadInput naming what is missing."""
    url, token = environ.get(URL_ENV, "").strip(), environ.get(TOKEN_ENV, "").strip()
    missing = [name for name, value in ((URL_ENV, url), (TOKEN_ENV, token)) if not value]
    if missing:
        raise BadInput(
            f"baton mcp talks to a running `baton serve`: set {' and '.join(missing)} "
            f"({URL_ENV}: its URL, e.g. http://127.0.0.1:8765; "
            f"{TOKEN_ENV}: a token from `baton tokens create`)"
        )
    if not url.startswith(("http://", "https://")):
        raise BadInput(f"{URL_ENV} must be an http:// or https:// URL, not {url!r}")
    return build_server(url, token)
