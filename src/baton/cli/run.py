"""``baton run``: one instruction on one key, resuming its conversation."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from baton.cli.common import (
    AgentOpt,
    BaseOpt,
    BaseThreadOpt,
    BranchOpt,
    ContextOpt,
    ForkFromOpt,
    HandoffOpt,
    JsonOpt,
    ModeOpt,
    OnConflictOpt,
    PromptArg,
    PromptFileOpt,
    RepoOpt,
    RetriesOpt,
    SyncOpt,
    ThreadOpt,
    TimeoutOpt,
    emit_json,
    err,
    esc,
    out,
)
from baton.models import Mode, Outcome

if TYPE_CHECKING:
    from baton.runner.request import RunRequest, RunResult
    from baton.store.base import Store

T = TypeVar("T")
EXIT = {Outcome.SUCCEEDED: 0, Outcome.CANCELLED: 130, Outcome.CONFLICT: 5}  # any other outcome exits 1


def run_cmd(
    agent: AgentOpt,
    repo: RepoOpt,
    thread: ThreadOpt,
    prompt: PromptArg = None,
    prompt_file: PromptFileOpt = None,
    branch: BranchOpt = None,
    base: BaseOpt = None,
    mode: ModeOpt = Mode.AUTO,
    fork_from: ForkFromOpt = None,
    sync: SyncOpt = None,
    on_conflict: OnConflictOpt = None,
    base_thread: BaseThreadOpt = None,
    handoff_from: HandoffOpt = None,
    context: ContextOpt = None,
    timeout: TimeoutOpt = None,
    retries: RetriesOpt = 0,
    wait: Annotated[float, typer.Option(help="wait up to S seconds for a busy key")] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Run one instruction on one key, resuming its conversation."""
    from baton.runner.request import RunRequest

    request = RunRequest(
        agent=agent,
        repo=repo,
        thread=thread,
        prompt=_read_prompt(prompt, prompt_file),
        mode=mode,
        branch=branch,
        base=base,
        context=context,
        fork_from=fork_from,
        sync=sync,
        on_conflict=on_conflict,
        base_thread=base_thread,
        handoff_from=handoff_from,
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


def _read_prompt(prompt: str | None, prompt_file: Path | None) -> str:
    from baton.errors import BadInput

    if (prompt is None) == (prompt_file is None):
        raise BadInput(
            "give the instruction either as an argument or with --prompt-file, not both or neither"
        )
    if prompt_file is None:
        assert prompt is not None
        return prompt
    try:
        return prompt_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read --prompt-file {prompt_file}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"--prompt-file {prompt_file} is not UTF-8 text (byte {exc.start}: {exc.reason}); convert it"
        ) from exc


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
    from baton.runner.run import run

    if quiet or not err().is_terminal:
        return run(request)
    with err().status(esc(f"{request.agent} on {request.thread}: starting")) as status:
        request.on_start = lambda r: status.update(
            esc(f"{r.agent} on {r.thread}: {r.mode.value} run {r.id[-8:]}")
        )
        return run(request)


def _print_result(result: RunResult) -> None:
    from baton.runner.runids import short_id
    from baton.settings import load_settings
    from baton.store import open_store

    r = result.run
    store: Store = open_store(load_settings().resolved_store_url)
    try:
        run_id = short_id(store, r.id)
    finally:
        store.close()
    color = "green" if r.outcome == Outcome.SUCCEEDED else "red"
    out().print(
        f"[{color}]{r.outcome.value}[/{color}]  run {esc(run_id)}  {esc(f'{r.agent}:{r.repo}:{r.thread}')}  "
        f"mode={r.mode.value} attempt={r.attempt} session={esc(result.session.agent_session_id)}",
        highlight=False,
    )
    out().print(f"worktree: {esc(result.session.worktree)}  ({r.duration_s} s)", highlight=False)
    if r.result:
        out().print(r.result, highlight=False, markup=False)
    if r.note:
        err().print(f"note: {r.note}", highlight=False, markup=False)
    if r.error:
        err().print(f"error: {r.error}", highlight=False, markup=False)
    for warning in result.warnings:
        err().print(f"warning: {warning}", highlight=False, markup=False)
