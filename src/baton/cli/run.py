"""``baton run``: one instruction on one key, resuming its conversation."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from baton.cli.common import EXIT, AgentOpt, JsonOpt, RepoOpt, ThreadOpt, emit_json, err, out
from baton.errors import BadInput
from baton.models import Mode, Outcome
from baton.request import RunRequest, RunResult
from baton.runner import run

T = TypeVar("T")


def run_cmd(
    agent: AgentOpt,
    repo: RepoOpt,
    thread: ThreadOpt,
    prompt: Annotated[str | None, typer.Argument(help="the instruction")] = None,
    prompt_file: Annotated[
        Path | None, typer.Option("--prompt-file", help="read the instruction from a file")
    ] = None,
    branch: Annotated[
        str | None, typer.Option(help="branch for a new worktree (default baton/AGENT/THREAD)")
    ] = None,
    base: Annotated[
        str | None, typer.Option(help="start a new worktree from this ref (default branch)")
    ] = None,
    mode: Annotated[Mode, typer.Option(help="auto picks fresh/resume/recover")] = Mode.AUTO,
    fork_from: Annotated[str | None, typer.Option(help="with --mode fork: branch from this thread")] = None,
    context: Annotated[str | None, typer.Option(help="task context for the first prompt")] = None,
    timeout: Annotated[float | None, typer.Option(help="kill the agent after S seconds")] = None,
    retries: Annotated[int, typer.Option(help="retry failed or timed-out runs N times")] = 0,
    wait: Annotated[float, typer.Option(help="wait up to S seconds for a busy key")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Run one instruction on one key, resuming its conversation."""
    if (prompt is None) == (prompt_file is None):
        raise BadInput(
            "give the instruction either as an argument or with --prompt-file, not both or neither"
        )
    if prompt_file is not None:
        try:
            prompt = prompt_file.read_text()
        except OSError as exc:
            raise BadInput(f"cannot read --prompt-file {prompt_file}: {exc.strerror}") from exc
    assert prompt is not None
    request = RunRequest(
        agent=agent,
        repo=repo,
        thread=thread,
        prompt=prompt,
        mode=mode,
        branch=branch,
        base=base,
        context=context,
        fork_from=fork_from,
        timeout=timeout,
        retries=retries,
        wait=wait,
    )
    result = _with_cancel(request.cancel, lambda: _run_with_status(request, quiet=as_json))
    if as_json:
        emit_json(result.to_json())
    else:
        _print_result(result)
    raise typer.Exit(EXIT.get(result.run.outcome, 1))


def _with_cancel(cancel: threading.Event, work: Callable[[], T]) -> T:
    """SIGINT/SIGTERM cancel the run cleanly (the agent's group is killed, the outcome recorded)."""

    def handler(signum: int, _frame: object) -> None:
        cancel.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return work()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run_with_status(request: RunRequest, quiet: bool) -> RunResult:
    if quiet or not err.is_terminal:
        return run(request)
    with err.status(f"{request.agent} on {request.thread}: starting") as status:
        request.on_start = lambda r: status.update(f"{r.agent} on {r.thread}: {r.mode.value} run {r.id[-8:]}")
        return run(request)


def _print_result(result: RunResult) -> None:
    r = result.run
    color = "green" if r.outcome == Outcome.SUCCEEDED else "red"
    out.print(
        f"[{color}]{r.outcome.value}[/{color}]  {r.agent}:{r.repo}:{r.thread}  mode={r.mode.value} "
        f"attempt={r.attempt} session={result.session.agent_session_id}",
        highlight=False,
    )
    out.print(f"worktree: {result.session.worktree}  ({r.duration_s} s)", highlight=False)
    if r.result:
        out.print(r.result, highlight=False, markup=False)
    if r.error:
        err.print(f"error: {r.error}", highlight=False, markup=False)
