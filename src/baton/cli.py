"""The ``baton`` command line: thin. Each command parses, calls one core function, prints.

Tables for people, ``--json`` for scripts. Exit codes: 0 succeeded, 1 the agent failed or timed out,
2 bad input, 3 busy, 130 cancelled. Any :class:`BatonError` becomes one clean line on stderr.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from baton import homes
from baton.agents import AGENTS, describe_agent
from baton.doctor import run_doctor
from baton.doctor import to_json as doctor_json
from baton.errors import BadInput, BatonError, NotFound
from baton.models import Mode, Outcome, RunRecord, iso
from baton.runner import RunRequest, RunResult, run
from baton.sessions import Scope, export_session, get_session, import_session, reset_session, resolve_key
from baton.settings import Settings, load_settings
from baton.store import Store, open_store

app = typer.Typer(
    help="Durable conversations and durable workdirs for coding agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sessions_app = typer.Typer(help="List, show, reset, export and import sessions.", no_args_is_help=True)
runs_app = typer.Typer(help="List runs, show one, read or follow its log.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")
app.add_typer(runs_app, name="runs")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT = {Outcome.SUCCEEDED: 0, Outcome.CANCELLED: 130}
T = TypeVar("T")

AgentOpt = Annotated[str, typer.Option("--agent", "-a", help="claude, codex, gemini (or fake, for tests)")]
RepoOpt = Annotated[str, typer.Option("--repo", "-r", help="git URL, local path, or a stored slug")]
ThreadOpt = Annotated[str, typer.Option("--thread", "-t", help="unit of work, e.g. issue-42")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def main() -> None:
    try:
        app()
    except BatonError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(exc.exit_code)


@contextmanager
def _store() -> Iterator[tuple[Settings, Store]]:
    settings = load_settings()
    store = open_store(settings.resolved_store_url)
    try:
        yield settings, store
    finally:
        store.close()


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


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
        _emit_json(result.to_json())
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


# -- sessions --------------------------------------------------------------------------------------


@sessions_app.command("ls")
def sessions_ls(
    agent: Annotated[str | None, typer.Option("--agent", "-a")] = None,
    repo: Annotated[str | None, typer.Option("--repo", "-r", help="slug")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List sessions, most recently used first."""
    with _store() as (_settings, store):
        rows = store.list_sessions(agent=agent, repo=repo)
    if as_json:
        _emit_json([s.to_json() for s in rows])
        return
    table = Table(
        "agent", "repo", "thread", "session", "status", "attempts", "last outcome", "last used", "expires"
    )
    for s in rows:
        table.add_row(
            s.agent,
            s.repo,
            s.thread,
            (s.agent_session_id or "-")[:8],
            s.status.value,
            str(s.attempts),
            s.last_outcome.value if s.last_outcome else "-",
            iso(s.last_used_at),
            iso(s.expires_at),
        )
    out.print(table)


@sessions_app.command("show")
def sessions_show(agent: AgentOpt, repo: RepoOpt, thread: ThreadOpt, as_json: JsonOpt = False) -> None:
    """Show one session and its recent runs."""
    with _store() as (_settings, store):
        key = resolve_key(store, agent, repo, thread)
        session = get_session(store, key)
        runs = store.list_runs(key.agent, key.repo.slug, key.thread, limit=20)
    if as_json:
        _emit_json({**session.to_json(), "runs": [r.to_json() for r in runs]})
        return
    for name, value in session.to_json().items():
        out.print(f"[bold]{name}[/bold]: {value}", highlight=False)
    _runs_table(runs)


@sessions_app.command("reset")
def sessions_reset(
    agent: AgentOpt,
    repo: RepoOpt,
    thread: ThreadOpt,
    scope: Annotated[Scope, typer.Option(help="what to remove")] = Scope.CONVERSATION,
    as_json: JsonOpt = False,
) -> None:
    """Reset a key: its conversation, its worktree, or all of it (audited)."""
    with _store() as (settings, store):
        removed = reset_session(store, settings, resolve_key(store, agent, repo, thread), scope)
    if as_json:
        _emit_json(removed)
    else:
        out.print(f"reset {removed['key']} ({scope.value}): {removed}", highlight=False)


@sessions_app.command("export")
def sessions_export(
    agent: AgentOpt,
    repo: RepoOpt,
    thread: ThreadOpt,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="file (default stdout)")] = None,
) -> None:
    """Export a session (record, runs, transcript snapshot) as one JSON document."""
    with _store() as (_settings, store):
        document = export_session(store, resolve_key(store, agent, repo, thread))
    text = json.dumps(document)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(output)
        err.print(f"exported to {output}")


@sessions_app.command("import")
def sessions_import(
    file: Annotated[Path, typer.Argument(help="an export made by `baton sessions export`; - for stdin")],
    replace: Annotated[bool, typer.Option(help="overwrite an existing session of the same key")] = False,
) -> None:
    """Import an exported session; the next run resumes its conversation here."""
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
        document = json.loads(text)
    except OSError as exc:
        raise BadInput(f"cannot read {file}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise BadInput(f"{file} is not JSON: {exc}") from exc
    with _store() as (settings, store):
        session = import_session(store, settings, document, replace=replace)
    out.print(
        f"imported {session.agent}:{session.repo}:{session.thread} (session {session.agent_session_id})",
        highlight=False,
    )


# -- runs ------------------------------------------------------------------------------------------


def _runs_table(runs: list[RunRecord]) -> None:
    table = Table("run", "agent", "repo", "thread", "try", "mode", "prompt", "outcome", "started", "secs")
    for r in runs:
        table.add_row(
            r.id,
            r.agent,
            r.repo,
            r.thread,
            str(r.attempt),
            r.mode.value,
            r.prompt_kind.value,
            r.outcome.value,
            iso(r.started_at),
            str(r.duration_s or "-"),
        )
    out.print(table)


@runs_app.command("ls")
def runs_ls(
    agent: Annotated[str | None, typer.Option("--agent", "-a")] = None,
    repo: Annotated[str | None, typer.Option("--repo", "-r", help="slug")] = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t")] = None,
    limit: Annotated[int, typer.Option(help="at most N runs")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    with _store() as (_settings, store):
        runs = store.list_runs(agent, repo, thread, limit=limit)
    if as_json:
        _emit_json([r.to_json() for r in runs])
    else:
        _runs_table(runs)


def _get_run(store: Store, run_id: str) -> RunRecord:
    record = store.get_run(run_id)
    if record is None:
        raise NotFound(f"no run {run_id!r}")
    return record


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonOpt = False) -> None:
    """Show one run (a unique prefix of its id is enough)."""
    with _store() as (_settings, store):
        data = _get_run(store, run_id).to_json()
    if as_json:
        _emit_json(data)
        return
    for name, value in data.items():
        out.print(f"[bold]{name}[/bold]: {value}", highlight=False)


@runs_app.command("logs")
def runs_logs(
    run_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
) -> None:
    """Print a run's raw event log (JSONL), optionally following it live."""
    with _store() as (_settings, store):
        record = _get_run(store, run_id)
        path = Path(record.log_path)
        position = 0
        while True:
            if path.exists():
                with path.open("rb") as fh:
                    fh.seek(position)
                    chunk = fh.read()
                    position += len(chunk)
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
            if not follow:
                return
            current = store.get_run(record.id)
            if current is None or current.outcome != Outcome.RUNNING:
                follow = False  # one last read picks up the tail written before it ended
                continue
            time.sleep(0.2)


@app.command("agents")
def agents_cmd(as_json: JsonOpt = False) -> None:
    """List the agents: installed or not, version, capabilities, home."""
    settings = load_settings()
    rows = [describe_agent(name, settings) for name in AGENTS]
    if as_json:
        _emit_json(rows)
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
        _emit_json(report)
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
        _emit_json(homes.to_json(actions))
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
