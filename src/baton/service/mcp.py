"""baton's threads as tools of an MCP server (the official SDK's ``MCPServer``), served at ``/mcp`` of
``baton serve`` (:mod:`baton.service.mcp_http`) and relayed to by ``baton mcp`` over stdio
(:mod:`baton.service.mcp_stdio`), for any MCP client to start, follow, answer, cancel and fund turns, and
read a thread's summary and diff as resources (:mod:`baton.service.mcp_resources`). It does nothing the
HTTP API does not (:mod:`baton.service.mcp_api`): the token's scope applies unchanged (``read`` lists and
reads, ``run`` starts, answers and cancels, ``admin`` raises a budget), every call is audited
(:mod:`baton.service.mcp_audit`), and a turn runs in the service, found again by its run id. Arguments are
checked as strictly as the API checks a body, before anything is sent (:mod:`baton.service.mcp_args`); a
refusal comes back as a tool error in the service's words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from baton.agents import listed
from baton.asking.questions import MAX_ANSWER
from baton.service.budget import Minutes, Tokens, Turns, Usd
from baton.service.fields import REPO_MAX, Agent, Thread
from baton.service.mcp_api import Api, EventSource
from baton.service.mcp_args import checked, with_run_options
from baton.service.mcp_audit import Audit
from baton.service.mcp_follow import budget_view, cancelled, follow, thread_state
from baton.service.mcp_resources import add_resources

NAME = "baton"
MAX_WAIT = 120.0  # seconds one tool call may hold for a turn: clients time a call out (Claude Code: minutes)
DEFAULT_WAIT = 20.0
RUN_ID_MAX = 64
INSTRUCTIONS = (
    f"baton runs coding agents ({listed()}) on threads: one durable conversation and one git "
    "worktree per (agent, repo, thread). start_turn gives a thread an instruction and waits a while; a "
    "turn still running comes back as a run_id that get_run follows. A turn that ends needs_input asks "
    "a question: answer_question answers it and the same conversation resumes. A run_id lost (the call "
    "ended before its answer) is in read_thread's in_flight. A thread parked at its spending cap resumes "
    "when raise_budget raises it. Resources baton://threads/{agent}/{repo}/{thread}/summary and /diff "
    "show a thread's recent turns and what its agent changed."
)

# No pattern stated (a long one, on every tool): the service reads a repo (baton.keys.parse_repo) and
# refuses a bad one in its own words.
Repo = Annotated[
    str,
    Field(
        min_length=1,
        max_length=REPO_MAX,
        description="the repository: its git URL, a path on the service, or its slug",
    ),
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


def build_server(
    url: str,
    token: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    events: EventSource | None = None,
) -> MCPServer:
    """The MCP server whose tools call the API at ``url`` with ``token`` (None: each request's own);
    ``events``: a run's events read in-process (``/mcp``), else from the API's stream."""
    api = Api(url, token, transport, events)
    server: MCPServer = MCPServer(
        NAME,
        instructions=INSTRUCTIONS,
        version="1",
        log_level="WARNING",
        tools=[checked(fn) for fn in tools(api)],
        extensions=[Audit(api)],
    )
    add_resources(server, api)
    return server


def tools(api: Api) -> list[Callable[..., Any]]:
    """The tools' functions, each calling ``api``."""

    async def start_turn(ctx: Context, wait: Wait = DEFAULT_WAIT, **options: Any) -> dict[str, Any]:
        """Give a thread a turn: the agent resumes the thread's own conversation in its own worktree (the
        first turn starts both). Takes every option of POST /v1/runs (access, egress, setup, timeout,
        caps…; the token's scope decides). Waits up to `wait` seconds: a turn that ended comes back
        with its outcome and result; one still running with its run_id, for get_run."""
        body = {name: value for name, value in options.items() if value is not None}
        queued = await api.call(ctx.request_context.request, "POST", "/v1/runs", body=body)
        return await follow(api, queued["run_id"], wait, ctx)

    async def get_run(run_id: RunIdArg, ctx: Context, wait: Wait = 0) -> dict[str, Any]:
        """Follow a turn by its run_id: its status, and once done its outcome, result or question. With
        `wait`, holds until it ends or that many seconds pass."""
        return await follow(api, run_id, wait, ctx)

    async def answer_question(
        agent: Agent, repo: Repo, thread: Thread, answer: AnswerText, ctx: Context, wait: Wait = DEFAULT_WAIT
    ) -> dict[str, Any]:
        """Answer the question a thread waits on (its last turn ended needs_input): a turn carrying the
        question and the answer resumes the same conversation. Waits as start_turn does."""
        body = {"agent": agent, "repo": repo, "thread": thread, "answer": answer}
        queued = await api.call(ctx.request_context.request, "POST", "/v1/answers", body=body)
        return await follow(api, queued["run_id"], wait, ctx)

    async def cancel_run(run_id: RunIdArg, ctx: Context) -> dict[str, Any]:
        """Cancel a queued or running turn (the conversation is kept): the run as it stands after
        the cancel, done (outcome cancelled) or cancelling (its agent being stopped)."""
        return await cancelled(api, ctx.request_context.request, run_id)

    async def list_threads(
        ctx: Context,
        agent: Annotated[Agent | None, Field(description="only this agent's threads")] = None,
        repo: Annotated[
            Repo | None, Field(description="only this repository's (as start_turn names it)")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """Threads, most recently used first: each key, its state (idle, running…) and its last outcome
        (needs_input: it waits on an answer)."""
        params = {k: v for k, v in {"agent": agent, "repo": repo, "limit": limit}.items() if v is not None}
        page = await api.call(ctx.request_context.request, "GET", "/v1/sessions", params=params)
        keep = ("agent", "repo", "thread", "status", "last_outcome", "last_used_at", "branch")
        return {"threads": [{k: s.get(k) for k in keep} for s in page.get("sessions", [])]}

    async def read_thread(
        agent: Agent,
        repo: Repo,
        thread: Thread,
        ctx: Context,
        turns: Annotated[int, Field(ge=1, le=50, description="how many recent turns")] = 5,
    ) -> dict[str, Any]:
        """A thread's state, the question it waits on (if any), its turns not yet done (each run_id,
        for get_run or cancel_run: a client that lost a handle finds it here) and its recent turns,
        newest first, each with its outcome and the agent's answer."""
        key = {"agent": agent, "repo": repo, "thread": thread}
        return await thread_state(api, ctx.request_context.request, key, turns)

    async def raise_budget(
        agent: Agent,
        repo: Repo,
        thread: Thread,
        ctx: Context,
        usd: Annotated[Usd | None, Field(description="USD to add to the thread's cap")] = None,
        tokens: Annotated[Tokens | None, Field(description="tokens to add to its cap")] = None,
        minutes: Annotated[Minutes | None, Field(description="minutes to add to its cap")] = None,
        turns: Annotated[Turns | None, Field(description="turns to add to its cap")] = None,
        wait: Wait = DEFAULT_WAIT,
    ) -> dict[str, Any]:
        """Raise a thread's spending caps (an admin token's to do): a thread parked at its cap resumes
        with its parked instruction, followed as start_turn does. Without an amount, shows the caps
        (amounts as `baton budget` shows them: $4.80, 120,000 tokens)."""
        amounts = {"usd": usd, "tokens": tokens, "minutes": minutes, "turns": turns}
        body: dict[str, Any] = {"agent": agent, "repo": repo, "thread": thread}
        body |= {name: value for name, value in amounts.items() if value is not None}
        done = await api.call(ctx.request_context.request, "POST", "/v1/budget", body=body)
        view = budget_view(done)
        if done.get("run_id"):
            view["turn"] = await follow(api, done["run_id"], wait, ctx)
        return view

    start_turn = with_run_options(start_turn, {"repo": Repo})
    return [start_turn, get_run, answer_question, cancel_run, list_threads, read_thread, raise_budget]
