"""``baton runs``: list runs, show one, read or follow its log.

Ids are shown in their short form (``baton.runner.runids``) and every command takes a full id, a prefix or
a short form.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from baton.cli.common import JsonOpt, WideOpt, ago, cli_store, emit_json, esc, group, out

if TYPE_CHECKING:
    from rich.table import Table

    from baton.models import RunRecord
    from baton.store.base import Store

runs_app = group("List runs, show one, read or follow its log.")
RunId = Annotated[str, typer.Argument(help="a run id, a prefix of it, or the short id tables show")]


def runs_table(store: Store, runs: list[RunRecord], wide: bool = False) -> None:
    """Print runs as a table: at 80 columns by default, every column with ``wide``."""
    from baton.runner.runids import short_ids

    shown = short_ids(store, [r.id for r in runs])
    table = new_table("run", "agent", "thread", "mode", "outcome", "started", "secs")
    if wide:
        table = new_table(
            "run", "agent", "repo", "thread", "try", "mode", "prompt", "outcome", "started", "secs"
        )
    for r in runs:
        secs = "-" if r.duration_s is None else f"{r.duration_s:.1f}"
        cells = [shown[r.id], r.agent, r.thread, r.mode.value, r.outcome.value, ago(r.started_at), secs]
        if wide:
            cells[2:3] = [r.repo, r.thread, str(r.attempt)]
            cells.insert(6, r.prompt_kind.value)
        table.add_row(*map(esc, cells))
    out().print(table)


def new_table(*columns: str) -> Table:
    """A compact table for 80 columns: no box, two spaces between columns, a bold header; a cell too
    long for its column wraps (``fold``) instead of being cut to ``…``."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


@runs_app.command("ls")
def runs_ls(
    agent: Annotated[str | None, typer.Option("--agent", "-a")] = None,
    repo: Annotated[str | None, typer.Option("--repo", "-r", help="slug")] = None,
    thread: Annotated[str | None, typer.Option("--thread", "-t")] = None,
    limit: Annotated[int, typer.Option(help="at most N runs")] = 50,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """List runs, newest first."""
    with cli_store() as (_settings, store):
        runs = store.list_runs(agent, repo, thread, limit=limit)
        if as_json:
            emit_json([r.to_json() for r in runs])
        else:
            runs_table(store, runs, wide=wide)


@runs_app.command("show")
def runs_show(run_id: RunId, as_json: JsonOpt = False) -> None:
    """Show one run."""
    from baton.runner.runids import resolve_run

    with cli_store() as (_settings, store):
        data = resolve_run(store, run_id).to_json()
    if as_json:
        emit_json(data)
        return
    if data.get("error"):
        from baton.agents import clean_error

        data["error"] = clean_error(data["agent"], data["error"])  # without the agent CLI's noise
    for name, value in data.items():
        out().print(f"[bold]{name}[/bold]: {esc(value)}", highlight=False)


@runs_app.command("logs")
def runs_logs(
    run_id: RunId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="the agent's own JSON lines, unrendered")] = False,
) -> None:
    """Print a run's event log (assistant text, tool calls, results, errors), optionally following it."""
    from baton.cli.logs import print_log
    from baton.runner.runids import resolve_run

    with cli_store() as (_settings, store):
        print_log(store, resolve_run(store, run_id), follow=follow, raw=raw)
