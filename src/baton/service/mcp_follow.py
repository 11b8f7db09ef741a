"""How baton's MCP tools show a run and a thread (:mod:`baton.service.mcp`), and how a tool waits on a
running turn: for at most its ``wait``, reading the run's own event stream (the one ``GET
/v1/runs/{id}/events`` serves) and sending each readable entry of it (the agent speaking, a tool call, an
error, as ``baton runs logs`` shows them: :class:`baton.agents.events.LogRenderer`) to the client as an
MCP progress notification. The wait ends with the stream (the turn is over) or the deadline, and the
answer is the run as it then stands: done, or a handle that ``get_run`` follows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import anyio
from mcp.server.mcpserver import Context

from baton.agents.events import LogRenderer, clip
from baton.caps.model import Measure, shown
from baton.service.mcp_api import Api, Refused

CANCEL_WAIT = 5.0  # seconds cancel_run waits for a running turn's agent to be stopped
MAX_TEXT = 8000  # characters of a turn's result or an error shown; the run keeps it whole
IN_FLIGHT = 20  # the newest runs of a thread read_thread looks through for those not done
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


def cut(text: Any) -> Any:
    if isinstance(text, str) and len(text) > MAX_TEXT:
        return text[:MAX_TEXT] + f"\n…({len(text) - MAX_TEXT} more characters; the run keeps them)"
    return text


def turn_view(run: Mapping[str, Any]) -> dict[str, Any]:
    """A run as a tool answers it: where it is, its result or question, and what to call next."""
    view = {name: cut(run.get(name)) for name in RUN_FIELDS}
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
    """The run, once done or after ``wait`` seconds; its events as progress notifications meanwhile."""
    request = ctx.request_context.request
    run = await api.call(request, "GET", f"/v1/runs/{run_id}")
    if run.get("status") == "done" or wait <= 0:
        return turn_view(run)
    deadline = time.monotonic() + wait
    with anyio.move_on_after(wait):
        await _progress(api, ctx, run)
    # the rest of the wait, if any: the record is written after the stream's end, and a run with no
    # stream of its own here (started by `baton run`) is still followed to its end or the deadline
    left = max(deadline - time.monotonic(), 0)
    params = {"wait": round(left, 3)}
    run = await api.call(request, "GET", f"/v1/runs/{run['run_id']}", params=params, timeout=left + 30)
    return turn_view(run)


async def _progress(api: Api, ctx: Context, run: Mapping[str, Any]) -> None:
    """A progress notification for each entry of the run's events, until its stream ends."""
    renderer, count = LogRenderer(str(run.get("agent") or "")), 0
    await ctx.report_progress(count, None, f"run {run['run_id']}: {run.get('status')}")
    async for item in api.events(ctx.request_context.request, str(run["run_id"])):
        event = item.get("event")
        for entry in renderer.feed([json.dumps(event)]) if isinstance(event, dict) else ():
            count += 1
            await ctx.report_progress(count, None, f"{entry.kind}: {clip(entry.text)}")


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
            "result": cut(r.get("result")),
            "error": cut(r.get("error")),
        }
        for r in (session.get("runs") or [])[:turns]
    ]
    return view


async def thread_state(api: Api, request: Any, key: Mapping[str, str], turns: int) -> dict[str, Any]:
    """``read_thread``'s answer: the thread as :func:`thread_view` shows it, and its runs not yet done
    (``in_flight``), the handles a client that lost one finds again; a thread whose first turn is
    still queued has no session yet, only those."""
    found = await api.call(request, "GET", "/v1/runs", params={**key, "limit": IN_FLIGHT})
    in_flight = [
        {"run_id": r["run_id"], "status": r["status"]} for r in found["runs"] if r["status"] != "done"
    ]
    try:
        session = await api.call(request, "GET", "/v1/session", params={**key, "runs": turns})
    except Refused as exc:
        if not in_flight or exc.status != 404:
            raise
        session = {**key, "status": "queued"}
    return {**thread_view(session, turns), "in_flight": in_flight}


async def cancelled(api: Api, request: Any, run_id: str) -> dict[str, Any]:
    """Cancel the run, and show it as it then stands: done (outcome cancelled) once its agent is
    stopped, which ``CANCEL_WAIT`` seconds usually see, else ``cancelling``."""
    said = await api.call(request, "POST", f"/v1/runs/{run_id}/cancel")
    params = {"wait": CANCEL_WAIT}
    run = await api.call(
        request, "GET", f"/v1/runs/{said['run_id']}", params=params, timeout=CANCEL_WAIT + 30
    )
    view = turn_view(run)
    if view["status"] != "done":
        view["status"] = "cancelling"
        view["next"] = "its agent is being stopped: get_run with this run_id shows it done (cancelled)"
    return view


def budget_view(done: Mapping[str, Any]) -> dict[str, Any]:
    """``raise_budget``'s answer: whose caps, each cap with its amounts as ``baton budget`` shows them
    ($4.80, 120,000 tokens), the raises recorded and what became of a parked thread."""
    view = {name: done.get(name) for name in ("target", "raised", "resumed")}
    view["caps"] = [_cap(cap) for cap in done.get("caps") or []]
    return view


def _cap(cap: Mapping[str, Any]) -> dict[str, Any]:
    measure = Measure(cap["measure"])
    amounts = {
        name: "none" if cap.get(name) is None else shown(measure, float(cap[name]))
        for name in ("cap", "raised", "limit", "spent")
    }
    return {"scope": cap.get("scope"), "measure": measure.value, **amounts, "reached": cap.get("reached")}
