"""``baton runs``: list runs, show one, read or follow its log."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from baton.cli.common import JsonOpt, cli_store, emit_json, out
from baton.errors import NotFound
from baton.models import Outcome, RunRecord, iso
from baton.store import Store

runs_app = typer.Typer(help="List runs, show one, read or follow its log.", no_args_is_help=True)


def runs_table(runs: list[RunRecord]) -> None:
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
    with cli_store() as (_settings, store):
        runs = store.list_runs(agent, repo, thread, limit=limit)
    if as_json:
        emit_json([r.to_json() for r in runs])
    else:
        runs_table(runs)


def _get_run(store: Store, run_id: str) -> RunRecord:
    record = store.get_run(run_id)
    if record is None:
        raise NotFound(f"no run {run_id!r}")
    return record


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonOpt = False) -> None:
    """Show one run (a unique prefix of its id is enough)."""
    with cli_store() as (_settings, store):
        data = _get_run(store, run_id).to_json()
    if as_json:
        emit_json(data)
        return
    for name, value in data.items():
        out.print(f"[bold]{name}[/bold]: {value}", highlight=False)


@runs_app.command("logs")
def runs_logs(
    run_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
) -> None:
    """Print a run's raw event log (JSONL), optionally following it live."""
    with cli_store() as (_settings, store):
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
