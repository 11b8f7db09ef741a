"""The ``baton`` command line: thin. Each command parses, calls one core function, prints.

Tables for people, ``--json`` for scripts. Exit codes: 0 succeeded, 1 the agent failed or timed out,
2 bad input, 3 busy, 130 cancelled. Any :class:`BatonError` becomes one clean line on stderr.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from baton import homes
from baton.agents import AGENTS, describe_agent
from baton.cli_common import (
    EXIT,
    AgentOpt,
    JsonOpt,
    RepoOpt,
    ThreadOpt,
    emit_json,
    err,
    out,
)
from baton.cli_plans import plan_app
from baton.cli_sessions import runs_app, sessions_app
from baton.doctor import run_doctor
from baton.doctor import to_json as doctor_json
from baton.errors import BadInput, BatonError
from baton.models import Mode, Outcome
from baton.request import RunRequest, RunResult
from baton.runner import run
from baton.settings import load_settings

T = TypeVar("T")

app = typer.Typer(
    help="Durable conversations and durable workdirs for coding agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(sessions_app, name="sessions")
app.add_typer(runs_app, name="runs")
app.add_typer(plan_app, name="plan")


def main() -> None:
    try:
        app()
    except BatonError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(exc.exit_code)


@app.command("run")
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


@app.command("agents")
def agents_cmd(as_json: JsonOpt = False) -> None:
    """List the agents: installed or not, version, capabilities, home."""
    settings = load_settings()
    rows = [describe_agent(name, settings) for name in AGENTS]
    if as_json:
        emit_json(rows)
        return
    table = Table("agent", "installed", "version", "capabilities", "home")
    for row in rows:
        caps = ", ".join(k for k, v in row["capabilities"].items() if v is True)
        table.add_row(
            row["agent"], "yes" if row["installed"] else "no", row["version"] or "-", caps, row["home"]
        )
    out.print(table)


@app.command("doctor")
def doctor_cmd(as_json: JsonOpt = False) -> None:
    """Check that conversations will survive here; exit 1 when something is wrong."""
    settings = load_settings()
    checks = run_doctor(settings)
    report = doctor_json(checks, settings)
    if as_json:
        emit_json(report)
    else:
        marks = {"ok": "[green]ok[/green]  ", "warn": "[yellow]warn[/yellow]", "error": "[red]FAIL[/red]"}
        for check in checks:
            out.print(f"{marks[check.status]}  {check.name}: {check.detail}", highlight=False)
    raise typer.Exit(0 if report["ok"] else 1)


homes_app = typer.Typer(
    help="Keep ~/.claude, ~/.codex, ~/.gemini on a persistent volume.", no_args_is_help=True
)
app.add_typer(homes_app, name="homes")
HomesDir = Annotated[
    Path | None, typer.Option("--to", help="persistent directory (default $BATON_HOME/user-homes)")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="show what would happen, change nothing")]


def _print_actions(actions: list[homes.Action], as_json: bool) -> None:
    if as_json:
        emit_json(homes.to_json(actions))
        return
    for a in actions:
        extra = f" (backup {a.backup})" if a.backup else ""
        out.print(f"{a.name:13} {a.action:18} {a.source} -> {a.target}{extra}", highlight=False)


@homes_app.command("link")
def homes_link(to: HomesDir = None, dry_run: DryRun = False, as_json: JsonOpt = False) -> None:
    """Make the agent homes symlinks into a persistent directory, moving what is there (never deleting)."""
    actions = homes.link(to or load_settings().home / "user-homes", dry_run=dry_run)
    _print_actions(actions, as_json)
    raise typer.Exit(1 if any(a.action == "blocked" for a in actions) else 0)


@homes_app.command("unlink")
def homes_unlink(to: HomesDir = None, dry_run: DryRun = False, as_json: JsonOpt = False) -> None:
    """Undo `homes link`: remove the symlinks and put the original directories back."""
    _print_actions(homes.unlink(to or load_settings().home / "user-homes", dry_run=dry_run), as_json)


@app.command("demo")
def demo_cmd() -> None:
    """Offline demo: the real Claude CLI against a local mock model, through a simulated redeploy."""
    from baton.demo import run_demo

    raise typer.Exit(run_demo(out))


if __name__ == "__main__":
    main()
